//! Bad input never panics: each corruption gets a clear error naming the file and the problem.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn edit_json(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join("model.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Opening `dir` fails with a message holding every one of `needles`.
fn assert_rejected(dir: &Path, needles: &[&str]) -> String {
    let err = match layercake::open(dir) {
        Ok(_) => panic!("{}: corrupt model was accepted", dir.display()),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    err
}

fn truncate(path: &Path, by: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

#[test]
fn truncated_inner_shard_is_named() {
    let d = copy_fixture("sharded");
    truncate(&d.path().join("group1-shard3of9.bin"), 10);
    assert_rejected(
        d.path(),
        &[
            "model.json",
            "group 1",
            "10 missing",
            "group1-shard3of9.bin",
        ],
    );
}

#[test]
fn truncated_weights_file_is_named() {
    let d = copy_fixture("mlp_adam");
    truncate(&d.path().join("weights.bin"), 4);
    assert_rejected(
        d.path(),
        &[
            "model.json",
            "weights.bin",
            "4 missing",
            "runs past the end",
        ],
    );
}

#[test]
fn extra_bytes_are_named_with_their_offset() {
    let d = copy_fixture("cnn");
    let p = d.path().join("model.weights.bin");
    let mut bytes = fs::read(&p).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0; 7]);
    fs::write(&p, bytes).unwrap();
    assert_rejected(
        d.path(),
        &[
            "7 extra bytes",
            "model.weights.bin",
            &format!("offset {len}"),
        ],
    );
}

#[test]
fn missing_shard_is_named() {
    let d = copy_fixture("sharded");
    fs::remove_file(d.path().join("group1-shard5of9.bin")).unwrap();
    assert_rejected(d.path(), &["group1-shard5of9.bin", "does not exist"]);
}

#[test]
fn shard_that_is_a_directory_is_refused() {
    let d = copy_fixture("sharded");
    let p = d.path().join("group2-shard1of1.bin");
    fs::remove_file(&p).unwrap();
    fs::create_dir(&p).unwrap();
    assert_rejected(d.path(), &["group2-shard1of1.bin", "not a regular file"]);
}

#[test]
fn bad_json_is_reported_with_the_file() {
    let d = copy_fixture("cnn");
    fs::write(d.path().join("model.json"), b"{\"modelTopology\": {").unwrap();
    assert_rejected(d.path(), &["model.json", "invalid JSON"]);
    fs::write(d.path().join("model.json"), b"[1, 2]").unwrap();
    assert_rejected(d.path(), &["model.json", "not an object"]);
    fs::write(
        d.path().join("model.json"),
        b"{\"format\": \"layers-model\"}",
    )
    .unwrap();
    assert_rejected(d.path(), &["model.json", "no 'modelTopology'"]);
    fs::write(d.path().join("model.json"), [0xff, 0xfe, 0x00]).unwrap();
    assert_rejected(d.path(), &["model.json", "invalid JSON"]);
    let deep = "[".repeat(100_000);
    fs::write(d.path().join("model.json"), deep).unwrap();
    assert_rejected(d.path(), &["model.json", "invalid JSON"]);
}

#[test]
fn paths_escaping_the_directory_are_refused() {
    let cases = [
        ("../model.weights.bin", "goes up"),
        ("sub/../../x.bin", "goes up"),
        ("..\\x.bin", "goes up"),
        ("/etc/passwd", "absolute"),
        ("C:/x.bin", "absolute"),
        ("http://example.com/x.bin", "URL"),
        ("%2e%2e/x.bin", "escaped"),
        ("a%2Fb.bin", "escaped"),
        ("x.bin?y=1", "'?'"),
        ("", "empty"),
    ];
    for (entry, why) in cases {
        let d = copy_fixture("cnn");
        edit_json(d.path(), |v| {
            v["weightsManifest"][0]["paths"] = json!([entry])
        });
        assert_rejected(d.path(), &["model.json", &format!("'{entry}'"), why]);
    }
}

#[test]
fn symlink_outside_the_directory_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let d = copy_fixture("cnn");
    let target = outside.path().join("stolen.bin");
    fs::copy(d.path().join("model.weights.bin"), &target).unwrap();
    std::os::unix::fs::symlink(&target, d.path().join("link.bin")).unwrap();
    edit_json(d.path(), |v| {
        v["weightsManifest"][0]["paths"] = json!(["link.bin"])
    });
    assert_rejected(d.path(), &["'link.bin'", "outside the model's directory"]);
}

#[test]
fn duplicate_names_are_refused() {
    let d = copy_fixture("mlp_adam");
    edit_json(d.path(), |v| {
        let first = v["weightsManifest"][0]["weights"][0]["name"].clone();
        v["weightsManifest"][0]["weights"][1]["name"] = first;
    });
    assert_rejected(d.path(), &["model.json", "appears twice"]);
}

#[test]
fn hostile_shapes_are_refused_before_any_allocation() {
    let cases = [
        (json!([1u64 << 40, 1u64 << 40]), "overflows"),
        (json!([-3, 4]), "non-negative"),
        (json!([2.5]), "non-negative"),
        (json!("16"), "not a list"),
        (json!([1u64 << 40]), "runs past the end"),
    ];
    for (shape, why) in cases {
        let d = copy_fixture("mlp_adam");
        let mut name = String::new();
        edit_json(d.path(), |v| {
            v["weightsManifest"][0]["weights"][0]["shape"] = shape.clone();
            name = v["weightsManifest"][0]["weights"][0]["name"]
                .as_str()
                .unwrap()
                .to_string();
        });
        let err = assert_rejected(d.path(), &["model.json", why]);
        if why != "runs past the end" {
            assert!(err.contains(&name), "{err}");
        }
    }
}

#[test]
fn unsupported_dtypes_and_broken_quantization_are_named() {
    let cases = [
        (
            json!({"dtype": "string"}),
            "dtype 'string' is not supported",
        ),
        (
            json!({"dtype": "complex64"}),
            "dtype 'complex64' is not supported",
        ),
        (
            json!({"quantization": {"dtype": "uint8", "min": 0.1}}),
            "needs both 'min' and 'scale'",
        ),
        (
            json!({"quantization": {"dtype": "uint8", "min": 0.1, "scale": "x"}}),
            "not a finite number",
        ),
        (
            json!({"quantization": {"dtype": "int4", "min": 0, "scale": 1}}),
            "not one of uint8",
        ),
    ];
    for (patch, why) in cases {
        let d = copy_fixture("quant_uint8");
        edit_json(d.path(), |v| {
            let w = v["weightsManifest"][0]["weights"][0]
                .as_object_mut()
                .unwrap();
            for (k, x) in patch.as_object().unwrap() {
                w.insert(k.clone(), x.clone());
            }
        });
        assert_rejected(d.path(), &["model.json", "weight 'conv2d_", why]);
    }
}

#[test]
fn broken_safetensors_files_are_named() {
    let a = open_fixture("cnn");
    let out = tempfile::tempdir().unwrap();
    let good = out.path().join("good.safetensors");
    layercake::save(&good, &a.spec, &a, Default::default()).unwrap();
    let bytes = fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() - 5].to_vec()),
        ("too-short", bytes[..4].to_vec()),
        ("huge-header", {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&(2u64 << 30).to_le_bytes());
            b
        }),
        ("extra", [bytes.clone(), vec![1, 2, 3]].concat()),
    ];
    for (name, data) in cases {
        let p = out.path().join(format!("{name}.safetensors"));
        fs::write(&p, data).unwrap();
        let err = layercake::open(&p).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{name}.safetensors"))
                && err.contains("not a valid safetensors file"),
            "{err}"
        );
    }
}

#[test]
fn cli_exits_2_with_one_clear_line() {
    let d = copy_fixture("sharded");
    fs::remove_file(d.path().join("group1-shard2of9.bin")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("inspect")
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("group1-shard2of9.bin") && stderr.contains("does not exist"),
        "{stderr}"
    );
    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["convert", "only-one-arg"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}
