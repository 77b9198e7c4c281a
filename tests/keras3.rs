//! Models written by Keras 3 (`tensorflowjs_converter --input_format=keras_keras`): the
//! `{keras_version, model_config}` envelope, `batch_shape`, dtype policies, and weights named
//! by h5 path (`layers/dense_1/vars/0`), bound by class ordinal and variable order rather than
//! by layer name, with Keras 3's activation semantics.

mod common;

use common::*;
use layercake::format::synthetic;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use serde_json::{json, Value};

fn policy() -> Value {
    json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null})
}

fn layer(class: &str, config: Value) -> Value {
    let mut config = config;
    config["dtype"] = policy();
    json!({"module": "keras.layers", "class_name": class, "config": config, "registered_name": null})
}

fn envelope(model: Value) -> Value {
    json!({"keras_version": "3.15.0", "backend": "tensorflow", "model_config": model})
}

fn sequential(name: &str, input: Value, layers: Vec<Value>) -> Value {
    let mut all = vec![
        json!({"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": input, "dtype": "float32", "sparse": false, "name": format!("{name}_input")}, "registered_name": null}),
    ];
    all.extend(layers);
    json!({"module": "keras", "class_name": "Sequential", "config": {"name": name, "trainable": true, "dtype": policy(), "layers": all}, "registered_name": null})
}

fn weights(m: &Model, name: &str) -> Vec<f64> {
    let i = m
        .artifacts
        .find(name)
        .unwrap_or_else(|| panic!("no {name}"));
    bytemuck::pod_collect_to_vec::<u8, f32>(&m.artifacts.logical(i))
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn weights_bind_by_h5_path_not_by_layer_name() {
    // Two same-shaped Dense layers whose names run against their order: binding by name would
    // swap them silently. Keras 3 numbers them by position: the first is `layers/dense`.
    let model = sequential(
        "seq",
        json!([null, 4]),
        vec![
            layer(
                "Dense",
                json!({"name": "dense_1", "units": 4, "activation": "relu", "use_bias": true}),
            ),
            layer(
                "Dense",
                json!({"name": "dense", "units": 4, "activation": "hard_sigmoid", "use_bias": true}),
            ),
        ],
    );
    let names = [
        ("layers/dense/vars/0", vec![4, 4]),
        ("layers/dense/vars/1", vec![4]),
        ("layers/dense_1/vars/0", vec![4, 4]),
        ("layers/dense_1/vars/1", vec![4]),
        ("optimizer/vars/0", vec![]),
        ("optimizer/vars/1", vec![4, 4]),
    ];
    let named: Vec<(String, Vec<usize>)> = names
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    let m = Model::from_artifacts(synthetic::with_topology(&named, envelope(model), 9).unwrap())
        .unwrap();
    let x = [0.5f64, -1.0, 2.0, 0.25];
    let got = m
        .predict(&[Tensor::new(vec![1, 4], x.iter().map(|&v| v as f32).collect()).unwrap()])
        .unwrap();
    let dense = |input: &[f64], w: &[f64], b: &[f64]| -> Vec<f64> {
        (0..4)
            .map(|j| (0..4).map(|k| input[k] * w[k * 4 + j]).sum::<f64>() + b[j])
            .collect()
    };
    let h: Vec<f64> = dense(
        &x,
        &weights(&m, "layers/dense/vars/0"),
        &weights(&m, "layers/dense/vars/1"),
    )
    .into_iter()
    .map(|v| v.max(0.0))
    .collect();
    // Keras 3's hard_sigmoid: clip(x/6 + 1/2, 0, 1) (TF.js's is 0.2x + 0.5).
    let y: Vec<f64> = dense(
        &h,
        &weights(&m, "layers/dense_1/vars/0"),
        &weights(&m, "layers/dense_1/vars/1"),
    )
    .into_iter()
    .map(|v| (v / 6.0 + 0.5).clamp(0.0, 1.0))
    .collect();
    let y: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    assert_eq!(got.len(), 1, "one output");
    assert_values("hard_sigmoid head", &got[0].data, &y, tol(1e-5, 0.0));
}

#[test]
fn nested_recurrent_and_normalization_layers_load_and_agree_on_gpu() {
    // Functional → nested Sequential (Dense) → LSTM (cell variables) → BatchNormalization
    // without center → Dense; Keras 3 call records with __keras_tensor__ / keras_history.
    let inner = sequential(
        "sequential",
        json!([null, 5, 3]),
        vec![layer("Dense", json!({"name": "proj", "units": 3}))],
    );
    let tensor = |layer: &str| json!({"class_name": "__keras_tensor__", "config": {"shape": [null, 5, 3], "dtype": "float32", "keras_history": [layer, 0, 0]}});
    let call = |layer: &str| json!([{"args": [tensor(layer)], "kwargs": {"mask": null}}]);
    let mut lstm = layer(
        "LSTM",
        json!({"name": "lstm", "units": 4, "return_sequences": false}),
    );
    lstm["inbound_nodes"] = call("sequential");
    let mut bn = layer(
        "BatchNormalization",
        json!({"name": "bn", "center": false, "epsilon": 4.0}),
    );
    bn["inbound_nodes"] = call("lstm");
    let mut head = layer(
        "Dense",
        json!({"name": "head", "units": 2, "activation": "silu"}),
    );
    head["inbound_nodes"] = call("bn");
    let mut nested = inner.clone();
    nested["inbound_nodes"] = call("x");
    let model = json!({"module": "keras", "class_name": "Functional", "config": {"name": "f", "trainable": true, "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "name": "x", "config": {"batch_shape": [null, 5, 3], "dtype": "float32", "sparse": false, "name": "x"}, "inbound_nodes": []},
        nested, lstm, bn, head],
        "input_layers": ["x", 0, 0], "output_layers": ["head", 0, 0]}, "registered_name": null});
    let names = [
        ("layers/sequential/layers/dense/vars/0", vec![3, 3]),
        ("layers/sequential/layers/dense/vars/1", vec![3]),
        ("layers/lstm/cell/vars/0", vec![3, 16]),
        ("layers/lstm/cell/vars/1", vec![4, 16]),
        ("layers/lstm/cell/vars/2", vec![16]),
        ("layers/batch_normalization/vars/0", vec![4]),
        ("layers/batch_normalization/vars/1", vec![4]),
        ("layers/batch_normalization/vars/2", vec![4]),
        ("layers/dense/vars/0", vec![4, 2]),
        ("layers/dense/vars/1", vec![2]),
    ];
    let named: Vec<(String, Vec<usize>)> = names
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    let a = synthetic::with_topology(&named, envelope(model), 4).unwrap();
    let m = Model::from_artifacts(a).unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::new(
        vec![2, 5, 3],
        (0..30).map(|i| ((i * 5) % 7) as f32 / 3.0 - 1.0).collect(),
    )
    .unwrap();
    let cpu = m.predict(std::slice::from_ref(&x)).unwrap();
    assert_eq!(cpu[0].shape, vec![2, 2]);
    if let Some(dev) = gpu() {
        let got = GpuModel::new(&dev, &m).unwrap().predict(&[x]).unwrap();
        assert_outputs("GPU vs CPU", &got, &cpu, tol(1e-5, 1e-4));
    }
}

#[test]
fn a_missing_h5_weight_is_named() {
    let model = sequential(
        "seq",
        json!([null, 4]),
        vec![layer("Dense", json!({"name": "d", "units": 2}))],
    );
    let named = vec![("layers/dense/vars/0".to_string(), vec![4, 2])];
    let err = Model::from_artifacts(synthetic::with_topology(&named, envelope(model), 1).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("layers/dense/vars/1"), "{err}");
}

/// `tests/fixtures/keras3/*`: written by the real converter from Keras 3.15 models, with Keras's own
/// `predict` outputs (tools/keras3-fixtures/gen.py).
fn keras3_fixtures() -> Vec<std::path::PathBuf> {
    let root = fixtures_dir().join("keras3");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "keras3 fixtures missing: {dirs:?}");
    dirs
}

/// Keras's inputs and outputs for fixture `dir`.
fn golden(dir: &std::path::Path) -> (Vec<Tensor>, Vec<Tensor>) {
    let bundle = |key| {
        layercake::model::read_bundle(&dir.join("expected.json"), key)
            .unwrap()
            .into_iter()
            .map(|n| n.tensor)
            .collect()
    };
    (bundle("inputs"), bundle("outputs"))
}

/// Within atol 1e-5 / rtol 1e-4 of Keras, element by element.
fn assert_matches_keras(what: &str, got: &[Tensor], want: &[Tensor]) {
    assert_outputs(&format!("{what} vs Keras"), got, want, tol(1e-5, 1e-4));
}

#[test]
fn real_converter_exports_match_keras_on_cpu_and_gpu() {
    let dev = gpu();
    for dir in keras3_fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let m = Model::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (inputs, want) = golden(&dir);
        let cpu = m.predict(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_matches_keras(&format!("{name} (CPU)"), &cpu, &want);
        if let Some(dev) = &dev {
            let g = GpuModel::new(dev, &m).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = g.predict(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_matches_keras(&format!("{name} (GPU)"), &got, &want);
        }
    }
}

#[test]
fn fitted_keras3_model_keeps_its_optimizer_state_through_saves() {
    let dir = fixtures_dir().join("keras3/fitted");
    let a = layercake::open(&dir).unwrap();
    let opt: Vec<_> = a.spec.weights.iter().filter(|w| w.is_optimizer()).collect();
    assert_eq!(
        opt.len(),
        10,
        "iteration, learning rate, m and v of 4 variables"
    );
    let iterations = a.logical(a.find("optimizer/vars/0").unwrap());
    assert_eq!(
        i32::from_le_bytes(iterations.as_ref().try_into().unwrap()),
        12,
        "3 epochs × 4 batches"
    );
    let out = tempfile::tempdir().unwrap();
    for dst in [out.path().join("tfjs"), out.path().join("m.safetensors")] {
        layercake::format::save(&dst, &a.spec, &a, Default::default()).unwrap();
        let b = layercake::open(&dst).unwrap();
        assert_same_weights(&a, &b, &dst.display().to_string());
        let topology = |x: &layercake::Artifacts| x.spec.topology().cloned();
        assert_eq!(topology(&a), topology(&b), "compile_config and all");
        let (inputs, want) = golden(&dir);
        let m = Model::from_artifacts(b).unwrap();
        assert_matches_keras("fitted, re-saved", &m.predict(&inputs).unwrap(), &want);
    }
}

/// A copy of Keras 3 fixture `name` whose manifest names weights by layer path instead of h5
/// path (`renames`: h5 path → layer path), as some converter routes write them.
fn renamed_fixture(name: &str, renames: &[(&str, &str)]) -> tempfile::TempDir {
    let src = fixtures_dir().join("keras3").join(name);
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = dir.path().join("model.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut specs: Vec<Value> = Vec::new();
    for w in m["weightsManifest"][0]["weights"].as_array().unwrap() {
        let mut w = w.clone();
        let old = w["name"].as_str().unwrap().to_string();
        let new = renames.iter().find(|(h5, _)| *h5 == old).unwrap().1;
        w["name"] = json!(new);
        specs.push(w);
    }
    m["weightsManifest"][0]["weights"] = json!(specs);
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    dir
}

/// The `dense` fixture's h5 paths and the layer paths naming the same weights.
const DENSE_BY_LAYER_PATH: &[(&str, &str)] = &[
    ("layers/dense/vars/0", "second/kernel"),
    ("layers/dense/vars/1", "second/bias"),
    ("layers/dense_1/vars/0", "first/kernel"),
    ("layers/dense_1/vars/1", "first/bias"),
    ("layers/dense_2/vars/0", "dense/kernel"),
    ("layers/dense_2/vars/1", "dense/bias"),
];

#[test]
fn keras3_weights_named_by_layer_path_bind_too() {
    let cases: [(&str, &[(&str, &str)]); 2] = [
        ("dense", DENSE_BY_LAYER_PATH),
        (
            "embed_lstm",
            &[
                ("layers/dense/vars/0", "dense_1/kernel"),
                ("layers/dense/vars/1", "dense_1/bias"),
                ("layers/embedding/vars/0", "embedding/embeddings"),
                ("layers/lstm/cell/vars/0", "lstm/lstm_cell/kernel"),
                ("layers/lstm/cell/vars/1", "lstm/lstm_cell/recurrent_kernel"),
                ("layers/lstm/cell/vars/2", "lstm/lstm_cell/bias"),
                ("layers/lstm_1/cell/vars/0", "lstm_1/lstm_cell/kernel"),
                (
                    "layers/lstm_1/cell/vars/1",
                    "lstm_1/lstm_cell/recurrent_kernel",
                ),
                ("layers/lstm_1/cell/vars/2", "lstm_1/lstm_cell/bias"),
            ],
        ),
    ];
    for (name, renames) in cases {
        let dir = renamed_fixture(name, renames);
        let m = Model::load(dir.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (inputs, want) = golden(&fixtures_dir().join("keras3").join(name));
        let got = m.predict(&inputs).unwrap();
        assert_matches_keras(&format!("{name} by layer path"), &got, &want);
    }
    // A missing weight names both namings tried.
    let mut wrong = DENSE_BY_LAYER_PATH.to_vec();
    wrong[5].1 = "other/bias";
    let dir = renamed_fixture("dense", &wrong);
    let e = Model::load(dir.path()).err().expect("refused").to_string();
    assert!(
        e.contains("layers/dense_2/vars/1") && e.contains("dense/bias") && e.contains("h5 path"),
        "{e}"
    );
}
