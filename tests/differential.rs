//! Differential tests: random models against their origin's own predictions, on the CPU and the
//! GPU, every mismatch reported with the model's one-line description.
//!
//! - TF.js 4.22 (`tools/tfjs-fixtures/random-models.mjs`: Sequential chains and functional
//!   graphs with branches and merges over most layer classes, configurations drawn at random,
//!   seeded weights). CI runs models 0..2000 (`LAYERCAKE_DIFF_MODELS`, about 10 s on lavapipe);
//!   a wider sweep is one command:
//!   `LAYERCAKE_DIFF_MODELS=20000 cargo test --test differential -- --nocapture`.
//!   `LAYERCAKE_DIFF_FIRST` moves the window.
//! - Keras 3.15 through the real converter (`tools/keras3-fixtures/random_models.py`: the
//!   Keras-only classes among the common ones). CI runs models 0..100
//!   (`LAYERCAKE_KERAS_DIFF_MODELS`, about a second per model to generate, cached under
//!   `target/keras-random/`); `LAYERCAKE_KERAS_DIFF_FIRST` moves the window.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::{read_bundle, Model};
use std::path::Path;

/// atol + rtol·|want|, element by element (TF.js's CPU kernels and layercake's sum in
/// different orders; deep chains of normalizations amplify that).
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The first mismatch of one model on one backend, if any.
fn compare(dir: &Path, dev: Option<&layercake::gpu::Device>) -> Vec<String> {
    let expected = dir.join("expected.json");
    let tensors = |key| -> Vec<_> {
        read_bundle(&expected, key)
            .unwrap()
            .into_iter()
            .map(|n| n.tensor)
            .collect()
    };
    let (inputs, want) = (tensors("inputs"), tensors("outputs"));
    let m = match Model::load(dir) {
        Ok(m) => m,
        Err(e) => return vec![format!("load: {e}")],
    };
    let mut runs = vec![("CPU", m.predict(&inputs))];
    if let Some(dev) = dev {
        let got = GpuModel::new(dev, &m).and_then(|g| g.predict(&inputs));
        runs.push(("GPU", got));
    }
    let mut problems = Vec::new();
    for (backend, got) in runs {
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("{backend}: {e}"));
                continue;
            }
        };
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            if g.shape != w.shape {
                problems.push(format!(
                    "{backend}: output {k} shape {:?} vs expected {:?}",
                    g.shape, w.shape
                ));
                continue;
            }
            let worst = g
                .data
                .iter()
                .zip(&w.data)
                .map(|(a, b)| ((a - b).abs(), (a - b).abs() - (ATOL + RTOL * b.abs())))
                .fold((0f32, f32::MIN), |acc, x| (acc.0.max(x.0), acc.1.max(x.1)));
            if worst.1 > 0.0 || worst.1.is_nan() {
                problems.push(format!("{backend}: output {k} max error {:.3e}", worst.0));
            }
        }
    }
    problems
}

#[test]
fn random_tfjs_models_match_tfjs_on_cpu_and_gpu() {
    let Some(tools) = tfjs_tools() else { return };
    let (first, count) = (
        env_usize("LAYERCAKE_DIFF_FIRST", 0),
        env_usize("LAYERCAKE_DIFF_MODELS", 2000),
    );
    let out = tempfile::tempdir().unwrap();
    let listing = node(
        &tools,
        "random-models.mjs",
        &[
            out.path().as_os_str(),
            first.to_string().as_ref(),
            count.to_string().as_ref(),
        ],
    );
    let dev = gpu();
    let (mut checked, mut skipped, mut failures) = (0, 0, Vec::new());
    for line in listing.lines().filter(|l| l.starts_with('m')) {
        let (id, description) = line.split_once(": ").unwrap();
        if description.starts_with("skipped") {
            skipped += 1;
            continue;
        }
        checked += 1;
        let problems = compare(&out.path().join(id), dev.as_ref());
        if !problems.is_empty() {
            failures.push(format!("{id} [{}]: {description}", problems.join("; ")));
        }
    }
    eprintln!(
        "differential: {checked} models checked, {skipped} skipped (TF.js cannot run them), {} mismatched",
        failures.len()
    );
    assert!(
        checked * 10 >= count * 8,
        "too few models drawn: {checked} of {count}"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} models differ from TF.js:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn random_keras_models_match_keras_on_cpu_and_gpu() {
    let Some(tools) = keras_tools() else { return };
    let (first, count) = (
        env_usize("LAYERCAKE_KERAS_DIFF_FIRST", 0),
        env_usize("LAYERCAKE_KERAS_DIFF_MODELS", 100),
    );
    let script = tools.join("random_models.py");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&std::fs::read(&script).unwrap(), &mut h);
    std::hash::Hash::hash(&std::fs::read(tools.join("gen.py")).unwrap(), &mut h);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "target/keras-random/{:016x}-{first}-{count}",
        std::hash::Hasher::finish(&h)
    ));
    if !out.join("done").is_file() {
        let run = std::process::Command::new("python3")
            .arg(&script)
            .arg(&out)
            .args([first.to_string(), count.to_string()])
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "random_models.py: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::write(out.join("done"), b"").unwrap();
    }
    let dev = gpu();
    let (mut checked, mut skipped, mut failures) = (0, 0, Vec::new());
    for seed in first..first + count {
        let dir = out.join(format!("{seed:05}"));
        if dir.join("skipped.txt").is_file() {
            skipped += 1;
            continue;
        }
        checked += 1;
        let description = std::fs::read_to_string(dir.join("description.txt")).unwrap();
        let problems = compare(&dir, dev.as_ref());
        if !problems.is_empty() {
            failures.push(format!(
                "{seed} [{}]: {}",
                problems.join("; "),
                description.trim()
            ));
        }
    }
    eprintln!(
        "keras differential: {checked} models checked, {skipped} skipped (Keras cannot build them or disagrees with itself), {} mismatched",
        failures.len()
    );
    assert!(
        checked * 10 >= count * 7,
        "too few models drawn: {checked} of {count}"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} models differ from Keras:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
