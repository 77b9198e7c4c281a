//! Inference: an MLP (784-1024-1024-10, batch 32) and a small CNN (batch 8, 64×64×3, three conv
//! layers) and an LSTM (128 units, 200 steps, batch 8) on the CPU reference backend and on the GPU, and a 1024³ matrix product on the GPU
//! (cases in `layercake::bench::predict`). TF.js's timings for the same architectures, and the
//! ratios, come from `node tools/tfjs-fixtures/bench-predict.mjs`.
//!
//!   cargo bench --bench predict

use criterion::{criterion_group, criterion_main, Criterion};
use layercake::bench::predict;
use layercake::gpu::Device;
use layercake::model::gpu::GpuModel;

fn bench(c: &mut Criterion) {
    let cases = [
        predict::mlp().unwrap(),
        predict::cnn().unwrap(),
        predict::lstm().unwrap(),
        predict::matmul(1024).unwrap(),
    ];
    let mut g = c.benchmark_group("predict");
    g.sample_size(10);
    for case in &cases[..3] {
        let x = std::slice::from_ref(&case.input);
        g.bench_function(format!("cpu: {}", case.name), |b| {
            b.iter(|| case.model.predict(x).unwrap())
        });
    }
    match Device::open() {
        Ok(dev) => {
            eprintln!("adapter: {}", dev.describe());
            for case in &cases {
                let gm = GpuModel::new(&dev, &case.model).unwrap();
                let x = std::slice::from_ref(&case.input);
                g.bench_function(format!("gpu: {}", case.name), |b| {
                    b.iter(|| gm.predict(x).unwrap())
                });
            }
        }
        Err(e) => eprintln!("skipped GPU benches: {e}"),
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
