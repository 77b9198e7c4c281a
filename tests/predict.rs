//! Predictions on the CPU reference backend match TF.js's expected outputs for every
//! feed-forward fixture (atol 1e-5, rtol 1e-4), and bad models / inputs get clear errors.

mod common;

use common::*;
use layercake::model::{read_bundle, Model};
use layercake::tensor::Tensor;

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;

/// Every fixture: feed-forward and recurrent.
fn feed_forward() -> Vec<String> {
    fixtures()
}

fn check(name: &str) -> Result<f32, String> {
    let model = Model::load(&fixtures_dir().join(name)).map_err(|e| e.to_string())?;
    let expected = fixtures_dir().join(name).join("expected.json");
    let inputs: Vec<Tensor> = read_bundle(&expected, "inputs")
        .unwrap()
        .into_iter()
        .map(|n| n.tensor)
        .collect();
    let want = bundle_tensors(&expected, "outputs");
    let got = model.predict(&inputs).map_err(|e| e.to_string())?;
    check_outputs(&got, &want, tol(ATOL, RTOL))
}

#[test]
fn cpu_predictions_match_tfjs() {
    let mut failures = Vec::new();
    for name in feed_forward() {
        match check(&name) {
            Ok(worst) => eprintln!("{name}: max abs error {worst:.2e}"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shapes_are_inferred_for_every_layer() {
    let model = Model::load(&fixtures_dir().join("cnn")).unwrap();
    let summary = model.summary();
    assert_eq!(summary.len(), 9);
    assert_eq!(summary.last().unwrap().2, "[?, 5]");
    assert_eq!(
        model.inputs()[0].shape,
        vec![None, Some(12), Some(12), Some(3)]
    );
    let nested = Model::load(&fixtures_dir().join("nested")).unwrap();
    assert_eq!(nested.inputs().len(), 2);
    // The inner Sequential is called twice: its two layers are built once, used twice.
    assert_eq!(
        nested
            .summary()
            .iter()
            .filter(|s| s.1 == "in_dense")
            .count(),
        2
    );
}

#[test]
fn wrong_input_shape_is_named() {
    let model = Model::load(&fixtures_dir().join("cnn")).unwrap();
    let err = model
        .predict(&[Tensor::zeros(vec![1, 12, 11, 3])])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has shape [1, 12, 11, 3]") && err.contains("[?, 12, 12, 3]"),
        "{err}"
    );
    let err = model.predict(&[]).unwrap_err().to_string();
    assert!(err.contains("takes 1 input"), "{err}");
}

#[test]
fn model_errors_name_the_layer() {
    // Unsupported class.
    let d = copy_fixture("mlp_adam");
    let path = d.path().join("model.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "\"class_name\":\"BatchNormalization\"",
            "\"class_name\":\"FancyNorm\"",
            1,
        ),
    )
    .unwrap();
    let err = Model::load(d.path()).err().unwrap().to_string();
    assert!(
        err.contains("class 'FancyNorm' is not supported")
            && err.contains("batch_normalization")
            && err.contains("Dense"),
        "{err}"
    );
    // A weight with the wrong shape.
    let d = copy_fixture("sharded");
    let path = d.path().join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["modelTopology"]["config"]["layers"][0]["config"]["units"] = serde_json::json!(41);
    std::fs::write(&path, v.to_string()).unwrap();
    let err = Model::load(d.path()).err().unwrap().to_string();
    assert!(
        err.contains("has shape [30, 40] but the layer expects [30, 41]"),
        "{err}"
    );
    // A pooling layer of the wrong rank for its input (found by fuzzing: it used to panic).
    let d = copy_fixture("cnn");
    let path = d.path().join("model.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "\"class_name\":\"MaxPooling2D\",\"config\":{\"pool_size\":[2,2],\"padding\":\"valid\",\"strides\":[2,2]",
        "\"class_name\":\"MaxPooling1D\",\"config\":{\"pool_size\":[2],\"padding\":\"valid\",\"strides\":[2]",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let err = Model::load(d.path()).err().unwrap().to_string();
    assert!(
        err.contains("max_pooling2d_MaxPooling2D1") && err.contains("expects a rank-3 input"),
        "{err}"
    );
    // A missing weight.
    let d = copy_fixture("sharded");
    let path = d.path().join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let bias = v["weightsManifest"][1]["weights"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    v["weightsManifest"][1]["weights"][0]["name"] = serde_json::json!("renamed/bias");
    std::fs::write(&path, v.to_string()).unwrap();
    let err = Model::load(d.path()).err().unwrap().to_string();
    assert!(
        err.contains(&format!("weight '{bias}' is missing")),
        "{err}"
    );
}

fn cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_verify_and_predict() {
    let dir = fixtures_dir().join("merge_reshape");
    let expected = dir.join("expected.json");
    let ok = cli(&[
        "verify".as_ref(),
        dir.as_os_str(),
        "--expect".as_ref(),
        expected.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["pass"], true);
    let golden = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "predictions: golden")
        .unwrap();
    assert_eq!(golden["result"], "pass", "{report}");
    assert!(golden["detail"].as_str().unwrap().contains("expected.json"));

    // A perturbed expectation fails with exit code 1.
    let tmp = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&expected).unwrap()).unwrap();
    let first = v["outputs"][1]["data"][0].as_f64().unwrap();
    v["outputs"][1]["data"][0] = serde_json::json!(first + 1e-3);
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let fail = cli(&[
        "verify".as_ref(),
        dir.as_os_str(),
        "--expect".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(fail.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fail.stdout).contains("FAIL"));

    // predict writes the outputs in the fixtures' tensor JSON.
    let out = tmp.path().join("out.json");
    let p = cli(&[
        "predict".as_ref(),
        dir.as_os_str(),
        "--inputs".as_ref(),
        expected.as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(
        p.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&p.stderr)
    );
    let got = read_bundle(&out, "outputs").unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].tensor.shape, vec![2, 3, 4]);
}

#[test]
fn inspect_reports_layers_weights_and_output_shapes() {
    let dir = fixtures_dir().join("cnn");
    let out = cli(&["inspect".as_ref(), dir.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["style"], "downloads");
    // The input, then the nine layer calls, as Keras's summary lists them.
    assert_eq!(v["graph"].as_array().unwrap().len(), 10);
    assert_eq!(v["graph"][0]["class"], "InputLayer");
    assert_eq!(v["graph"][9]["output_shape"], "[?, 5]");
    assert_eq!(v["params"]["total"], v["totals"]["model_params"]);
    assert_eq!(v["weights"].as_array().unwrap().len(), 15);
    assert!(v["totals"]["model_params"].as_u64().unwrap() > 0);
    let rnn = cli(&[
        "inspect".as_ref(),
        fixtures_dir().join("rnn").as_os_str(),
        "--json".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&rnn.stdout).unwrap();
    assert!(v["graph_error"].is_null(), "{v}");
    let graph = v["graph"].as_array().unwrap();
    assert_eq!(graph.last().unwrap()["output_shape"], "[?, 7, 2]");
}

#[test]
fn every_tfjs_layer_class_and_activation_is_known() {
    let Some(tools) = tfjs_tools() else { return };
    let listed = node(&tools, "layer-classes.mjs", &[]);
    // Containers are rebuilt by the graph; cells run inside RNN (the first four) or ConvLSTM2D.
    let elsewhere = [
        "SimpleRNNCell",
        "GRUCell",
        "LSTMCell",
        "StackedRNNCells",
        "ConvLSTM2DCell",
        "Sequential",
        "Functional",
        "Model",
    ];
    let (mut layers, mut activations) = (0, 0);
    for line in listed.lines() {
        match line.split_once(' ') {
            Some(("layer", class)) if !elsewhere.contains(&class) => {
                layers += 1;
                if let Err(e) = layercake::layers::builder(class, "probe") {
                    panic!("TF.js layer class {class} is not supported: {e}");
                }
            }
            Some(("activation", name)) => {
                activations += 1;
                let v = serde_json::Value::from(name);
                layercake::layers::Activation::parse(Some(&v), false)
                    .unwrap_or_else(|e| panic!("TF.js activation {name}: {e}"));
            }
            _ => {}
        }
    }
    assert!(
        layers >= 60 && activations >= 15,
        "{layers} layers, {activations} activations listed"
    );
}

/// Python with NumPy, or a skip (a failure when tools are required).
fn numpy() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || !tools_required(),
        "LAYERCAKE_REQUIRE_TOOLS=1 but NumPy is missing"
    );
    if !ok {
        eprintln!("skipped: python3 with numpy not found");
    }
    ok
}

#[test]
fn predict_reads_and_writes_numpy_files() {
    if !numpy() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let two = fixtures_dir().join("keras3/shared_two_io");
    let cnn = fixtures_dir().join("cnn");
    // NumPy writes the fixtures' inputs: float64 .npy for the one-input CNN, an .npz by input
    // name and one by np.savez's positional names (float32) for the two-input model.
    let script = format!(
        r#"
import json, numpy as np
cnn = json.load(open({cnn:?}))
x = cnn["inputs"][0]
np.save("cnn.npy", np.array(x["data"], dtype=np.float64).reshape(x["shape"]))
two = json.load(open({two:?}))
arrs = {{t["name"]: np.array(t["data"], dtype=np.float32).reshape(t["shape"]) for t in two["inputs"]}}
np.savez("named.npz", **arrs)
np.savez("positional.npz", *[arrs[t["name"]] for t in two["inputs"]])
"#,
        cnn = cnn.join("expected.json"),
        two = two.join("expected.json"),
    );
    python_script(&script, work.path());
    let run = |model: &std::path::Path, inputs: &str, output: &str| {
        let out = cli(&[
            "predict".as_ref(),
            model.as_os_str(),
            "--inputs".as_ref(),
            work.path().join(inputs).as_os_str(),
            "--output".as_ref(),
            work.path().join(output).as_os_str(),
            "--device".as_ref(),
            "cpu".as_ref(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&cnn, "cnn.npy", "cnn_out.npy");
    run(&two, "named.npz", "named_out.npz");
    run(&two, "positional.npz", "positional_out.npz");
    // NumPy reads what layercake wrote; the values are TF.js's / Keras's predictions.
    let check = format!(
        r#"
import json, numpy as np
def close(got, t):
    want = np.array(t["data"], dtype=np.float32).reshape(t["shape"])
    assert got.dtype == np.float32 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    assert np.allclose(got, want, atol=1e-5, rtol=1e-4), np.abs(got - want).max()
close(np.load("cnn_out.npy"), json.load(open({cnn:?}))["outputs"][0])
for f in ["named_out.npz", "positional_out.npz"]:
    z = np.load(f)
    want = json.load(open({two:?}))["outputs"]
    assert len(z.files) == len(want), z.files
    # One array per model output, named as the output, in output order.
    for name, t in zip(z.files, want):
        close(z[name], t)
"#,
        cnn = cnn.join("expected.json"),
        two = two.join("expected.json"),
    );
    python_script(&check, work.path());
    // A .npy for a two-input model is a usage error naming the inputs.
    let out = cli(&[
        "predict".as_ref(),
        two.as_os_str(),
        "--inputs".as_ref(),
        work.path().join("cnn.npy").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cnn.npy") && err.contains("2 inputs (a, b)"),
        "{err}"
    );
}

#[test]
fn predict_runs_an_image_model_on_a_picture() {
    let work = tempfile::tempdir().unwrap();
    let model_dir = fixtures_dir().join("teachable");
    let model = Model::load(&model_dir).unwrap();
    // An 8×8 picture (the model's input size) and a 16×12 one (resized as TF.js's
    // resizeBilinear does, the same resampling the Resizing layer is checked with against TF.js).
    for (w, h) in [(8u32, 8u32), (16, 12)] {
        let picture = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 29 % 256) as u8,
                (y * 53 % 256) as u8,
                ((x + y) * 17 % 256) as u8,
            ])
        });
        let png = work.path().join(format!("picture{w}x{h}.png"));
        picture.save(&png).unwrap();
        let labels = work.path().join("metadata.json");
        std::fs::write(&labels, r#"{"labels": ["cat", "dog", "bird"]}"#).unwrap();
        let out_json = work.path().join("out.json");
        let out = cli(&[
            "predict".as_ref(),
            model_dir.as_os_str(),
            "--image".as_ref(),
            png.as_os_str(),
            "--labels".as_ref(),
            labels.as_os_str(),
            "--top".as_ref(),
            "2".as_ref(),
            "--output".as_ref(),
            out_json.as_os_str(),
            "--device".as_ref(),
            "cpu".as_ref(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The same input built here: pixels scaled to -1..1, fitted to 8×8.
        let raw: Vec<f32> = picture.into_raw().into_iter().map(f32::from).collect();
        let mut x = Tensor::new(vec![1, h as usize, w as usize, 3], raw).unwrap();
        if (w, h) != (8, 8) {
            x = layercake::layers::resize_bilinear(&x, 8, 8).unwrap();
        }
        let data: Vec<f32> = x.data.iter().map(|v| v / 127.5 - 1.0).collect();
        let want = model
            .predict(&[Tensor::new(x.shape.clone(), data).unwrap()])
            .unwrap();
        let got = read_bundle(&out_json, "outputs").unwrap();
        let got: Vec<Tensor> = got.into_iter().map(|n| n.tensor).collect();
        assert_outputs(&format!("{w}×{h}"), &got, &want, tol(1e-6, 0.0));
        let best = layercake::model::image::top(&want[0], 1)[0].0;
        let name = ["cat", "dog", "bird"][best];
        assert!(
            stdout.contains(&format!("1. {name} (class {best})")),
            "{stdout}"
        );
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.trim_start().starts_with(char::is_numeric))
                .count(),
            2
        );
    }
    // A picture for a model without an image input is a usage error naming the input.
    let png = work.path().join("picture8x8.png");
    let mlp = fixtures_dir().join("keras3/dense");
    let out = cli(&[
        "predict".as_ref(),
        mlp.as_os_str(),
        "--image".as_ref(),
        png.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an image input"));
}
