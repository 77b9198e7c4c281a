//! Inference: an MLP (784-1024-1024-10, batch 32) and a small CNN (batch 8, 64×64×3, three conv
//! layers), on the CPU reference backend and on the GPU. TF.js's timings for the same
//! architectures come from `node tools/tfjs-fixtures/bench-predict.mjs`.
//!
//!   cargo bench --bench predict

use criterion::{criterion_group, criterion_main, Criterion};
use layercake::format::synthetic;
use layercake::gpu::Device;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use serde_json::{json, Value};

fn dense(name: &str, units: usize, act: &str) -> Value {
    json!({"class_name": "Dense", "config": {"name": name, "units": units, "activation": act}})
}

fn conv(name: &str, filters: usize, strides: usize) -> Value {
    json!({"class_name": "Conv2D", "config": {"name": name, "filters": filters, "kernel_size": 3, "strides": strides, "padding": "same", "activation": "relu"}})
}

fn model(input: &[usize], layers: Vec<Value>, weights: Vec<(String, Vec<usize>)>) -> Model {
    let shape: Vec<Value> = std::iter::once(Value::Null)
        .chain(input.iter().map(|&d| json!(d)))
        .collect();
    let mut all = vec![
        json!({"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": shape}}),
    ];
    all.extend(layers);
    let topology = json!({"class_name": "Sequential", "config": {"name": "bench", "layers": all}});
    Model::from_artifacts(synthetic::with_topology(&weights, topology, 5).unwrap()).unwrap()
}

fn mlp() -> Model {
    let dims = [784, 1024, 1024, 10];
    let mut layers = Vec::new();
    let mut weights = Vec::new();
    for i in 0..3 {
        let name = format!("d{i}");
        layers.push(dense(
            &name,
            dims[i + 1],
            if i == 2 { "softmax" } else { "relu" },
        ));
        weights.push((format!("{name}/kernel"), vec![dims[i], dims[i + 1]]));
        weights.push((format!("{name}/bias"), vec![dims[i + 1]]));
    }
    model(&[784], layers, weights)
}

fn cnn() -> Model {
    let specs = [(3, 16, 1), (16, 32, 2), (32, 64, 2)];
    let mut layers = Vec::new();
    let mut weights = Vec::new();
    for (i, &(cin, f, s)) in specs.iter().enumerate() {
        let name = format!("c{i}");
        layers.push(conv(&name, f, s));
        weights.push((format!("{name}/kernel"), vec![3, 3, cin, f]));
        weights.push((format!("{name}/bias"), vec![f]));
    }
    model(&[64, 64, 3], layers, weights)
}

fn input(shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(
        shape,
        (0..n)
            .map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0)
            .collect(),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "mlp 784-1024-1024-10, batch 32",
            mlp(),
            input(vec![32, 784]),
        ),
        (
            "cnn 3 conv, batch 8, 64x64x3",
            cnn(),
            input(vec![8, 64, 64, 3]),
        ),
    ];
    let mut g = c.benchmark_group("predict");
    g.sample_size(10);
    for (label, model, x) in &cases {
        g.bench_function(format!("cpu: {label}"), |b| {
            b.iter(|| model.predict(std::slice::from_ref(x)).unwrap())
        });
    }
    match Device::open() {
        Ok(dev) => {
            eprintln!("adapter: {}", dev.describe());
            for (label, model, x) in &cases {
                let gm = GpuModel::new(&dev, model).unwrap();
                g.bench_function(format!("gpu: {label}"), |b| {
                    b.iter(|| gm.predict(std::slice::from_ref(x)).unwrap())
                });
            }
        }
        Err(e) => eprintln!("skipped GPU benches: {e}"),
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
