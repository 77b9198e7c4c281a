//! Model artifacts on disk: TF.js `model.json` + weight files (three styles) and safetensors.
//!
//! Reading parses and validates everything (paths, sizes, names, shapes) before any weight byte
//! is used, then memory-maps the weight files. Writing streams each weight into its destination
//! and switches the whole model into place atomically.

pub mod h5write;
pub mod integrity;
pub mod keras;
pub mod manifest;
pub mod model_json;
pub mod quant;
pub mod safetensors;
pub mod store;
pub mod synthetic;
pub mod tfjs;

use crate::dtype::{DType, QuantDType};
use crate::error::{Error, Result};
use manifest::WeightSpec;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::WeightStore;

pub use manifest::Quantization;

/// Default converter shard size: 4 MiB.
pub const DEFAULT_SHARD_SIZE: u64 = 4 * 1024 * 1024;

/// The on-disk style of TF.js weight files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// tfjs-node `file://`: `model.json` + `weights.bin`, manifest path `weights.bin`.
    Node,
    /// Browser downloads / HTTP save: `model.json` + `model.weights.bin`, path `./model.weights.bin`.
    Downloads,
    /// Python converter: `group{g}-shard{i}of{N}.bin`, cut every `shard_size` bytes.
    Shards {
        /// Bytes per shard file (the last may be shorter).
        shard_size: u64,
    },
    /// Any other naming: re-saved with the source's own paths and file sizes.
    Custom,
}

impl Style {
    /// Parse `node`, `downloads`, `shards` (default size) or `shards:BYTES`.
    pub fn parse(s: &str) -> Option<Style> {
        match s {
            "node" => Some(Style::Node),
            "downloads" => Some(Style::Downloads),
            "shards" => Some(Style::Shards {
                shard_size: DEFAULT_SHARD_SIZE,
            }),
            "custom" => Some(Style::Custom),
            _ => s
                .strip_prefix("shards:")
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .map(|shard_size| Style::Shards { shard_size }),
        }
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Style::Node => f.write_str("node"),
            Style::Downloads => f.write_str("downloads"),
            Style::Shards { shard_size } => write!(f, "shards:{shard_size}"),
            Style::Custom => f.write_str("custom"),
        }
    }
}

/// One manifest group as laid out in files.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupLayout {
    /// Weight file paths, relative to model.json.
    pub paths: Vec<String>,
    /// Size of each file in bytes (same order as `paths`).
    pub file_sizes: Vec<u64>,
    /// Other keys of the group object, kept as read.
    pub extra: Map<String, Value>,
}

/// How the weights are grouped and cut into files.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Detected (or recorded) style.
    pub style: Style,
    /// Manifest groups, in order.
    pub groups: Vec<GroupLayout>,
    /// For each weight (flat manifest order), the index of its group.
    pub group_of: Vec<usize>,
}

/// Which container the artifacts were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// model.json + weight files.
    Tfjs,
    /// One `.safetensors` file.
    Safetensors,
    /// A Keras `.keras` archive (or unzipped directory) or legacy `.h5` file.
    Keras,
}

/// Everything about a saved model except the weight bytes: model.json's fields, the weight
/// specs in manifest order, and their file layout.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// model.json's top-level fields in their original order (`weightsManifest` is kept as a
    /// placeholder so it is written back at the same position).
    pub fields: Map<String, Value>,
    /// The weights, flat, in manifest order.
    pub weights: Vec<WeightSpec>,
    /// Groups and files.
    pub layout: Layout,
    /// `modelTopology` as read from model.json's text (its field in `fields` is then a Null
    /// placeholder), parsed on first use and written back as read.
    pub(crate) topology_text: Option<Arc<model_json::Topology>>,
}

impl ModelSpec {
    /// The Keras topology (`modelTopology`): the field's value when set, else the topology read
    /// from the source's text (parsed on first use).
    pub fn topology(&self) -> Option<&Value> {
        match (self.fields.get("modelTopology"), &self.topology_text) {
            (None | Some(Value::Null), Some(t)) => t.value().ok(),
            (field, _) => field,
        }
    }

    /// Why the topology read from the source does not parse, if it does not.
    pub fn topology_error(&self) -> Option<&str> {
        match (self.fields.get("modelTopology"), &self.topology_text) {
            (None | Some(Value::Null), Some(t)) => t.value().err(),
            _ => None,
        }
    }

    /// A top-level string field such as `format` or `generatedBy`.
    pub fn string_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// Total stored bytes of all weights.
    pub fn stored_bytes(&self) -> u64 {
        self.weights.iter().map(|w| w.stored_len() as u64).sum()
    }

    /// model.json's fields with `manifest` placed where the source had its weightsManifest
    /// (and the topology as the source wrote it).
    pub fn model_json(&self, manifest: Value) -> ModelJson<'_> {
        let mut fields = self.fields.clone();
        fields.insert("weightsManifest".into(), manifest);
        let topology = match fields.get("modelTopology") {
            None | Some(Value::Null) => self.topology_text.as_deref().map(|t| t.text()),
            _ => None,
        };
        if topology.is_some() {
            fields.entry("modelTopology").or_insert(Value::Null);
        }
        ModelJson { fields, topology }
    }
}

/// model.json's fields ready to write: [`ModelSpec::model_json`].
pub struct ModelJson<'a> {
    /// The fields in order (`modelTopology` a placeholder when `topology` holds its text).
    pub fields: Map<String, Value>,
    topology: Option<&'a serde_json::value::RawValue>,
}

impl serde::Serialize for ModelJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            match (k.as_str(), self.topology) {
                ("modelTopology", Some(raw)) => map.serialize_entry(k, raw)?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

/// Loaded artifacts: the spec and the (memory-mapped) stored weight bytes.
#[derive(Debug)]
pub struct Artifacts {
    /// Fields, weight specs and layout.
    pub spec: ModelSpec,
    /// Stored bytes of each weight.
    pub store: WeightStore,
    /// The file the artifacts were read from (model.json or .safetensors).
    pub origin: PathBuf,
    /// The container read.
    pub container: Container,
}

/// Access to weight bytes for a writer: loaded artifacts, or (later) buffers read back from a GPU.
pub trait WeightBytes {
    /// Weight `i`'s bytes in the encoding of the spec it was loaded with, when held that way.
    fn stored(&self, i: usize) -> Option<Cow<'_, [u8]>>;
    /// Weight `i` decoded to its logical dtype (little-endian float32 / int32 / bool).
    fn logical(&self, i: usize) -> Result<Cow<'_, [u8]>>;
    /// A hint: the writer is about to read these weights in this order (a GPU reader batches
    /// its readback along it).
    fn will_read(&self, _order: &[usize]) {}
}

impl Artifacts {
    /// Weight `i` decoded to its logical dtype.
    pub fn logical(&self, i: usize) -> Cow<'_, [u8]> {
        let spec = &self.spec.weights[i];
        let stored = self.store.stored(i);
        if spec.encoding().is_plain() {
            return stored;
        }
        let mut out = vec![0u8; spec.logical_len()];
        quant::decode(spec.encoding(), spec.dtype, &stored, &mut out);
        Cow::Owned(out)
    }

    /// Index of the weight named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.spec.weights.iter().position(|w| w.name == name)
    }
}

impl WeightBytes for Artifacts {
    fn stored(&self, i: usize) -> Option<Cow<'_, [u8]>> {
        Some(self.store.stored(i))
    }
    fn logical(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        Ok(Artifacts::logical(self, i))
    }
}

/// Open a model: a path to model.json, a directory holding model.json, a `.safetensors` file, a
/// Keras `.keras` / `.h5` file, or an unzipped `.keras` directory.
pub fn open(path: &Path) -> Result<Artifacts> {
    if is_safetensors_path(path) {
        return safetensors::read(path, None);
    }
    let unzipped = path.is_dir() && !path.join("model.json").exists() && keras::is_keras_dir(path);
    if keras::is_keras_path(path) || unzipped {
        return keras::read(path);
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let json = path.join("model.json");
        if !json.is_file() {
            return Err(Error::format(
                path,
                "directory holds no model.json (nor a Keras config.json + model.weights.h5)",
            ));
        }
        return tfjs::read(&json);
    }
    tfjs::read(path)
}

/// True for paths ending in `.safetensors`.
pub fn is_safetensors_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

/// What to do with quantization when saving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum QuantizeChoice {
    /// Keep each weight's source encoding (re-saving a quantized model keeps its bytes).
    #[default]
    Keep,
    /// Write every weight unquantized.
    None,
    /// Quantize float32 model weights (not optimizer state) to this storage type, TF.js's scheme.
    To(crate::dtype::QuantDType),
}

/// True for weights `--quantize` applies to: float32 model weights (never optimizer state,
/// mirroring the converter, which quantizes float32 tensors only).
pub fn quantizable(spec: &WeightSpec) -> bool {
    spec.dtype == DType::Float32 && !spec.is_optimizer()
}

/// The spec weight `i` is written with under `choice`. Reads the weight's values only to choose
/// affine `min`/`scale` when quantizing to uint8/uint16.
pub fn output_spec(
    spec: &WeightSpec,
    i: usize,
    data: &dyn WeightBytes,
    choice: QuantizeChoice,
) -> Result<WeightSpec> {
    let mut out = spec.clone();
    match choice {
        QuantizeChoice::To(QuantDType::Float16) if quantizable(spec) => {
            out.quantization = Some(Quantization::new(QuantDType::Float16, None));
        }
        QuantizeChoice::To(q) if quantizable(spec) => {
            let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&data.logical(i)?);
            let p = quant::affine_params(q, &floats);
            out.quantization = Some(Quantization::new(q, Some((p.min, p.scale))));
        }
        QuantizeChoice::None | QuantizeChoice::To(_) => out.quantization = None,
        QuantizeChoice::Keep => {}
    }
    Ok(out)
}

/// Weight `i`'s bytes in `out`'s encoding (`src` is the spec the data was loaded with): the
/// stored bytes when the encodings agree and are held, else encoded from the logical values.
/// Re-quantizing with a manifest's own min/scale reproduces the original bytes.
pub fn output_bytes<'a>(
    src: &WeightSpec,
    out: &WeightSpec,
    i: usize,
    data: &'a dyn WeightBytes,
) -> Result<Cow<'a, [u8]>> {
    let enc = out.encoding();
    if enc == src.encoding() {
        if let Some(bytes) = data.stored(i) {
            return Ok(bytes);
        }
    }
    let logical = data.logical(i)?;
    if enc.is_plain() {
        return Ok(logical);
    }
    Ok(Cow::Owned(quant::encode(enc, out.dtype, &logical)))
}

/// Output specs of every weight under `choice` (see [`output_spec`]).
pub fn output_specs(
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    choice: QuantizeChoice,
) -> Result<Vec<WeightSpec>> {
    spec.weights
        .iter()
        .enumerate()
        .map(|(i, w)| output_spec(w, i, data, choice))
        .collect()
}

/// The container to save into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// model.json + weight files in a directory.
    Tfjs,
    /// One `.safetensors` file.
    Safetensors,
    /// A Keras 3 `.keras` archive.
    Keras,
}

/// How to save a model.
#[derive(Clone, Copy, Debug)]
pub struct SaveOptions {
    /// Container; `None` picks safetensors for a path ending in `.safetensors`, Keras for one
    /// ending in `.keras`, else TF.js.
    pub target: Option<Target>,
    /// TF.js style; `None` keeps the source's.
    pub style: Option<Style>,
    /// Quantization policy.
    pub quantize: QuantizeChoice,
    /// fsync the files and directory before and after the switch (default true).
    pub durable: bool,
    /// Record an xxh3 hash per weight file (TF.js) or per tensor (safetensors) in the metadata
    /// (see [`integrity`]); `layercake verify` checks them.
    pub hashes: bool,
    /// safetensors only: store uint8 / uint16-quantized weights as their raw codes (`U8` /
    /// `U16` tensors, with `min` and `scale` only in layercake's `__metadata__`), which layercake
    /// reads back byte-exact. Off by default: the stock safetensors readers would take the
    /// codes for the weights, so the file holds the logical values, dequantized exactly as
    /// TF.js does. float16 weights are `F16` tensors either way (their values are exact).
    pub keep_codes: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            target: None,
            style: None,
            quantize: QuantizeChoice::Keep,
            durable: true,
            hashes: false,
            keep_codes: false,
        }
    }
}

/// What a save wrote.
#[derive(Clone, Debug)]
pub struct SaveReport {
    /// Container written.
    pub target: Target,
    /// TF.js style written (TF.js target only).
    pub style: Option<Style>,
    /// Weight bytes written.
    pub weight_bytes: u64,
}

/// `spec` ready to be written: rewritten files make recorded hashes meaningless, so they are
/// dropped unless `hashes` says they are recomputed.
pub fn without_stale_hashes(spec: &ModelSpec, hashes: bool) -> Cow<'_, ModelSpec> {
    if hashes || integrity::metadata(&spec.fields, "hashes").is_none() {
        return Cow::Borrowed(spec);
    }
    let mut s = spec.clone();
    integrity::remove_metadata(&mut s.fields, "hashes");
    Cow::Owned(s)
}

/// Save `spec` with the weight bytes from `data` to `dst`, atomically.
pub fn save(
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: SaveOptions,
) -> Result<SaveReport> {
    let spec = without_stale_hashes(spec, opts.hashes);
    let spec = spec.as_ref();
    let target = opts.target.unwrap_or(if is_safetensors_path(dst) {
        Target::Safetensors
    } else if dst.extension().is_some_and(|e| e == "keras") {
        Target::Keras
    } else {
        Target::Tfjs
    });
    match target {
        Target::Keras => Ok(SaveReport {
            target,
            style: None,
            weight_bytes: keras::write(dst, spec, data, &opts)?,
        }),
        Target::Safetensors => {
            let weight_bytes = safetensors::write(dst, spec, data, &opts)?;
            Ok(SaveReport {
                target,
                style: None,
                weight_bytes,
            })
        }
        Target::Tfjs => {
            if !matches!(spec.topology(), Some(Value::Object(_))) {
                return Err(Error::Usage(format!(
                    "{}: the model has no topology, so it cannot be written as TF.js (give one with --topology)",
                    dst.display()
                )));
            }
            let w = tfjs::write(
                dst,
                spec,
                data,
                tfjs::WriteOptions {
                    style: opts.style,
                    quantize: opts.quantize,
                    durable: opts.durable,
                    hashes: opts.hashes,
                },
            )?;
            Ok(SaveReport {
                target,
                style: Some(w.style),
                weight_bytes: w.weight_bytes,
            })
        }
    }
}
