//! `layercake predict` and `layercake verify --expect`.

use super::Failure;
use layercake::gpu::Device;
use layercake::model::gpu::GpuModel;
use layercake::model::{bundle_json, read_bundle, Model, Named};
use layercake::Error;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        Some(dev) => match GpuModel::new(&dev, model) {
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

/// `layercake predict MODEL --inputs FILE [--output FILE]`.
pub fn predict(
    model: &Path,
    inputs: &Path,
    output: Option<&PathBuf>,
    device: PredictDevice,
) -> Result<(), Failure> {
    let model = Model::load(model)?;
    let ran = run(&model, &read_bundle(inputs, "inputs")?, device)?;
    eprintln!("predicted on the {}", ran.device);
    let text = serde_json::to_string(&bundle_json("outputs", &ran.outputs)).unwrap_or_default();
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| Error::io(path, e))?,
        None => println!("{text}"),
    }
    Ok(())
}

/// Largest absolute and relative error of `got` against `want`, and whether every element is
/// within `atol + rtol * |want|`.
pub fn compare(got: &[f32], want: &[f32], atol: f64, rtol: f64) -> (f64, f64, bool) {
    let mut ok = got.len() == want.len();
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        let e = (g as f64 - w as f64).abs();
        ok &= e <= atol + rtol * (w as f64).abs();
        abs = abs.max(e);
        rel = rel.max(e / (w as f64).abs().max(f64::MIN_POSITIVE));
    }
    (abs, rel, ok)
}

/// `layercake verify MODEL --expect FILE`: exit 0 when every output is within tolerance, 1 when
/// not, 2 when the model cannot be loaded.
pub fn verify(
    model: &Path,
    expect: &Path,
    atol: f64,
    rtol: f64,
    as_json: bool,
    device: PredictDevice,
) -> Result<(), Failure> {
    let started = Instant::now();
    let model = Model::load(model)?;
    let inputs = read_bundle(expect, "inputs")?;
    let want = read_bundle(expect, "outputs")?;
    let ran = run(&model, &inputs, device)?;
    let got = ran.outputs;
    let mut rows = Vec::new();
    let mut all = got.len() == want.len();
    for (g, w) in got.iter().zip(&want) {
        let same_shape = g.tensor.shape == w.tensor.shape;
        let (abs, rel, ok) = compare(&g.tensor.data, &w.tensor.data, atol, rtol);
        all &= ok && same_shape;
        rows.push(json!({"output": g.name, "shape": g.tensor.shape, "expected_shape": w.tensor.shape, "max_abs_error": abs, "max_rel_error": rel, "pass": ok && same_shape}));
    }
    let secs = started.elapsed().as_secs_f64();
    if as_json {
        println!(
            "{}",
            json!({"pass": all, "atol": atol, "rtol": rtol, "device": ran.device, "outputs": rows, "seconds": secs})
        );
    } else {
        println!(
            "{:<32} {:>14} {:>14}  result",
            "output", "max abs err", "max rel err"
        );
        for r in &rows {
            println!(
                "{:<32} {:>14.3e} {:>14.3e}  {}",
                r["output"].as_str().unwrap_or(""),
                r["max_abs_error"].as_f64().unwrap_or(0.0),
                r["max_rel_error"].as_f64().unwrap_or(0.0),
                if r["pass"] == true { "pass" } else { "FAIL" }
            );
        }
        println!(
            "{} (atol {atol:e}, rtol {rtol:e}, {}, {:.1} ms)",
            if all {
                "all outputs within tolerance"
            } else {
                "outputs out of tolerance"
            },
            ran.device,
            secs * 1e3
        );
    }
    if all {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: format!(
                "{}: predictions differ from {}",
                model.artifacts.origin.display(),
                expect.display()
            ),
        })
    }
}
