//! Self-validation data stored with a model, under `userDefinedMetadata.layercake` (model.json
//! for TF.js, which real TF.js keeps through load and save; the `__metadata__` description for
//! safetensors):
//! - `hashes`: xxh3-64 (16 hex digits) of every weight file (TF.js: `{"files": {path: hash}}`)
//!   or of every tensor's stored bytes (safetensors: `{"tensors": {name: hash}}`). xxh3 hashes
//!   at memory speed (tens of GB/s), far above any disk.
//! - `sample`: seeded inputs and the outputs the model produced (see `crate::verify`).

use super::{Artifacts, Container};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::Path;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// The hash algorithm's name as stored.
pub const ALGORITHM: &str = "xxh3-64";

/// `layercake.<key>` in the `userDefinedMetadata` of model.json's fields.
pub fn metadata<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields
        .get("userDefinedMetadata")?
        .get("layercake")?
        .get(key)
}

/// Set `layercake.<key>` in the `userDefinedMetadata` of model.json's fields (created at the
/// end when absent; other metadata kept).
pub fn set_metadata(fields: &mut Map<String, Value>, key: &str, value: Value) {
    let user = fields
        .entry("userDefinedMetadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !user.is_object() {
        *user = Value::Object(Map::new());
    }
    let ours = user
        .as_object_mut()
        .expect("an object")
        .entry("layercake")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ours.is_object() {
        *ours = Value::Object(Map::new());
    }
    ours.as_object_mut()
        .expect("an object")
        .insert(key.into(), value);
}

/// Remove `layercake.<key>` (and `layercake` / `userDefinedMetadata` when left empty).
pub fn remove_metadata(fields: &mut Map<String, Value>, key: &str) {
    let Some(Value::Object(user)) = fields.get_mut("userDefinedMetadata") else {
        return;
    };
    if let Some(Value::Object(ours)) = user.get_mut("layercake") {
        ours.remove(key);
        if ours.is_empty() {
            user.remove("layercake");
        }
    }
    if user.is_empty() {
        fields.remove("userDefinedMetadata");
    }
}

/// xxh3-64 as 16 hex digits.
pub fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}

/// Hash of `bytes`, as stored.
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex(xxh3_64(bytes))
}

/// Hash of a file's contents, streamed.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(hex(h.digest()));
        }
        h.update(&buf[..n]);
    }
}

/// The `hashes` record for TF.js weight files in `dir`.
pub fn file_hashes(dir: &Path, files: &[String]) -> Result<Value> {
    let mut map = Map::new();
    for f in files {
        map.insert(f.clone(), Value::from(hash_file(&dir.join(f))?));
    }
    Ok(json!({"algorithm": ALGORITHM, "files": map}))
}

/// One recorded hash compared with the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashResult {
    /// File path (TF.js) or tensor name (safetensors).
    pub item: String,
    /// Recorded hash.
    pub expected: String,
    /// Hash of the data now, or why it could not be computed.
    pub actual: std::result::Result<String, String>,
}

impl HashResult {
    /// True when the data hashes to the recorded value.
    pub fn ok(&self) -> bool {
        self.actual.as_deref() == Ok(self.expected.as_str())
    }
}

/// What the recorded hashes say about `a`.
#[derive(Clone, Debug)]
pub enum HashCheck {
    /// Each recorded file or tensor compared.
    Compared(Vec<HashResult>),
    /// The record names other files than the manifest: the model was re-saved by a tool that
    /// kept the metadata but not the hashes' meaning (e.g. TF.js writing `weights.bin`).
    Stale {
        /// Files the record names.
        recorded: Vec<String>,
    },
}

/// Check the hashes recorded in `a` (None when it records none).
pub fn check_hashes(a: &Artifacts) -> Option<Result<HashCheck>> {
    let rec = metadata(&a.spec.fields, "hashes")?;
    if a.container == Container::Tfjs {
        let mut manifest: Vec<String> = a
            .spec
            .layout
            .groups
            .iter()
            .flat_map(|g| {
                g.paths
                    .iter()
                    .map(|p| p.trim_start_matches("./").to_string())
            })
            .collect();
        let mut recorded: Vec<String> = rec
            .get("files")
            .and_then(Value::as_object)
            .map(|m| {
                m.keys()
                    .map(|k| k.trim_start_matches("./").to_string())
                    .collect()
            })
            .unwrap_or_default();
        manifest.sort();
        recorded.sort();
        if manifest != recorded && recorded.iter().all(|r| !manifest.contains(r)) {
            return Some(Ok(HashCheck::Stale { recorded }));
        }
    }
    Some(check_record(a, rec).map(HashCheck::Compared))
}

fn check_record(a: &Artifacts, rec: &Value) -> Result<Vec<HashResult>> {
    let bad = |m: &str| {
        Error::format(
            &a.origin,
            format!("userDefinedMetadata.layercake.hashes: {m}"),
        )
    };
    if rec.get("algorithm").and_then(Value::as_str) != Some(ALGORITHM) {
        return Err(bad(&format!("algorithm is not {ALGORITHM}")));
    }
    let entries = |key: &str| {
        rec.get(key)
            .and_then(Value::as_object)
            .ok_or_else(|| bad(&format!("no '{key}' object")))
    };
    let mut out = Vec::new();
    match a.container {
        Container::Tfjs => {
            // The loaded bytes of each manifest file, whatever the source (directory, HTTP,
            // memory): buffers follow the manifest's paths in order.
            let files: Vec<&str> = a
                .spec
                .layout
                .groups
                .iter()
                .flat_map(|g| g.paths.iter().map(|p| p.trim_start_matches("./")))
                .collect();
            for (file, want) in entries("files")? {
                let name = file.trim_start_matches("./");
                let actual = files
                    .iter()
                    .position(|f| *f == name)
                    .and_then(|b| a.store.buffer(b))
                    .map(hash_bytes)
                    .ok_or_else(|| "not a file of the manifest".to_string());
                out.push(HashResult {
                    item: file.clone(),
                    expected: want.as_str().unwrap_or("").to_string(),
                    actual,
                });
            }
        }
        Container::Safetensors | Container::Keras => {
            for (name, want) in entries("tensors")? {
                out.push(HashResult {
                    item: name.clone(),
                    expected: want.as_str().unwrap_or("").to_string(),
                    actual: a
                        .find(name)
                        .map(|i| hash_bytes(&a.store.stored(i)))
                        .ok_or_else(|| "no such tensor".to_string()),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_set_beside_other_user_metadata() {
        let mut fields = Map::new();
        fields.insert("userDefinedMetadata".into(), json!({"purpose": "x"}));
        set_metadata(&mut fields, "hashes", json!({"a": 1}));
        assert_eq!(
            fields["userDefinedMetadata"],
            json!({"purpose": "x", "layercake": {"hashes": {"a": 1}}})
        );
        assert_eq!(metadata(&fields, "hashes"), Some(&json!({"a": 1})));
        remove_metadata(&mut fields, "hashes");
        assert_eq!(fields["userDefinedMetadata"], json!({"purpose": "x"}));
        let mut only = Map::new();
        set_metadata(&mut only, "sample", json!(1));
        remove_metadata(&mut only, "sample");
        assert!(only.is_empty());
        assert_eq!(hash_bytes(b""), hex(xxh3_64(b"")));
    }
}
