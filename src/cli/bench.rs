//! `layercake bench`: load/save throughput against this machine's own limits.

use super::{choose_device, DeviceArg, Failure};
use layercake::bench::{self, Options};
use layercake::format::{self, synthetic};
use layercake::{Error, SaveOptions, Target};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `layercake bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Measure this model (model.json, its directory, .safetensors, .keras or .h5) instead of a synthetic one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Size of the synthetic model, e.g. 256MiB, 1GiB, 64MB (default 256MiB).
    #[arg(long, default_value = "256MiB")]
    size: String,
    /// Tensors in the synthetic model (a stack of square Dense layers: kernels and biases).
    #[arg(long, default_value_t = 64)]
    tensors: usize,
    /// Container of the synthetic model.
    #[arg(long, value_enum, default_value = "tfjs")]
    format: FormatArg,
    /// Repeats per measurement (median and min–max are reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Drop the model files from the page cache before each load.
    #[arg(long)]
    cold: bool,
    /// Sweep the tensor count (10 … 100,000) at a fixed total size instead.
    #[arg(long)]
    sweep: bool,
    /// Time predictions instead: of `--model` at each `--batch` (inputs drawn from the model's
    /// input domain; `--device cpu|gpu` one backend, `auto` the CPU and a hardware GPU), or of
    /// the built-in MLP, CNN and LSTM (and a 1024³ matmul on the GPU).
    /// `tools/bench-predict.py` runs Keras (TensorFlow CPU) on the same files and prints ratios;
    /// `tools/tfjs-fixtures/bench-predict.mjs` does TF.js.
    #[arg(long)]
    predict: bool,
    /// Measure the peak resident memory of one prediction instead, per path (CPU; GPU on the
    /// resident weights; GPU with copied parameters), beside the model's size.
    #[arg(long)]
    memory: bool,
    /// Keep the synthetic model in this directory (e.g. to measure TF.js on the same files).
    #[arg(long)]
    keep_model: Option<PathBuf>,
    /// Side of the GPU matrix product `--predict` times (without `--model`): an N×N by N×N
    /// product, e.g. 4096 on a discrete GPU.
    #[arg(long, default_value_t = 1024)]
    matmul: usize,
    /// Batch sizes for `--predict --model`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batch: Vec<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Device: `auto` uses a hardware GPU, else the CPU path; `gpu` takes any adapter.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Tfjs,
    Safetensors,
}

/// Parse `256MiB`, `1GiB`, `64MB`, `4096` into bytes.
pub(super) fn parse_size(s: &str) -> Result<u64, Failure> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1048576.0,
        "gib" | "g" => 1073741824.0,
        _ => return Err(Error::Usage(format!("--size {s}: unknown unit '{unit}'")).into()),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Usage(format!("--size {s}: not a number")))?;
    Ok((n * factor) as u64)
}

/// Run `layercake bench`.
pub fn run(args: BenchArgs) -> Result<(), Failure> {
    let t = Instant::now();
    let dev = choose_device(args.device)?;
    let device_secs = t.elapsed().as_secs_f64();
    if args.predict {
        return match &args.model {
            Some(m) => predict_model(m, dev.as_ref(), &args),
            None => predict(dev.as_ref(), &args),
        };
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let opts = Options {
        repeat: args.repeat,
        cold: args.cold,
        scratch: scratch.path().to_path_buf(),
    };
    let size = parse_size(&args.size)?;
    if args.sweep {
        let counts = [10, 100, 1_000, 10_000, 100_000];
        let rows = bench::sweep(size, &counts, dev.as_ref(), &opts)?;
        for (n, row) in &rows {
            let (med, lo, hi) = row.gbps();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"tensors": n, "bytes": row.bytes, "gbps": {"median": med, "min": lo, "max": hi}})
                );
            } else {
                println!("{n:>7} tensors  load {med:>7.3} GB/s  ({lo:.3}–{hi:.3})");
            }
        }
        return Ok(());
    }
    let model = match &args.model {
        Some(m) => m.clone(),
        None => {
            let a = synthetic::mlp(size, args.tensors)?;
            let root = args
                .keep_model
                .clone()
                .unwrap_or_else(|| scratch.path().join("model"));
            let (path, target) = match args.format {
                FormatArg::Tfjs => (root.clone(), Target::Tfjs),
                FormatArg::Safetensors => (root.join("model.safetensors"), Target::Safetensors),
            };
            format::save(
                &path,
                &a.spec,
                &a,
                SaveOptions {
                    target: Some(target),
                    ..Default::default()
                },
            )?;
            path
        }
    };
    if args.memory {
        return memory(&model, dev.as_ref(), args.json);
    }
    let report = bench::run(&model, dev.as_ref(), device_secs, &opts)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// `layercake bench --predict`: median milliseconds and GFLOP/s per case and backend.
fn predict(dev: Option<&layercake::gpu::Device>, args: &BenchArgs) -> Result<(), Failure> {
    let gpu_repeat = args.repeat.min(3);
    let rows = bench::predict::run(dev, args.repeat, gpu_repeat, args.matmul)?;
    print_timings(&rows, args.json);
    Ok(())
}

/// `layercake bench --predict --model M`: every batch size on the chosen backends.
fn predict_model(
    path: &std::path::Path,
    dev: Option<&layercake::gpu::Device>,
    args: &BenchArgs,
) -> Result<(), Failure> {
    let model = layercake::model::Model::load(path)?;
    let name = model_name(path);
    let cpu = !matches!(args.device, DeviceArg::Gpu);
    let backends = (cpu, dev);
    let rows = bench::predict::run_model(model, &name, backends, &args.batch, args.repeat)?;
    print_timings(&rows, args.json);
    Ok(())
}

/// A model's display name: its directory's name for a model.json, else the file stem.
fn model_name(path: &std::path::Path) -> String {
    let p = if path.file_name().is_some_and(|n| n == "model.json") {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
    stem.unwrap_or_else(|| path.display().to_string())
}

fn print_timings(rows: &[bench::predict::Timing], json: bool) {
    let ms = |s: f64| s * 1e3;
    for r in rows {
        if json {
            println!(
                "{}",
                serde_json::json!({"case": r.case, "batch": r.batch, "backend": r.backend, "ms": {"median": ms(r.secs.median), "min": ms(r.secs.min), "max": ms(r.secs.max)}, "gflops": r.gflops, "steps_per_s": r.steps_per_s, "items_per_s": r.batch as f64 / r.secs.median.max(1e-12)})
            );
            continue;
        }
        let steps = r
            .steps_per_s
            .map(|s| format!("  {s:>9.0} steps/s"))
            .unwrap_or_default();
        println!(
            "{:<16} b{:<3} {:<4} {:>9.2} ms  ({:.2}–{:.2})  {:>6.2} GFLOP/s{steps}",
            r.case,
            r.batch,
            r.backend,
            ms(r.secs.median),
            ms(r.secs.min),
            ms(r.secs.max),
            r.gflops
        );
    }
}

/// `--memory`: one row per path, the peak beside the model's stored bytes.
fn memory(
    model: &std::path::Path,
    dev: Option<&layercake::gpu::Device>,
    json: bool,
) -> Result<(), Failure> {
    let bytes = format::open(model)?.spec.stored_bytes();
    let rows = bench::memory::predict_memory(model, dev)?;
    for r in &rows {
        let ratio = r.peak as f64 / bytes.max(1) as f64;
        if json {
            println!(
                "{}",
                serde_json::json!({"path": r.path, "peak_bytes": r.peak, "model_bytes": bytes, "ratio": ratio})
            );
        } else {
            println!(
                "{:<42} peak {:>8.1} MiB  ({ratio:.2}× the {:.1} MiB model)",
                r.path,
                r.peak as f64 / 1048576.0,
                bytes as f64 / 1048576.0
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("256MiB").ok(), Some(256 << 20));
        assert_eq!(parse_size("64MB").ok(), Some(64_000_000));
        assert_eq!(parse_size("1.5GiB").ok(), Some(1_610_612_736));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert!(parse_size("12 parsecs").is_err());
    }
}
