//! The dialect variants seen in real model files (issue "real models from the field"): each is
//! applied to a TF.js fixture's files and must load and predict exactly what the original does.

mod common;

use common::*;
use layercake::model::{read_bundle, Model};
use layercake::tensor::Tensor;
use serde_json::{json, Value};
use std::path::Path;

/// `fixture`'s model.json and its weights as `(entry, bytes)` pairs, in manifest order.
fn parts(dir: &Path) -> (Value, Vec<(Value, Vec<u8>)>) {
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    let mut weights = Vec::new();
    for group in json["weightsManifest"].as_array().unwrap() {
        let mut bytes = Vec::new();
        for p in group["paths"].as_array().unwrap() {
            bytes.extend(std::fs::read(dir.join(p.as_str().unwrap())).unwrap());
        }
        let mut at = 0;
        for w in group["weights"].as_array().unwrap() {
            assert!(
                w.get("quantization").is_none()
                    && matches!(w["dtype"].as_str(), Some("float32" | "int32")),
                "the variants are built on 4-byte, unquantized fixtures"
            );
            let n: usize = w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .product();
            weights.push((w.clone(), bytes[at..at + 4 * n].to_vec()));
            at += 4 * n;
        }
    }
    (json, weights)
}

/// Write `json` with `groups` (each a list of weights, one file per group named by `file`).
fn write(
    dir: &Path,
    mut json: Value,
    groups: Vec<Vec<(Value, Vec<u8>)>>,
    file: &dyn Fn(usize) -> String,
) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "expected.json" {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut manifest = Vec::new();
    for (i, g) in groups.into_iter().enumerate() {
        let name = file(i);
        let bytes: Vec<u8> = g.iter().flat_map(|(_, b)| b.clone()).collect();
        std::fs::write(dir.join(name.trim_start_matches("./")), bytes).unwrap();
        manifest.push(
            json!({"paths": [name], "weights": g.into_iter().map(|(w, _)| w).collect::<Vec<_>>()}),
        );
    }
    json["weightsManifest"] = Value::Array(manifest);
    std::fs::write(dir.join("model.json"), serde_json::to_vec(&json).unwrap()).unwrap();
}

fn layers_of(json: &mut Value) -> &mut Vec<Value> {
    json["modelTopology"]["config"]["layers"]
        .as_array_mut()
        .unwrap()
}

fn predict(dir: &Path) -> Vec<Tensor> {
    let inputs: Vec<Tensor> = read_bundle(&dir.join("expected.json"), "inputs")
        .unwrap()
        .into_iter()
        .map(|n| n.tensor)
        .collect();
    let m = Model::load(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    m.predict(&inputs).unwrap()
}

/// Apply `variant` to a copy of `fixture`; it must predict exactly as the original.
fn check(fixture: &str, what: &str, variant: impl Fn(&Path, Value, Vec<(Value, Vec<u8>)>)) {
    let original = predict(&fixtures_dir().join(fixture));
    let tmp = copy_fixture(fixture);
    let (json, weights) = parts(tmp.path());
    variant(tmp.path(), json, weights);
    let got = predict(tmp.path());
    assert_outputs(
        &format!("{fixture}: {what}"),
        &got,
        &original,
        tol(0.0, 0.0),
    );
}

#[test]
fn every_dialect_variant_seen_in_the_field_loads_and_predicts_the_same() {
    let single = |_: usize| "weights.bin".to_string();
    check(
        "rnn",
        "no format / generatedBy / convertedBy keys",
        |d, mut j, w| {
            for k in ["format", "generatedBy", "convertedBy"] {
                j.as_object_mut().unwrap().remove(k);
            }
            write(d, j, vec![w], &single);
        },
    );
    check(
        "rnn",
        "weight files without an extension, paths starting with ./",
        |d, j, w| {
            write(d, j, vec![w], &|_| "./weights".to_string());
        },
    );
    check("rnn", "one manifest group per weight", |d, j, w| {
        let groups = w.into_iter().map(|x| vec![x]).collect();
        write(d, j, groups, &|i| format!("group{}-shard1of1.bin", i + 1));
    });
    check(
        "rnn",
        "manifest sorted by weight name as strings (not by layer order)",
        |d, j, mut w| {
            w.sort_by(|a, b| a.0["name"].as_str().cmp(&b.0["name"].as_str()));
            write(d, j, vec![w], &single);
        },
    );
    check(
        "rnn",
        "Sequential config as a bare list of layers (Keras 2.1, TF.js 1.x)",
        |d, mut j, w| {
            let list = j["modelTopology"]["config"]["layers"].take();
            j["modelTopology"]["config"] = list;
            write(d, j, vec![w], &single);
        },
    );
    check(
        "rnn",
        "training_config in modelTopology with Keras 2 names",
        |d, mut j, w| {
            j["modelTopology"]["training_config"] = json!({"loss": "mse", "metrics": ["acc"],
            "optimizer_config": {"class_name": "Adam", "config": {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999, "decay": 0.0, "epsilon": 1e-7, "amsgrad": false}}});
            write(d, j, vec![w], &single);
        },
    );
    check(
        "rnn",
        "an InputLayer, then batch_input_shape repeated in the Embedding (Keras 2.15)",
        |d, mut j, w| {
            let shape = layers_of(&mut j)[0]["config"]["batch_input_shape"].clone();
            let input = json!({"class_name": "InputLayer", "config": {"batch_input_shape": shape, "dtype": "float32", "sparse": false, "ragged": false, "name": "embedding_input"}});
            layers_of(&mut j).insert(0, input);
            write(d, j, vec![w], &single);
        },
    );
    check(
        "rnn",
        "module / registered_name / build_config keys, dtype as a DTypePolicy",
        |d, mut j, w| {
            for l in layers_of(&mut j) {
                l["module"] = json!("keras.layers");
                l["registered_name"] = Value::Null;
                l["build_config"] = json!({"input_shape": [null, 4]});
                l["config"]["dtype"] = json!({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null});
            }
            write(d, j, vec![w], &single);
        },
    );
    check(
        "rnn",
        "unit_forget_bias: null, implementation: null",
        |d, mut j, w| {
            for l in layers_of(&mut j) {
                for c in [&mut l["config"]] {
                    if c.get("units").is_some() {
                        c["unit_forget_bias"] = Value::Null;
                        c["implementation"] = Value::Null;
                    }
                }
                if let Some(inner) = l["config"].get_mut("layer") {
                    inner["config"]["unit_forget_bias"] = Value::Null;
                    inner["config"]["implementation"] = Value::Null;
                }
            }
            write(d, j, vec![w], &single);
        },
    );
    check(
        "mlp_adam",
        "BatchNormalization axis as a list",
        |d, mut j, w| {
            for l in layers_of(&mut j) {
                if l["class_name"] == "BatchNormalization" {
                    l["config"]["axis"] = json!([1]);
                }
            }
            write(d, j, vec![w], &single);
        },
    );
}

/// Predictions of a copy of `fixture` whose model.json `variant` edited; the edit must change
/// the JSON (else the test would compare the fixture with itself).
fn predict_edited(fixture: &str, what: &str, variant: impl Fn(&mut Value)) -> Vec<Tensor> {
    let tmp = copy_fixture(fixture);
    let path = tmp.path().join("model.json");
    let before: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut json = before.clone();
    variant(&mut json);
    assert_ne!(json, before, "{fixture}: {what}: the edit changed nothing");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    predict(tmp.path())
}

/// Apply a model.json-only `variant` to a copy of `fixture`; predictions must not change.
fn check_json(fixture: &str, what: &str, variant: impl Fn(&mut Value)) {
    let original = predict(&fixtures_dir().join(fixture));
    let got = predict_edited(fixture, what, variant);
    assert_outputs(
        &format!("{fixture}: {what}"),
        &got,
        &original,
        tol(0.0, 0.0),
    );
}

/// Set every quantized weight's `min` to `zero` (0.0 or -0.0) and add `original_dtype`;
/// returns how many weights it set.
fn zero_quantized_minimum(j: &mut Value, zero: f64) -> usize {
    let mut zeroed = 0;
    for g in j["weightsManifest"].as_array_mut().unwrap() {
        for w in g["weights"].as_array_mut().unwrap() {
            if let Some(q) = w.get_mut("quantization") {
                q["original_dtype"] = json!("float32");
                q["min"] = json!(zero);
                zeroed += 1;
            }
        }
    }
    zeroed
}

#[test]
fn quantization_entries_with_original_dtype_and_negative_zero_min_load() {
    // The fixture's minimums are negative: set them to +0.0, then to -0.0; both must predict
    // the same (a -0.0 minimum is zero, whatever its sign bit).
    let what = "original_dtype and min -0.0";
    let plus = predict_edited("quant_uint8", what, |j| {
        assert!(zero_quantized_minimum(j, 0.0) > 0, "no quantized weights");
    });
    let minus = predict_edited("quant_uint8", what, |j| {
        assert!(zero_quantized_minimum(j, -0.0) > 0, "no quantized weights");
        let text = serde_json::to_string(j).unwrap();
        assert!(
            text.contains("\"min\":-0.0"),
            "serde_json keeps the sign: {text:.200}"
        );
    });
    assert_outputs(what, &minus, &plus, tol(0.0, 0.0));
}

#[test]
fn nested_models_whose_input_layers_share_the_outer_name_load() {
    // Keras 2 writes a nested Sequential with an InputLayer of its own, which may carry the
    // same name as the outer model's input: insert one named like the outer input `a`.
    check_json("nested", "inner InputLayer named like the outer one", |j| {
        let layers = j["modelTopology"]["config"]["layers"]
            .as_array_mut()
            .unwrap();
        let outer = layers
            .iter()
            .find(|l| l["class_name"] == "InputLayer")
            .map(|l| l["config"]["name"].clone())
            .unwrap();
        let inner = layers
            .iter_mut()
            .find(|l| l["class_name"] == "Sequential")
            .unwrap();
        let inner_layers = inner["config"]["layers"].as_array_mut().unwrap();
        assert_ne!(inner_layers[0]["class_name"], "InputLayer");
        let shape = inner_layers[0]["config"]["batch_input_shape"].clone();
        assert!(
            shape.is_array(),
            "the inner model's first layer has its input shape"
        );
        let input = json!({"class_name": "InputLayer", "config": {
            "name": outer, "batch_input_shape": shape, "dtype": "float32", "sparse": false}});
        inner_layers.insert(0, input);
    });
}
