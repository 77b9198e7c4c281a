//! `layercake predict` and `layercake verify --expect`.

use super::Failure;
use layercake::gpu::residency::UploadOptions;
use layercake::gpu::Device;
use layercake::model::gpu::GpuModel;
use layercake::model::image::{self, PixelScale};
use layercake::model::{bundle_json, npy, read_bundle, Model, Named};
use layercake::verify::VerifyOptions;
use layercake::Error;
use std::path::{Path, PathBuf};

/// Where predictions run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictDevice {
    /// The CPU reference backend.
    Cpu,
    /// A GPU adapter.
    Gpu,
    /// A hardware GPU when there is one, else the CPU.
    Auto,
}

/// Where a prediction ran.
struct Ran {
    outputs: Vec<Named>,
    device: String,
}

/// Run on the device asked for: `gpu` needs an adapter and kernels for every layer; `auto` uses a
/// hardware GPU when the model's layers all have kernels, else the CPU, and says why.
fn run(model: &Model, inputs: &[Named], device: PredictDevice) -> Result<Ran, Failure> {
    let tensors: Vec<_> = inputs.iter().map(|n| n.tensor.clone()).collect();
    let gpu = match device {
        PredictDevice::Cpu => None,
        PredictDevice::Gpu => Some(Device::open()?),
        PredictDevice::Auto => Device::open_hardware()?,
    };
    let (outputs, name) = match gpu {
        // The weights go up once from the files, one buffer per weight, and the predictions
        // read them there (only values derived from weights are uploaded besides).
        Some(dev) => match dev
            .upload(
                &model.artifacts,
                &UploadOptions::dedicated(),
                &mut |_, _| {},
            )
            .and_then(|w| GpuModel::with_weights(&dev, model, &w))
        {
            Ok(gm) => (gm.predict(&tensors)?, format!("GPU {}", dev.info.name)),
            Err(e) if device == PredictDevice::Auto => {
                eprintln!("device: CPU ({e})");
                (model.predict(&tensors)?, "CPU".to_string())
            }
            Err(e) => return Err(e.into()),
        },
        None => (model.predict(&tensors)?, "CPU".to_string()),
    };
    let outputs = model
        .outputs()
        .iter()
        .zip(outputs)
        .map(|(p, tensor)| Named {
            name: p.name.clone(),
            dtype: p.dtype.clone(),
            tensor,
        })
        .collect();
    Ok(Ran {
        outputs,
        device: name,
    })
}

/// What `predict` runs on.
pub enum Source {
    /// A tensor JSON or NumPy file.
    File(PathBuf),
    /// A picture for an image model, and how to report its classes.
    Image {
        image: PathBuf,
        scale: PixelScale,
        top: usize,
        labels: Option<PathBuf>,
    },
}

/// `layercake predict MODEL (--inputs FILE | --image FILE) [--output FILE]`.
pub fn predict(
    model: &Path,
    source: &Source,
    output: Option<&PathBuf>,
    device: PredictDevice,
) -> Result<(), Failure> {
    let model = Model::from_artifacts(super::open(model, None)?)?;
    let given = match source {
        Source::File(f) if npy::is_numpy(f) => npy::read_inputs(f, &model)?,
        Source::File(f) => read_bundle(f, "inputs")?,
        Source::Image { image, scale, .. } => image::read_image(image, &model, *scale)?,
    };
    let ran = run(&model, &given, device)?;
    eprintln!("predicted on the {}", ran.device);
    if let Source::Image { top, labels, .. } = source {
        print_top(&ran.outputs, *top, labels.as_deref())?;
        if output.is_none() {
            return Ok(());
        }
    }
    if let Some(path) = output.filter(|p| npy::is_numpy(p)) {
        return Ok(npy::write_outputs(path, &ran.outputs)?);
    }
    let text = serde_json::to_string(&bundle_json("outputs", &ran.outputs)).unwrap_or_default();
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| Error::io(path, e))?,
        None => println!("{text}"),
    }
    Ok(())
}

/// The `n` top classes of the first output, with their names when `labels` gives them.
fn print_top(outputs: &[Named], n: usize, labels: Option<&Path>) -> Result<(), Failure> {
    let names = labels
        .map(image::read_labels)
        .transpose()?
        .unwrap_or_default();
    let Some(first) = outputs.first() else {
        return Ok(());
    };
    println!("top {n} of '{}':", first.name);
    for (rank, (class, value)) in image::top(&first.tensor, n).into_iter().enumerate() {
        let name = names.get(class).map_or(String::new(), |l| format!("{l} "));
        println!("  {}. {name}(class {class}) {value:.4}", rank + 1);
    }
    Ok(())
}

/// `layercake verify MODEL`: every check, as a table or JSON; exit 0 when all pass, 1 when any
/// fails, 2 when the model cannot be read.
pub fn verify(model: &Path, opts: &VerifyOptions, as_json: bool) -> Result<(), Failure> {
    let report = layercake::verify::verify_location(&model.to_string_lossy(), opts)?;
    if as_json {
        println!("{}", report.json());
    } else {
        print!("{}", report.render());
    }
    if report.passed() {
        return Ok(());
    }
    let failed: Vec<String> = report
        .failures()
        .map(|c| format!("{} ({})", c.name, c.detail))
        .collect();
    Err(Failure {
        code: 1,
        message: format!("{}: failed: {}", model.display(), failed.join("; ")),
    })
}
