//! `inspect`'s Keras-style summary: per-layer parameter counts and the trainable /
//! non-trainable totals, checked against Keras itself rebuilding the same configs.

mod common;

use common::*;
use layercake::model::{Model, ParamTotals};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn keras3_fixtures() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("keras3"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_model_weight_is_counted_once_in_the_summary() {
    let mut dirs = keras3_fixtures();
    dirs.extend(fixtures().iter().map(|n| fixtures_dir().join(n)));
    for dir in dirs {
        let m = Model::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let rows = m.summary_rows();
        let stored: u64 = m
            .artifacts
            .spec
            .weights
            .iter()
            .filter(|w| !w.is_optimizer())
            .map(|w| w.numel() as u64)
            .sum();
        let totals = ParamTotals::of(&rows);
        assert_eq!(totals.total, stored, "{}", dir.display());
        assert!(totals.trainable <= totals.total, "{}", dir.display());
        assert_eq!(
            rows.len(),
            m.inputs().len() + m.summary().len(),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn parameter_totals_match_keras() {
    let Some(tools) = keras_tools() else { return };
    let dirs = keras3_fixtures();
    let out = Command::new("python3")
        .arg(tools.join("param_counts.py"))
        .args(&dirs)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let keras: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    let mut compared = 0;
    for dir in &dirs {
        let k = &keras[dir.to_string_lossy().as_ref()];
        if let Some(e) = k["error"].as_str() {
            eprintln!(
                "{}: Keras cannot rebuild the config alone: {e}",
                dir.display()
            );
            continue;
        }
        let m = Model::load(dir).unwrap();
        let t = ParamTotals::of(&m.summary_rows());
        let ours = (t.total, t.trainable);
        let theirs = (
            k["total"].as_u64().unwrap(),
            k["trainable"].as_u64().unwrap(),
        );
        assert_eq!(ours, theirs, "{}: (total, trainable)", dir.display());
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} configs compared");
}

#[test]
fn inspect_prints_the_keras_summary() {
    let dir = fixtures_dir().join("keras3/app_mobilenet_v2");
    let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("inspect")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let m = Model::load(&dir).unwrap();
    let rows = m.summary_rows();
    let t = ParamTotals::of(&rows);
    assert!(
        text.contains("Model: \"mobilenetv2_0.35_32\" (Functional)"),
        "{text}"
    );
    assert!(
        text.contains("Layer (type)") && text.contains("Connected to"),
        "{text}"
    );
    let conv = rows.iter().find(|r| r.name == "Conv1").unwrap();
    assert_eq!(conv.connected_to, ["input_layer_1"]);
    assert!(text.contains("Conv1 (Conv2D)"), "{text}");
    let line = |what: &str, n: u64| {
        text.lines()
            .find(|l| l.trim_start().starts_with(what))
            .is_some_and(|l| l.replace(',', "").contains(&format!(": {n} (")))
    };
    assert!(line("Total params", t.total), "{text}");
    assert!(line("Trainable params", t.trainable), "{text}");
    assert!(
        line("Non-trainable params", t.total - t.trainable),
        "{text}"
    );
    // The storage facts stay.
    assert!(
        text.contains("weights (262)") && text.contains("bytes stored"),
        "{text}"
    );
}
