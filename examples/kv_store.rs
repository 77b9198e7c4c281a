//! A custom storage handler: models kept in a key-value store (here an in-process map standing in
//! for Redis, S3, a database...) under keys `models/<name>/<file>`. Implementing
//! [`ModelSource`] and [`ModelSink`] is all it takes for layercake to load from it and save to it.
//!
//!   cargo run --example kv_store -- tests/fixtures/cnn

use layercake::format::store::Backing;
use layercake::storage::{ModelSink, ModelSource};
use layercake::{Error, Result, SaveOptions};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The store: key → value, shared between handles.
#[derive(Clone, Default)]
struct KvStore(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl KvStore {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key).cloned()
    }
    /// Write several keys at once (a transaction in a real store).
    fn put_all(&self, entries: BTreeMap<String, Vec<u8>>) {
        self.0.lock().unwrap().extend(entries);
    }
}

/// Reads model `name` from the store.
struct KvSource {
    store: KvStore,
    prefix: String,
    origin: PathBuf,
}

impl KvSource {
    fn new(store: &KvStore, name: &str) -> Self {
        let prefix = format!("models/{name}/");
        KvSource {
            store: store.clone(),
            origin: PathBuf::from(format!("kv:{prefix}model.json")),
            prefix,
        }
    }

    fn fetch(&self, file: &str) -> Result<Vec<u8>> {
        let key = format!("{}{}", self.prefix, file.trim_start_matches("./"));
        self.store
            .get(&key)
            .ok_or_else(|| Error::format(&self.origin, format!("no key '{key}'")))
    }
}

impl ModelSource for KvSource {
    fn origin(&self) -> &Path {
        &self.origin
    }
    fn model_json(&mut self, limit: u64) -> Result<Vec<u8>> {
        let bytes = self.fetch("model.json")?;
        if bytes.len() as u64 > limit {
            return Err(Error::format(&self.origin, "model.json too large"));
        }
        Ok(bytes)
    }
    fn weight_file(&mut self, entry: &str, limit: u64) -> Result<Backing> {
        let bytes = self.fetch(entry)?;
        if bytes.len() as u64 > limit {
            return Err(Error::format(
                &self.origin,
                format!("'{entry}' holds more than the manifest declares"),
            ));
        }
        Ok(Backing::Owned(bytes))
    }
}

/// Writes model `name` into the store: files are staged and put in one step on commit.
struct KvSink {
    store: KvStore,
    prefix: String,
    origin: PathBuf,
    staged: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

/// One staged value.
struct KvFile {
    key: String,
    bytes: Vec<u8>,
    staged: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl Write for KvFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let bytes = std::mem::take(&mut self.bytes);
        let mut staged = self.staged.lock().unwrap();
        staged.entry(self.key.clone()).or_default().extend(bytes);
        Ok(())
    }
}

impl ModelSink for KvSink {
    fn origin(&self) -> &Path {
        &self.origin
    }
    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>> {
        Ok(Box::new(KvFile {
            key: format!("{}{}", self.prefix, name.trim_start_matches("./")),
            bytes: Vec::new(),
            staged: self.staged.clone(),
        }))
    }
    fn commit(self: Box<Self>) -> Result<()> {
        let entries = std::mem::take(&mut *self.staged.lock().unwrap());
        self.store.put_all(entries);
        Ok(())
    }
}

fn main() -> Result<()> {
    let src = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/fixtures/cnn".into());
    let original = layercake::open(Path::new(&src))?;
    let store = KvStore::default();
    let sink = KvSink {
        store: store.clone(),
        prefix: "models/demo/".into(),
        origin: PathBuf::from("kv:models/demo/"),
        staged: Default::default(),
    };
    let report = layercake::storage::write(
        Box::new(sink),
        &original.spec,
        &original,
        SaveOptions::default(),
    )?;
    println!(
        "saved {src} into the store: {} weight bytes; keys: {:?}",
        report.weight_bytes,
        store.0.lock().unwrap().keys().collect::<Vec<_>>()
    );
    let back = layercake::storage::read(&mut KvSource::new(&store, "demo"))?;
    let same = (0..original.spec.weights.len()).all(|i| original.logical(i) == back.logical(i));
    println!(
        "loaded it back: {} weights, {}",
        back.spec.weights.len(),
        if same {
            "every byte equal"
        } else {
            "BYTES DIFFER"
        }
    );
    if !same {
        std::process::exit(1);
    }
    let model = layercake::model::Model::from_artifacts(back)?;
    println!("rebuilt: {} layers", model.summary().len());
    Ok(())
}
