//! Kernels whose invocations loop longer than the driver runs: Mesa's llvmpipe (lavapipe, CI's
//! adapter) ends all loops of an invocation after 65,535 iterations in all, silently, so a long
//! reduction would come back short. Each case here must match the CPU on the GPU or be refused
//! with the cap named, never a wrong number: softmax and sparsemax over long rows, layer
//! normalization over many features, global pooling over many pixels, attention over many keys,
//! a Dot over a long axis.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use serde_json::{json, Value};

/// A one-layer-after-input Sequential model of `layer` on inputs `[batch, shape…]`.
fn model(layers: Value, weights: &[(&str, Vec<usize>)], keras3: bool) -> Model {
    let mut topology =
        json!({"class_name": "Sequential", "config": {"name": "m", "layers": layers}});
    if keras3 {
        topology =
            json!({"keras_version": "3.15.0", "backend": "tensorflow", "model_config": topology});
    }
    let named: Vec<(String, Vec<usize>)> = weights
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    let a = layercake::format::synthetic::with_topology(&named, topology, 3).unwrap();
    Model::from_artifacts(a).unwrap()
}

fn input(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 29) % 31) as f32 / 15.0 - 1.0)
        .collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// GPU against the CPU, or a refusal that names the loop cap.
fn check(what: &str, m: &Model, x: Vec<Tensor>, dev: &layercake::gpu::Device) {
    let cpu = m
        .predict(&x)
        .unwrap_or_else(|e| panic!("{what} (CPU): {e}"));
    match GpuModel::new(dev, m).and_then(|g| g.predict(&x)) {
        Ok(got) => {
            let err = assert_outputs(what, &got, &cpu, tol(1e-5, 1e-4));
            eprintln!("{what}: GPU matches the CPU (max error {err:.2e})");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                dev.loop_cap.is_some() && text.contains("loop iterations"),
                "{what}: refused without naming the loop cap: {text}"
            );
            eprintln!("{what}: refused on this adapter: {text}");
            // What the driver returns without the guard (printed, not asserted: the cap is
            // Mesa's, and a later Mesa may lift it).
            let mut uncapped = dev.clone();
            uncapped.loop_cap = None;
            let got = GpuModel::new(&uncapped, m).and_then(|g| g.predict(&x));
            let verdict = match got {
                Ok(got) => check_outputs(&got, &cpu, tol(1e-5, 1e-4))
                    .map_or_else(|e| format!("wrong ({e})"), |_| "right".to_string()),
                Err(e) => format!("an error ({e})"),
            };
            eprintln!("{what}: without the guard the adapter's answer is {verdict}");
        }
    }
}

#[test]
fn long_loops_match_the_cpu_or_are_refused_by_name() {
    let Some(dev) = gpu() else { return };
    let act = |name: &str, width: usize, keras3: bool| {
        let layers = json!([{"class_name": "Activation", "config": {"name": "a", "activation": name,
            "batch_input_shape": [null, width]}}]);
        model(layers, &[], keras3)
    };
    check(
        "softmax over 30,000 values",
        &act("softmax", 30_000, false),
        vec![input(&[2, 30_000])],
        &dev,
    );
    check(
        "sparsemax over 300 values",
        &act("sparsemax", 300, true),
        vec![input(&[2, 300])],
        &dev,
    );
    let ln = json!([{"class_name": "LayerNormalization", "config": {"name": "ln", "axis": -1,
        "epsilon": 1e-3, "batch_input_shape": [null, 30_000]}}]);
    let weights = [("ln/gamma", vec![30_000]), ("ln/beta", vec![30_000])];
    check(
        "layer normalization over 30,000 features",
        &model(ln, &weights, false),
        vec![input(&[2, 30_000])],
        &dev,
    );
    for class in ["GlobalAveragePooling2D", "GlobalMaxPooling2D"] {
        let gp = json!([{"class_name": class, "config": {"name": "p", "batch_input_shape": [null, 280, 280, 2]}}]);
        check(
            &format!("{class} over 78,400 pixels"),
            &model(gp, &[], false),
            vec![input(&[1, 280, 280, 2])],
            &dev,
        );
    }
    // Short loops still run on the GPU (no refusal).
    let small = act("softmax", 1_000, false);
    let got = GpuModel::new(&dev, &small).and_then(|g| g.predict(&[input(&[2, 1_000])]));
    assert!(
        got.is_ok(),
        "a 1,000-wide softmax is refused: {:?}",
        got.err()
    );
}

#[test]
fn attention_over_many_keys_matches_the_cpu_or_is_refused_by_name() {
    let Some(dev) = gpu() else { return };
    // 600 keys × key_dim 64: 2 × 600 × 65 = 78,000 loop iterations per output value.
    let (t, d, heads, kd) = (600, 8, 1, 64);
    let tensor = json!({"class_name": "__keras_tensor__", "config": {"shape": [null, t, d], "keras_history": ["x", 0, 0]}});
    let topology = json!({"keras_version": "3.15.0", "backend": "tensorflow", "model_config": {
        "class_name": "Functional", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_shape": [null, t, d]}, "inbound_nodes": []},
            {"class_name": "MultiHeadAttention", "name": "att", "config": {"name": "att", "num_heads": heads, "key_dim": kd},
             "inbound_nodes": [{"args": [tensor, tensor], "kwargs": {}}]}],
        "input_layers": [["x", 0, 0]], "output_layers": [["att", 0, 0]]}}});
    // Keras 3 names the weights by h5 path: kernel vars/0, bias vars/1 of each projection.
    let named: Vec<(String, Vec<usize>)> = [
        ("query", vec![d, heads, kd], vec![heads, kd]),
        ("key", vec![d, heads, kd], vec![heads, kd]),
        ("value", vec![d, heads, kd], vec![heads, kd]),
        ("output", vec![heads, kd, d], vec![d]),
    ]
    .into_iter()
    .flat_map(|(p, k, b)| {
        let path = format!("layers/multi_head_attention/{p}_dense/vars");
        [(format!("{path}/0"), k), (format!("{path}/1"), b)]
    })
    .collect();
    let a = layercake::format::synthetic::with_topology(&named, topology, 5).unwrap();
    let m = Model::from_artifacts(a).unwrap_or_else(|e| panic!("{e}"));
    check("attention over 600 keys", &m, vec![input(&[1, t, d])], &dev);
}
