//! Where models are read from and written to, in the spirit of TF.js's IOHandlers: a
//! [`ModelSource`] hands out model.json and then each weight file; a [`ModelSink`] takes the files
//! of a model and commits them as a whole. TF.js artifacts are read and written once, against
//! these traits ([`crate::format::tfjs::read_from`], [`crate::format::tfjs::write_to`]).
//!
//! Built in: a local directory ([`crate::format::tfjs::DirSource`] /
//! [`crate::format::tfjs::DirSink`], atomic), memory ([`MemoryModel`]), HTTP(S) ([`http`]), and a
//! single safetensors file (as a path, or as bytes inside a [`MemoryModel`]). A custom store
//! implements the two traits (see `examples/kv_store.rs`).

pub mod http;
pub mod memory;

pub use memory::{MemoryModel, MemorySink, MemorySource};

use crate::error::{Error, Result};
use crate::format::store::Backing;
use crate::format::{self, Artifacts, ModelSpec, SaveOptions, SaveReport, WeightBytes};
use std::io::{Read, Write};
use std::path::Path;

/// Where a model's files come from.
pub trait ModelSource {
    /// Names the model in errors: model.json's path or URL.
    fn origin(&self) -> &Path;
    /// model.json's bytes; more than `limit` bytes is an error.
    fn model_json(&mut self, limit: u64) -> Result<Vec<u8>>;
    /// The weight file at manifest path `entry` (a plain relative path: checked for `..`,
    /// absolute and URL forms before this is called). `limit` is the most bytes the manifest
    /// leaves for it (its group's bytes not yet read): a source that can tell should refuse more
    /// (a directory leaves it to the size check that follows, which names the culprit).
    fn weight_file(&mut self, entry: &str, limit: u64) -> Result<Backing>;
    /// The same file as a stream, for readers that consume it as it arrives (the GPU upload
    /// of [`crate::gpu::Device::upload_from`]); by default [`weight_file`] read whole.
    ///
    /// [`weight_file`]: ModelSource::weight_file
    fn weight_reader(&mut self, entry: &str, limit: u64) -> Result<Box<dyn Read + '_>> {
        let backing = self.weight_file(entry, limit)?;
        Ok(Box::new(std::io::Cursor::new(BackingBytes(backing))))
    }
    /// Told, once model.json is parsed, how many weight bytes the manifest declares (for
    /// progress reports).
    fn begin(&mut self, _total_bytes: u64) {}
}

/// Where a model's files go. Nothing is visible at the destination before [`commit`]; a sink
/// dropped without it leaves the destination as it was.
///
/// [`commit`]: ModelSink::commit
pub trait ModelSink {
    /// Names the destination in errors.
    fn origin(&self) -> &Path;
    /// A new file of the model (`model.json` or a manifest path), written through the returned
    /// writer; it is complete once the writer is flushed and dropped.
    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>>;
    /// [`create`](Self::create) for a file that will hold exactly `len` bytes (weight files,
    /// whose sizes the writer plans first): a file system sink reserves the space up front.
    fn create_sized(&mut self, name: &str, len: u64) -> Result<Box<dyn Write + Send>> {
        let _ = len;
        self.create(name)
    }
    /// Publish the model's files as a whole.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A model location given as text: an `http(s)://…/model.json` URL or a local path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A URL (model.json's for a source, the endpoint for a sink).
    Http(String),
    /// A path: a model directory, model.json, or a `.safetensors` file.
    Path(std::path::PathBuf),
}

impl Location {
    /// `http://` and `https://` are URLs; anything else is a path.
    pub fn parse(text: &str) -> Location {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Location::Http(text.to_string())
        } else {
            Location::Path(text.into())
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Http(u) => f.write_str(u),
            Location::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Open a model from a path or an `http(s)://` URL of its model.json.
pub fn open(location: &str) -> Result<Artifacts> {
    match Location::parse(location) {
        Location::Http(url) => http::open(&url, &http::HttpOptions::default()),
        Location::Path(p) => format::open(&p),
    }
}

/// Read TF.js artifacts from `src`.
pub fn read(src: &mut dyn ModelSource) -> Result<Artifacts> {
    format::tfjs::read_from(src)
}

/// Save to a path (as [`format::save`]) or POST to an `http(s)://` endpoint as `tf.io.http`
/// does (multipart `model.json` + `model.weights.bin`).
pub fn save(
    location: &str,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: SaveOptions,
) -> Result<SaveReport> {
    match Location::parse(location) {
        Location::Path(p) => format::save(&p, spec, data, opts),
        Location::Http(url) => {
            if opts.target == Some(format::Target::Safetensors) {
                return Err(Error::Usage(format!(
                    "{url}: an HTTP save writes TF.js artifacts (model.json + model.weights.bin), not safetensors"
                )));
            }
            let sink = http::HttpSink::new(&url, http::HttpOptions::default())?;
            let opts = SaveOptions {
                style: Some(format::Style::Downloads),
                ..opts
            };
            write(Box::new(sink), spec, data, opts)
        }
    }
}

/// Write TF.js artifacts into `sink` and commit them. An HTTP sink takes one weight file, as
/// `tf.io.http` sends it, so its style is forced to `model.weights.bin`.
pub fn write(
    mut sink: Box<dyn ModelSink>,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: SaveOptions,
) -> Result<SaveReport> {
    if !matches!(spec.topology(), Some(serde_json::Value::Object(_))) {
        return Err(Error::Usage(format!(
            "{}: the model has no topology, so it cannot be written as TF.js",
            sink.origin().display()
        )));
    }
    let spec = format::without_stale_hashes(spec, opts.hashes);
    let w = format::tfjs::write_to(
        sink.as_mut(),
        &spec,
        data,
        format::tfjs::WriteOptions {
            style: opts.style,
            quantize: opts.quantize,
            durable: opts.durable,
            hashes: opts.hashes,
        },
    )?;
    sink.commit()?;
    Ok(SaveReport {
        target: format::Target::Tfjs,
        style: Some(w.style),
        weight_bytes: w.weight_bytes,
    })
}

/// A [`Backing`] as a byte slice, for `Cursor`.
struct BackingBytes(Backing);

impl AsRef<[u8]> for BackingBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}
