//! Models held in memory: bytes in, bytes out — for models embedded in binaries
//! (`include_bytes!`) and for tests.

use super::{ModelSink, ModelSource};
use crate::error::{Error, Result};
use crate::format::store::Backing;
use crate::format::{self, Artifacts, ModelSpec, SaveOptions, Target, WeightBytes};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// A model as named files: `model.json` and its weight files, or one `*.safetensors` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryModel {
    /// File name (as the manifest writes it, without a leading `./`) → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl MemoryModel {
    /// Read the files of the model in `dir` (its model.json and manifest paths, or a
    /// `.safetensors` file given as the path).
    pub fn from_path(path: &Path) -> Result<MemoryModel> {
        let mut files = BTreeMap::new();
        if format::is_safetensors_path(path) {
            let name = path.file_name().map_or("model.safetensors".into(), |n| {
                n.to_string_lossy().into_owned()
            });
            files.insert(name, std::fs::read(path).map_err(|e| Error::io(path, e))?);
            return Ok(MemoryModel { files });
        }
        let a = format::open(path)?;
        let dir = a.origin.parent().unwrap_or(Path::new(".")).to_path_buf();
        for name in a
            .spec
            .layout
            .groups
            .iter()
            .flat_map(|g| &g.paths)
            .map(|p| p.trim_start_matches("./"))
            .chain(["model.json"])
        {
            let p = dir.join(name);
            files.insert(
                name.to_string(),
                std::fs::read(&p).map_err(|e| Error::io(&p, e))?,
            );
        }
        Ok(MemoryModel { files })
    }

    /// Total bytes held.
    pub fn len(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }

    /// True when no file is held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Load: TF.js artifacts through [`MemorySource`], or the single safetensors file. The bytes
    /// move into the artifacts without a copy.
    pub fn open(self) -> Result<Artifacts> {
        let origin = PathBuf::from("memory:");
        let single = self.files.len() == 1
            && self
                .files
                .keys()
                .all(|n| format::is_safetensors_path(Path::new(n)));
        if single {
            let (name, bytes) = self.files.into_iter().next().expect("one file");
            return format::safetensors::read_backing(
                &origin.join(name),
                Backing::Owned(bytes),
                None,
            );
        }
        super::read(&mut MemorySource::new(self))
    }

    /// Save into memory: TF.js artifacts through [`MemorySink`], or with
    /// `opts.target == Some(Target::Safetensors)` one `model.safetensors` file.
    pub fn save(
        spec: &ModelSpec,
        data: &dyn WeightBytes,
        opts: SaveOptions,
    ) -> Result<MemoryModel> {
        if opts.target == Some(Target::Safetensors) {
            let mut bytes = Vec::new();
            let name = Path::new("memory:/model.safetensors");
            let spec = format::without_stale_hashes(spec, opts.hashes);
            format::safetensors::write_stream(&mut bytes, name, &spec, data, &opts)?;
            let files = BTreeMap::from([("model.safetensors".to_string(), bytes)]);
            return Ok(MemoryModel { files });
        }
        let target = Arc::new(Mutex::new(MemoryModel::default()));
        super::write(Box::new(MemorySink::new(target.clone())), spec, data, opts)?;
        let model = std::mem::take(&mut *target.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(model)
    }
}

/// Reads a [`MemoryModel`]'s files (taking them over).
pub struct MemorySource {
    files: BTreeMap<String, Vec<u8>>,
    origin: PathBuf,
}

impl MemorySource {
    /// A source over `model`'s files.
    pub fn new(model: MemoryModel) -> MemorySource {
        MemorySource {
            files: model.files,
            origin: PathBuf::from("memory:/model.json"),
        }
    }

    fn take(&mut self, name: &str) -> Result<Vec<u8>> {
        self.files
            .remove(name.trim_start_matches("./"))
            .ok_or_else(|| Error::format(&self.origin, format!("no file '{name}' in memory")))
    }
}

impl ModelSource for MemorySource {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn model_json(&mut self, limit: u64) -> Result<Vec<u8>> {
        let bytes = self.take("model.json")?;
        if bytes.len() as u64 > limit {
            return Err(Error::format(
                &self.origin,
                format!(
                    "model.json is {} bytes, over the {limit}-byte limit",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    fn weight_file(&mut self, entry: &str, _limit: u64) -> Result<Backing> {
        Ok(Backing::Owned(self.take(entry)?))
    }
}

/// Collects a model's files and, on commit, replaces the contents of a shared [`MemoryModel`].
pub struct MemorySink {
    target: Arc<Mutex<MemoryModel>>,
    staged: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    origin: PathBuf,
}

impl MemorySink {
    /// A sink publishing into `target` on commit.
    pub fn new(target: Arc<Mutex<MemoryModel>>) -> MemorySink {
        MemorySink {
            target,
            staged: Default::default(),
            origin: PathBuf::from("memory:"),
        }
    }
}

/// One file being written into a [`MemorySink`]; stored when dropped.
struct MemoryFile {
    name: String,
    bytes: Vec<u8>,
    staged: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl Write for MemoryFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        let mut staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        staged.insert(
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.bytes),
        );
    }
}

impl ModelSink for MemorySink {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>> {
        Ok(Box::new(MemoryFile {
            name: name.trim_start_matches("./").to_string(),
            bytes: Vec::new(),
            staged: self.staged.clone(),
        }))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let files =
            std::mem::take(&mut *self.staged.lock().unwrap_or_else(PoisonError::into_inner));
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = MemoryModel { files };
        Ok(())
    }
}
