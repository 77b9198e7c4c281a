//! The `layercake` command line: a thin layer over the library.
//!
//! Exit codes: 0 success, 1 a check failed, 2 bad input or usage.

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use layercake::format::{self, safetensors};
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use layercake::storage::{self, Location};
use layercake::{Error, QuantDType, QuantizeChoice, SaveOptions, Style, Target};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "layercake",
    version,
    about = "Load Keras / TF.js layer models onto the GPU, check them, save them back"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's format, style, layers and weights.
    Inspect {
        /// model.json, a directory holding one, a .safetensors file, or a Keras .keras / .h5 file.
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Topology JSON for a plain safetensors weights file.
        #[arg(long)]
        topology: Option<PathBuf>,
    },
    /// Convert between TF.js styles, quantizations, safetensors and Keras .keras.
    Convert(ConvertArgs),
    /// The main job on a bundled model: load onto the device, check, save from it, reload, check.
    Demo {
        /// `auto` uses any GPU adapter (the demo model is small, so a software adapter is quick
        /// too) and falls back to the CPU without one.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Then run the same job on a model of this size made on the spot (a stack of Dense
        /// layers, e.g. 256MiB), where the throughput figures mean something.
        #[arg(long, value_name = "SIZE", num_args = 0..=1, default_missing_value = "256MiB")]
        big: Option<String>,
    },
    /// Run a model on inputs from a tensor JSON file.
    Predict {
        /// model.json, a directory holding one, a .safetensors file, or a Keras .keras / .h5 file.
        model: PathBuf,
        /// `{"inputs": [{"name", "shape", "dtype", "data"}]}` (other keys ignored); or a NumPy
        /// `.npy` (the one input of a single-input model) or `.npz` (arrays named as the
        /// inputs, or `np.savez`'s `arr_0`, `arr_1`, … in input order), any real, integer or
        /// bool dtype, cast to float32.
        #[arg(long, required_unless_present = "image", conflicts_with = "image")]
        inputs: Option<PathBuf>,
        /// A PNG or JPEG picture as the input of an image model (one input `[batch, h, w, 1 or
        /// 3]`): decoded, fitted to the input size with TF.js's `resizeBilinear`, scaled by
        /// `--scale`; the top classes are printed.
        #[arg(long)]
        image: Option<PathBuf>,
        /// How pixels (0..255) are scaled for `--image`: `0..1`, `-1..1` (MobileNet,
        /// Teachable Machine) or `0..255`.
        #[arg(long, default_value = "-1..1", value_parser = ["0..1", "-1..1", "0..255"])]
        scale: String,
        /// With `--image`: how many classes to print, largest first.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// With `--image`: class names (Teachable Machine's metadata.json, a JSON list, or one
        /// name per line).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Write `{"outputs": [...]}` here instead of stdout; `.npy` (one output) or `.npz`
        /// (one float32 array per output name) writes NumPy files.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where to run.
        #[arg(long, value_enum, default_value = "auto")]
        device: predict::PredictDevice,
    },
    /// Run every post-load check: artifacts (and recorded hashes), weights (NaN/Inf, all-zero,
    /// GPU copy), reconstruction, predictions (golden bundle, GPU vs CPU, finite). Exit 0 when
    /// all pass, 1 when any fails, 2 when the model cannot be read.
    Verify {
        /// model.json, a directory holding one, a .safetensors file, or a Keras .keras / .h5 file.
        model: PathBuf,
        /// Inputs and expected outputs (the fixtures' expected.json form) to reproduce instead
        /// of the sample embedded by `convert --with-sample`.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Absolute tolerance (default 1e-5, widened for quantized weights).
        #[arg(long)]
        atol: Option<f64>,
        /// Relative tolerance (default 1e-4, widened for quantized weights).
        #[arg(long)]
        rtol: Option<f64>,
        /// Seed of the random inputs of the GPU-vs-CPU check.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where to check: `auto` uses any GPU adapter (software ones included: the checks are
        /// about correctness) and falls back to the CPU.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
    },
    /// Measure load/save throughput against this machine's limits.
    Bench(bench::BenchArgs),
    /// Prove the GPU works: open the adapter, run a kernel, read the result back.
    Device,
    /// Serve model directories to TF.js clients: `GET /models/<name>/model.json` (and its
    /// weight files) from DIR/<name>/, and `POST /models/<name>` (what `tf.io.http` sends),
    /// saved into DIR/<name>/ atomically. Runs until Ctrl-C.
    Serve {
        /// The directory holding one sub-directory per model.
        dir: PathBuf,
        /// Address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Largest upload accepted, in bytes.
        #[arg(long, default_value_t = 8 << 30)]
        max_upload: usize,
    },
}

#[derive(Args)]
struct ConvertArgs {
    /// model.json, a directory holding one, a .safetensors file, or a Keras .keras / .h5 file.
    src: PathBuf,
    /// A directory (TF.js), or a path ending in .safetensors or .keras.
    dst: PathBuf,
    /// Output container (default: from DST).
    #[arg(long, value_enum)]
    to: Option<ToArg>,
    /// TF.js file style (default: the source's).
    #[arg(long, value_enum)]
    style: Option<StyleArg>,
    /// Converter shard size in bytes (with --style shards; default 4194304).
    #[arg(long)]
    shard_size: Option<u64>,
    /// Quantize float32 weights on save, or `none` to write them unquantized.
    #[arg(long, value_enum)]
    quantize: Option<QuantArg>,
    /// Topology JSON for a plain safetensors weights file.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// safetensors output: keep uint8 / uint16-quantized weights as their raw integer codes
    /// (scale and minimum only in layercake's __metadata__; layercake reads them back
    /// byte-exact). By default the file holds the dequantized float32 / int32 values, which is
    /// what Python's, Rust's and candle's safetensors readers expect; stock readers would take
    /// the codes for the weights.
    #[arg(long)]
    keep_codes: bool,
    /// Where the weights go between load and save: through a GPU (load, read back, save) or
    /// straight on the CPU. `auto` takes a hardware GPU when there is one.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Embed a sanity sample (seeded inputs and this model's outputs for them, at most
    /// 16,384 values) in the metadata; `layercake verify` reproduces it.
    #[arg(long)]
    with_sample: bool,
    /// Record an xxh3 hash per weight file (TF.js) or per tensor (safetensors) in the
    /// metadata; `layercake verify` checks them.
    #[arg(long)]
    with_hashes: bool,
    /// On the GPU path, before saving: predict on the uploaded buffers (seeded inputs, against
    /// the CPU) and hash them back against the files; nothing is written unless both agree, so
    /// the saved bytes are the ones that predicted.
    #[arg(long)]
    check: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    Auto,
    Gpu,
    Cpu,
}

#[derive(Clone, Copy, ValueEnum)]
enum ToArg {
    Tfjs,
    Safetensors,
    /// A Keras 3 `.keras` archive (config.json + model.weights.h5).
    Keras,
}

#[derive(Clone, Copy, ValueEnum)]
enum StyleArg {
    Node,
    Downloads,
    Shards,
}

#[derive(Clone, Copy, ValueEnum)]
enum QuantArg {
    Uint8,
    Uint16,
    Float16,
    None,
}

#[path = "cli/bench.rs"]
mod bench;
#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/predict.rs"]
mod predict;

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

/// Let glibc's allocator keep freed activation buffers for reuse instead of returning each one
/// to the kernel: by default every allocation above 128 KiB is its own `mmap`, so each layer's
/// output costs page faults on first touch and a TLB shootdown across the worker threads when
/// freed (a third of a MobileNetV2 predict, measured with perf). Every buffer comes from the
/// heap instead, which gives back its top beyond 256 MiB of free space; the weight files stay
/// memory-mapped files.
fn keep_activation_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator's thresholds; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> ExitCode {
    keep_activation_memory();
    layercake::gpu::quiet_display_probe();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("layercake: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Inspect {
            model,
            json,
            topology,
        } => inspect(&model, json, topology.as_deref()),
        Command::Convert(args) => convert_command(args),
        Command::Device => device(),
        Command::Bench(args) => bench::run(args),
        Command::Predict {
            model,
            inputs,
            image,
            scale,
            top,
            labels,
            output,
            device,
        } => {
            let source = match (inputs, image) {
                (Some(file), _) => predict::Source::File(file),
                (None, Some(image)) => predict::Source::Image {
                    image,
                    scale: layercake::model::image::PixelScale::parse(&scale)
                        .unwrap_or(layercake::model::image::PixelScale::Signed),
                    top,
                    labels,
                },
                (None, None) => {
                    return Err(Error::Usage("give --inputs FILE or --image FILE".into()).into())
                }
            };
            predict::predict(&model, &source, output.as_ref(), device)
        }
        Command::Verify {
            model,
            expect,
            atol,
            rtol,
            seed,
            json,
            device,
        } => {
            let opts = layercake::verify::VerifyOptions {
                atol,
                rtol,
                expect,
                gpu: any_device(device)?,
                seed,
            };
            predict::verify(&model, &opts, json)
        }
        Command::Demo { device, big } => demo::run(device, big.as_deref()),
        Command::Serve {
            dir,
            addr,
            max_upload,
        } => serve(&dir, addr, max_upload),
    }
}

fn convert_command(args: ConvertArgs) -> Result<(), Failure> {
    let style = match (args.style, args.shard_size) {
        (Some(StyleArg::Node), _) => Some(Style::Node),
        (Some(StyleArg::Downloads), _) => Some(Style::Downloads),
        (Some(StyleArg::Shards), size) | (None, size @ Some(_)) => {
            let shard_size = size.unwrap_or(format::DEFAULT_SHARD_SIZE);
            if shard_size == 0 {
                return Err(Error::Usage("--shard-size must be positive".into()).into());
            }
            Some(Style::Shards { shard_size })
        }
        (None, None) => None,
    };
    let quantize = match args.quantize {
        None => QuantizeChoice::Keep,
        Some(QuantArg::None) => QuantizeChoice::None,
        Some(QuantArg::Uint8) => QuantizeChoice::To(QuantDType::Uint8),
        Some(QuantArg::Uint16) => QuantizeChoice::To(QuantDType::Uint16),
        Some(QuantArg::Float16) => QuantizeChoice::To(QuantDType::Float16),
    };
    let target = args.to.map(|t| match t {
        ToArg::Tfjs => Target::Tfjs,
        ToArg::Safetensors => Target::Safetensors,
        ToArg::Keras => Target::Keras,
    });
    let opts = SaveOptions {
        target,
        style,
        quantize,
        hashes: args.with_hashes,
        keep_codes: args.keep_codes,
        ..Default::default()
    };
    convert(
        &args.src,
        &args.dst,
        args.topology.as_deref(),
        (args.device, args.with_sample, args.check),
        opts,
    )
}

/// `convert --check`: predictions on the resident weights against the CPU, and the weights read
/// back against the files; an error (nothing written) when either differs.
fn check_resident(
    dev: &layercake::gpu::Device,
    model: &layercake::model::Model,
    gw: &layercake::gpu::residency::GpuWeights,
) -> Result<(), Failure> {
    let gpu = layercake::model::gpu::GpuModel::with_weights(dev, model, gw)?;
    let x = layercake::verify::random_inputs(model, 7, 2);
    let (got, want) = (gpu.predict(&x)?, model.predict(&x)?);
    for ((g, w), port) in got.iter().zip(&want).zip(model.outputs()) {
        let (err, ok) = layercake::verify::max_error(&g.data, &w.data, 1e-5, 1e-4);
        if !ok {
            return Err(Error::Model(format!(
                "--check: output '{}' on the uploaded weights differs from the CPU by {err:.3e}; nothing written",
                port.name
            ))
            .into());
        }
    }
    let reader = gw.reader(64 << 20)?;
    let bad: Vec<String> = layercake::check::weight_hashes(&model.artifacts, &reader)?
        .into_iter()
        .filter(|h| !h.ok())
        .map(|h| h.name)
        .collect();
    if !bad.is_empty() {
        return Err(Error::Model(format!(
            "--check: weights read back from the GPU differ from the files: {}; nothing written",
            bad.join(", ")
        ))
        .into());
    }
    let b = gpu.param_bytes;
    eprintln!(
        "checked: predictions on the uploaded buffers ({} parameter bytes read in place, {} derived) match the CPU; every weight reads back intact",
        b.resident, b.derived
    );
    Ok(())
}

/// Embed the sanity sample in `artifacts`' metadata: the model is rebuilt from a second open of
/// the source, predicts on the device in use (or the CPU), and the sample goes into
/// `userDefinedMetadata.layercake.sample`.
fn add_sample(
    artifacts: &mut layercake::Artifacts,
    dev: Option<&Device>,
    src: &Path,
    topology: Option<&Path>,
    quantize: QuantizeChoice,
) -> Result<(), Failure> {
    let model = layercake::model::Model::from_artifacts(open(src, topology)?)?;
    let quantization = match quantize {
        QuantizeChoice::To(q) => Some(q.to_string()),
        _ => None,
    };
    let sample = layercake::verify::make_sample(&model, dev, 7, quantization.as_deref())?;
    format::integrity::set_metadata(&mut artifacts.spec.fields, "sample", sample);
    Ok(())
}

/// Any GPU adapter for `auto` and `gpu` (software ones too), `None` for the CPU; says which.
fn any_device(arg: DeviceArg) -> Result<Option<Device>, Failure> {
    let dev = match arg {
        DeviceArg::Cpu => None,
        DeviceArg::Gpu => Some(Device::open()?),
        DeviceArg::Auto => Device::open().ok(),
    };
    match &dev {
        Some(d) => eprintln!("device: GPU {}", d.describe()),
        None => eprintln!("device: CPU"),
    }
    Ok(dev)
}

/// Open a model from a path or an `http(s)://…/model.json` URL (with a progress bar).
fn open(path: &Path, topology: Option<&Path>) -> Result<layercake::Artifacts, Error> {
    if let Location::Http(url) = Location::parse(&path.to_string_lossy()) {
        if topology.is_some() {
            return Err(Error::Usage(
                "--topology applies to .safetensors sources only".into(),
            ));
        }
        let mut bar: Option<ProgressBar> = None;
        let opts = storage::http::HttpOptions::default();
        let a = storage::http::open_with_progress(&url, &opts, &mut |done, total| {
            bar.get_or_insert_with(|| progress_bar(total, "download"))
                .set_position(done)
        });
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        return a;
    }
    match topology {
        Some(t) if format::is_safetensors_path(path) => safetensors::read(path, Some(t)),
        Some(_) => Err(Error::Usage(
            "--topology applies to .safetensors sources only".into(),
        )),
        None => format::open(path),
    }
}

fn inspect(model: &Path, json: bool, topology: Option<&Path>) -> Result<(), Failure> {
    let artifacts = open(model, topology)?;
    let mut summary = layercake::inspect::summarize(&artifacts);
    let graph =
        layercake::model::Model::from_artifacts(open(model, topology)?).map(|m| m.summary_rows());
    summary.add_graph(graph.map_err(|e| e.to_string()));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary.json).unwrap_or_default()
        );
    } else {
        print!("{}", summary.render());
    }
    Ok(())
}

/// The GPU to use for `arg`, or `None` for the CPU path; says which and why on stderr.
fn choose_device(arg: DeviceArg) -> Result<Option<Device>, Failure> {
    match arg {
        DeviceArg::Cpu => {
            eprintln!("device: CPU (--device cpu)");
            Ok(None)
        }
        DeviceArg::Gpu => {
            let d = Device::open()?;
            eprintln!("device: GPU {}", d.describe());
            Ok(Some(d))
        }
        DeviceArg::Auto => match Device::open_hardware()? {
            Some(d) => {
                eprintln!("device: GPU {}", d.describe());
                Ok(Some(d))
            }
            None => {
                let why = match Device::open() {
                    Ok(d) => format!("the only adapter, {}, is a software rasterizer, slower than the CPU backend", d.info.name),
                    Err(e) => e.to_string(),
                };
                eprintln!("device: CPU ({why}; --device gpu forces the GPU)");
                Ok(None)
            }
        },
    }
}

/// A byte progress bar on stderr for models above 8 MiB (hidden otherwise).
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    if total < 8 << 20 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what.to_string());
    bar
}

fn convert(
    src: &Path,
    dst: &Path,
    topology: Option<&Path>,
    (device, with_sample, check): (DeviceArg, bool, bool),
    opts: SaveOptions,
) -> Result<(), Failure> {
    let dev = choose_device(device)?;
    if check && dev.is_none() {
        return Err(Error::Usage(
            "--check proves the GPU path; the CPU path has nothing to check (use --device gpu)"
                .into(),
        )
        .into());
    }
    let started = Instant::now();
    if let (Some(dev), Location::Http(url), false) =
        (&dev, Location::parse(&src.to_string_lossy()), with_sample)
    {
        return convert_streamed(dev, &url, dst, opts, started);
    }
    let mut artifacts = open(src, topology)?;
    if with_sample {
        add_sample(&mut artifacts, dev.as_ref(), src, topology, opts.quantize)?;
    }
    let (report, path) = match &dev {
        None => (
            storage::save(&dst.to_string_lossy(), &artifacts.spec, &artifacts, opts)?,
            "CPU path".to_string(),
        ),
        Some(dev) => {
            let bar = progress_bar(artifacts.spec.stored_bytes(), "upload");
            let upload = if check {
                UploadOptions::dedicated()
            } else {
                UploadOptions::default()
            };
            let gw = dev.upload(&artifacts, &upload, &mut |done, _| bar.set_position(done))?;
            bar.finish_and_clear();
            if check {
                let model = layercake::model::Model::from_artifacts(artifacts)?;
                check_resident(dev, &model, &gw)?;
                artifacts = model.artifacts;
            }
            let reader = gw.reader(256 << 20)?;
            let report = storage::save(&dst.to_string_lossy(), &artifacts.spec, &reader, opts)?;
            (
                report,
                format!(
                    "GPU path: files → {} → files, {:?} upload",
                    dev.info.name, gw.path
                ),
            )
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let what = match (report.target, report.style) {
        (Target::Safetensors, _) => "safetensors".to_string(),
        (Target::Keras, _) => "keras".to_string(),
        (Target::Tfjs, Some(s)) => format!("tfjs ({s} style)"),
        (Target::Tfjs, None) => "tfjs".to_string(),
    };
    eprintln!(
        "wrote {} as {what}: {} weights, {} bytes in {secs:.3} s ({path})",
        dst.display(),
        artifacts.spec.weights.len(),
        report.weight_bytes,
    );
    Ok(())
}

fn serve(dir: &Path, addr: std::net::SocketAddr, max_upload: usize) -> Result<(), Failure> {
    let opts = layercake::serve::ServeOptions {
        max_upload_bytes: max_upload,
        stop_on_ctrl_c: true,
        log: true,
    };
    let server = layercake::serve::Server::start(dir, addr, opts)?;
    eprintln!(
        "serving {} at http://{}/models/<name>/model.json (POST /models/<name> saves); Ctrl-C stops",
        dir.display(),
        server.addr()
    );
    server.wait()?;
    Ok(())
}

/// `convert` from a URL through a GPU: the weight files stream from the server into GPU buffers
/// (never whole in host memory), then are read back and saved.
fn convert_streamed(
    dev: &Device,
    url: &str,
    dst: &Path,
    opts: SaveOptions,
    started: Instant,
) -> Result<(), Failure> {
    let mut src = storage::http::HttpSource::new(url, storage::http::HttpOptions::default())?;
    let mut bar: Option<ProgressBar> = None;
    let (spec, gw) = dev.upload_from(&mut src, &UploadOptions::default(), &mut |done, total| {
        bar.get_or_insert_with(|| progress_bar(total, "download"))
            .set_position(done)
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let reader = gw.reader(256 << 20)?;
    let report = storage::save(&dst.to_string_lossy(), &spec, &reader, opts)?;
    eprintln!(
        "wrote {} ({:?}): {} weights, {} bytes in {:.3} s (GPU path: {url} streamed into {})",
        dst.display(),
        report.target,
        spec.weights.len(),
        report.weight_bytes,
        started.elapsed().as_secs_f64(),
        dev.info.name
    );
    Ok(())
}

fn device() -> Result<(), Failure> {
    let dev = Device::open()?;
    println!("adapter: {}", dev.describe());
    let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let y = dev.axpy(&x, 2.0, 1.0)?;
    let ok = y.iter().zip(&x).all(|(y, x)| *y == 2.0 * x + 1.0);
    if !ok {
        return Err(Failure {
            code: 1,
            message: "the GPU computed wrong values".into(),
        });
    }
    println!("kernel: axpy over {} elements read back correctly", x.len());
    Ok(())
}
