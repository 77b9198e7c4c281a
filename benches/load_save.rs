//! Load (files → every tensor resident on the GPU, device already open) and save (GPU → durable
//! files) throughput for a synthetic model, beside the page-cache read bandwidth of the same
//! files measured in the same run, so the ratio is meaningful.
//!
//!   cargo bench --bench load_save                      # 256 MiB, mixed tensor sizes
//!   LAYERCAKE_BENCH_MIB=64 cargo bench --bench load_save
//!
//! Without a GPU adapter the GPU benches are skipped with a printed reason.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use layercake::format::synthetic;
use layercake::gpu::residency::{UploadOptions, UploadPath};
use layercake::gpu::Device;
use layercake::{save, SaveOptions, Style};
use std::io::Read;
use std::path::{Path, PathBuf};

fn model_bytes() -> u64 {
    std::env::var("LAYERCAKE_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256u64)
        << 20
}

/// Write a synthetic model (one 4 MiB-sharded TF.js directory) and return it.
fn write_model(root: &Path, bytes: u64) -> PathBuf {
    let a =
        synthetic::from_shapes(&synthetic::mixed_shapes(bytes, 64), 1).expect("synthetic model");
    let dir = root.join("model");
    let opts = SaveOptions {
        style: Some(Style::Shards {
            shard_size: 4 << 20,
        }),
        ..Default::default()
    };
    save(&dir, &a.spec, &a, opts).expect("writing the synthetic model");
    dir
}

fn weight_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files
}

fn bench(c: &mut Criterion) {
    let root = tempfile::tempdir().unwrap();
    let bytes = model_bytes();
    let dir = write_model(root.path(), bytes);
    let files = weight_files(&dir);
    let mut g = c.benchmark_group("load_save");
    g.sample_size(10).throughput(Throughput::Bytes(bytes));

    // One allocation of the model's size per iteration: above glibc's mmap threshold, so its
    // pages are fresh (first-touch faults included), as a loader's destination would be.
    g.bench_function("limit: read into fresh memory", |b| {
        b.iter(|| {
            let mut all = Vec::with_capacity(bytes as usize + (1 << 20));
            for f in &files {
                std::fs::File::open(f)
                    .unwrap()
                    .read_to_end(&mut all)
                    .unwrap();
            }
            all.len()
        })
    });
    let mut reused = vec![0u8; 8 << 20];
    g.bench_function("limit: read() into a reused buffer", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in &files {
                let mut file = std::fs::File::open(f).unwrap();
                loop {
                    let k = file.read(&mut reused).unwrap();
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
            }
            n
        })
    });
    g.bench_function("cpu: open + validate + map", |b| {
        b.iter(|| layercake::open(&dir).unwrap().spec.weights.len())
    });

    let Ok(dev) = Device::open() else {
        eprintln!("skipped GPU benches: no adapter");
        return;
    };
    eprintln!("adapter: {}", dev.describe());
    let opts = UploadOptions::default();
    g.bench_function("load: files → GPU", |b| {
        b.iter(|| {
            let a = layercake::open(&dir).unwrap();
            dev.upload(&a, &opts, &mut |_, _| {})
                .unwrap()
                .stats
                .resident_bytes
        })
    });
    if dev.mappable_primary() {
        // The same load through wgpu's staging (the discrete-GPU path), for the ratio.
        let staged = UploadOptions {
            path: Some(UploadPath::Staged),
            ..Default::default()
        };
        g.bench_function("load: files → GPU, staged path", |b| {
            b.iter(|| {
                let a = layercake::open(&dir).unwrap();
                dev.upload(&a, &staged, &mut |_, _| {})
                    .unwrap()
                    .stats
                    .resident_bytes
            })
        });
    }
    let a = layercake::open(&dir).unwrap();
    let gw = dev.upload(&a, &opts, &mut |_, _| {}).unwrap();
    let out = root.path().join("saved");
    g.bench_function("save: GPU → files (fsync, atomic)", |b| {
        b.iter(|| {
            let reader = gw.reader(256 << 20).unwrap();
            save(&out, &a.spec, &reader, SaveOptions::default())
                .unwrap()
                .weight_bytes
        })
    });
    g.finish();
    many_small_tensors(c, &dev, root.path());
}

/// 20,000 tensors of 256 bytes: packed into arenas versus one buffer each.
fn many_small_tensors(c: &mut Criterion, dev: &Device, root: &Path) {
    let a = synthetic::from_shapes(&synthetic::uniform_shapes(20_000 * 256, 20_000), 2).unwrap();
    let dir = root.join("small");
    save(&dir, &a.spec, &a, SaveOptions::default()).unwrap();
    let mut g = c.benchmark_group("small_tensors");
    g.sample_size(10)
        .throughput(Throughput::Bytes(a.spec.stored_bytes()));
    for (label, small) in [("arenas", 1u64 << 20), ("one buffer each", 0)] {
        let opts = UploadOptions {
            small_tensor_bytes: small,
            ..Default::default()
        };
        g.bench_function(label, |b| {
            b.iter(|| {
                let a = layercake::open(&dir).unwrap();
                dev.upload(&a, &opts, &mut |_, _| {}).unwrap().stats.buffers
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
