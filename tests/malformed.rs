//! The malformed-artifact suite: over forty corruptions of real fixtures, generated here, each
//! run through the CLI under a 2 GiB address-space limit. Every one must exit with code 2 and
//! one line on stderr naming the file (or layer) and the problem; none may panic, and a failed
//! `convert` leaves nothing behind.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which command loads the corrupt model.
#[derive(Clone, Copy)]
enum Via {
    /// `layercake inspect` (artifacts).
    Inspect,
    /// `layercake predict` (artifacts and graph).
    Predict,
}

struct Case {
    name: &'static str,
    fixture: &'static str,
    via: Via,
    /// Corrupt the copy in this directory; returns the path to load.
    corrupt: Box<dyn Fn(&Path) -> PathBuf>,
    /// Every one must appear in the error line.
    needles: Vec<&'static str>,
}

fn json_edit(f: impl Fn(&mut Value) + 'static) -> Box<dyn Fn(&Path) -> PathBuf> {
    Box::new(move |d: &Path| {
        let path = d.join("model.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        d.to_path_buf()
    })
}

fn weight0(
    f: impl Fn(&mut serde_json::Map<String, Value>) + 'static,
) -> Box<dyn Fn(&Path) -> PathBuf> {
    json_edit(move |v| {
        f(v["weightsManifest"][0]["weights"][0]
            .as_object_mut()
            .unwrap())
    })
}

fn file_edit(
    file: &'static str,
    f: impl Fn(&mut Vec<u8>) + 'static,
) -> Box<dyn Fn(&Path) -> PathBuf> {
    Box::new(move |d: &Path| {
        let path = d.join(file);
        let mut bytes = fs::read(&path).unwrap();
        f(&mut bytes);
        fs::write(&path, bytes).unwrap();
        d.to_path_buf()
    })
}

fn remove(file: &'static str) -> Box<dyn Fn(&Path) -> PathBuf> {
    Box::new(move |d: &Path| {
        fs::remove_file(d.join(file)).unwrap();
        d.to_path_buf()
    })
}

/// A fresh copy of `fixture` in `root/model`.
fn copy_into(root: &Path, fixture: &str) -> PathBuf {
    let dir = root.join("model");
    fs::create_dir(&dir).unwrap();
    for e in fs::read_dir(fixtures_dir().join(fixture)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

fn replace_file(file: &'static str, bytes: Vec<u8>) -> Box<dyn Fn(&Path) -> PathBuf> {
    Box::new(move |d: &Path| {
        fs::write(d.join(file), &bytes).unwrap();
        d.to_path_buf()
    })
}

fn first_path(v: &mut Value, to: &str) {
    v["weightsManifest"][0]["paths"][0] = json!(to);
}

fn case(
    name: &'static str,
    fixture: &'static str,
    corrupt: Box<dyn Fn(&Path) -> PathBuf>,
    needles: &[&'static str],
) -> Case {
    Case {
        name,
        fixture,
        via: Via::Inspect,
        corrupt,
        needles: needles.to_vec(),
    }
}

fn graph_case(
    name: &'static str,
    fixture: &'static str,
    corrupt: Box<dyn Fn(&Path) -> PathBuf>,
    needles: &[&'static str],
) -> Case {
    Case {
        via: Via::Predict,
        ..case(name, fixture, corrupt, needles)
    }
}

/// A safetensors copy of the cnn fixture, corrupted by `f` on its bytes.
fn safetensors(f: impl Fn(&mut Vec<u8>) + 'static) -> Box<dyn Fn(&Path) -> PathBuf> {
    Box::new(move |d: &Path| {
        let a = open_fixture("cnn");
        let p = d.join("m.safetensors");
        layercake::save(&p, &a.spec, &a, Default::default()).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        f(&mut bytes);
        fs::write(&p, bytes).unwrap();
        p
    })
}

/// The safetensors header as JSON, edited by `f`, written back with its new length.
fn st_header(f: impl Fn(&mut Value) + 'static) -> Box<dyn Fn(&Path) -> PathBuf> {
    safetensors(move |b: &mut Vec<u8>| {
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let mut h: Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
        f(&mut h);
        let text = serde_json::to_vec(&h).unwrap();
        let data = b[8 + n..].to_vec();
        *b = [(text.len() as u64).to_le_bytes().to_vec(), text, data].concat();
    })
}

/// Tensor names of a safetensors header, in offset order.
fn st_tensors(h: &Value) -> Vec<String> {
    let mut names: Vec<(u64, String)> = h
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (v["data_offsets"][0].as_u64().unwrap(), k.clone()))
        .collect();
    names.sort();
    names.into_iter().map(|(_, k)| k).collect()
}

fn layers(v: &mut Value) -> &mut Vec<Value> {
    v["modelTopology"]["config"]["layers"]
        .as_array_mut()
        .unwrap()
}

fn cases() -> Vec<Case> {
    let shape = |s: Value| {
        weight0(move |w| {
            w.insert("shape".into(), s.clone());
        })
    };
    let field = |k: &'static str, x: Value| {
        weight0(move |w| {
            w.insert(k.into(), x.clone());
        })
    };
    let path = |p: &'static str| json_edit(move |v| first_path(v, p));
    let nested = {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        replace_file(
            "model.json",
            format!("{{\"modelTopology\": {deep}}}").into_bytes(),
        )
    };
    vec![
        // Weight files: sizes, presence, kind.
        case(
            "truncated weights.bin",
            "mlp_adam",
            file_edit("weights.bin", |b| b.truncate(b.len() - 4)),
            &["weights.bin", "missing"],
        ),
        case(
            "truncated inner shard",
            "sharded",
            file_edit("group1-shard3of9.bin", |b| b.truncate(b.len() - 10)),
            &["group1-shard3of9.bin", "missing"],
        ),
        case(
            "truncated last shard",
            "sharded",
            file_edit("group1-shard9of9.bin", |b| b.truncate(b.len() - 1)),
            &["group1-shard9of9.bin"],
        ),
        case(
            "empty weights file",
            "cnn",
            file_edit("model.weights.bin", |b| b.clear()),
            &["model.weights.bin"],
        ),
        case(
            "over-long weights.bin",
            "mlp_adam",
            file_edit("weights.bin", |b| b.extend([1, 2, 3])),
            &["weights.bin", "3"],
        ),
        case(
            "over-long shard",
            "sharded",
            file_edit("group2-shard1of1.bin", |b| b.extend([0; 8])),
            &["group2-shard1of1.bin"],
        ),
        case(
            "missing shard",
            "sharded",
            remove("group1-shard2of9.bin"),
            &["group1-shard2of9.bin", "does not exist"],
        ),
        case(
            "missing weights file",
            "cnn",
            remove("model.weights.bin"),
            &["model.weights.bin", "does not exist"],
        ),
        case(
            "shard is a directory",
            "sharded",
            Box::new(|d: &Path| {
                let s = d.join("group1-shard4of9.bin");
                fs::remove_file(&s).unwrap();
                fs::create_dir(&s).unwrap();
                d.to_path_buf()
            }),
            &["group1-shard4of9.bin"],
        ),
        case(
            "shard is a symlink outside",
            "sharded",
            Box::new(|d: &Path| {
                let outside = d
                    .parent()
                    .unwrap()
                    .join(format!("outside-{}.bin", std::process::id()));
                fs::copy(d.join("group1-shard5of9.bin"), &outside).unwrap();
                let s = d.join("group1-shard5of9.bin");
                fs::remove_file(&s).unwrap();
                std::os::unix::fs::symlink(&outside, &s).unwrap();
                d.to_path_buf()
            }),
            &["group1-shard5of9.bin"],
        ),
        // Manifest paths.
        case(
            "path with ..",
            "mlp_adam",
            path("../weights.bin"),
            &["../weights.bin"],
        ),
        case(
            "absolute path",
            "mlp_adam",
            path("/etc/passwd"),
            &["/etc/passwd"],
        ),
        case(
            "http URL path",
            "mlp_adam",
            path("http://example.com/weights.bin"),
            &["http://example.com/weights.bin"],
        ),
        case(
            "file URL path",
            "mlp_adam",
            path("file:///etc/passwd"),
            &["file:///etc/passwd"],
        ),
        case(
            "dot-slash escape",
            "mlp_adam",
            path("./sub/../../weights.bin"),
            &["../weights.bin"],
        ),
        case(
            "paths not a list",
            "mlp_adam",
            json_edit(|v| v["weightsManifest"][0]["paths"] = json!("weights.bin")),
            &["model.json", "paths"],
        ),
        case(
            "weightsManifest not a list",
            "mlp_adam",
            json_edit(|v| v["weightsManifest"] = json!({"a": 1})),
            &["model.json", "weightsManifest"],
        ),
        graph_case(
            "weightsManifest missing",
            "mlp_adam",
            json_edit(|v| {
                v.as_object_mut().unwrap().remove("weightsManifest");
            }),
            // A topology-only model is valid TF.js; its layers then lack their weights.
            &["model.json", "is missing"],
        ),
        // Weight entries.
        case(
            "duplicate names",
            "mlp_adam",
            json_edit(|v| {
                let n = v["weightsManifest"][0]["weights"][0]["name"].clone();
                v["weightsManifest"][0]["weights"][1]["name"] = n;
            }),
            &["model.json", "twice"],
        ),
        case(
            "entry without a name",
            "mlp_adam",
            weight0(|w| {
                w.remove("name");
            }),
            &["model.json", "name"],
        ),
        case(
            "zero dimension",
            "mlp_adam",
            shape(json!([0, 20])),
            &["model.json"],
        ),
        case(
            "negative dimension",
            "mlp_adam",
            shape(json!([-3, 4])),
            &["model.json", "non-negative"],
        ),
        case(
            "fractional dimension",
            "mlp_adam",
            shape(json!([2.5])),
            &["model.json", "non-negative"],
        ),
        case(
            "huge dimension",
            "mlp_adam",
            shape(json!([1u64 << 40])),
            &["model.json", "runs past the end"],
        ),
        case(
            "overflowing shape",
            "mlp_adam",
            shape(json!([1u64 << 40, 1u64 << 40, 1u64 << 40])),
            &["model.json", "overflows"],
        ),
        case(
            "shape not a list",
            "mlp_adam",
            shape(json!("16")),
            &["model.json", "not a list"],
        ),
        case(
            "dtype float64",
            "mlp_adam",
            field("dtype", json!("float64")),
            &["model.json", "float64"],
        ),
        case(
            "dtype string",
            "mlp_adam",
            field("dtype", json!("string")),
            &["model.json", "'string' is not supported"],
        ),
        case(
            "dtype complex64",
            "mlp_adam",
            field("dtype", json!("complex64")),
            &["model.json", "complex64"],
        ),
        case(
            "quantization without scale",
            "quant_uint8",
            field("quantization", json!({"dtype": "uint8", "min": 0.1})),
            &["model.json", "'min' and 'scale'"],
        ),
        case(
            "quantization non-finite scale",
            "quant_uint8",
            field(
                "quantization",
                json!({"dtype": "uint8", "min": 0.1, "scale": "Infinity"}),
            ),
            &["model.json", "finite"],
        ),
        case(
            "quantization unknown dtype",
            "quant_uint8",
            field(
                "quantization",
                json!({"dtype": "int4", "min": 0, "scale": 1}),
            ),
            &["model.json", "int4"],
        ),
        case(
            "quantization width mismatch",
            "quant_uint8",
            field(
                "quantization",
                json!({"dtype": "uint16", "min": 0, "scale": 1}),
            ),
            &["model.json"],
        ),
        // model.json itself.
        case(
            "truncated model.json",
            "cnn",
            file_edit("model.json", |b| b.truncate(b.len() / 2)),
            &["model.json"],
        ),
        case(
            "empty model.json",
            "cnn",
            replace_file("model.json", Vec::new()),
            &["model.json"],
        ),
        case(
            "non-UTF-8 model.json",
            "cnn",
            replace_file("model.json", vec![b'{', 0xff, 0xfe, b'}']),
            &["model.json"],
        ),
        case("deeply nested model.json", "cnn", nested, &["model.json"]),
        case(
            "model.json not an object",
            "cnn",
            replace_file("model.json", b"[1, 2, 3]".to_vec()),
            &["model.json"],
        ),
        case(
            "model.json is a directory",
            "cnn",
            Box::new(|d: &Path| {
                fs::remove_file(d.join("model.json")).unwrap();
                fs::create_dir(d.join("model.json")).unwrap();
                d.to_path_buf()
            }),
            &["model.json"],
        ),
        // safetensors.
        case(
            "safetensors 2 GB header claim",
            "cnn",
            safetensors(|b| b[..8].copy_from_slice(&(2u64 << 30).to_le_bytes())),
            &["m.safetensors"],
        ),
        case(
            "safetensors truncated data",
            "cnn",
            safetensors(|b| b.truncate(b.len() - 7)),
            &["m.safetensors"],
        ),
        case(
            "safetensors shorter than its length field",
            "cnn",
            safetensors(|b| b.truncate(5)),
            &["m.safetensors"],
        ),
        case(
            "safetensors header not JSON",
            "cnn",
            safetensors(|b| b[8] = b'#'),
            &["m.safetensors"],
        ),
        case(
            "safetensors overlapping offsets",
            "cnn",
            st_header(|h| {
                let names = st_tensors(h);
                let first = h[&names[0]]["data_offsets"].clone();
                h[&names[1]]["data_offsets"] = first;
            }),
            &["m.safetensors"],
        ),
        case(
            "safetensors unknown dtype",
            "cnn",
            st_header(|h| {
                let names = st_tensors(h);
                h[&names[0]]["dtype"] = json!("F128");
            }),
            &["m.safetensors"],
        ),
        // The graph.
        graph_case(
            "inbound node names a missing layer",
            "nested",
            json_edit(|v| {
                let l = layers(v).iter_mut().find(|l| l["name"] == "final").unwrap();
                l["inbound_nodes"][0][0][0] = json!("ghost");
            }),
            &["final", "ghost"],
        ),
        graph_case(
            "cycle",
            "nested",
            json_edit(|v| {
                let l = layers(v)
                    .iter_mut()
                    .find(|l| l["class_name"] == "Add")
                    .unwrap();
                l["inbound_nodes"][0][0][0] = json!("final");
            }),
            &["never produced"],
        ),
        graph_case(
            "node index out of range",
            "nested",
            json_edit(|v| {
                let l = layers(v).iter_mut().find(|l| l["name"] == "final").unwrap();
                l["inbound_nodes"][0][0][1] = json!(7);
            }),
            &["final"],
        ),
        graph_case(
            "unknown layer class",
            "cnn",
            json_edit(|v| {
                layers(v)[1]["class_name"] = json!("FancyNorm");
            }),
            &["FancyNorm", "not supported"],
        ),
        graph_case(
            "topology is not a model",
            "cnn",
            json_edit(|v| {
                v["modelTopology"]["class_name"] = json!("Dense");
            }),
            &["modelTopology", "Dense"],
        ),
        graph_case(
            "weight renamed away",
            "mlp_adam",
            json_edit(|v| {
                v["weightsManifest"][0]["weights"][1]["name"] = json!("nobody/bias");
            }),
            &["is missing", "/bias"],
        ),
        graph_case(
            "same-size weights with swapped shapes",
            "mlp_adam",
            json_edit(|v| {
                let w = v["weightsManifest"][0]["weights"][0]
                    .as_object_mut()
                    .unwrap();
                let s = w["shape"].as_array().unwrap().clone();
                w.insert("shape".into(), json!([s[1], s[0]]));
            }),
            &["has shape", "expects"],
        ),
    ]
}

fn run(via: Via, model: &Path, fixture: &str) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_layercake");
    let quoted = |p: &Path| format!("'{}'", p.display());
    let cmd = match via {
        Via::Inspect => format!("{bin} inspect {}", quoted(model)),
        Via::Predict => {
            let inputs = fixtures_dir().join(fixture).join("expected.json");
            format!(
                "{bin} predict {} --inputs {} --device cpu",
                quoted(model),
                quoted(&inputs)
            )
        }
    };
    // 2 GiB of address space: no case may allocate what its files do not hold.
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v 2097152; exec {cmd}"))
        .output()
        .unwrap()
}

#[test]
fn every_malformed_artifact_exits_2_with_one_clear_line() {
    let all = cases();
    assert!(all.len() >= 40, "{} cases", all.len());
    let mut failures = Vec::new();
    for c in &all {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_into(tmp.path(), c.fixture);
        let target = (c.corrupt)(&dir);
        let out = run(c.via, &target, c.fixture);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("device:"))
            .collect();
        let ok = out.status.code() == Some(2)
            && lines.len() == 1
            && !stderr.contains("panicked")
            && c.needles.iter().all(|n| stderr.contains(n));
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, stderr {stderr:?}",
                c.name,
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn a_failed_convert_leaves_nothing_behind() {
    for c in cases()
        .iter()
        .filter(|c| matches!(c.via, Via::Inspect))
        .take(12)
    {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_into(tmp.path(), c.fixture);
        let target = (c.corrupt)(&dir);
        let out_dir = tmp.path().join("out");
        let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
            .args([
                "convert".as_ref(),
                target.as_os_str(),
                out_dir.as_os_str(),
                "--device".as_ref(),
                "cpu".as_ref(),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", c.name);
        let left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "model" && !n.starts_with("outside-"))
            .collect();
        assert!(left.is_empty(), "{}: left {left:?}", c.name);
    }
}
