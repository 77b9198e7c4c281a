//! Layer semantics found by models from the field, checked on in-memory TF.js topologies:
//! Softmax over a list of axes (TF.js and Keras: `exp(x - logsumexp(x, axes))`).

mod common;

use common::*;
use layercake::format::synthetic;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use serde_json::{json, Value};

/// A TF.js Sequential over input `[batch, ..shape]` holding one layer.
fn one_layer(shape: &[usize], class: &str, config: Value) -> Model {
    let mut config = config;
    let mut batch: Vec<Value> = vec![Value::Null];
    batch.extend(shape.iter().map(|&d| json!(d)));
    config["batch_input_shape"] = json!(batch);
    config["name"] = json!("probe");
    let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": class, "config": config}]}, "keras_version": "tfjs-layers 4.22.0", "backend": "tensor_flow.js"});
    let a = synthetic::with_topology(&[], topology, 4).unwrap();
    Model::from_artifacts(a).unwrap_or_else(|e| panic!("{e}"))
}

fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape.to_vec(),
        (0..n).map(|i| ((i * 7) % 11) as f32 / 3.0 - 1.5).collect(),
    )
    .unwrap()
}

/// `exp(x - logsumexp(x, axes))` over `[b, d1, d2, d3]`, in f64.
fn reference(x: &Tensor, axes: &[usize]) -> Vec<f32> {
    let s = &x.shape;
    let index = |i: [usize; 4]| ((i[0] * s[1] + i[1]) * s[2] + i[2]) * s[3] + i[3];
    let mut out = vec![0f32; x.data.len()];
    let all = |d: usize| 0..s[d];
    for b in all(0) {
        for i1 in all(1) {
            for i2 in all(2) {
                for i3 in all(3) {
                    let at = [b, i1, i2, i3];
                    let mut lse = 0f64;
                    for j1 in all(1) {
                        for j2 in all(2) {
                            for j3 in all(3) {
                                let j = [b, j1, j2, j3];
                                if (1..4).all(|d| axes.contains(&d) || j[d] == at[d]) {
                                    lse += f64::from(x.data[index(j)]).exp();
                                }
                            }
                        }
                    }
                    out[index(at)] = (f64::from(x.data[index(at)]) - lse.ln()).exp() as f32;
                }
            }
        }
    }
    out
}

#[test]
fn softmax_over_a_list_of_axes_normalizes_them_jointly() {
    let x = input(&[2, 3, 4, 5]);
    for (axis, axes) in [
        (json!([1, 2]), vec![1, 2]),
        (json!([-1, 1]), vec![1, 3]),
        (json!([3]), vec![3]),
        (json!(2), vec![2]),
        (json!([1, 2, 3]), vec![1, 2, 3]),
    ] {
        let m = one_layer(&[3, 4, 5], "Softmax", json!({ "axis": axis }));
        let got = m.predict(std::slice::from_ref(&x)).unwrap();
        let want = reference(&x, &axes);
        assert_values(&format!("axis {axis}"), &got[0].data, &want, tol(1e-6, 0.0));
        if let Some(dev) = gpu() {
            let g = GpuModel::new(&dev, &m).unwrap();
            let out = g.predict(std::slice::from_ref(&x)).unwrap();
            assert_values(
                &format!("axis {axis} (GPU)"),
                &out[0].data,
                &want,
                tol(1e-6, 0.0),
            );
        }
    }
}

#[test]
fn softmax_axis_errors_name_the_layer() {
    for axis in [json!([0]), json!(4), json!(["x"])] {
        let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
            {"class_name": "Softmax", "config": {"name": "probe", "axis": axis, "batch_input_shape": [null, 3, 4]}}]}});
        let a = synthetic::with_topology(&[], topology, 4).unwrap();
        let e = Model::from_artifacts(a).err().expect("refused").to_string();
        assert!(e.contains("probe") && e.contains("axis"), "{axis}: {e}");
    }
}

/// A TF.js Sequential: float32 input `[batch, 5]` → Embedding(6, 3) → Flatten.
fn embedding_model() -> Model {
    let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "Embedding", "config": {"name": "embed", "input_dim": 6, "output_dim": 3, "batch_input_shape": [null, 5], "dtype": "float32"}},
        {"class_name": "Flatten", "config": {"name": "flat"}}]}});
    let named = vec![("embed/embeddings".to_string(), vec![6, 3])];
    let a = synthetic::with_topology(&named, topology, 4).unwrap();
    Model::from_artifacts(a).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn float_ids_truncate_and_bad_ids_fail_alike_on_both_backends() {
    let m = embedding_model();
    // -0.5 and 5.9 truncate to ids 0 and 5, as TF.js casts them.
    let ok = Tensor::new(vec![1, 5], vec![-0.5, 5.9, 2.0, 3.5, 0.0]).unwrap();
    let cpu = m.predict(std::slice::from_ref(&ok)).unwrap();
    let dev = gpu();
    let g = dev.as_ref().map(|d| GpuModel::new(d, &m).unwrap());
    if let Some(g) = &g {
        let got = g.predict(std::slice::from_ref(&ok)).unwrap();
        assert_eq!(got[0].data, cpu[0].data, "GPU gathers the CPU's rows");
    }
    for bad in [6.0, -1.0, f32::NAN, f32::INFINITY] {
        let x = Tensor::new(vec![1, 5], vec![0.0, 1.0, bad, 2.0, 3.0]).unwrap();
        let e = m.predict(std::slice::from_ref(&x)).unwrap_err().to_string();
        assert!(
            e.contains("'embed'") && e.contains("outside [0, 6)"),
            "{bad}: {e}"
        );
        if let Some(g) = &g {
            assert_eq!(g.predict(&[x]).unwrap_err().to_string(), e, "{bad}");
        }
    }
}

#[test]
fn seeded_inputs_respect_every_fixtures_input_domain() {
    let mut dirs: Vec<std::path::PathBuf> = fixtures()
        .into_iter()
        .map(|f| fixtures_dir().join(f))
        .collect();
    dirs.extend(
        std::fs::read_dir(fixtures_dir().join("keras3"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    let mut embedded = 0;
    for dir in dirs {
        let m = Model::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let x = layercake::verify::random_inputs(&m, 7, 2);
        m.predict(&x)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        embedded += m.input_id_ranges().iter().flatten().count();
    }
    assert!(embedded >= 3, "fixtures with id inputs: {embedded}");
}

#[test]
fn recurrent_cells_refuse_row_wise_activations_by_name() {
    for (class, key) in [
        ("SimpleRNN", "activation"),
        ("LSTM", "recurrent_activation"),
    ] {
        let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
            {"class_name": class, "config": {"name": "probe", "units": 2, key: "softmax", "batch_input_shape": [null, 3, 4]}}]}});
        let gates = if class == "LSTM" { 8 } else { 2 };
        let named = vec![
            ("probe/kernel".to_string(), vec![4, gates]),
            ("probe/recurrent_kernel".to_string(), vec![2, gates]),
            ("probe/bias".to_string(), vec![gates]),
        ];
        let a = synthetic::with_topology(&named, topology, 4).unwrap();
        let e = Model::from_artifacts(a).err().expect("refused").to_string();
        assert!(
            e.contains("probe") && e.contains(key) && e.contains("Softmax"),
            "{e}"
        );
    }
}

#[test]
fn a_window_larger_than_its_input_is_refused_by_name() {
    // TF.js computes a negative output shape here; Keras refuses the layer.
    for (class, config) in [
        (
            "Conv2D",
            json!({"filters": 2, "kernel_size": [3, 3], "dilation_rate": 2, "padding": "valid"}),
        ),
        (
            "MaxPooling2D",
            json!({"pool_size": [4, 4], "padding": "valid"}),
        ),
    ] {
        let mut config = config;
        config["name"] = json!("probe");
        config["batch_input_shape"] = json!([null, 3, 3, 2]);
        let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
            {"class_name": class, "config": config}]}});
        let named = if class == "Conv2D" {
            vec![
                ("probe/kernel".to_string(), vec![3, 3, 2, 2]),
                ("probe/bias".to_string(), vec![2]),
            ]
        } else {
            Vec::new()
        };
        let a = synthetic::with_topology(&named, topology, 4).unwrap();
        let e = Model::from_artifacts(a).err().expect("refused").to_string();
        assert!(e.contains("probe") && e.contains("empty"), "{class}: {e}");
    }
}

/// A Keras 3 functional model: `Input(4) → <class>(call args)`.
fn keras3_call(class: &str, args: Value) -> layercake::error::Result<Model> {
    let tensor = json!({"class_name": "__keras_tensor__", "config": {"shape": [null, 4], "dtype": "float32", "keras_history": ["x", 0, 0]}});
    let args = match args {
        Value::Array(items) => items
            .into_iter()
            .map(|a| if a == json!("x") { tensor.clone() } else { a })
            .collect(),
        other => other,
    };
    let topology = json!({"keras_version": "3.15.0", "backend": "tensorflow", "model_config": {
        "class_name": "Functional", "config": {"name": "m", "layers": [
            {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_shape": [null, 4], "dtype": "float32"}, "inbound_nodes": []},
            {"class_name": class, "name": "op", "config": {"name": "op"}, "inbound_nodes": [{"args": args, "kwargs": {}}]}],
        "input_layers": [["x", 0, 0]], "output_layers": [["op", 0, 0]]}}});
    Model::from_artifacts(synthetic::with_topology(&[], topology, 4).unwrap())
}

#[test]
fn keras3_arithmetic_with_a_number_is_computed_or_refused_by_name() {
    let x = Tensor::new(vec![1, 4], vec![-2.0, 0.0, 0.5, 4.0]).unwrap();
    let dev = gpu();
    for (class, args, want) in [
        ("Add", json!(["x", 3.0]), [1.0, 3.0, 3.5, 7.0]),
        ("Subtract", json!([2.0, "x"]), [4.0, 2.0, 1.5, -2.0]),
        ("Subtract", json!(["x", 2.0]), [-4.0, -2.0, -1.5, 2.0]),
        ("Multiply", json!(["x", 0.5]), [-1.0, 0.0, 0.25, 2.0]),
    ] {
        let m = keras3_call(class, args).unwrap();
        assert_eq!(
            m.predict(std::slice::from_ref(&x)).unwrap()[0].data,
            want,
            "{class} CPU"
        );
        if let Some(dev) = &dev {
            let g = GpuModel::new(dev, &m).unwrap();
            assert_eq!(
                g.predict(std::slice::from_ref(&x)).unwrap()[0].data,
                want,
                "{class} GPU"
            );
        }
    }
    // A number the class cannot take is an error naming the layer, never silently dropped.
    for (class, args) in [
        ("Maximum", json!(["x", 0.0])),
        ("Average", json!([["x"], 1.0])),
        ("Add", json!(["x", 1.0, 2.0])),
        ("Add", json!(["x", "three"])),
    ] {
        let e = keras3_call(class, args).err().expect(class).to_string();
        assert!(e.contains("'op'"), "{class}: {e}");
    }
}

#[test]
fn einsum_dense_with_a_permuted_output_matches_the_sum_and_the_gpu_refuses_it_by_name() {
    // "abc,bd->adc": out[a, d, c] = Σ_b x[a, b, c] · k[b, d] + bias[d] (bias shape [d, 1]).
    let config = json!({"equation": "abc,bd->adc", "output_shape": [4, 3], "bias_axes": "d"});
    let mut config = config;
    config["batch_input_shape"] = json!([null, 2, 3]);
    config["name"] = json!("probe");
    let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "EinsumDense", "config": config}]}});
    let named = [
        ("probe/kernel".to_string(), vec![2, 4]),
        ("probe/bias".to_string(), vec![4, 1]),
    ];
    let m = Model::from_artifacts(synthetic::with_topology(&named, topology, 3).unwrap()).unwrap();
    let value = |name: &str| {
        let i = m.artifacts.find(name).unwrap();
        bytemuck::pod_collect_to_vec::<u8, f32>(&m.artifacts.logical(i))
    };
    let (k, b) = (value("probe/kernel"), value("probe/bias"));
    let x = input(&[2, 2, 3]);
    let got = m.predict(std::slice::from_ref(&x)).unwrap().remove(0);
    assert_eq!(got.shape, [2, 4, 3]);
    for a in 0..2 {
        for d in 0..4 {
            for c in 0..3 {
                let sum: f32 = (0..2)
                    .map(|j| x.data[(a * 2 + j) * 3 + c] * k[j * 4 + d])
                    .sum();
                let want = sum + b[d];
                let at = got.data[(a * 4 + d) * 3 + c];
                assert!((at - want).abs() < 1e-5, "[{a},{d},{c}]: {at} vs {want}");
            }
        }
    }
    if let Some(dev) = gpu() {
        let e = GpuModel::new(&dev, &m)
            .err()
            .expect("no GPU form")
            .to_string();
        assert!(e.contains("'probe'"), "{e}");
    }
}
