//! Post-load sanity checks (`layercake verify`, [`verify`], [`Model::verify`]): every check that
//! applies to a model, each reported with its result, a detail naming what is wrong and where,
//! and its time.
//!
//! 1. **artifacts** — manifest and files agree (sizes, names, paths, dtypes: validated by
//!    [`format::open`]); recorded hashes ([`integrity`]) match.
//! 2. **weights** — no NaN/Inf in float weights (counted by a GPU kernel when the weights are
//!    on a GPU), all-zero float tensors (a warning), and the weights read back from the GPU hash
//!    to the same bytes as the files.
//! 3. **reconstruction** — every weight bound to a layer and none left over; output shapes.
//! 4. **predictions** — a golden bundle (the embedded sample, or `expect`) reproduced within
//!    tolerance; GPU vs CPU on seeded random inputs; outputs finite.

use crate::check::weight_hashes;
use crate::error::{Error, Result};
use crate::format::{self, integrity, Artifacts};
use crate::gpu::residency::{GpuWeights, UploadOptions, WeightScan};
use crate::gpu::Device;
use crate::model::gpu::GpuModel;
use crate::model::{parse_bundle, Model, Named};
use crate::tensor::Tensor;
use crate::QuantDType;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Default absolute tolerance of prediction checks.
pub const ATOL: f64 = 1e-5;
/// Default relative tolerance of prediction checks.
pub const RTOL: f64 = 1e-4;
/// At most this many values (inputs and outputs together) in an embedded sample: 64 KiB of
/// float32, well under 1 MB of JSON.
pub const SAMPLE_MAX_VALUES: usize = 16_384;

/// What to check and how.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// Absolute tolerance (default [`ATOL`], widened for quantized weights).
    pub atol: Option<f64>,
    /// Relative tolerance (default [`RTOL`], widened for quantized weights).
    pub rtol: Option<f64>,
    /// A golden bundle (`{"inputs": [...], "outputs": [...]}`) to reproduce instead of the
    /// embedded sample.
    pub expect: Option<PathBuf>,
    /// The GPU to check on; `None` checks on the CPU.
    pub gpu: Option<Device>,
    /// Seed of the random inputs.
    pub seed: u64,
}

/// Outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Pass,
    /// Passed with something worth a look (e.g. an all-zero tensor).
    Warn,
    /// Failed.
    Fail,
    /// Did not apply or could not run (the detail says why).
    Skip,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug)]
pub struct Check {
    /// Check name, e.g. `weights: finite`.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found, naming weights, layers, files or outputs.
    pub detail: String,
    /// Seconds it took.
    pub secs: f64,
}

/// A verification report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The model checked.
    pub model: String,
    /// `GPU <adapter>` or `CPU`.
    pub device: String,
    /// Tolerances used by the prediction checks.
    pub atol: f64,
    /// See `atol`.
    pub rtol: f64,
    /// Why the tolerances differ from the defaults, if they do.
    pub tolerance_note: Option<String>,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// Machine-readable form.
    pub fn json(&self) -> Value {
        json!({
            "model": self.model,
            "device": self.device,
            "pass": self.passed(),
            "atol": self.atol,
            "rtol": self.rtol,
            "tolerance_note": self.tolerance_note,
            "checks": self.checks.iter().map(|c| json!({
                "check": c.name, "result": c.status.word().to_lowercase(), "detail": c.detail, "seconds": c.secs,
            })).collect::<Vec<_>>(),
        })
    }

    /// A readable table.
    pub fn render(&self) -> String {
        let mut s = format!("{} on the {}\n", self.model, self.device);
        s += &format!("{:<26} {:<6} {:>9}  detail\n", "check", "result", "time");
        for c in &self.checks {
            s += &format!(
                "{:<26} {:<6} {:>7.1}ms  {}\n",
                c.name,
                c.status.word(),
                c.secs * 1e3,
                c.detail
            );
        }
        s += &format!("tolerance: atol {:e}, rtol {:e}", self.atol, self.rtol);
        if let Some(n) = &self.tolerance_note {
            s += &format!(" ({n})");
        }
        s += &format!(
            "\n{}\n",
            if self.passed() {
                "all checks passed"
            } else {
                "CHECKS FAILED"
            }
        );
        s
    }
}

/// Collects checks with their timings.
struct Checks(Vec<Check>);

impl Checks {
    fn run<T>(&mut self, name: &'static str, f: impl FnOnce() -> (Status, String, T)) -> T {
        let t = Instant::now();
        let (status, detail, value) = f();
        self.0.push(Check {
            name,
            status,
            detail,
            secs: t.elapsed().as_secs_f64(),
        });
        value
    }

    fn skip(&mut self, names: &[&'static str], why: &str) {
        for &name in names {
            self.run(name, || (Status::Skip, why.to_string(), ()));
        }
    }
}

const WEIGHT_CHECKS: [&str; 3] = [
    "weights: finite",
    "weights: non-zero",
    "weights: device copy",
];
const PREDICTION_CHECKS: [&str; 3] = [
    "predictions: golden",
    "predictions: GPU vs CPU",
    "predictions: finite",
];

/// Load `path` and run every check. `Err` only when the model cannot be read at all (no such
/// path, model.json not JSON); damaged artifacts are a failed `artifacts` check.
pub fn verify(path: &Path, opts: &VerifyOptions) -> Result<Report> {
    let opened = format::open(path);
    if let Err(e @ (Error::Json { .. } | Error::Usage(_))) = &opened {
        return Err(Error::Model(e.to_string()));
    }
    if !path.exists() {
        return Err(Error::Usage(format!("{}: no such model", path.display())));
    }
    verify_opened(&path.display().to_string(), opened, opts)
}

/// [`verify`] for a path or an `http(s)://…/model.json` URL. For a URL, a model.json that
/// cannot be fetched or parsed is an error (as a missing path is); a weight file that cannot
/// is a failed *artifacts* check naming it.
pub fn verify_location(location: &str, opts: &VerifyOptions) -> Result<Report> {
    match crate::storage::Location::parse(location) {
        crate::storage::Location::Path(p) => verify(&p, opts),
        crate::storage::Location::Http(url) => {
            let opened = crate::storage::open(&url);
            match &opened {
                Err(e @ (Error::Json { .. } | Error::Usage(_))) => {
                    return Err(Error::Model(e.to_string()))
                }
                Err(Error::Format { path, .. }) if path == Path::new(&url) => {
                    return Err(Error::Usage(
                        opened.err().map(|e| e.to_string()).unwrap_or_default(),
                    ))
                }
                _ => {}
            }
            verify_opened(&url, opened, opts)
        }
    }
}

fn verify_opened(model: &str, opened: Result<Artifacts>, opts: &VerifyOptions) -> Result<Report> {
    let mut checks = Checks(Vec::new());
    let a = checks.run("artifacts", || match opened {
        Ok(a) => {
            let (status, detail) = artifacts_detail(&a);
            (status, detail, Some(a))
        }
        Err(e) => (Status::Fail, e.to_string(), None),
    });
    let mut report = Report {
        model: model.to_string(),
        device: device_name(opts.gpu.as_ref()),
        atol: opts.atol.unwrap_or(ATOL),
        rtol: opts.rtol.unwrap_or(RTOL),
        tolerance_note: None,
        checks: Vec::new(),
    };
    let Some(a) = a else {
        checks.skip(&WEIGHT_CHECKS, "the artifacts are invalid");
        checks.skip(&["reconstruction"], "the artifacts are invalid");
        checks.skip(&PREDICTION_CHECKS, "the artifacts are invalid");
        report.checks = checks.0;
        return Ok(report);
    };
    let resident = weight_checks(&mut checks, &a, opts.gpu.as_ref());
    let model = checks.run("reconstruction", || match Model::from_artifacts(a) {
        Ok(m) => (Status::Pass, reconstruction_detail(&m), Some(m)),
        Err(e) => (Status::Fail, e.to_string(), None),
    });
    match model {
        Some(m) => prediction_checks(&mut checks, &m, opts, &mut report, resident.as_ref()),
        None => checks.skip(&PREDICTION_CHECKS, "the model could not be rebuilt"),
    }
    report.checks = checks.0;
    Ok(report)
}

impl Model {
    /// Run the checks on this loaded model (its artifacts, weights and predictions; the
    /// reconstruction already succeeded).
    pub fn verify(&self, opts: &VerifyOptions) -> Result<Report> {
        let mut checks = Checks(Vec::new());
        checks.run("artifacts", || {
            let (s, d) = artifacts_detail(&self.artifacts);
            (s, d, ())
        });
        let resident = weight_checks(&mut checks, &self.artifacts, opts.gpu.as_ref());
        checks.run("reconstruction", || {
            (Status::Pass, reconstruction_detail(self), ())
        });
        let mut report = Report {
            model: self.artifacts.origin.display().to_string(),
            device: device_name(opts.gpu.as_ref()),
            atol: ATOL,
            rtol: RTOL,
            tolerance_note: None,
            checks: Vec::new(),
        };
        prediction_checks(&mut checks, self, opts, &mut report, resident.as_ref());
        report.checks = checks.0;
        Ok(report)
    }
}

fn device_name(gpu: Option<&Device>) -> String {
    gpu.map_or("CPU".into(), |d| format!("GPU {}", d.info.name))
}

fn artifacts_detail(a: &Artifacts) -> (Status, String) {
    let files: usize = a.spec.layout.groups.iter().map(|g| g.paths.len()).sum();
    let base = format!(
        "{} weights, {} bytes in {} file(s)",
        a.spec.weights.len(),
        a.spec.stored_bytes(),
        files.max(1)
    );
    match integrity::check_hashes(a) {
        None => (Status::Pass, format!("{base}; no hashes recorded")),
        Some(Err(e)) => (Status::Fail, e.to_string()),
        Some(Ok(integrity::HashCheck::Stale { recorded })) => (
            Status::Warn,
            format!(
                "{base}; the recorded hashes name other files ({}): re-saved by another tool, not checked",
                recorded.join(", ")
            ),
        ),
        Some(Ok(integrity::HashCheck::Compared(results))) => {
            let bad: Vec<String> = results
                .iter()
                .filter(|r| !r.ok())
                .map(|r| match &r.actual {
                    Ok(h) => format!("{}: hash {h}, recorded {}", r.item, r.expected),
                    Err(e) => format!("{}: {e}", r.item),
                })
                .collect();
            if bad.is_empty() {
                (
                    Status::Pass,
                    format!("{base}; {} recorded hashes match", results.len()),
                )
            } else {
                (Status::Fail, format!("hash mismatch: {}", bad.join("; ")))
            }
        }
    }
}

/// The scans of every weight: on the GPU by a kernel when there is one, else on the host.
/// Scans, a note on weights read back differently, and (on the GPU) the resident weights, one
/// buffer per weight, which the prediction checks then bind (see [`crate::Session`]).
type Scanned = (Vec<Option<WeightScan>>, String, Option<GpuWeights>);

fn scans(a: &Artifacts, gpu: Option<&Device>) -> Result<Scanned> {
    match gpu {
        Some(dev) => {
            let gw = dev.upload(a, &UploadOptions::dedicated(), &mut |_, _| {})?;
            let scans = gw.scan()?;
            let reader = gw.reader(64 << 20)?;
            let hashes = weight_hashes(a, &reader)?;
            let bad: Vec<&str> = hashes
                .iter()
                .filter(|h| !h.ok())
                .map(|h| h.name.as_str())
                .collect();
            let copy = if bad.is_empty() {
                String::new()
            } else {
                format!("read back differently from the files: {}", bad.join(", "))
            };
            drop(reader);
            Ok((scans, copy, Some(gw)))
        }
        None => {
            let scans = (0..a.spec.weights.len())
                .map(|i| {
                    (a.spec.weights[i].dtype == crate::DType::Float32).then(|| {
                        WeightScan::of(&bytemuck::pod_collect_to_vec::<u8, f32>(&a.logical(i)))
                    })
                })
                .collect();
            Ok((scans, String::new(), None))
        }
    }
}

/// The weight checks; returns the resident weights (GPU) for the predictions to bind.
fn weight_checks(checks: &mut Checks, a: &Artifacts, gpu: Option<&Device>) -> Option<GpuWeights> {
    let where_ = if gpu.is_some() {
        "scanned on the GPU"
    } else {
        "scanned on the CPU"
    };
    let found = checks.run("weights: finite", || match scans(a, gpu) {
        Err(e) => (Status::Fail, e.to_string(), None),
        Ok((scans, copy, resident)) => {
            let bad: Vec<String> = scans
                .iter()
                .zip(&a.spec.weights)
                .filter_map(|(s, w)| {
                    s.filter(|s| s.non_finite > 0)
                        .map(|s| format!("{}: {} NaN/Inf of {}", w.name, s.non_finite, s.elements))
                })
                .collect();
            let n = scans.iter().flatten().count();
            if bad.is_empty() {
                let detail = format!("{n} float weights {where_}, all finite");
                (Status::Pass, detail, Some((scans, copy, resident)))
            } else {
                (Status::Fail, bad.join("; "), Some((scans, copy, resident)))
            }
        }
    });
    let Some((scans, copy, resident)) = found else {
        checks.skip(&WEIGHT_CHECKS[1..], "the scan failed");
        return None;
    };
    checks.run("weights: non-zero", || {
        let zero: Vec<&str> = scans
            .iter()
            .zip(&a.spec.weights)
            .filter(|(s, w)| {
                s.is_some_and(|s| s.elements > 0 && s.non_zero == 0) && !w.is_optimizer()
            })
            .map(|(_, w)| w.name.as_str())
            .collect();
        if zero.is_empty() {
            (Status::Pass, "no all-zero float tensor".into(), ())
        } else {
            let detail = format!(
                "all-zero (fine for fresh biases, suspicious for kernels): {}",
                zero.join(", ")
            );
            (Status::Warn, detail, ())
        }
    });
    checks.run("weights: device copy", || match (gpu, copy.is_empty()) {
        (None, _) => (
            Status::Skip,
            "no GPU: the CPU reads the files themselves".into(),
            (),
        ),
        (Some(_), true) => (
            Status::Pass,
            format!(
                "all {} weights read back from the GPU hash (xxh3) to the file bytes",
                a.spec.weights.len()
            ),
            (),
        ),
        (Some(_), false) => (Status::Fail, copy, ()),
    });
    resident
}

fn reconstruction_detail(m: &Model) -> String {
    let outs: Vec<String> = m
        .outputs()
        .iter()
        .map(|p| {
            let dims: Vec<String> = p
                .shape
                .iter()
                .map(|d| d.map_or("?".into(), |d| d.to_string()))
                .collect();
            format!("{} [{}]", p.name, dims.join(", "))
        })
        .collect();
    format!(
        "{} layers, every weight bound; outputs {}",
        m.summary().len(),
        outs.join(", ")
    )
}

/// The coarsest quantization among the stored weights, with the tolerance it warrants: the
/// quantization step relative to a weight's range is 1/255 (uint8), 1/65535 (uint16), 2^-11
/// (float16); outputs inherit errors of that order, times the depth, so golden checks allow
/// about 10× the step.
fn quantized_tolerance(m: &Model) -> Option<(f64, &'static str)> {
    m.artifacts
        .spec
        .weights
        .iter()
        .filter_map(|w| w.quantization.as_ref())
        .map(|q| match q.dtype {
            QuantDType::Uint8 => (4e-2f64, "uint8"),
            QuantDType::Float16 => (5e-3, "float16"),
            _ => (2e-3, "uint16"),
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The GPU-vs-CPU tolerance and how it was chosen: the user's `--atol` / `--rtol` where given;
/// else the defaults scaled by √(layers / 10), at least 1 (float32 sums in different orders
/// drift apart like a random walk over the layers: InceptionV3's 312 layers differ by ~4e-5).
fn backend_tolerance(m: &Model, opts: &VerifyOptions) -> (f64, f64, String) {
    let depth = m.summary().len();
    let scale = (depth as f64 / 10.0).sqrt().max(1.0);
    let atol = opts.atol.unwrap_or(ATOL * scale);
    let rtol = opts.rtol.unwrap_or(RTOL * scale);
    let why = match (opts.atol, opts.rtol) {
        (Some(_), Some(_)) => "the given tolerances".to_string(),
        _ if scale > 1.0 => format!("defaults scaled ×{scale:.1} for {depth} layers"),
        _ => "default tolerances".to_string(),
    };
    (
        atol,
        rtol,
        format!("atol {atol:.1e} / rtol {rtol:.1e} ({why})"),
    )
}

/// A golden bundle: inputs, expected outputs, and where they came from.
struct Golden {
    inputs: Vec<Named>,
    outputs: Vec<Named>,
    /// Where the bundle came from, for the report.
    source: String,
    /// The outputs were computed on the weights as stored (an embedded sample made after
    /// quantization), so quantization needs no wider tolerance.
    same_weights: bool,
}

/// The golden bundle: `expect`, else the embedded sample.
fn golden(m: &Model, opts: &VerifyOptions) -> Result<Option<Golden>> {
    if let Some(path) = &opts.expect {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::json(path, e))?;
        return Ok(Some(Golden {
            inputs: parse_bundle(&v, "inputs", path)?,
            outputs: parse_bundle(&v, "outputs", path)?,
            source: path.display().to_string(),
            same_weights: false,
        }));
    }
    let Some(sample) = integrity::metadata(&m.artifacts.spec.fields, "sample") else {
        return Ok(None);
    };
    let origin = &m.artifacts.origin;
    let by = sample.get("device").and_then(Value::as_str).unwrap_or("?");
    Ok(Some(Golden {
        inputs: parse_bundle(sample, "inputs", origin)?,
        outputs: parse_bundle(sample, "outputs", origin)?,
        source: format!("the embedded sample ({by})"),
        same_weights: sample.get("weights").and_then(Value::as_str) == Some("as saved"),
    }))
}

/// The prediction checks; on the GPU they read `resident` (the weights the weight checks
/// scanned and hashed) wherever a layer's parameter is a stored weight.
fn prediction_checks(
    checks: &mut Checks,
    m: &Model,
    opts: &VerifyOptions,
    report: &mut Report,
    resident: Option<&GpuWeights>,
) {
    let gm = opts.gpu.as_ref().map(|d| match resident {
        Some(w) => GpuModel::with_weights(d, m, w),
        None => GpuModel::new(d, m),
    });
    let predict = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        match &gm {
            Some(Ok(g)) => g.predict(x),
            Some(Err(e)) => Err(Error::Gpu(e.to_string())),
            None => m.predict(x),
        }
    };
    let golden = golden(m, opts);
    let same_weights = matches!(&golden, Ok(Some(g)) if g.same_weights);
    let (mut atol, mut rtol) = (opts.atol.unwrap_or(ATOL), opts.rtol.unwrap_or(RTOL));
    match (quantized_tolerance(m), opts.atol, opts.rtol) {
        (Some((tol, kind)), None, None) if !same_weights => {
            (atol, rtol) = (atol.max(tol), rtol.max(tol));
            report.tolerance_note = Some(format!(
                "widened for {kind}-quantized weights on the golden check (its outputs may come from the unquantized model); --atol/--rtol override"
            ));
        }
        (Some((_, kind)), None, None) => {
            report.tolerance_note = Some(format!(
                "not widened for {kind}-quantized weights: the golden outputs were computed on these same weights"
            ));
        }
        _ => {}
    }
    report.atol = atol;
    report.rtol = rtol;
    checks.run("predictions: golden", || match golden {
        Err(e) => (Status::Fail, e.to_string(), ()),
        Ok(None) => (
            Status::Skip,
            "no golden bundle: none embedded (convert --with-sample) and no --expect".into(),
            (),
        ),
        Ok(Some(g)) => {
            let x: Vec<Tensor> = g.inputs.into_iter().map(|n| n.tensor).collect();
            match predict(&x) {
                Err(e) => (Status::Fail, e.to_string(), ()),
                Ok(got) => {
                    let (ok, detail) = compare_outputs(m, &got, &g.outputs, atol, rtol);
                    let status = if ok { Status::Pass } else { Status::Fail };
                    (status, format!("vs {}: {detail}", g.source), ())
                }
            }
        }
    });
    let inputs = random_inputs(m, opts.seed, 2);
    let outputs = checks.run("predictions: GPU vs CPU", || {
        let cpu = match m.predict(&inputs) {
            Ok(c) => c,
            Err(e) => return (Status::Fail, format!("CPU: {e}"), None),
        };
        match &gm {
            None => (
                Status::Skip,
                "no GPU; predicted on the CPU only".into(),
                Some(cpu),
            ),
            Some(Err(e)) => (Status::Fail, e.to_string(), Some(cpu)),
            Some(Ok(g)) => match g.predict(&inputs) {
                Err(e) => (Status::Fail, e.to_string(), Some(cpu)),
                Ok(got) => {
                    let want: Vec<Named> = named(m, cpu.clone());
                    let (atol, rtol, why) = backend_tolerance(m, opts);
                    let (ok, detail) = compare_outputs(m, &got, &want, atol, rtol);
                    let status = if ok { Status::Pass } else { Status::Fail };
                    let b = g.param_bytes;
                    let detail = format!(
                        "seeded random inputs (seed {}), {why}: {detail}; the GPU read {} parameter bytes from the resident weights, {} derived",
                        opts.seed, b.resident, b.derived
                    );
                    (status, detail, Some(got))
                }
            },
        }
    });
    checks.run("predictions: finite", || match outputs {
        None => (Status::Skip, "no predictions".into(), ()),
        Some(outs) => {
            let bad: Vec<String> = outs
                .iter()
                .zip(m.outputs())
                .filter_map(|(t, p)| {
                    let n = t.data.iter().filter(|v| !v.is_finite()).count();
                    (n > 0).then(|| format!("{}: {n} NaN/Inf of {}", p.name, t.data.len()))
                })
                .collect();
            if bad.is_empty() {
                (Status::Pass, "every output value finite".into(), ())
            } else {
                (Status::Fail, bad.join("; "), ())
            }
        }
    });
}

fn named(m: &Model, tensors: Vec<Tensor>) -> Vec<Named> {
    m.outputs()
        .iter()
        .zip(tensors)
        .map(|(p, tensor)| Named {
            name: p.name.clone(),
            dtype: p.dtype.clone(),
            tensor,
        })
        .collect()
}

/// Whether every output is within tolerance, and the largest errors per output.
fn compare_outputs(
    m: &Model,
    got: &[Tensor],
    want: &[Named],
    atol: f64,
    rtol: f64,
) -> (bool, String) {
    if got.len() != want.len() {
        return (
            false,
            format!("{} outputs, expected {}", got.len(), want.len()),
        );
    }
    let mut ok = true;
    let parts: Vec<String> = got
        .iter()
        .zip(want)
        .zip(m.outputs())
        .map(|((g, w), p)| {
            if g.shape != w.tensor.shape {
                ok = false;
                return format!(
                    "{}: shape {:?}, expected {:?}",
                    p.name, g.shape, w.tensor.shape
                );
            }
            let (abs, within) = max_error(&g.data, &w.tensor.data, atol, rtol);
            ok &= within;
            format!(
                "{}: max abs error {abs:.2e}{}",
                p.name,
                if within { "" } else { " OUT OF TOLERANCE" }
            )
        })
        .collect();
    (ok, parts.join(", "))
}

/// Largest absolute error and whether every element is within `atol + rtol·|want|` (NaN never
/// is).
pub fn max_error(got: &[f32], want: &[f32], atol: f64, rtol: f64) -> (f64, bool) {
    let mut ok = got.len() == want.len();
    let mut worst = 0.0f64;
    for (&g, &w) in got.iter().zip(want) {
        let e = (g as f64 - w as f64).abs();
        ok &= e <= atol + rtol * (w as f64).abs();
        worst = worst.max(if e.is_nan() { f64::INFINITY } else { e });
    }
    (worst, ok)
}

/// Seeded inputs for every model input, batch `batch` (free non-batch dimensions get 4), drawn
/// from the input's domain: token ids in `0..n` for an input an Embedding or CategoryEncoding
/// reads (whatever its declared dtype), other integer inputs ids in `0..vocab` (the smallest
/// `input_dim` in the topology), floats uniform in [-1, 1).
pub fn random_inputs(m: &Model, seed: u64, batch: usize) -> Vec<Tensor> {
    let vocab = smallest_input_dim(m.artifacts.spec.topology())
        .unwrap_or(2)
        .max(1);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: deterministic, dependency-free, good enough for test inputs.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    m.inputs()
        .iter()
        .zip(m.input_id_ranges())
        .map(|(p, ids)| {
            let shape: Vec<usize> = p
                .shape
                .iter()
                .enumerate()
                .map(|(i, d)| d.unwrap_or(if i == 0 { batch } else { 4 }))
                .collect();
            let n = shape.iter().product();
            let range = ids.or(p.dtype.starts_with("int").then_some(vocab));
            let data = (0..n)
                .map(|_| {
                    let u = next();
                    if let Some(range) = range {
                        (u * range as f32).floor().min(range.max(1) as f32 - 1.0)
                    } else {
                        u * 2.0 - 1.0
                    }
                })
                .collect();
            Tensor::new(shape, data).expect("shape and data agree")
        })
        .collect()
}

fn smallest_input_dim(v: Option<&Value>) -> Option<usize> {
    match v? {
        Value::Object(o) => {
            let here = o
                .get("input_dim")
                .and_then(Value::as_u64)
                .map(|d| d as usize);
            o.values()
                .filter_map(|c| smallest_input_dim(Some(c)))
                .chain(here)
                .min()
        }
        Value::Array(a) => a.iter().filter_map(|c| smallest_input_dim(Some(c))).min(),
        _ => None,
    }
}

/// Build the self-validation sample of `m`: seeded inputs (batch 2, or 1 when that is too big)
/// and the outputs the model produces on `gpu` (or the CPU). Bounded by [`SAMPLE_MAX_VALUES`].
/// `quantization` names the quantization the saved weights will get, if any.
pub fn make_sample(
    m: &Model,
    gpu: Option<&Device>,
    seed: u64,
    quantization: Option<&str>,
) -> Result<Value> {
    for batch in [2, 1] {
        let inputs = random_inputs(m, seed, batch);
        let in_values: usize = inputs.iter().map(|t| t.data.len()).sum();
        if in_values > SAMPLE_MAX_VALUES {
            continue;
        }
        let (outputs, device) = match gpu {
            Some(d) => (GpuModel::new(d, m)?.predict(&inputs)?, device_name(gpu)),
            None => (m.predict(&inputs)?, "CPU".into()),
        };
        let values = in_values + outputs.iter().map(|t| t.data.len()).sum::<usize>();
        if values > SAMPLE_MAX_VALUES {
            continue;
        }
        let ins: Vec<Named> = m
            .inputs()
            .iter()
            .zip(inputs)
            .map(|(p, tensor)| Named {
                name: p.name.clone(),
                dtype: p.dtype.clone(),
                tensor,
            })
            .collect();
        let outs = named(m, outputs);
        let mut v = crate::model::bundle_json("inputs", &ins);
        let o = crate::model::bundle_json("outputs", &outs);
        v["outputs"] = o["outputs"].clone();
        v["seed"] = json!(seed);
        v["device"] = json!(device);
        v["weights"] = json!(quantization.map_or("as saved".to_string(), |q| format!(
            "before {q} quantization"
        )));
        return Ok(v);
    }
    Err(Error::Usage(format!(
        "{}: one sample of this model has more than {SAMPLE_MAX_VALUES} input and output values, too many to embed",
        m.artifacts.origin.display()
    )))
}
