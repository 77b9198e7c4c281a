//! Entry points for fuzzing the parsers with arbitrary bytes (the cargo-fuzz targets under
//! `fuzz/` call them, and `tests/fuzz_corpus.rs` replays the committed corpora and random
//! mutations of them on stable Rust). Each writes the bytes where a user's files would be, runs
//! the real loading path, and returns whatever error it gives: the contract is that nothing
//! panics, hangs, or allocates more than the bytes describe.

use crate::error::{Error, Result};
use crate::model::Model;
use serde_json::Value;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
}

/// Load everything the artifacts hold: every weight decoded, then the graph rebuilt.
fn load_all(path: &Path) -> Result<()> {
    let a = crate::format::open(path)?;
    for i in 0..a.spec.weights.len() {
        std::hint::black_box(a.logical(i));
    }
    Model::from_artifacts(a).map(drop)
}

/// `data` as a model.json: first alone (manifest validation; its weight files are absent), then
/// its topology rebuilt with synthetic weights of the shapes its manifest declares (at most 16 M
/// values), so that graph building runs on every input that parses.
pub fn model_json(data: &[u8]) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    write(dir.path(), "model.json", data)?;
    let _ = load_all(dir.path());
    let v: Value = serde_json::from_slice(data).map_err(|e| Error::json("model.json", e))?;
    let Some(topology) = v.get("modelTopology") else {
        return Ok(());
    };
    let weights: Vec<(String, Vec<usize>)> = v
        .get("weightsManifest")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("weights").and_then(Value::as_array))
        .flatten()
        .filter_map(|w| {
            let name = w.get("name")?.as_str()?.to_string();
            let shape = w.get("shape")?.as_array()?;
            let dims: Option<Vec<usize>> = shape
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect();
            Some((name, dims?))
        })
        .collect();
    let total = weights.iter().try_fold(0usize, |acc, (_, s)| {
        s.iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|n| acc.checked_add(n))
    });
    if total.is_none_or(|n| n > 16 << 20) {
        return Ok(());
    }
    let a = crate::format::synthetic::with_topology(&weights, topology.clone(), 1)?;
    Model::from_artifacts(a).map(drop)
}

/// `data` split into a model.json and the `weights.bin` its manifest may name: a 4-byte
/// little-endian length of the JSON, the JSON, then the weight bytes.
pub fn tfjs_model(data: &[u8]) -> Result<()> {
    let (json, weights) = match data {
        [a, b, c, d, rest @ ..] => {
            let n = (u32::from_le_bytes([*a, *b, *c, *d]) as usize).min(rest.len());
            rest.split_at(n)
        }
        _ => (data, &[][..]),
    };
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    write(dir.path(), "model.json", json)?;
    write(dir.path(), "weights.bin", weights)?;
    load_all(dir.path())
}

/// `data` as a `.safetensors` file.
pub fn safetensors(data: &[u8]) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    write(dir.path(), "m.safetensors", data)?;
    load_all(&dir.path().join("m.safetensors"))
}

/// `data` as a Keras 3 `.keras` archive.
pub fn keras(data: &[u8]) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    write(dir.path(), "m.keras", data)?;
    load_all(&dir.path().join("m.keras"))
}

/// `data` as a legacy Keras 2 `.h5` model.
pub fn keras_h5(data: &[u8]) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    write(dir.path(), "m.h5", data)?;
    load_all(&dir.path().join("m.h5"))
}

/// The input format of [`tfjs_model`] for a model.json and its weight bytes.
pub fn tfjs_model_input(json: &[u8], weights: &[u8]) -> Vec<u8> {
    [&(json.len() as u32).to_le_bytes()[..], json, weights].concat()
}

/// Multipart boundary of [`serve_upload`]'s requests.
pub const UPLOAD_BOUNDARY: &str = "layercake-fuzz";

/// `data` as the body of a `POST /models/m` to `layercake serve` (multipart with boundary
/// [`UPLOAD_BOUNDARY`]): the multipart parser, the part checks, the staged write and the model
/// validation run on it. Whatever it holds: no panic, no server error, no temporary directory
/// left behind, and a model directory only when the upload was accepted.
pub fn serve_upload(data: &[u8]) -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let request = axum::http::Request::post("/models/m")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={UPLOAD_BOUNDARY}"),
        )
        .header("content-length", data.len())
        .body(axum::body::Body::from(data.to_vec()))
        .map_err(|e| Error::Usage(e.to_string()))?;
    let (status, body) = crate::serve::handle(dir.path(), request);
    assert!(
        !status.is_server_error(),
        "server error {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .map_err(|e| Error::io(dir.path(), e))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir.path(), e))?;
    let want: &[&str] = if status.is_success() { &["m"] } else { &[] };
    assert_eq!(entries, want, "after {status}");
    if status.is_success() {
        load_all(&dir.path().join("m"))?;
        Ok(())
    } else {
        Err(Error::Usage(String::from_utf8_lossy(&body).into_owned()))
    }
}
