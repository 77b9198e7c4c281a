//! Recurrent layers beyond the TF.js fixtures: Keras's GRU `reset_after` against the formula
//! computed by hand, and the GPU against the CPU over cells, directions, sequences, bias and
//! Bidirectional merges, with masks from `mask_zero` ids.

mod common;

use common::*;
use layercake::format::synthetic;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use serde_json::{json, Value};

/// A Sequential model `Embedding(mask_zero) → layer` on `[batch, steps]` ids (vocab 6, dim 3),
/// or `layer` alone on `[batch, steps, 3]` features.
fn model(layer: Value, weights: Vec<(String, Vec<usize>)>, ids: bool) -> Model {
    let mut layers = Vec::new();
    let mut all = weights;
    if ids {
        layers.push(json!({"class_name": "Embedding", "config": {"name": "emb", "input_dim": 6, "output_dim": 3, "mask_zero": true, "batch_input_shape": [null, 4]}}));
        all.push(("emb/embeddings".into(), vec![6, 3]));
    } else {
        layers.push(json!({"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [null, 4, 3]}}));
    }
    layers.push(layer);
    let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": layers}});
    Model::from_artifacts(synthetic::with_topology(&all, topology, 21).unwrap()).unwrap()
}

/// The weights of a recurrent layer named `scope` with `gates` blocks.
fn rnn_weights(
    scope: &str,
    gates: usize,
    units: usize,
    bias: Option<Vec<usize>>,
) -> Vec<(String, Vec<usize>)> {
    let mut w = vec![
        (format!("{scope}/kernel"), vec![3, gates * units]),
        (
            format!("{scope}/recurrent_kernel"),
            vec![units, gates * units],
        ),
    ];
    if let Some(b) = bias {
        w.push((format!("{scope}/bias"), b));
    }
    w
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn keras_gru_reset_after_matches_the_formula_by_hand() {
    let layer = json!({"class_name": "GRU", "config": {"name": "g", "units": 2, "reset_after": true,
        "recurrent_activation": "sigmoid", "return_sequences": true}});
    let m = model(layer, rnn_weights("g", 3, 2, Some(vec![2, 6])), false);
    let get = |name: &str| -> Vec<f64> {
        let i = m.artifacts.find(name).unwrap();
        bytemuck::pod_collect_to_vec::<u8, f32>(&m.artifacts.logical(i))
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let (w, uu, b) = (get("g/kernel"), get("g/recurrent_kernel"), get("g/bias"));
    let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let got = m
        .predict(&[Tensor::new(vec![1, 4, 3], x.clone()).unwrap()])
        .unwrap();
    // Keras: z = σ(x·W_z + b_z + h·U_z + b'_z), r likewise, hh = tanh(x·W_h + b_h + r·(h·U_h + b'_h)),
    // h = z·h + (1 − z)·hh; bias row 0 is the input bias, row 1 the recurrent one.
    let (u, g) = (2, 6);
    let mut h = [0.0f64; 2];
    for t in 0..4 {
        let xw = |col: usize| {
            (0..3)
                .map(|k| f64::from(x[t * 3 + k]) * w[k * g + col])
                .sum::<f64>()
                + b[col]
        };
        let hu = |col: usize| (0..u).map(|k| h[k] * uu[k * g + col]).sum::<f64>() + b[g + col];
        let mut next = [0.0; 2];
        for j in 0..u {
            let z = sigmoid(xw(j) + hu(j));
            let r = sigmoid(xw(u + j) + hu(u + j));
            let hh = (xw(2 * u + j) + r * hu(2 * u + j)).tanh();
            next[j] = z * h[j] + (1.0 - z) * hh;
        }
        h = next;
        for (j, want) in h.iter().enumerate() {
            let v = f64::from(got[0].data[t * u + j]);
            assert!((v - want).abs() < 1e-5, "step {t} unit {j}: {v} vs {want}");
        }
    }
}

fn close(a: &Tensor, b: &Tensor, what: &str) {
    assert_outputs(
        what,
        std::slice::from_ref(a),
        std::slice::from_ref(b),
        tol(1e-5, 1e-4),
    );
}

#[test]
fn recurrent_gpu_matches_cpu_over_options() {
    let Some(dev) = gpu() else { return };
    let ids = Tensor::new(
        vec![3, 4],
        vec![0., 2., 3., 1., 4., 0., 5., 0., 1., 2., 3., 4.],
    )
    .unwrap();
    let feats = Tensor::new(
        vec![3, 4, 3],
        (0..36).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect(),
    )
    .unwrap();
    let cells = [
        ("SimpleRNN", 1, json!({})),
        ("LSTM", 4, json!({})),
        ("GRU", 3, json!({"reset_after": false})),
        ("GRU", 3, json!({"reset_after": true})),
    ];
    for (class, gates, extra) in cells {
        for (backwards, sequences, bias) in [
            (false, true, true),
            (true, true, false),
            (true, false, true),
            (false, false, false),
        ] {
            let reset_after = extra["reset_after"] == true;
            let mut config = json!({"name": "r", "units": 5, "go_backwards": backwards, "return_sequences": sequences, "use_bias": bias});
            config
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let b = bias.then(|| {
                if reset_after {
                    vec![2, gates * 5]
                } else {
                    vec![gates * 5]
                }
            });
            for with_ids in [true, false] {
                let layer = json!({"class_name": class, "config": config});
                let m = model(layer, rnn_weights("r", gates, 5, b.clone()), with_ids);
                let x = if with_ids { &ids } else { &feats };
                let what = format!("{class} {extra} backwards {backwards} sequences {sequences} bias {bias} ids {with_ids}");
                let cpu = m.predict(std::slice::from_ref(x)).unwrap();
                let got = GpuModel::new(&dev, &m)
                    .unwrap()
                    .predict(std::slice::from_ref(x))
                    .unwrap();
                close(&got[0], &cpu[0], &what);
            }
        }
    }
    for merge in ["concat", "sum", "mul", "ave"] {
        for sequences in [true, false] {
            let inner = json!({"class_name": "LSTM", "config": {"name": "l", "units": 2, "return_sequences": sequences}});
            let layer = json!({"class_name": "Bidirectional", "config": {"name": "bi", "layer": inner, "merge_mode": merge}});
            let mut w = rnn_weights("bi/forward_l", 4, 2, Some(vec![8]));
            w.extend(rnn_weights("bi/backward_l", 4, 2, Some(vec![8])));
            let m = model(layer, w, true);
            let cpu = m.predict(std::slice::from_ref(&ids)).unwrap();
            let got = GpuModel::new(&dev, &m)
                .unwrap()
                .predict(std::slice::from_ref(&ids))
                .unwrap();
            close(
                &got[0],
                &cpu[0],
                &format!("Bidirectional {merge} sequences {sequences}"),
            );
        }
    }
}

#[test]
fn wide_tfjs_gru_rows_take_several_passes_of_a_workgroup() {
    let Some(dev) = gpu() else { return };
    // 150 units: each of a row's 64 invocations handles up to three units in both phases.
    let layer = json!({"class_name": "GRU", "config": {"name": "g", "units": 150, "reset_after": false, "return_sequences": true}});
    let m = model(layer, rnn_weights("g", 3, 150, Some(vec![450])), false);
    let x = Tensor::new(
        vec![3, 4, 3],
        (0..36).map(|i| ((i * 5) % 13) as f32 / 6.0 - 1.0).collect(),
    )
    .unwrap();
    let cpu = m.predict(std::slice::from_ref(&x)).unwrap();
    let got = GpuModel::new(&dev, &m).unwrap().predict(&[x]).unwrap();
    close(&got[0], &cpu[0], "GRU 150 units");
}

#[test]
fn time_distributed_wraps_spatial_layers_on_the_gpu() {
    let Some(dev) = gpu() else { return };
    // [batch, steps, h, w, c]: a convolution and a pooling applied to every step.
    let conv = json!({"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"}});
    let pool = json!({"class_name": "MaxPooling2D", "config": {"name": "p", "pool_size": 2}});
    let layers = vec![
        json!({"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [null, 3, 6, 6, 2]}}),
        json!({"class_name": "TimeDistributed", "config": {"name": "tc", "layer": conv}}),
        json!({"class_name": "TimeDistributed", "config": {"name": "tp", "layer": pool}}),
    ];
    let topology = json!({"class_name": "Sequential", "config": {"name": "m", "layers": layers}});
    let weights = vec![
        ("tc/kernel".to_string(), vec![3, 3, 2, 2]),
        ("tc/bias".to_string(), vec![2]),
    ];
    let m =
        Model::from_artifacts(synthetic::with_topology(&weights, topology, 8).unwrap()).unwrap();
    let x = Tensor::new(
        vec![2, 3, 6, 6, 2],
        (0..432)
            .map(|i| ((i * 7) % 17) as f32 / 8.0 - 1.0)
            .collect(),
    )
    .unwrap();
    let cpu = m.predict(std::slice::from_ref(&x)).unwrap();
    assert_eq!(cpu[0].shape, vec![2, 3, 3, 3, 2]);
    let got = GpuModel::new(&dev, &m).unwrap().predict(&[x]).unwrap();
    close(
        &got[0],
        &cpu[0],
        "TimeDistributed(Conv2D) → TimeDistributed(MaxPooling2D)",
    );
}
