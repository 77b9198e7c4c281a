//! Predictions on the GPU (lavapipe in CI) match TF.js and the CPU reference for the fixtures whose
//! layers have GPU kernels so far, and the matmul kernel matches the CPU on shapes that are not
//! multiples of its tile, batch 1 included.

mod common;

use common::*;
use layercake::format::synthetic;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;

/// GPU against TF.js and the CPU: atol 1e-5, rtol 1e-4.
const TOL: Tol = tol(1e-5, 1e-4);

/// One output against its reference (see `check_outputs`: NaN, Inf and shape mismatches fail).
fn close(got: &Tensor, want: &Tensor, atol: f32, rtol: f32) -> Result<(), String> {
    check_outputs(
        std::slice::from_ref(got),
        std::slice::from_ref(want),
        tol(atol, rtol),
    )
    .map(|_| ())
}

#[test]
fn gpu_predictions_match_tfjs_and_the_cpu() {
    let Some(dev) = gpu() else { return };
    // Every fixture, recurrent ones included.
    for name in fixtures().iter().map(String::as_str) {
        let model = Model::load(&fixtures_dir().join(name)).unwrap();
        let gm = GpuModel::new(&dev, &model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = fixtures_dir().join(name).join("expected.json");
        let inputs = bundle_tensors(&expected, "inputs");
        let want = bundle_tensors(&expected, "outputs");
        let got = gm
            .predict(&inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let cpu = model.predict(&inputs).unwrap();
        assert_outputs(&format!("{name} vs TF.js"), &got, &want, TOL);
        assert_outputs(&format!("{name} vs CPU"), &got, &cpu, TOL);
        // A second batch size gets its own plan; the first is then replayed unchanged.
        let first: Vec<Tensor> = inputs.iter().map(first_sample).collect();
        let got_first = gm.predict(&first).unwrap();
        let cpu_first = model.predict(&first).unwrap();
        assert_outputs(
            &format!("{name}, batch 1 vs CPU"),
            &got_first,
            &cpu_first,
            TOL,
        );
        let again = gm.predict(&inputs).unwrap();
        assert_outputs(
            &format!("{name}: replayed plan"),
            &again,
            &got,
            tol(0.0, 0.0),
        );
    }
}

/// The first sample of a batch.
fn first_sample(t: &Tensor) -> Tensor {
    let mut shape = t.shape.clone();
    let n = t.data.len() / shape[0].max(1);
    shape[0] = 1;
    Tensor::new(shape, t.data[..n].to_vec()).unwrap()
}

#[test]
fn activation_buffers_are_shared_by_lifetime() {
    let Some(dev) = gpu() else { return };
    // Six Dense(64) layers in a chain on batch 8: the input, two buffers the intermediates take
    // turns in, and the output reusing one of them.
    let mut layers = vec![
        serde_json::json!({"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [null, 64]}}),
    ];
    let mut weights = Vec::new();
    for i in 0..6 {
        layers.push(serde_json::json!({"class_name": "Dense", "config": {"name": format!("d{i}"), "units": 64, "activation": "tanh"}}));
        weights.push((format!("d{i}/kernel"), vec![64, 64]));
        weights.push((format!("d{i}/bias"), vec![64]));
    }
    let topology = serde_json::json!({"class_name": "Sequential", "config": {"name": "chain", "layers": layers}});
    let model =
        Model::from_artifacts(synthetic::with_topology(&weights, topology, 3).unwrap()).unwrap();
    let gm = GpuModel::new(&dev, &model).unwrap();
    let x = Tensor::new(
        vec![8, 64],
        (0..512).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect(),
    )
    .unwrap();
    assert_eq!(
        gm.activation_bytes(std::slice::from_ref(&x)).unwrap(),
        3 * 8 * 64 * 4
    );
    let got = gm.predict(std::slice::from_ref(&x)).unwrap();
    close(&got[0], &model.predict(&[x]).unwrap()[0], 1e-5, 1e-4).unwrap();
}

#[test]
fn matmul_matches_the_cpu_on_odd_shapes() {
    let Some(dev) = gpu() else { return };
    // Square Dense stacks of widths that are not multiples of the 32-wide tile.
    for (width, batch) in [(1usize, 1usize), (33, 1), (37, 5), (70, 3)] {
        let a = synthetic::mlp((width * width * 4 * 2) as u64, 4).unwrap();
        let model = Model::from_artifacts(a).unwrap();
        let d = model.inputs()[0].shape[1].unwrap();
        let x = Tensor::new(
            vec![batch, d],
            (0..batch * d)
                .map(|i| ((i * 7919) % 97) as f32 / 50.0 - 1.0)
                .collect(),
        )
        .unwrap();
        let cpu = model.predict(std::slice::from_ref(&x)).unwrap();
        let got = GpuModel::new(&dev, &model).unwrap().predict(&[x]).unwrap();
        close(&got[0], &cpu[0], 1e-4, 1e-4)
            .unwrap_or_else(|e| panic!("width {d}, batch {batch}: {e}"));
    }
}

#[test]
fn dot_over_any_axes_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    // Rank-3 and mixed-rank Dot run as gathered row dots; every axis pairing, both modes.
    let cases = [
        ([3, 4], [5, 4], serde_json::json!([2, 2])),
        ([3, 4], [4, 5], serde_json::json!([2, 1])),
        ([3, 4], [3, 2], serde_json::json!([1, 1])),
        ([3, 4], [1, 3], serde_json::json!([1, 2])),
        ([3, 4], [4, 0], serde_json::json!([2, 1])),
    ];
    for (xs, ys, axes) in cases {
        for normalize in [false, true] {
            let dims = |s: [usize; 2]| -> Vec<serde_json::Value> {
                std::iter::once(serde_json::Value::Null)
                    .chain(s.iter().filter(|&&d| d > 0).map(|&d| d.into()))
                    .collect()
            };
            let topology = serde_json::json!({"class_name": "Model", "config": {"name": "m", "layers": [
                {"class_name": "InputLayer", "name": "x", "config": {"batch_input_shape": dims(xs), "name": "x"}, "inbound_nodes": []},
                {"class_name": "InputLayer", "name": "y", "config": {"batch_input_shape": dims(ys), "name": "y"}, "inbound_nodes": []},
                {"class_name": "Dot", "name": "d", "config": {"name": "d", "axes": axes, "normalize": normalize}, "inbound_nodes": [[["x", 0, 0, {}], ["y", 0, 0, {}]]]}],
                "input_layers": [["x", 0, 0], ["y", 0, 0]], "output_layers": [["d", 0, 0]]}});
            let model =
                Model::from_artifacts(synthetic::with_topology(&[], topology, 1).unwrap()).unwrap();
            let input = |s: [usize; 2], seed: usize| {
                let shape: Vec<usize> = [2]
                    .into_iter()
                    .chain(s.into_iter().filter(|&d| d > 0))
                    .collect();
                let n: usize = shape.iter().product();
                let data = (0..n)
                    .map(|i| ((i * 7 + seed) % 11) as f32 / 5.0 - 1.0)
                    .collect();
                Tensor::new(shape, data).unwrap()
            };
            let inputs = [input(xs, 1), input(ys, 4)];
            let cpu = model.predict(&inputs).unwrap();
            let got = GpuModel::new(&dev, &model)
                .unwrap()
                .predict(&inputs)
                .unwrap();
            close(&got[0], &cpu[0], 1e-5, 1e-4)
                .unwrap_or_else(|e| panic!("axes {axes}, normalize {normalize}: {e}"));
        }
    }
}

/// A Sequential model of one layer (`class`, `config`) on inputs of `shape` (batch first),
/// with seeded weights of the given names and shapes.
fn one_layer(
    class: &str,
    mut config: serde_json::Value,
    shape: &[usize],
    weights: &[(&str, Vec<usize>)],
) -> Model {
    config["name"] = serde_json::json!("probe");
    let input: Vec<serde_json::Value> = std::iter::once(serde_json::Value::Null)
        .chain(shape[1..].iter().map(|&d| serde_json::json!(d)))
        .collect();
    let topology = serde_json::json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": input, "dtype": "float32", "name": "x"}},
        {"class_name": class, "config": config}]}});
    let named: Vec<(String, Vec<usize>)> = weights
        .iter()
        .map(|(n, s)| (format!("probe/{n}"), s.clone()))
        .collect();
    Model::from_artifacts(synthetic::with_topology(&named, topology, 3).unwrap())
        .unwrap_or_else(|e| panic!("{class}: {e}"))
}

/// (class, config, input shape, weights).
type Case = (
    &'static str,
    serde_json::Value,
    Vec<usize>,
    Vec<(&'static str, Vec<usize>)>,
);

#[test]
fn layer_kernels_match_the_cpu() {
    use serde_json::json;
    let Some(dev) = gpu() else { return };
    let cases: Vec<Case> = vec![
        (
            "Conv1D",
            json!({"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}),
            vec![2, 11, 3],
            vec![("kernel", vec![3, 3, 5]), ("bias", vec![5])],
        ),
        (
            "Conv2D",
            json!({"filters": 4, "kernel_size": [3, 2], "dilation_rate": 2, "padding": "valid"}),
            vec![1, 9, 8, 3],
            vec![("kernel", vec![3, 2, 3, 4]), ("bias", vec![4])],
        ),
        (
            "Conv2D",
            json!({"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same", "use_bias": false, "activation": "softmax"}),
            vec![3, 7, 7, 2],
            vec![("kernel", vec![3, 3, 2, 6])],
        ),
        (
            "Conv3D",
            json!({"filters": 2, "kernel_size": 2, "padding": "valid"}),
            vec![1, 4, 5, 4, 2],
            vec![("kernel", vec![2, 2, 2, 2, 2]), ("bias", vec![2])],
        ),
        (
            "Dense",
            json!({"units": 7, "activation": "gelu"}),
            vec![2, 3, 5],
            vec![("kernel", vec![5, 7]), ("bias", vec![7])],
        ),
        (
            "Dense",
            json!({"units": 7, "activation": "gelu_new"}),
            vec![2, 3, 5],
            vec![("kernel", vec![5, 7]), ("bias", vec![7])],
        ),
        (
            "Dense",
            json!({"units": 9, "activation": "sparsemax"}),
            vec![2, 3, 5],
            vec![("kernel", vec![5, 9]), ("bias", vec![9])],
        ),
        ("Permute", json!({"dims": [2, 1]}), vec![2, 3, 4], vec![]),
        ("RepeatVector", json!({"n": 3}), vec![2, 5], vec![]),
        (
            "ZeroPadding2D",
            json!({"padding": [[1, 2], [0, 1]]}),
            vec![2, 3, 4, 2],
            vec![],
        ),
        (
            "Cropping2D",
            json!({"cropping": [[1, 0], [0, 1]]}),
            vec![1, 4, 4, 3],
            vec![],
        ),
        (
            "UpSampling2D",
            json!({"size": [2, 3]}),
            vec![1, 2, 3, 2],
            vec![],
        ),
        (
            "Flatten",
            json!({"data_format": "channels_first"}),
            vec![2, 3, 2, 2],
            vec![],
        ),
        (
            "BatchNormalization",
            json!({"axis": 1, "epsilon": 1.0}),
            vec![2, 3, 4],
            vec![
                ("gamma", vec![3]),
                ("beta", vec![3]),
                ("moving_mean", vec![3]),
                ("moving_variance", vec![3]),
            ],
        ),
        ("ReLU", json!({"max_value": 0.4}), vec![2, 9], vec![]),
        ("LeakyReLU", json!({"alpha": 0.1}), vec![2, 9], vec![]),
        ("ELU", json!({"alpha": 0.7}), vec![2, 9], vec![]),
        ("ThresholdedReLU", json!({"theta": 0.2}), vec![2, 9], vec![]),
        (
            "Conv2DTranspose",
            json!({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}),
            vec![2, 3, 4, 2],
            vec![("kernel", vec![3, 3, 3, 2]), ("bias", vec![3])],
        ),
        (
            "Conv2DTranspose",
            json!({"filters": 2, "kernel_size": [2, 3], "strides": [1, 2], "padding": "valid"}),
            vec![1, 3, 3, 4],
            vec![("kernel", vec![2, 3, 2, 4]), ("bias", vec![2])],
        ),
        (
            "DepthwiseConv2D",
            json!({"kernel_size": 3, "depth_multiplier": 2, "strides": 2, "padding": "same", "activation": "relu6"}),
            vec![2, 5, 6, 3],
            vec![("depthwise_kernel", vec![3, 3, 3, 2]), ("bias", vec![6])],
        ),
        (
            "SeparableConv2D",
            json!({"filters": 4, "kernel_size": 2, "dilation_rate": 2, "padding": "valid", "activation": "elu"}),
            vec![1, 6, 5, 3],
            vec![
                ("depthwise_kernel", vec![2, 2, 3, 1]),
                ("pointwise_kernel", vec![1, 1, 3, 4]),
                ("bias", vec![4]),
            ],
        ),
        (
            "Conv2D",
            json!({"filters": 3, "kernel_size": 2, "padding": "same", "data_format": "channels_first"}),
            vec![2, 4, 5, 3],
            vec![("kernel", vec![2, 2, 4, 3]), ("bias", vec![3])],
        ),
        (
            "UpSampling2D",
            json!({"size": [2, 3], "interpolation": "bilinear"}),
            vec![2, 3, 2, 2],
            vec![],
        ),
        (
            "UpSampling2D",
            json!({"size": 2, "interpolation": "bilinear", "data_format": "channels_first"}),
            vec![1, 2, 3, 3],
            vec![],
        ),
        ("Softmax", json!({"axis": 1}), vec![2, 3, 4], vec![]),
        (
            "LayerNormalization",
            json!({"axis": [1, 2], "epsilon": 0.01}),
            vec![2, 3, 4, 5],
            vec![("gamma", vec![3, 4]), ("beta", vec![3, 4])],
        ),
        (
            "LayerNormalization",
            json!({"axis": 1, "epsilon": 0.01}),
            vec![2, 3, 4],
            vec![("gamma", vec![3]), ("beta", vec![3])],
        ),
        (
            "MaxPooling2D",
            json!({"pool_size": 2, "data_format": "channels_first"}),
            vec![1, 3, 4, 5],
            vec![],
        ),
        (
            "GlobalAveragePooling2D",
            json!({"data_format": "channels_first"}),
            vec![2, 3, 4, 2],
            vec![],
        ),
        ("Softmax", json!({"axis": -1}), vec![2, 3, 5], vec![]),
        (
            "PReLU",
            json!({"shared_axes": [1]}),
            vec![2, 4, 3],
            vec![("alpha", vec![1, 3])],
        ),
        (
            "LayerNormalization",
            json!({"axis": -1, "epsilon": 0.01}),
            vec![3, 2, 6],
            vec![("gamma", vec![6]), ("beta", vec![6])],
        ),
        (
            "MaxPooling2D",
            json!({"pool_size": 2, "strides": 1, "padding": "same"}),
            vec![2, 5, 4, 3],
            vec![],
        ),
        (
            "AveragePooling2D",
            json!({"pool_size": [3, 2], "padding": "same"}),
            vec![1, 5, 5, 2],
            vec![],
        ),
        (
            "AveragePooling1D",
            json!({"pool_size": 2}),
            vec![2, 7, 3],
            vec![],
        ),
        (
            "MaxPooling3D",
            json!({"pool_size": 2}),
            vec![1, 4, 4, 4, 2],
            vec![],
        ),
        (
            "GlobalAveragePooling2D",
            json!({}),
            vec![2, 3, 4, 5],
            vec![],
        ),
        ("GlobalMaxPooling1D", json!({}), vec![2, 6, 3], vec![]),
        (
            "Activation",
            json!({"activation": "log_softmax"}),
            vec![3, 6],
            vec![],
        ),
    ];
    for (class, config, shape, weights) in cases {
        let model = one_layer(class, config, &shape, &weights);
        let n: usize = shape.iter().product();
        let x = Tensor::new(
            shape.clone(),
            (0..n).map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0).collect(),
        )
        .unwrap();
        let cpu = model.predict(std::slice::from_ref(&x)).unwrap();
        let got = GpuModel::new(&dev, &model)
            .unwrap_or_else(|e| panic!("{class}: {e}"))
            .predict(&[x])
            .unwrap();
        close(&got[0], &cpu[0], 1e-5, 1e-4).unwrap_or_else(|e| panic!("{class} {shape:?}: {e}"));
    }
}

#[test]
fn cli_verify_on_the_gpu() {
    if gpu().is_none() {
        return;
    }
    let dir = fixtures_dir().join("cnn");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args([
            "verify".as_ref(),
            dir.as_os_str(),
            "--expect".as_ref(),
            dir.join("expected.json").as_os_str(),
            "--device".as_ref(),
            "gpu".as_ref(),
            "--json".as_ref(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["device"].as_str().unwrap().starts_with("GPU"),
        "{report}"
    );
    assert_eq!(report["pass"], true);
}

#[test]
fn embedding_lookup_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let model = one_layer(
        "Embedding",
        serde_json::json!({"input_dim": 7, "output_dim": 3}),
        &[2, 5],
        &[("embeddings", vec![7, 3])],
    );
    let ids = Tensor::new(vec![2, 5], vec![0., 6., 3., 3., 1., 2., 5., 4., 0., 6.]).unwrap();
    let cpu = model.predict(std::slice::from_ref(&ids)).unwrap();
    let got = GpuModel::new(&dev, &model)
        .unwrap()
        .predict(&[ids])
        .unwrap();
    close(&got[0], &cpu[0], 0.0, 0.0).unwrap();
    // An id outside the table, fed from the model's input, is the same error on both backends
    // (ids computed inside the graph come out NaN on the GPU, which the NaN/Inf checks report).
    let bad = Tensor::new(vec![1, 5], vec![0., 1., 7., 2., 3.]).unwrap();
    let e = model.predict(std::slice::from_ref(&bad)).unwrap_err();
    let g = GpuModel::new(&dev, &model)
        .unwrap()
        .predict(&[bad])
        .unwrap_err();
    assert_eq!(e.to_string(), g.to_string());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    /// Conv2D + Dense on random sizes (odd, batch 1, not tile multiples): GPU equals CPU.
    #[test]
    fn random_conv_and_dense_shapes(batch in 1usize..4, h in 1usize..9, w in 1usize..9, cin in 1usize..5, f in 1usize..7, k in 1usize..4, stride in 1usize..3, same in proptest::bool::ANY) {
        let Some(dev) = gpu() else { return Ok(()) };
        let padding = if same { "same" } else { "valid" };
        proptest::prop_assume!(same || (h >= k && w >= k));
        let conv = one_layer("Conv2D", serde_json::json!({"filters": f, "kernel_size": k, "strides": stride, "padding": padding, "activation": "tanh"}), &[batch, h, w, cin], &[("kernel", vec![k, k, cin, f]), ("bias", vec![f])]);
        let dense = one_layer("Dense", serde_json::json!({"units": f + 30, "activation": "relu"}), &[batch, h * w + 31], &[("kernel", vec![h * w + 31, f + 30]), ("bias", vec![f + 30])]);
        for (model, shape) in [(conv, vec![batch, h, w, cin]), (dense, vec![batch, h * w + 31])] {
            let n: usize = shape.iter().product();
            let x = Tensor::new(shape, (0..n).map(|i| ((i * 7) % 23) as f32 / 11.0 - 1.0).collect()).unwrap();
            let cpu = model.predict(std::slice::from_ref(&x)).unwrap();
            let got = GpuModel::new(&dev, &model).unwrap().predict(&[x]).unwrap();
            proptest::prop_assert!(close(&got[0], &cpu[0], 1e-5, 1e-4).is_ok(), "{:?}", close(&got[0], &cpu[0], 1e-5, 1e-4));
        }
    }
}

#[test]
fn a_dense_kernel_above_the_storage_binding_limit_predicts_on_the_gpu() {
    let Some(dev) = gpu() else { return };
    let Some(limit) = exceedable_limit(&dev) else {
        return;
    };
    // A softmax whose rows then span two column blocks.
    let (model, x) = dense_above(limit);
    let n = *model.outputs()[0].shape.last().unwrap();
    let n = n.unwrap();
    let cpu = model.predict(std::slice::from_ref(&x)).unwrap();
    let got = GpuModel::new(&dev, &model).unwrap().predict(&[x]).unwrap();
    close(&got[0], &cpu[0], 1e-6, 1e-3).unwrap();
    let sum: f32 = got[0].data[..n].iter().sum();
    assert!((sum - 1.0).abs() < 1e-3, "softmax row sums to {sum}");
}

#[test]
fn an_embedding_table_above_the_storage_binding_limit_looks_up_every_block() {
    let Some(dev) = gpu() else { return };
    let Some(limit) = exceedable_limit(&dev) else {
        return;
    };
    let (model, x) = embedding_above(limit);
    let cpu = model.predict(std::slice::from_ref(&x)).unwrap();
    let got = GpuModel::new(&dev, &model).unwrap().predict(&[x]).unwrap();
    assert_eq!(
        got[0].data, cpu[0].data,
        "rows on both sides of the block boundary"
    );
}
