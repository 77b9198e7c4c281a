//! The `layercake` command line: a thin layer over the library.
//!
//! Exit codes: 0 success, 1 a check failed, 2 bad input or usage.

use clap::{Parser, Subcommand, ValueEnum};
use layercake::format::{self, safetensors};
use layercake::{Error, QuantDType, QuantizeChoice, SaveOptions, Style, Target};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
        /// model.json, a directory holding one, or a .safetensors file.
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Topology JSON for a plain safetensors weights file.
        #[arg(long)]
        topology: Option<PathBuf>,
    },
    /// Convert between TF.js styles, quantizations and safetensors.
    Convert {
        /// model.json, a directory holding one, or a .safetensors file.
        src: PathBuf,
        /// A directory (TF.js) or a path ending in .safetensors.
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
    },
    /// Prove the GPU works: open the adapter, run a kernel, read the result back.
    Device,
}

#[derive(Clone, Copy, ValueEnum)]
enum ToArg {
    Tfjs,
    Safetensors,
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

fn main() -> ExitCode {
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
        Command::Convert {
            src,
            dst,
            to,
            style,
            shard_size,
            quantize,
            topology,
        } => {
            let style = match (style, shard_size) {
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
            let quantize = match quantize {
                None => QuantizeChoice::Keep,
                Some(QuantArg::None) => QuantizeChoice::None,
                Some(QuantArg::Uint8) => QuantizeChoice::To(QuantDType::Uint8),
                Some(QuantArg::Uint16) => QuantizeChoice::To(QuantDType::Uint16),
                Some(QuantArg::Float16) => QuantizeChoice::To(QuantDType::Float16),
            };
            let target = to.map(|t| match t {
                ToArg::Tfjs => Target::Tfjs,
                ToArg::Safetensors => Target::Safetensors,
            });
            convert(
                &src,
                &dst,
                topology.as_deref(),
                SaveOptions {
                    target,
                    style,
                    quantize,
                },
            )
        }
        Command::Device => device(),
    }
}

fn open(path: &Path, topology: Option<&Path>) -> Result<layercake::Artifacts, Error> {
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
    let summary = layercake::inspect::summarize(&artifacts);
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

fn convert(
    src: &Path,
    dst: &Path,
    topology: Option<&Path>,
    opts: SaveOptions,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let artifacts = open(src, topology)?;
    let report = layercake::save(dst, &artifacts.spec, &artifacts, opts)?;
    let secs = started.elapsed().as_secs_f64();
    let what = match (report.target, report.style) {
        (Target::Safetensors, _) => "safetensors".to_string(),
        (Target::Tfjs, Some(s)) => format!("tfjs ({s} style)"),
        (Target::Tfjs, None) => "tfjs".to_string(),
    };
    eprintln!(
        "wrote {} as {what}: {} weights, {} bytes in {:.3} s (CPU path)",
        dst.display(),
        artifacts.spec.weights.len(),
        report.weight_bytes,
        secs
    );
    Ok(())
}

fn device() -> Result<(), Failure> {
    let dev = layercake::gpu::Device::open()?;
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
