//! Real TensorFlow.js (4.22, pure-JS CPU backend) loads what layercake writes, in every style,
//! after a trip through safetensors, and re-quantized, and reproduces the fixtures' expected
//! outputs (atol 1e-5 / rtol 1e-4; float16 / uint8 / uint16 re-saves are checked against TF.js
//! running the quantized file itself, at the same tolerance).

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
    // Each quantized file is judged against itself: layercake's predictions on the file it
    // wrote must equal TF.js's own predictions on that same file, at the float32 tolerance.
    let mut pairs = Vec::new();
    for name in ["cnn", "mlp_adam"] {
        for dtype in [QuantDType::Float16, QuantDType::Uint8, QuantDType::Uint16] {
            let a = open_fixture(name);
            let dst = out.path().join(format!("{name}-{dtype:?}"));
            let opts = SaveOptions {
                quantize: QuantizeChoice::To(dtype),
                ..Default::default()
            };
            save(&dst, &a.spec, &a, opts).unwrap();
            let expected = fixtures_dir().join(name).join("expected.json");
            let quantized = layercake::model::Model::load(&dst).unwrap();
            assert!(quantized
                .artifacts
                .spec
                .weights
                .iter()
                .any(|w| w.quantization.is_some()));
            let got = quantized
                .predict(&bundle_tensors(&expected, "inputs"))
                .unwrap();
            let mut bundle: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&expected).unwrap()).unwrap();
            for (k, t) in got.iter().enumerate() {
                bundle["outputs"][k]["data"] = serde_json::json!(&t.data[..]);
            }
            let mine = out.path().join(format!("{name}-{dtype:?}.json"));
            std::fs::write(&mine, bundle.to_string()).unwrap();
            pairs.push((dst, mine));
        }
    }
    tfjs_check(&tools, &pairs);
}
