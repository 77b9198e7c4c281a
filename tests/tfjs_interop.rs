//! Real TensorFlow.js (4.22, pure-JS CPU backend) loads what layercake writes, in every style,
//! after a trip through safetensors, and re-quantized, and reproduces the fixtures' expected
//! outputs (atol 1e-5 / rtol 1e-4; quantized re-saves are checked against the same model
//! quantized, i.e. TF.js's own predictions on layercake's quantized files are compared with
//! TF.js's predictions on the float model within the quantization error).

mod common;

use common::*;
use layercake::format::Style;
use layercake::{save, QuantDType, QuantizeChoice, SaveOptions};
use std::path::PathBuf;

/// The fixtures real TF.js can run as whole models: TF.js 4.22's Resizing throws inside a model,
/// so the `preprocessing` fixture's expectations come from its layers applied one by one
/// (`tfjs_predicts_model: false` in its expected.json).
fn runnable_by_tfjs() -> Vec<String> {
    fixtures()
        .into_iter()
        .filter(|name| {
            let path = fixtures_dir().join(name).join("expected.json");
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            v["tfjs_predicts_model"] != false
        })
        .collect()
}

#[test]
fn tfjs_loads_every_style_layercake_writes() {
    let Some(tools) = tfjs_tools() else { return };
    let out = tempfile::tempdir().unwrap();
    let mut pairs: Vec<(PathBuf, PathBuf)> = Vec::new();
    let styles = [
        None,
        Some(Style::Node),
        Some(Style::Downloads),
        Some(Style::Shards { shard_size: 333 }),
    ];
    for name in runnable_by_tfjs() {
        let a = open_fixture(&name);
        let expected = fixtures_dir().join(&name).join("expected.json");
        for (k, style) in styles.iter().enumerate() {
            let dst = out.path().join(format!("{name}-{k}"));
            save(
                &dst,
                &a.spec,
                &a,
                SaveOptions {
                    style: *style,
                    ..Default::default()
                },
            )
            .unwrap();
            pairs.push((dst, expected.clone()));
        }
        // Through safetensors and back.
        let st = out.path().join(format!("{name}.safetensors"));
        save(&st, &a.spec, &a, SaveOptions::default()).unwrap();
        let b = layercake::open(&st).unwrap();
        let dst = out.path().join(format!("{name}-via-st"));
        save(&dst, &b.spec, &b, SaveOptions::default()).unwrap();
        pairs.push((dst, expected));
    }
    tfjs_check(&tools, &pairs);
}

#[test]
fn tfjs_loads_models_layercake_quantized() {
    let Some(tools) = tfjs_tools() else { return };
    let out = tempfile::tempdir().unwrap();
    // float16 keeps ~3 decimal digits: the mlp and cnn outputs stay within a loose tolerance.
    for name in ["cnn", "mlp_adam"] {
        let a = open_fixture(name);
        let dst = out.path().join(name);
        save(
            &dst,
            &a.spec,
            &a,
            SaveOptions {
                quantize: QuantizeChoice::To(QuantDType::Float16),
                ..Default::default()
            },
        )
        .unwrap();
        let expected = fixtures_dir().join(name).join("expected.json");
        let status = std::process::Command::new("node")
            .arg(tools.join("check.mjs"))
            .args([dst.as_os_str(), expected.as_os_str()])
            .args(["--atol", "5e-3", "--rtol", "1e-2"])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stdout)
        );
    }
}
