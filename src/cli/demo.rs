//! `layercake demo`: the main job, end to end, on a real model — a MobileNetV2 built and run by
//! Keras 3.15 (bundled with Keras's own predictions): pick a device, load the model onto it,
//! check it, save it from the device, reload the saved copy and check it again, and report
//! throughput beside this machine's own file-read and file-write speed. `--big SIZE` then runs
//! the same job on a SIZE model made on the spot, where the throughput figures mean something.

use super::{DeviceArg, Failure};
use indicatif::ProgressBar;
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use layercake::verify::VerifyOptions;
use layercake::{SaveOptions, WeightBytes};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The bundled model: tests/fixtures/keras3/app_mobilenet_v2 — `keras.applications.MobileNetV2`
/// (α 0.35, 32×32×3 inputs, 10 classes, 155 layers), converted by tensorflowjs_converter 4.22,
/// with the predictions Keras made on two inputs (tools/keras3-fixtures/apps.py).
const FILES: [(&str, &[u8]); 3] = [
    (
        "model.json",
        include_bytes!("../../tests/fixtures/keras3/app_mobilenet_v2/model.json"),
    ),
    (
        "group1-shard1of1.bin",
        include_bytes!("../../tests/fixtures/keras3/app_mobilenet_v2/group1-shard1of1.bin"),
    ),
    (
        "expected.json",
        include_bytes!("../../tests/fixtures/keras3/app_mobilenet_v2/expected.json"),
    ),
];

/// Dense layers of the `--big` model.
const BIG_LAYERS: usize = 16;

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

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs.max(1e-9) / 1e9
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Run every post-load check on `model` (against `expected` predictions when given); prints
/// the table.
fn checks(model: &Path, expected: Option<&Path>, dev: Option<&Device>) -> Result<bool, Failure> {
    let opts = VerifyOptions {
        expect: expected.map(Path::to_path_buf),
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

/// Weight bytes read through to `inner`, advancing a progress bar by each weight's size.
struct Counted<'a> {
    inner: &'a dyn WeightBytes,
    bar: &'a ProgressBar,
}

impl WeightBytes for Counted<'_> {
    fn stored(&self, i: usize) -> Option<Cow<'_, [u8]>> {
        let bytes = self.inner.stored(i);
        if let Some(b) = &bytes {
            self.bar.inc(b.len() as u64);
        }
        bytes
    }
    fn logical(&self, i: usize) -> layercake::Result<Cow<'_, [u8]>> {
        let bytes = self.inner.logical(i)?;
        self.bar.inc(bytes.len() as u64);
        Ok(bytes)
    }
    fn will_read(&self, order: &[usize]) {
        self.inner.will_read(order)
    }
}

/// One model's job: load onto the device, check, save from the device, check the saved copy,
/// throughput beside this machine's limits. Returns whether every check passed.
fn job(
    src: &Path,
    expected: Option<&Path>,
    dev: Option<&Device>,
    work: &Path,
) -> Result<bool, Failure> {
    println!("load");
    let t = Instant::now();
    let a = layercake::open(src)?;
    let parse = t.elapsed().as_secs_f64();
    let bytes = a.spec.stored_bytes();
    let summary = layercake::inspect::summarize(&a);
    println!(
        "  {} layers, {} weights, {}, parsed and validated in {:.2} ms",
        summary.layers.len(),
        a.spec.weights.len(),
        mib(bytes),
        parse * 1e3
    );
    let resident = match dev {
        Some(d) => {
            let bar = super::progress_bar(bytes, "load");
            let gw = d.upload(&a, &UploadOptions::default(), &mut |done, _| {
                bar.set_position(done)
            })?;
            bar.finish_and_clear();
            println!(
                "  resident on the GPU in {} buffers ({:?} upload)",
                gw.stats.buffers, gw.path
            );
            Some(gw)
        }
        None => None,
    };
    let load = t.elapsed().as_secs_f64();

    let against = expected.map_or("the CPU", |_| "Keras's predictions and the CPU");
    println!("predict and check (weights scanned on the device, the device copy hashed, predictions vs {against})");
    let first = checks(src, expected, dev)?;

    println!("save from the device (with per-file hashes), reload, check again");
    let reader = match &resident {
        Some(gw) => Some(gw.reader(64 << 20)?),
        None => None,
    };
    let bar = super::progress_bar(bytes, "save");
    let data = Counted {
        inner: match &reader {
            Some(r) => r,
            None => &a,
        },
        bar: &bar,
    };
    let dst = work.join(format!(
        "{}-saved",
        src.file_name().unwrap_or_default().to_string_lossy()
    ));
    let t = Instant::now();
    let opts = SaveOptions {
        hashes: true,
        ..Default::default()
    };
    layercake::save(&dst, &a.spec, &data, opts)?;
    let save = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    println!("  saved to {} in {:.2} ms", dst.display(), save * 1e3);
    let second = checks(&dst, expected, dev)?;
    throughput(&a, bytes, (load, save), work)?;
    Ok(first && second)
}

/// Load and save throughput beside this machine's own file read (into fresh memory) and file
/// write (+ fsync) of the same bytes, measured now.
fn throughput(
    a: &layercake::Artifacts,
    bytes: u64,
    (load, save): (f64, f64),
    work: &Path,
) -> Result<(), Failure> {
    let files = layercake::bench::weight_files(a);
    let read = layercake::bench::fresh_read(&files, bytes)?;
    let mut source = Vec::with_capacity(bytes as usize);
    for f in &files {
        source.extend(std::fs::read(f).map_err(io(f))?);
    }
    let write = layercake::bench::plain_write(&work.join("limit-write.bin"), &source, true)?;
    println!(
        "throughput ({} of weights, files in the page cache)",
        mib(bytes)
    );
    println!(
        "  load  {:8.2} ms {:6.2} GB/s   this machine reads the files into fresh memory at {:.2} GB/s: layercake {:.2}× that",
        load * 1e3,
        gbps(bytes, load),
        gbps(bytes, read),
        read / load
    );
    println!(
        "  save  {:8.2} ms {:6.2} GB/s   fsync + atomic switch; this machine writes the same bytes + fsync at {:.2} GB/s: layercake {:.2}× that",
        save * 1e3,
        gbps(bytes, save),
        gbps(bytes, write),
        write / save
    );
    if bytes < 8 << 20 {
        println!("  (a small model: fixed costs dominate; `layercake demo --big 256MiB` shows the job where the figures mean something)");
    }
    Ok(())
}

/// Write the `--big` model into `work`: a stack of [`BIG_LAYERS`] square Dense layers with
/// tanh, seeded weights summing to about `size`, drawn so that each layer contracts.
fn make_big(work: &Path, size: u64) -> Result<PathBuf, Failure> {
    let a = layercake::format::synthetic::dense_stack(size, 2 * BIG_LAYERS, "tanh", true)?;
    let d = a.spec.weights.first().map_or(0, |w| w.shape[0]);
    let dir = work.join("big");
    let opts = SaveOptions {
        durable: false,
        ..Default::default()
    };
    layercake::save(&dir, &a.spec, &a, opts)?;
    println!(
        "  {BIG_LAYERS} Dense({d}, tanh) layers, {} of seeded weights, written to {} (untimed)",
        mib(a.spec.stored_bytes()),
        dir.display()
    );
    Ok(dir)
}

/// Run the demo; `big` is the size of the extra synthetic model (e.g. `256MiB`).
pub fn run(arg: DeviceArg, big: Option<&str>) -> Result<(), Failure> {
    let big = big.map(super::bench::parse_size).transpose()?;
    let work = tempfile::tempdir().map_err(io(Path::new("temporary directory")))?;
    let src = work.path().join("mobilenet_v2");
    std::fs::create_dir(&src).map_err(io(&src))?;
    for (name, bytes) in FILES {
        std::fs::write(src.join(name), bytes).map_err(io(&src))?;
    }
    println!("layercake demo\n");
    println!("device");
    let dev = pick(arg)?;
    match &dev {
        Some(d) => println!("  GPU: {}", d.describe()),
        None => println!("  CPU"),
    }
    println!("\n== MobileNetV2 (Keras 3.15 keras.applications, α 0.35, 32×32×3 → 10 classes), converted by tensorflowjs_converter 4.22");
    let expected = src.join("expected.json");
    let mut ok = job(&src, Some(&expected), dev.as_ref(), work.path())?;
    if let Some(size) = big {
        println!("\n== a {} model (--big)", mib(size));
        let dir = make_big(work.path(), size)?;
        ok &= job(&dir, None, dev.as_ref(), work.path())?;
    }
    if !ok {
        return Err(Failure {
            code: 1,
            message: "demo checks failed".into(),
        });
    }
    println!("\nall checks passed");
    Ok(())
}
