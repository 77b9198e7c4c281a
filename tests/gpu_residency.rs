//! Files → GPU → files, on whatever adapter exists (lavapipe in CI), on both upload paths:
//! every fixture round-trips byte-exact, quantized weights are dequantized on the GPU bit for bit
//! as TF.js does, hundreds of small tensors and a tensor above the binding limit read back exactly.

mod common;

use common::*;
use layercake::check::weight_hashes;
use layercake::format::synthetic;
use layercake::gpu::residency::{GpuWeights, UploadOptions, UploadPath};
use layercake::gpu::Device;
use layercake::{save, Artifacts, SaveOptions};
use std::path::Path;

fn paths(dev: &Device) -> Vec<UploadPath> {
    let mut p = vec![UploadPath::Staged];
    if dev.mappable_primary() {
        p.push(UploadPath::Mapped);
    }
    p
}

fn upload(dev: &Device, a: &Artifacts, path: UploadPath, max_chunk: Option<u64>) -> GpuWeights {
    let opts = UploadOptions {
        path: Some(path),
        max_chunk_bytes: max_chunk,
        ..Default::default()
    };
    dev.upload(a, &opts, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("upload: {e}"))
}

fn same_files(a: &Path, b: &Path) {
    for entry in std::fs::read_dir(b).unwrap() {
        let name = entry.unwrap().file_name();
        let (x, y) = (a.join(&name), b.join(&name));
        if name == "model.json" {
            let j = |p: &Path| {
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()
            };
            assert_eq!(j(&x), j(&y), "{}", y.display());
        } else {
            assert!(
                std::fs::read(&x).unwrap() == std::fs::read(&y).unwrap(),
                "{} differs",
                y.display()
            );
        }
    }
}

#[test]
fn every_fixture_round_trips_through_the_gpu_byte_exact() {
    let Some(dev) = gpu() else { return };
    for path in paths(&dev) {
        for name in fixtures() {
            let a = open_fixture(&name);
            let gw = upload(&dev, &a, path, None);
            let reader = gw.reader(1 << 20).unwrap();
            let bad: Vec<_> = weight_hashes(&a, &reader)
                .unwrap()
                .into_iter()
                .filter(|h| !h.ok())
                .collect();
            assert!(bad.is_empty(), "{name} ({path:?}): hash mismatches {bad:?}");
            let out = tempfile::tempdir().unwrap();
            save(out.path(), &a.spec, &reader, SaveOptions::default()).unwrap();
            same_files(&fixtures_dir().join(&name), out.path());
        }
    }
}

#[test]
fn gpu_dequantization_matches_tfjs_bit_for_bit() {
    let Some(dev) = gpu() else { return };
    for name in ["quant_uint8", "quant_uint16", "quant_float16"] {
        let a = open_fixture(name);
        let golden = std::fs::read(fixtures_dir().join(name).join("dequantized.bin")).unwrap();
        // Also with tiny chunks, so dequantization runs chunk by chunk.
        for max_chunk in [None, Some(256)] {
            let gw = upload(&dev, &a, UploadPath::Staged, max_chunk);
            assert!(gw.stats.dequantized_tensors > 0);
            let reader = gw.reader(1 << 20).unwrap();
            let mut all = Vec::new();
            for i in 0..a.spec.weights.len() {
                all.extend_from_slice(&layercake::WeightBytes::logical(&reader, i).unwrap());
            }
            assert!(
                all == golden,
                "{name} (chunk {max_chunk:?}): GPU dequantization differs from TF.js"
            );
        }
    }
}

#[test]
fn hundreds_of_small_tensors_read_back_exactly() {
    let Some(dev) = gpu() else { return };
    let shapes: Vec<Vec<usize>> = (0..600).map(|i| vec![1 + (i * 37) % 97]).collect();
    let a = synthetic::from_shapes(&shapes, 7).unwrap();
    for path in paths(&dev) {
        let gw = upload(&dev, &a, path, None);
        assert!(
            gw.stats.buffers < 10,
            "small tensors share arenas: {} buffers",
            gw.stats.buffers
        );
        // A 4 KiB staging budget forces many readback batches.
        let reader = gw.reader(4096).unwrap();
        let bad: Vec<_> = weight_hashes(&a, &reader)
            .unwrap()
            .into_iter()
            .filter(|h| !h.ok())
            .collect();
        assert!(
            bad.is_empty(),
            "{path:?}: {} of 600 tensors differ, first {:?}",
            bad.len(),
            bad.first()
        );
    }
}

#[test]
fn tensor_above_the_binding_limit_is_split_and_round_trips() {
    let Some(dev) = gpu() else { return };
    let limit = dev
        .limits
        .max_storage_buffer_binding_size
        .min(dev.limits.max_buffer_size);
    let elements = (limit / 4 + 1_000_003) as usize; // just over the limit, odd length
    let a = synthetic::from_shapes(&[vec![3], vec![elements], vec![5]], 11).unwrap();
    let gw = upload(&dev, &a, paths(&dev)[paths(&dev).len() - 1], None);
    assert_eq!(gw.stats.split_tensors, 1);
    assert!(gw.weights[1].chunks.len() >= 2 && gw.weights[1].chunks.iter().all(|c| c.len <= limit));
    let reader = gw.reader(64 << 20).unwrap();
    assert!(weight_hashes(&a, &reader).unwrap().iter().all(|h| h.ok()));
    let out = tempfile::tempdir().unwrap();
    let st = out.path().join("big.safetensors");
    save(&st, &a.spec, &reader, SaveOptions::default()).unwrap();
    drop(reader);
    let b = layercake::open(&st).unwrap();
    assert_same_weights(&a, &b, "above the binding limit");
}

#[test]
fn tfjs_loads_models_saved_from_the_gpu() {
    let Some(dev) = gpu() else { return };
    let Some(tools) = tfjs_tools() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut pairs = Vec::new();
    for name in ["cnn", "rnn", "quant_uint8", "sharded", "mlp_adam"] {
        let a = open_fixture(name);
        let gw = upload(&dev, &a, UploadPath::Staged, None);
        let reader = gw.reader(1 << 20).unwrap();
        let dst = out.path().join(name);
        save(&dst, &a.spec, &reader, SaveOptions::default()).unwrap();
        pairs.push((dst, fixtures_dir().join(name).join("expected.json")));
    }
    tfjs_check(&tools, &pairs);
}
