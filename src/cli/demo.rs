//! `layercake demo`: the main job on a bundled fixture model (a small CNN saved by real
//! TF.js 4.22), end to end: pick a device, load the model onto it, check it, save it from the
//! device, reload the saved copy and check it again, and report throughput.

use super::{DeviceArg, Failure};
use layercake::check::weight_hashes;
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use layercake::{Artifacts, SaveOptions, WeightBytes};
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

/// Count NaN / Inf values among the float32 weights of `data`.
fn non_finite(a: &Artifacts, data: &dyn WeightBytes) -> Result<usize, Failure> {
    let mut bad = 0;
    for (i, w) in a.spec.weights.iter().enumerate() {
        if w.dtype == layercake::DType::Float32 {
            let v: Vec<f32> = bytemuck::pod_collect_to_vec(&data.logical(i)?);
            bad += v.iter().filter(|x| !x.is_finite()).count();
        }
    }
    Ok(bad)
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

    println!("3. checks");
    let reader = match &resident {
        Some(gw) => Some(gw.reader(64 << 20)?),
        None => None,
    };
    let data: &dyn WeightBytes = match &reader {
        Some(r) => r,
        None => &a,
    };
    let hashes = weight_hashes(&a, data)?;
    let mismatched = hashes.iter().filter(|h| !h.ok()).count();
    println!(
        "  weight hashes (device vs files): {} of {} match",
        hashes.len() - mismatched,
        hashes.len()
    );
    let nan = non_finite(&a, data)?;
    println!("  NaN/Inf scan: {nan} non-finite values");

    let model = layercake::model::Model::load(&src)?;
    let expected = src.join("expected.json");
    let inputs: Vec<_> = layercake::model::read_bundle(&expected, "inputs")?
        .into_iter()
        .map(|n| n.tensor)
        .collect();
    let want = layercake::model::read_bundle(&expected, "outputs")?;
    let cpu = model.predict(&inputs)?;
    let (got, on) = match &dev {
        Some(d) => (
            layercake::model::gpu::GpuModel::new(d, &model)?.predict(&inputs)?,
            "GPU",
        ),
        None => (cpu.clone(), "CPU"),
    };
    println!("  predictions on the {on} vs TF.js's (atol 1e-5 / rtol 1e-4):");
    let mut off = 0;
    for ((g, w), c) in got.iter().zip(&want).zip(&cpu) {
        let (abs, _, ok) = super::predict::compare(&g.data, &w.tensor.data, 1e-5, 1e-4);
        let (vs_cpu, _, same) = super::predict::compare(&g.data, &c.data, 1e-5, 1e-4);
        off += usize::from(!ok) + usize::from(!same);
        println!("    {}: shape {:?}, max abs error {abs:.2e} vs TF.js, {vs_cpu:.2e} vs the CPU reference ({})", w.name, g.shape, if ok && same { "pass" } else { "FAIL" });
    }

    println!("4. save from the device, reload, check again");
    let dst = work.path().join("saved");
    let t = Instant::now();
    layercake::save(&dst, &a.spec, data, SaveOptions::default())?;
    let save = t.elapsed().as_secs_f64();
    let b = layercake::open(&dst)?;
    let again = weight_hashes(&a, &b)?;
    let differ = again.iter().filter(|h| !h.ok()).count();
    println!(
        "  saved to {} and reloaded: {} of {} weights identical",
        dst.display(),
        again.len() - differ,
        again.len()
    );

    println!("5. throughput (a tiny model: dominated by fixed costs; see `cargo bench`)");
    println!(
        "  load {:.2} ms ({}), save {:.2} ms ({}, fsync + atomic switch)",
        load * 1e3,
        gbps(bytes, load),
        save * 1e3,
        gbps(bytes, save)
    );
    if mismatched + nan + differ + off > 0 {
        return Err(Failure {
            code: 1,
            message: "demo checks failed".into(),
        });
    }
    println!("\nall checks passed");
    Ok(())
}
