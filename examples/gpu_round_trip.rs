//! Load a model's weights onto the GPU, check them against the files, and save them back from
//! the GPU as safetensors and as TF.js converter shards.
//!
//!   cargo run --example gpu_round_trip -- tests/fixtures/quant_uint8 /tmp/out

use layercake::check::weight_hashes;
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use layercake::{SaveOptions, Style};
use std::path::PathBuf;

fn main() -> layercake::Result<()> {
    let mut args = std::env::args().skip(1);
    let src = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "tests/fixtures/quant_uint8".into()),
    );
    let out = PathBuf::from(args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("layercake-round-trip")
            .display()
            .to_string()
    }));
    let artifacts = layercake::open(&src)?;
    let device = Device::open()?;
    println!("device: {}", device.describe());
    let gpu = device.upload(&artifacts, &UploadOptions::default(), &mut |done, total| {
        println!("uploaded {done}/{total} bytes")
    })?;
    println!(
        "{} weights in {} buffers ({:?} path)",
        gpu.weights.len(),
        gpu.stats.buffers,
        gpu.path
    );
    let reader = gpu.reader(64 << 20)?;
    let bad = weight_hashes(&artifacts, &reader)?
        .into_iter()
        .filter(|h| !h.ok())
        .count();
    println!("weights whose GPU bytes differ from the files: {bad}");
    layercake::save(
        &out.join("model.safetensors"),
        &artifacts.spec,
        &reader,
        SaveOptions::default(),
    )?;
    let shards = SaveOptions {
        style: Some(Style::Shards {
            shard_size: 4 << 20,
        }),
        ..Default::default()
    };
    layercake::save(&out.join("tfjs"), &artifacts.spec, &reader, shards)?;
    println!("saved from the GPU to {}", out.display());
    Ok(())
}
