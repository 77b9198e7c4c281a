//! Helpers shared by the integration tests.
#![allow(dead_code)]

use layercake::Artifacts;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture case (a directory under tests/fixtures with a model.json), sorted.
pub fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures missing: {names:?}");
    names
}

/// Open fixture `name`.
pub fn open_fixture(name: &str) -> Artifacts {
    layercake::open(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Copy fixture `name` into a fresh temporary directory (for corruption tests).
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures_dir().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

/// Both artifacts hold the same weights (names, order, shapes, dtypes, groups) with identical
/// decoded bytes.
pub fn assert_same_weights(a: &Artifacts, b: &Artifacts, what: &str) {
    assert_same_values(a, b, what);
    for (x, y) in a.spec.weights.iter().zip(&b.spec.weights) {
        assert_eq!(x.group, y.group, "{what}: {} group", x.name);
    }
}

/// Same weights (names, order, shapes, dtypes) with identical decoded bytes, whatever the file
/// layout.
pub fn assert_same_values(a: &Artifacts, b: &Artifacts, what: &str) {
    let (wa, wb) = (&a.spec.weights, &b.spec.weights);
    assert_eq!(wa.len(), wb.len(), "{what}: weight count");
    for (i, (x, y)) in wa.iter().zip(wb).enumerate() {
        assert_eq!(
            (&x.name, &x.shape, x.dtype),
            (&y.name, &y.shape, y.dtype),
            "{what}: weight {i}"
        );
        assert!(
            a.logical(i) == b.logical(i),
            "{what}: {} decoded bytes differ",
            x.name
        );
    }
}

/// Run `node SCRIPT ARGS…` in the TF.js tools directory; panics with its output unless it
/// succeeds, returns its stdout.
pub fn node(tools: &Path, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(tools)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node {script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run the Python `script` in `dir` and assert it succeeds.
pub fn python_script(script: &str, dir: &Path) {
    let out = Command::new("python3")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// True when the tests must not skip for lack of an external tool (set by .ci/run).
pub fn tools_required() -> bool {
    std::env::var("LAYERCAKE_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// The TF.js checker's directory, if its node modules are installed; skips (or fails when
/// tools are required) otherwise.
pub fn tfjs_tools() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tfjs-fixtures");
    let ready = dir.join("node_modules/@tensorflow/tfjs").is_dir()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if ready {
        return Some(dir);
    }
    let reason = "TF.js not installed (run `npm ci` in tools/tfjs-fixtures)";
    assert!(!tools_required(), "LAYERCAKE_REQUIRE_TOOLS=1 but {reason}");
    eprintln!("skipped: {reason}");
    None
}

/// The Keras 3 fixture tools' directory, if Python has TensorFlow, Keras 3 and the converter
/// (`import gen` loads all three); skips (or fails when tools are required) otherwise.
pub fn keras_tools() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/keras3-fixtures");
    let ready = Command::new("python3")
        .args(["-c", "import gen"])
        .current_dir(&dir)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Some(dir);
    }
    let reason = "Keras 3 tools not installed (pip install tensorflow-cpu; pip install --no-deps tensorflowjs==4.22.0 tf_keras)";
    assert!(!tools_required(), "LAYERCAKE_REQUIRE_TOOLS=1 but {reason}");
    eprintln!("skipped: {reason}");
    None
}

/// Open the GPU, or skip (None) with a printed reason; with LAYERCAKE_REQUIRE_GPU=1 a missing
/// adapter fails the test instead.
pub fn gpu() -> Option<layercake::gpu::Device> {
    match layercake::gpu::Device::open() {
        Ok(d) => Some(d),
        Err(e) => {
            let required = std::env::var("LAYERCAKE_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(!required, "LAYERCAKE_REQUIRE_GPU=1 but no GPU: {e}");
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
    }
}

/// Run the TF.js checker on (model dir, expected.json) pairs; panics with its output on failure.
pub fn tfjs_check(tools: &Path, pairs: &[(PathBuf, PathBuf)]) {
    let mut cmd = Command::new("node");
    cmd.arg(tools.join("check.mjs"));
    for (m, e) in pairs {
        cmd.arg(m).arg(e);
    }
    let out = cmd.output().expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "TF.js rejected layercake's output:\n{text}"
    );
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.starts_with("ok") || l.starts_with("tfjs check"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The adapter's storage binding limit, if a test can build a tensor just above it (≤ 512 MiB);
/// else skips with a printed reason. CI's software adapter (lavapipe, 128 MiB) always runs
/// them: a software adapter above the limit fails when the GPU is required.
pub fn exceedable_limit(dev: &layercake::gpu::Device) -> Option<usize> {
    let limit = dev.limits.max_storage_buffer_binding_size as usize;
    let software = dev.kind == layercake::gpu::AdapterKind::Software;
    assert!(
        !(software && limit > 512 << 20 && std::env::var("LAYERCAKE_REQUIRE_GPU").is_ok_and(|v| v == "1")),
        "LAYERCAKE_REQUIRE_GPU=1 on a software adapter ({}) binding {limit} bytes: the over-limit tests would not run",
        dev.info.name
    );
    if limit > 512 << 20 {
        eprintln!(
            "skipped: this adapter binds {limit} bytes; the test needs a limit it can exceed"
        );
        return None;
    }
    Some(limit)
}

/// A Dense (softmax) whose `[4096, n]` kernel is 8 columns above `limit` bytes, and an input.
pub fn dense_above(limit: usize) -> (layercake::model::Model, layercake::tensor::Tensor) {
    let k = 4096;
    let n = limit / (4 * k) + 8;
    let topology = serde_json::json!({"class_name": "Sequential", "config": {"name": "big", "layers": [
        {"class_name": "Dense", "config": {"name": "wide", "units": n, "activation": "softmax",
         "use_bias": true, "batch_input_shape": [null, k]}}]}});
    let named = [
        ("wide/kernel".to_string(), vec![k, n]),
        ("wide/bias".to_string(), vec![n]),
    ];
    let a = layercake::format::synthetic::with_topology(&named, topology, 11).unwrap();
    let x = layercake::tensor::Tensor::new(
        vec![2, k],
        (0..2 * k)
            .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
            .collect(),
    )
    .unwrap();
    (layercake::model::Model::from_artifacts(a).unwrap(), x)
}

/// An Embedding whose `[rows, 256]` table is 3 rows above `limit` bytes, and ids on both sides
/// of the block boundary.
pub fn embedding_above(limit: usize) -> (layercake::model::Model, layercake::tensor::Tensor) {
    let dim = 256;
    let rows = limit / (4 * dim) + 3;
    let topology = serde_json::json!({"class_name": "Sequential", "config": {"name": "big", "layers": [
        {"class_name": "Embedding", "config": {"name": "vocab", "input_dim": rows, "output_dim": dim,
         "batch_input_shape": [null, 4]}}]}});
    let named = [("vocab/embeddings".to_string(), vec![rows, dim])];
    let a = layercake::format::synthetic::with_topology(&named, topology, 5).unwrap();
    let ids = [0, rows - 1, rows - 3, rows / 2, 1, rows - 4, 7, rows - 2];
    let x = layercake::tensor::Tensor::new(vec![2, 4], ids.iter().map(|&i| i as f32).collect())
        .unwrap();
    (layercake::model::Model::from_artifacts(a).unwrap(), x)
}

/// How close an output must be to its reference: every element satisfies
/// `|got − want| ≤ atol + rtol·|want|`, which NaN and ±Inf never do.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    /// Absolute part.
    pub atol: f32,
    /// Relative part, times `|want|`.
    pub rtol: f32,
}

/// `Tol { atol, rtol }`.
pub const fn tol(atol: f32, rtol: f32) -> Tol {
    Tol { atol, rtol }
}

/// The largest absolute error of `got` against `want`, or the first element out of `tol`
/// (a NaN or ±Inf on either side is out of any tolerance; unequal lengths fail).
pub fn check_values(got: &[f32], want: &[f32], tol: Tol) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!("{} values, expected {}", got.len(), want.len()));
    }
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        let allowed = tol.atol as f64 + tol.rtol as f64 * (w as f64).abs();
        let within = err <= allowed && g.is_finite() && w.is_finite();
        if !within {
            return Err(format!("element {i}: {g} vs expected {w}"));
        }
        worst = worst.max(err);
    }
    Ok(worst as f32)
}

/// The largest absolute error over all outputs, or what is wrong: an output count, a shape,
/// an element out of `tol` (see [`check_values`]).
pub fn check_outputs(
    got: &[layercake::tensor::Tensor],
    want: &[layercake::tensor::Tensor],
    tol: Tol,
) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    let mut worst = 0.0f32;
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        if g.shape != w.shape {
            return Err(format!(
                "output {k}: shape {:?}, expected {:?}",
                g.shape, w.shape
            ));
        }
        let err = check_values(&g.data, &w.data, tol).map_err(|e| format!("output {k}: {e}"))?;
        worst = worst.max(err);
    }
    Ok(worst)
}

/// [`check_outputs`], panicking with `what` on a mismatch; returns the largest error.
pub fn assert_outputs(
    what: &str,
    got: &[layercake::tensor::Tensor],
    want: &[layercake::tensor::Tensor],
    tol: Tol,
) -> f32 {
    check_outputs(got, want, tol).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// [`check_values`], panicking with `what` on a mismatch; returns the largest error.
pub fn assert_values(what: &str, got: &[f32], want: &[f32], tol: Tol) -> f32 {
    check_values(got, want, tol).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The tensors of list `key` (`inputs` / `outputs`) of a bundle file (expected.json).
pub fn bundle_tensors(path: &Path, key: &str) -> Vec<layercake::tensor::Tensor> {
    layercake::model::read_bundle(path, key)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|n| n.tensor)
        .collect()
}

/// This run's seed for a sampled sweep: `key`'s value when set (to replay a failure), else
/// drawn from the clock, so that successive runs sample different cases. Printed either way.
pub fn run_seed(key: &str) -> u64 {
    let seed = std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_nanos() as u64) % 1_000_000_007
        });
    eprintln!("seed {seed} (replay with {key}={seed})");
    seed
}
