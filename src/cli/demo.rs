//! `layercake demo`: the main job on a bundled fixture model (a small CNN saved by real
//! TF.js 4.22), end to end: pick a device, load the model onto it, check it, save it from the
//! device, reload the saved copy and check it again, and report throughput.

use super::{DeviceArg, Failure};
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use layercake::verify::VerifyOptions;
use layercake::{SaveOptions, WeightBytes};
use std::path::Path;
use std::time::Instant;

/// The bundled model: tests/fixtures/cnn (browser-downloads style) and TF.js's predictions.
const FILES: [(&str, &[u8]); 3] = [
    (
        "model.json",
        include_bytes!("../../tests/fixtures/cnn/model.json"),
    ),
    (
        "model.weights.bin",
        include_bytes!("../../tests/fixtures/cnn/model.weights.bin"),
    ),
    (
        "expected.json",
        include_bytes!("../../tests/fixtures/cnn/expected.json"),
    ),
];

fn io(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| layercake::Error::io(path, e).into()
}

fn pick(arg: DeviceArg) -> Result<Option<Device>, Failure> {
    match arg {
        DeviceArg::Cpu => Ok(None),
        DeviceArg::Gpu => Ok(Some(Device::open()?)),
        DeviceArg::Auto => match Device::open() {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                println!("  no GPU adapter ({e}); running on the CPU");
                Ok(None)
            }
        },
    }
}

fn gbps(bytes: u64, secs: f64) -> String {
    format!("{:.3} GB/s", bytes as f64 / secs.max(1e-9) / 1e9)
}

/// Run every post-load check on `model` against TF.js's predictions; prints the table.
fn checks(model: &Path, expected: &Path, dev: Option<&Device>) -> Result<bool, Failure> {
    let opts = VerifyOptions {
        expect: Some(expected.to_path_buf()),
        gpu: dev.cloned(),
        seed: 7,
        ..Default::default()
    };
    let report = layercake::verify::verify(model, &opts)?;
    for line in report.render().lines().skip(1) {
        println!("  {line}");
    }
    Ok(report.passed())
}

/// Run the demo.
pub fn run(arg: DeviceArg) -> Result<(), Failure> {
    let work = tempfile::tempdir().map_err(io(Path::new("temporary directory")))?;
    let src = work.path().join("cnn");
    std::fs::create_dir(&src).map_err(io(&src))?;
    for (name, bytes) in FILES {
        std::fs::write(src.join(name), bytes).map_err(io(&src))?;
    }
    println!("layercake demo: a small CNN saved by TensorFlow.js 4.22\n");
    println!("1. device");
    let dev = pick(arg)?;
    match &dev {
        Some(d) => println!("  GPU: {}", d.describe()),
        None => println!("  CPU"),
    }

    println!("2. load");
    let t = Instant::now();
    let a = layercake::open(&src)?;
    let parse = t.elapsed().as_secs_f64();
    let bytes = a.spec.stored_bytes();
    let summary = layercake::inspect::summarize(&a);
    println!(
        "  {} layers, {} weights, {} bytes, parsed and validated in {:.2} ms",
        summary.layers.len(),
        a.spec.weights.len(),
        bytes,
        parse * 1e3
    );
    let t = Instant::now();
    let resident = match &dev {
        Some(d) => Some(d.upload(&a, &UploadOptions::default(), &mut |_, _| {})?),
        None => None,
    };
    let load = parse + t.elapsed().as_secs_f64();
    if let Some(gw) = &resident {
        println!(
            "  resident on the GPU in {} buffers ({:?} upload)",
            gw.stats.buffers, gw.path
        );
    }

    println!("3. predict and check (weights scanned on the device, GPU copy hashed, predictions vs TF.js and the CPU)");
    let expected = src.join("expected.json");
    let first = checks(&src, &expected, dev.as_ref())?;

    println!("4. save from the device (with per-file hashes), reload, check again");
    let reader = match &resident {
        Some(gw) => Some(gw.reader(64 << 20)?),
        None => None,
    };
    let data: &dyn WeightBytes = match &reader {
        Some(r) => r,
        None => &a,
    };
    let dst = work.path().join("saved");
    let t = Instant::now();
    let opts = SaveOptions {
        hashes: true,
        ..Default::default()
    };
    layercake::save(&dst, &a.spec, data, opts)?;
    let save = t.elapsed().as_secs_f64();
    println!("  saved to {} in {:.2} ms", dst.display(), save * 1e3);
    let second = checks(&dst, &expected, dev.as_ref())?;

    println!("5. throughput (a tiny model: dominated by fixed costs; see `cargo bench`)");
    println!(
        "  load {:.2} ms ({}), save {:.2} ms ({}, fsync + atomic switch)",
        load * 1e3,
        gbps(bytes, load),
        save * 1e3,
        gbps(bytes, save)
    );
    if !(first && second) {
        return Err(Failure {
            code: 1,
            message: "demo checks failed".into(),
        });
    }
    println!("\nall checks passed");
    Ok(())
}
