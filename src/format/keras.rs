//! Keras files read in place, no converter in between: `.keras` (Keras 3: a zip holding
//! `config.json`, `metadata.json` and `model.weights.h5`), an unzipped `.keras` directory, and
//! legacy `.h5` (Keras 2 / tf_keras: HDF5 with `model_config` and per-layer `weight_names`).
//!
//! The whole file is memory-mapped once. Keras stores zip members uncompressed, so the weights
//! file is a byte range of that map: HDF5 metadata is parsed by the `hdf5-pure` crate over the
//! range, and every contiguous dataset becomes a [`Span`] of the map — the GPU upload copies
//! from there, with no whole-file buffer. Deflated members, chunked datasets and the values that
//! need converting (Keras's int64 optimizer counter → TF.js's int32) are decoded into owned
//! buffers, bounded against the file's size before anything is allocated.
//!
//! Weights are named as the TF.js converter names them, so one binding rule serves both
//! sources: Keras 3 by h5 path (`layers/dense/vars/0`, `optimizer/vars/3`), Keras 2 by weight
//! name without the `:0` suffix (`dense/kernel`). The topology is `{"keras_version",
//! "model_config"}` as the converter writes it.
//!
//! Refused with an error naming the file and the HDF5 object: external links and external
//! storage, virtual datasets, big-endian or unknown element types, a dataset whose extent
//! disagrees with its bytes, a decoded size out of proportion to the file (zip and HDF5
//! "bombs"), groups nested deeper than [`MAX_DEPTH`] (HDF5 hard links can form cycles).

use super::manifest::WeightSpec;
use super::store::{Backing, Span, WeightStore};
use super::{Artifacts, Container, ModelSpec, Quantization, SaveOptions, WeightBytes};
use crate::atomic;
use crate::dtype::{DType, QuantDType};
use crate::error::{Error, Result};
use hdf5_pure::{Datatype, DatatypeByteOrder, Layout};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// Deepest group nesting followed in a weights file.
pub const MAX_DEPTH: usize = 64;
/// Most objects (groups and datasets) walked in a weights file.
pub const MAX_OBJECTS: usize = 1 << 20;
/// A decoded member or dataset may be at most this many times the size of the file holding it.
pub const MAX_EXPANSION: u64 = 256;
/// Largest `config.json` / `metadata.json` / `model_config` accepted.
pub const MAX_CONFIG_BYTES: u64 = 256 << 20;

/// The weights member of a `.keras` archive.
pub const WEIGHTS_H5: &str = "model.weights.h5";

/// True for the paths [`read`] takes: `*.keras`, `*.h5`, `*.hdf5`.
pub fn is_keras_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "keras" || e == "h5" || e == "hdf5")
}

/// True for an unzipped `.keras` directory: `config.json` beside `model.weights.h5`.
pub fn is_keras_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file() && dir.join(WEIGHTS_H5).is_file()
}

/// Read a `.keras` archive, an unzipped `.keras` directory or a legacy `.h5` file.
pub fn read(path: &Path) -> Result<Artifacts> {
    if path.is_dir() {
        return read_dir(path);
    }
    let backing = Arc::new(map(path)?);
    if backing.bytes().starts_with(b"PK") {
        return read_zip(path, backing);
    }
    let whole = Region::whole(&backing);
    let h5 = open_h5(path, &whole)?;
    read_legacy(path, backing, &h5)
}

fn map(path: &Path) -> Result<Backing> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Backing::map(path, &file, len)
}

/// A byte range of a shared backing: what the HDF5 parser reads from.
#[derive(Clone)]
struct Region {
    backing: Arc<Backing>,
    start: usize,
    len: usize,
}

impl Region {
    fn whole(backing: &Arc<Backing>) -> Region {
        Region {
            backing: Arc::clone(backing),
            start: 0,
            len: backing.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.backing.bytes()[self.start..self.start + self.len]
    }
}

impl hdf5_pure::Source for Region {
    fn len(&self) -> u64 {
        self.len as u64
    }

    fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
    ) -> std::result::Result<(), hdf5_pure::FormatError> {
        let eof = || hdf5_pure::FormatError::UnexpectedEof {
            expected: (offset as usize).saturating_add(buf.len()),
            available: self.len,
        };
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.bytes().get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn open_h5(path: &Path, region: &Region) -> Result<hdf5_pure::File> {
    hdf5_pure::File::from_source(region.clone())
        .map_err(|e| Error::hdf5(path, "/", format!("not a readable HDF5 file: {e}")))
}

/// The `.keras` members layercake reads (from the archive, or an unzipped directory's files).
struct Archive {
    config: Vec<u8>,
    metadata: Option<Vec<u8>>,
    weights: Region,
}

fn read_zip(path: &Path, backing: Arc<Backing>) -> Result<Artifacts> {
    keras3_artifacts(path, open_archive(path, &backing)?)
}

/// A Keras 3 model from its members, wherever they came from (`origin`: the archive or the
/// unzipped directory).
fn keras3_artifacts(origin: &Path, members: Archive) -> Result<Artifacts> {
    let h5_path = origin.join(WEIGHTS_H5);
    let h5 = open_h5(&h5_path, &members.weights)?;
    let fields = keras3_fields(origin, &members.config, members.metadata.as_deref())?;
    let mut buffers = vec![Arc::clone(&members.weights.backing)];
    let weights = keras3_weights(&h5_path, &h5, &members.weights, &mut buffers)?;
    artifacts(origin, fields, weights, buffers)
}

fn read_dir(dir: &Path) -> Result<Artifacts> {
    let config_path = dir.join("config.json");
    let config = read_small(&config_path)?;
    let metadata = match dir.join("metadata.json") {
        p if p.is_file() => Some(read_small(&p)?),
        _ => None,
    };
    let weights = Region::whole(&Arc::new(map(&dir.join(WEIGHTS_H5))?));
    keras3_artifacts(
        dir,
        Archive {
            config,
            metadata,
            weights,
        },
    )
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_CONFIG_BYTES {
        return Err(Error::format(
            path,
            format!("{len} bytes is more than the {MAX_CONFIG_BYTES} accepted"),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn open_archive(path: &Path, backing: &Arc<Backing>) -> Result<Archive> {
    let bad =
        |e: zip::result::ZipError| Error::format(path, format!("not a readable zip archive: {e}"));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(backing.bytes())).map_err(bad)?;
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    let missing = |m: &str| {
        Error::format(
            path,
            format!(
                "the archive holds no '{m}' (members: {}); is it a Keras 3 .keras file?",
                names.join(", ")
            ),
        )
    };
    if !names.iter().any(|n| n == "config.json") {
        return Err(missing("config.json"));
    }
    if !names.iter().any(|n| n == WEIGHTS_H5) {
        let npz = names.iter().any(|n| n == "model.weights.npz");
        return Err(match npz {
            true => Error::format(path, "weights saved with weights_format=\"npz\" are pickled NumPy objects, which are not read (Keras 3.15's own load_model refuses them too): save with the default h5 format"),
            false => missing(WEIGHTS_H5),
        });
    }
    let config = read_member(path, &mut zip, "config.json", MAX_CONFIG_BYTES)?;
    let metadata = match names.iter().any(|n| n == "metadata.json") {
        true => Some(read_member(
            path,
            &mut zip,
            "metadata.json",
            MAX_CONFIG_BYTES,
        )?),
        false => None,
    };
    let weights = weights_region(path, &mut zip, backing)?;
    Ok(Archive {
        config,
        metadata,
        weights,
    })
}

type Zip<'a> = zip::ZipArchive<std::io::Cursor<&'a [u8]>>;

/// A member's bytes, decompressed, refusing more than `limit` bytes or more than
/// [`MAX_EXPANSION`] times its compressed size.
fn read_member(path: &Path, zip: &mut Zip<'_>, name: &str, limit: u64) -> Result<Vec<u8>> {
    let member_err = |m: String| Error::format(path.join(name), m);
    let mut file = zip
        .by_name(name)
        .map_err(|e| member_err(format!("cannot open the member: {e}")))?;
    let declared = file.size();
    let bound = limit.min(
        file.compressed_size()
            .saturating_mul(MAX_EXPANSION)
            .max(1 << 20),
    );
    if declared > bound {
        return Err(member_err(format!(
            "declares {declared} bytes from {} compressed: refused (more than {bound})",
            file.compressed_size()
        )));
    }
    let mut out = Vec::with_capacity(declared as usize);
    (&mut file)
        .take(declared + 1)
        .read_to_end(&mut out)
        .map_err(|e| member_err(format!("cannot decompress: {e}")))?;
    if out.len() as u64 != declared {
        return Err(member_err(format!(
            "holds {} bytes, its header says {declared}",
            out.len()
        )));
    }
    Ok(out)
}

/// The weights member in place (stored) or decompressed into its own buffer (deflated).
fn weights_region(path: &Path, zip: &mut Zip<'_>, backing: &Arc<Backing>) -> Result<Region> {
    let (stored, start, size, compressed) = {
        let file = zip.by_name(WEIGHTS_H5).map_err(|e| {
            Error::format(
                path.join(WEIGHTS_H5),
                format!("cannot open the member: {e}"),
            )
        })?;
        let stored = file.compression() == zip::CompressionMethod::Stored;
        (
            stored,
            file.data_start(),
            file.size(),
            file.compressed_size(),
        )
    };
    if !stored {
        let limit = (backing.len() as u64).saturating_mul(MAX_EXPANSION);
        let bytes = read_member(path, zip, WEIGHTS_H5, limit)?;
        let owned = Arc::new(Backing::Owned(bytes));
        return Ok(Region::whole(&owned));
    }
    let end = start
        .checked_add(size)
        .filter(|&e| size == compressed && e <= backing.len() as u64);
    let Some(end) = end else {
        return Err(Error::format(
            path.join(WEIGHTS_H5),
            format!(
                "stored member of {size} bytes at offset {start} runs past the archive's {} bytes",
                backing.len()
            ),
        ));
    };
    Ok(Region {
        backing: Arc::clone(backing),
        start: start as usize,
        len: (end - start) as usize,
    })
}

/// model.json fields for a Keras 3 model: the topology as the converter writes it.
fn keras3_fields(
    path: &Path,
    config: &[u8],
    metadata: Option<&[u8]>,
) -> Result<Map<String, Value>> {
    let config_path = path.join("config.json");
    let model_config: Value =
        serde_json::from_slice(config).map_err(|e| Error::json(&config_path, e))?;
    if !model_config.is_object() {
        return Err(Error::json(&config_path, "the top level is not an object"));
    }
    let version = match metadata {
        Some(m) => {
            let meta: Value = serde_json::from_slice(m)
                .map_err(|e| Error::json(path.join("metadata.json"), e))?;
            meta.get("keras_version")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
        None => None,
    };
    let mut topology = Map::new();
    if let Some(v) = &version {
        topology.insert("keras_version".into(), Value::from(v.clone()));
    }
    topology.insert("model_config".into(), model_config);
    Ok(model_fields(Value::Object(topology), version.as_deref()))
}

fn model_fields(topology: Value, version: Option<&str>) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("format".into(), Value::from("layers-model"));
    let by = version.map_or("keras".to_string(), |v| format!("keras v{v}"));
    fields.insert("generatedBy".into(), Value::from(by));
    fields.insert(
        "convertedBy".into(),
        Value::from(format!("layercake v{}", env!("CARGO_PKG_VERSION"))),
    );
    fields.insert("modelTopology".into(), topology);
    fields.insert("weightsManifest".into(), Value::Null);
    fields
}

/// One weight found in the HDF5 file: its spec and where its bytes lie.
struct Found {
    spec: WeightSpec,
    span: Span,
}

fn artifacts(
    origin: &Path,
    fields: Map<String, Value>,
    weights: Vec<Found>,
    buffers: Vec<Arc<Backing>>,
) -> Result<Artifacts> {
    let (specs, spans): (Vec<_>, Vec<_>) =
        weights.into_iter().map(|f| (f.spec, vec![f.span])).unzip();
    let layout = super::safetensors::default_layout(specs.len());
    Ok(Artifacts {
        spec: ModelSpec {
            fields,
            weights: specs,
            layout,
            topology_text: None,
        },
        store: WeightStore::from_shared(buffers, spans)?,
        origin: origin.to_path_buf(),
        container: Container::Keras,
    })
}

/// Keras 3 weights: every dataset of the file, named by its path, vars in numeric order.
fn keras3_weights(
    path: &Path,
    h5: &hdf5_pure::File,
    region: &Region,
    buffers: &mut Vec<Arc<Backing>>,
) -> Result<Vec<Found>> {
    let mut names = Vec::new();
    let mut walked = 0usize;
    walk(path, &h5.root(), "", 0, &mut walked, &mut names)?;
    names.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let ds = h5.dataset(&name).map_err(|e| Error::hdf5(path, &name, e))?;
        out.push(dataset(path, &name, &name, &ds, region, buffers)?);
    }
    Ok(out)
}

/// Dataset paths under `group`, depth-first.
fn walk(
    path: &Path,
    group: &hdf5_pure::Group,
    prefix: &str,
    depth: usize,
    walked: &mut usize,
    out: &mut Vec<String>,
) -> Result<()> {
    let object = if prefix.is_empty() { "/" } else { prefix };
    if depth > MAX_DEPTH {
        return Err(Error::hdf5(
            path,
            object,
            format!("groups nest deeper than {MAX_DEPTH} (a link cycle?)"),
        ));
    }
    let err = |e: hdf5_pure::Error| Error::hdf5(path, object, e);
    let datasets = group.datasets().map_err(err)?;
    let groups = group.groups().map_err(err)?;
    *walked += datasets.len() + groups.len();
    if *walked > MAX_OBJECTS {
        return Err(Error::hdf5(
            path,
            object,
            format!("more than {MAX_OBJECTS} objects"),
        ));
    }
    if prefix == "vars" || prefix.ends_with("/vars") {
        check_vars(path, prefix, &datasets)?;
    }
    out.extend(datasets.into_iter().map(|d| join(prefix, &d)));
    for g in groups {
        let child = join(prefix, &g);
        let sub = group.group(&g).map_err(|e| Error::hdf5(path, &child, e))?;
        walk(path, &sub, &child, depth + 1, walked, out)?;
    }
    Ok(())
}

/// A Keras `vars` group holds datasets `0..n`. A gap means a member the HDF5 reader does not
/// list — an external or soft link, which layercake does not follow — or a damaged file.
fn check_vars(path: &Path, group: &str, names: &[String]) -> Result<()> {
    let mut indices = Vec::with_capacity(names.len());
    for n in names {
        match n.parse::<usize>() {
            Ok(i) => indices.push(i),
            Err(_) => {
                return Err(Error::hdf5(
                    path,
                    &join(group, n),
                    "is not a Keras variable index",
                ))
            }
        }
    }
    indices.sort_unstable();
    match indices.iter().enumerate().find(|(at, &i)| *at != i) {
        Some((at, _)) => Err(Error::hdf5(
            path,
            &join(group, &at.to_string()),
            "is missing while later variables exist: a link layercake does not follow (external and soft links are refused) or a damaged file",
        )),
        None => Ok(()),
    }
}

fn join(prefix: &str, name: &str) -> String {
    match prefix {
        "" => name.to_string(),
        p => format!("{p}/{name}"),
    }
}

/// Sort key putting `vars/2` before `vars/10`: numeric components compare as numbers.
fn natural_key(name: &str) -> Vec<(u64, &str)> {
    name.split('/')
        .map(|c| match c.parse::<u64>() {
            Ok(n) => (n, ""),
            Err(_) => (u64::MAX, c),
        })
        .collect()
}

/// How a dataset's element type becomes a TF.js weight.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Element {
    /// Stored bytes are the logical bytes (float32, int32, bool as one byte).
    Plain(DType),
    /// IEEE binary16: a float16-encoded float32 weight, like TF.js's float16 quantization.
    Half,
    /// int64 narrowed to int32 (Keras's optimizer `iterations`), checked to fit.
    Int64,
    /// float64 rounded to float32.
    Float64,
}

impl Element {
    fn stored_size(self) -> usize {
        match self {
            Element::Plain(d) => d.size(),
            Element::Half => 2,
            Element::Int64 | Element::Float64 => 8,
        }
    }
}

fn element(path: &Path, object: &str, t: &Datatype) -> Result<Element> {
    let little = |o: &DatatypeByteOrder| matches!(o, DatatypeByteOrder::LittleEndian);
    let e = match t {
        Datatype::FloatingPoint { size: 4, byte_order, .. } if little(byte_order) => Element::Plain(DType::Float32),
        Datatype::FloatingPoint { size: 2, byte_order, .. } if little(byte_order) => Element::Half,
        Datatype::FloatingPoint { size: 8, byte_order, .. } if little(byte_order) => Element::Float64,
        Datatype::FixedPoint { size: 4, byte_order, .. } if little(byte_order) => Element::Plain(DType::Int32),
        Datatype::FixedPoint { size: 8, byte_order, .. } if little(byte_order) => Element::Int64,
        Datatype::Enumeration { base_type, .. } if is_bool_base(base_type) => Element::Plain(DType::Bool),
        other => {
            return Err(Error::hdf5(path, object, format!("element type {other:?} is not read (little-endian float32/float16/float64, int32/int64 and h5py's bool are)")))
        }
    };
    Ok(e)
}

fn is_bool_base(base: &Datatype) -> bool {
    matches!(base, Datatype::FixedPoint { size: 1, .. })
}

/// One dataset as a weight named `name`: a span of the mapped file when its bytes are usable in
/// place, else its decoded bytes in a new owned buffer.
fn dataset(
    path: &Path,
    object: &str,
    name: &str,
    ds: &hdf5_pure::Dataset,
    region: &Region,
    buffers: &mut Vec<Arc<Backing>>,
) -> Result<Found> {
    let err = |e: hdf5_pure::Error| Error::hdf5(path, object, e);
    let dims = ds.shape().map_err(err)?;
    let shape: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    let elem = element(path, object, &ds.datatype().map_err(err)?)?;
    let numel = crate::shape::numel(&shape);
    let stored = numel.and_then(|n| n.checked_mul(elem.stored_size()));
    let bound = (region.len as u64).saturating_mul(MAX_EXPANSION);
    let Some(stored) = stored.filter(|&s| (s as u64) <= bound.max(1 << 20)) else {
        return Err(Error::hdf5(
            path,
            object,
            format!(
                "shape {shape:?} is out of proportion to the {}-byte file",
                region.len
            ),
        ));
    };
    let mut spec = WeightSpec::new(name, shape, DType::Float32);
    let span = match (elem, ds.layout().map_err(err)?) {
        (
            Element::Plain(_) | Element::Half,
            Layout::Contiguous {
                address: Some(a),
                size,
            },
        ) => in_place(path, object, region, a, size, stored)?,
        (_, Layout::Contiguous { address: None, .. }) if stored > 0 => {
            return Err(Error::hdf5(
                path,
                object,
                "holds no data (never written, or stored in external files, which are refused)",
            ))
        }
        (_, Layout::Virtual) => {
            return Err(Error::hdf5(path, object, "virtual datasets are refused"))
        }
        _ => {
            let raw = ds.read_raw().map_err(err)?;
            if raw.len() != stored {
                return Err(Error::hdf5(
                    path,
                    object,
                    format!("holds {} bytes, its shape needs {stored}", raw.len()),
                ));
            }
            owned(converted(path, object, elem, raw)?, buffers)
        }
    };
    match elem {
        Element::Plain(d) => spec.dtype = d,
        Element::Int64 => spec.dtype = DType::Int32,
        Element::Half => spec.quantization = Some(Quantization::new(QuantDType::Float16, None)),
        Element::Float64 => {}
    }
    Ok(Found { spec, span })
}

fn in_place(
    path: &Path,
    object: &str,
    region: &Region,
    address: u64,
    size: u64,
    stored: usize,
) -> Result<Span> {
    let end = address
        .checked_add(size)
        .filter(|&e| e <= region.len as u64);
    if size != stored as u64 || end.is_none() {
        return Err(Error::hdf5(path, object, format!("{size} bytes at offset {address} do not hold its {stored} bytes inside the {}-byte file", region.len)));
    }
    Ok(Span {
        buffer: 0,
        start: region.start + address as usize,
        len: stored,
    })
}

fn owned(bytes: Vec<u8>, buffers: &mut Vec<Arc<Backing>>) -> Span {
    let len = bytes.len();
    buffers.push(Arc::new(Backing::Owned(bytes)));
    Span {
        buffer: buffers.len() - 1,
        start: 0,
        len,
    }
}

/// Raw little-endian elements in the weight's logical encoding.
fn converted(path: &Path, object: &str, elem: Element, raw: Vec<u8>) -> Result<Vec<u8>> {
    match elem {
        Element::Plain(_) | Element::Half => Ok(raw),
        Element::Float64 => Ok(raw
            .chunks_exact(8)
            .flat_map(|c| (f64::from_le_bytes(c.try_into().unwrap()) as f32).to_le_bytes())
            .collect()),
        Element::Int64 => raw
            .chunks_exact(8)
            .map(|c| {
                let v = i64::from_le_bytes(c.try_into().unwrap());
                i32::try_from(v).map(i32::to_le_bytes).map_err(|_| {
                    Error::hdf5(
                        path,
                        object,
                        format!("int64 value {v} does not fit TF.js's int32"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(|v| v.concat()),
    }
}

/// A legacy Keras 2 / tf_keras `.h5` model: `model_config` and `model_weights`.
fn read_legacy(path: &Path, backing: Arc<Backing>, h5: &hdf5_pure::File) -> Result<Artifacts> {
    let root = h5.root();
    let attrs = root.attrs().map_err(|e| Error::hdf5(path, "/", e))?;
    let text = |key: &str| attrs.get(key).and_then(attr_string);
    let Some(config) = text("model_config") else {
        return Err(Error::hdf5(path, "/", "no 'model_config' attribute: not a whole Keras model (a weights-only file has no topology)"));
    };
    let model_config: Value = serde_json::from_str(&config).map_err(|e| {
        Error::hdf5(
            path,
            "/",
            format!("attribute 'model_config' is not JSON: {e}"),
        )
    })?;
    let version = text("keras_version");
    let mut topology = Map::new();
    if let Some(v) = &version {
        topology.insert("keras_version".into(), Value::from(v.clone()));
    }
    if let Some(b) = text("backend") {
        topology.insert("backend".into(), Value::from(b));
    }
    topology.insert("model_config".into(), model_config);
    if let Some(t) = text("training_config").and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        topology.insert("training_config".into(), t);
    }
    let fields = model_fields(Value::Object(topology), version.as_deref());
    let region = Region::whole(&backing);
    let mut buffers = vec![backing];
    let weights = legacy_weights(path, h5, &region, &mut buffers)?;
    artifacts(path, fields, weights, buffers)
}

/// Keras 2 weights in `layer_names` order, each layer's in `weight_names` order.
fn legacy_weights(
    path: &Path,
    h5: &hdf5_pure::File,
    region: &Region,
    buffers: &mut Vec<Arc<Backing>>,
) -> Result<Vec<Found>> {
    let group = h5
        .group("model_weights")
        .map_err(|e| Error::hdf5(path, "/model_weights", e))?;
    let layers = string_list(path, "/model_weights", &group, "layer_names")?;
    let mut out = Vec::new();
    for layer in layers {
        let object = format!("/model_weights/{layer}");
        let g = group
            .group(&layer)
            .map_err(|e| Error::hdf5(path, &object, e))?;
        let stored = string_list(path, &object, &g, "weight_names")?;
        for (w, name) in stored.iter().zip(bound_names(&layer, &stored)) {
            let ds_object = format!("{object}/{w}");
            let ds = g.dataset(w).map_err(|e| Error::hdf5(path, &ds_object, e))?;
            out.push(dataset(path, &ds_object, &name, &ds, region, buffers)?);
        }
    }
    Ok(out)
}

/// The names the weights of layer group `layer` are bound by, from its `weight_names` (the
/// `:0` dropped): `dense_1/kernel` as stored, or, where Keras 2.0.x saved a layer's variables
/// under its own name with a second build's suffix (`conv2d_1_1/kernel:0` in the group
/// `conv2d_1`), that scope replaced by the group's name, as long as the names stay distinct.
/// Keras itself binds a legacy group's weights by position, so the scope never mattered to it.
fn bound_names(layer: &str, stored: &[String]) -> Vec<String> {
    let plain: Vec<&str> = stored
        .iter()
        .map(|w| w.strip_suffix(":0").unwrap_or(w))
        .collect();
    let prefix = format!("{layer}/");
    if plain.iter().all(|n| n.starts_with(&prefix)) {
        return plain.iter().map(|n| n.to_string()).collect();
    }
    // Only a scope that is the group's own name with a numeric suffix (`conv2d_1_1` for
    // `conv2d_1`): a nested model's group holds its layers' own names (`dense_2/kernel` in the
    // group `inner`), which must stay.
    let own_scope = |scope: &str| {
        scope
            .strip_prefix(layer)
            .and_then(|s| s.strip_prefix('_'))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let rescoped: Vec<String> = plain
        .iter()
        .map(|n| match n.split_once('/') {
            Some((scope, rest)) if own_scope(scope) => format!("{prefix}{rest}"),
            _ => n.to_string(),
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = rescoped.iter().collect();
    if distinct.len() == rescoped.len() {
        rescoped
    } else {
        plain.iter().map(|n| n.to_string()).collect()
    }
}

/// A string-list attribute (h5py writes numpy bytes arrays; Keras splits long ones into
/// `name0`, `name1`, … chunks).
fn string_list(
    path: &Path,
    object: &str,
    group: &hdf5_pure::Group,
    key: &str,
) -> Result<Vec<String>> {
    let attrs = group.attrs().map_err(|e| Error::hdf5(path, object, e))?;
    let not_strings = |k: &str, v: &hdf5_pure::AttrValue| {
        let shown: String = format!("{v:?}").chars().take(60).collect();
        Error::hdf5(
            path,
            object,
            format!("attribute '{k}' is not a list of strings ({shown})"),
        )
    };
    if let Some(v) = attrs.get(key) {
        return attr_strings(v).ok_or_else(|| not_strings(key, v));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(v) = attrs.get(&format!("{key}{i}")) {
        out.extend(attr_strings(v).ok_or_else(|| not_strings(&format!("{key}{i}"), v))?);
        i += 1;
    }
    match i {
        0 => Err(Error::hdf5(path, object, format!("no '{key}' attribute"))),
        _ => Ok(out),
    }
}

/// The strings of a string or string-array attribute, whatever its HDF5 string type.
fn attr_strings(v: &hdf5_pure::AttrValue) -> Option<Vec<String>> {
    use hdf5_pure::AttrValue as A;
    match v {
        A::String(s) | A::AsciiString(s) | A::VarLenString(s) | A::VarLenAsciiString(s) => {
            Some(vec![s.clone()])
        }
        A::StringSized { value, .. } | A::AsciiStringSized { value, .. } => {
            Some(vec![value.clone()])
        }
        A::StringArray(s)
        | A::AsciiStringArray(s)
        | A::VarLenStringArray(s)
        | A::VarLenAsciiStringArray(s)
        | A::VarLenAsciiCharArray(s) => Some(s.clone()),
        A::StringArraySized { values, .. } | A::AsciiStringArraySized { values, .. } => {
            Some(values.clone())
        }
        // h5py writes an empty list (a layer without weights) as an empty float64 array.
        A::F64Array(v) if v.is_empty() => Some(Vec::new()),
        A::F32Array(v) if v.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

fn attr_string(v: &hdf5_pure::AttrValue) -> Option<String> {
    attr_strings(v)
        .filter(|s| s.len() == 1)
        .map(|mut s| s.remove(0))
}

/// The Keras 3 model config a `.keras` file holds: the topology's `model_config` (or the
/// topology itself when it is a bare config).
fn keras3_config<'a>(dst: &Path, spec: &'a ModelSpec) -> Result<&'a Value> {
    let topology = spec.topology().ok_or_else(|| {
        Error::Usage(format!(
            "{}: the model has no topology, so it cannot be written as .keras",
            dst.display()
        ))
    })?;
    let config = topology.get("model_config").unwrap_or(topology);
    if config.get("class_name").is_none() {
        return Err(Error::Usage(format!(
            "{}: the topology has no model config ('class_name')",
            dst.display()
        )));
    }
    Ok(config)
}

/// Put back the `module` keys tensorflowjs_converter strips from a Keras 3 config (Keras 3's
/// loader finds built-in classes by module + class name). The module follows from where the
/// object sits, as Keras's serializer writes it: models at the top or among layers, layers under
/// `layers` / `layer` / `cell` (wrappers and RNNs), dtype policies, initializers, regularizers,
/// constraints, the compiled optimizer, its schedule, losses and metrics.
fn restore_modules(v: &mut Value, key: &str) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|x| restore_modules(x, key)),
        Value::Object(obj) => {
            let is_object =
                obj.contains_key("config") && obj.get("class_name").is_some_and(Value::is_string);
            if is_object && !obj.contains_key("module") {
                let class = obj["class_name"].as_str().unwrap_or_default().to_string();
                // Keras ops applied to tensors (`x + 3.0`) are layers whose config holds only a
                // name; their module is the op's, and they are registered under their class.
                let op = key == "layers"
                    && obj["config"].get("trainable").is_none()
                    && !LAYERS_WITHOUT_TRAINABLE.contains(&class.as_str());
                let module = match op {
                    true => Some(op_module(&class)),
                    false => module_for(key, &class),
                };
                if let Some(module) = module {
                    obj.insert("module".into(), Value::from(module));
                    let registered =
                        (op || class == "Functional").then(|| Value::from(class.clone()));
                    obj.entry("registered_name")
                        .or_insert(registered.unwrap_or(Value::Null));
                }
            }
            for (k, x) in obj.iter_mut() {
                restore_modules(x, k);
            }
        }
        _ => {}
    }
}

/// Keras 3 layers whose config has no `trainable` key (input and preprocessing layers); any
/// other config without one is a Keras op's.
const LAYERS_WITHOUT_TRAINABLE: &[&str] = &[
    "InputLayer",
    "Discretization",
    "Hashing",
    "HashedCrossing",
    "StringLookup",
    "IntegerLookup",
    "TextVectorization",
    "CategoryEncoding",
    "Normalization",
    "Resizing",
    "Rescaling",
    "CenterCrop",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
    "AutoContrast",
    "Equalization",
    "MelSpectrogram",
    "STFTSpectrogram",
];

fn op_module(class: &str) -> &'static str {
    const NN: &[&str] = &[
        "Relu",
        "Relu6",
        "Sigmoid",
        "Softplus",
        "Softsign",
        "Silu",
        "Swish",
        "LogSigmoid",
        "LeakyRelu",
        "HardSigmoid",
        "HardSilu",
        "Elu",
        "Selu",
        "Gelu",
        "Celu",
        "Glu",
        "Softmax",
        "LogSoftmax",
        "OneHot",
        "MultiHot",
        "Normalize",
    ];
    match NN.contains(&class) {
        true => "keras.src.ops.nn",
        false => "keras.src.ops.numpy",
    }
}

fn module_for(key: &str, class: &str) -> Option<&'static str> {
    let model = |c: &str| match c {
        "Sequential" => Some("keras"),
        "Functional" | "Model" => Some("keras.src.models.functional"),
        _ => None,
    };
    match key {
        "" => model(class),
        "layers" | "layer" | "forward_layer" | "backward_layer" | "cell" | "cells" => {
            model(class).or(Some("keras.layers"))
        }
        "dtype" | "dtype_policy" => Some("keras"),
        "optimizer" => Some("keras.optimizers"),
        "learning_rate" => Some("keras.optimizers.schedules"),
        "loss" => Some("keras.losses"),
        "metrics" | "weighted_metrics" => Some("keras.metrics"),
        k if k.ends_with("_initializer") => Some("keras.initializers"),
        k if k.ends_with("_regularizer") => Some("keras.regularizers"),
        k if k.ends_with("_constraint") => Some("keras.constraints"),
        _ => None,
    }
}

/// The h5 dataset each weight is written to, and its element type. Weights must carry Keras 3
/// h5 paths (`…/vars/N`): the names models loaded from `.keras` files or converted from them
/// have.
fn h5_datasets(dst: &Path, spec: &ModelSpec) -> Result<Vec<super::h5write::Dataset>> {
    use super::h5write::{Dataset, Elem};
    spec.weights
        .iter()
        .map(|w| {
            let keras3 = w.name.rsplit_once("/vars/").is_some_and(|(_, i)| i.parse::<u32>().is_ok());
            if !keras3 {
                return Err(Error::weight(dst, &w.name, "is not named by a Keras 3 h5 path ('…/vars/N'): .keras output takes Keras 3 models (loaded from .keras, or converted from one by tensorflowjs_converter)"));
            }
            let elem = match w.dtype {
                DType::Float32 => Elem::F32,
                DType::Int32 if w.name == "optimizer/vars/0" => Elem::I64,
                DType::Int32 => Elem::I32,
                DType::Bool => Elem::Bool,
            };
            Ok(Dataset { path: w.name.clone(), shape: w.shape.clone(), elem })
        })
        .collect()
}

/// `metadata.json` as Keras writes it: the Keras version and the save time (UTC).
fn metadata_json(spec: &ModelSpec) -> Vec<u8> {
    let version = spec
        .topology()
        .and_then(|t| t.get("keras_version"))
        .and_then(Value::as_str)
        .filter(|v| v.starts_with('3'))
        .unwrap_or("3.15.1");
    let t = time::OffsetDateTime::now_utc();
    let date = format!(
        "{}-{:02}-{:02}@{:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    serde_json::to_vec(&serde_json::json!({"keras_version": version, "date_saved": date}))
        .expect("a JSON object serializes")
}

/// Write a Keras 3 `.keras` archive at `dst`, atomically: `metadata.json`, `config.json` (the
/// model config) and `model.weights.h5`, stored uncompressed and 64-byte aligned, its datasets
/// streamed weight by weight from `data` in their logical dtypes (quantized weights
/// dequantized exactly as TF.js does; Keras's int64 optimizer counter widened back). Returns the
/// weight bytes written.
pub fn write(
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: &SaveOptions,
) -> Result<u64> {
    let mut config = keras3_config(dst, spec)?.clone();
    if config.get("module").is_none() {
        restore_modules(&mut config, "");
    }
    let config = serde_json::to_vec(&config).map_err(|e| Error::json(dst, e))?;
    let sets = h5_datasets(dst, spec)?;
    let plan = super::h5write::Plan::new(&sets).map_err(|m| Error::format(dst, m))?;
    let order: Vec<usize> = (0..sets.len()).collect();
    data.will_read(&order);
    let zip_err =
        |e: zip::result::ZipError| Error::format(dst, format!("writing the archive: {e}"));
    let mut written = 0;
    atomic::replace_file(dst, opts.durable, |tmp| {
        let file = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        let stored =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("metadata.json", metadata_json(spec)),
            ("config.json", config.clone()),
        ] {
            zip.start_file(name, stored).map_err(zip_err)?;
            zip.write_all(&bytes).map_err(|e| Error::io(tmp, e))?;
        }
        let big = plan.total_len() >= u32::MAX as u64;
        zip.start_file_aligned(
            WEIGHTS_H5,
            stored.large_file(big),
            super::h5write::DATA_ALIGN as u16,
        )
        .map_err(zip_err)?;
        let mut failed = None;
        let result = plan.write(&mut zip, |i, w| {
            let bytes = match weight_bytes(spec, data, i, sets[i].elem) {
                Ok(b) => b,
                Err(e) => {
                    let msg = e.to_string();
                    failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            };
            written += bytes.len() as u64;
            w.write_all(&bytes)
        });
        if let Some(e) = failed {
            return Err(e);
        }
        result.map_err(|e| Error::io(tmp, e))?;
        let mut inner = zip.finish().map_err(zip_err)?;
        inner.flush().map_err(|e| Error::io(tmp, e))?;
        Ok(())
    })?;
    Ok(written)
}

/// Weight `i`'s logical bytes as element type `elem`.
fn weight_bytes<'a>(
    spec: &ModelSpec,
    data: &'a dyn WeightBytes,
    i: usize,
    elem: super::h5write::Elem,
) -> Result<Cow<'a, [u8]>> {
    let logical = data.logical(i)?;
    if elem != super::h5write::Elem::I64 {
        return Ok(logical);
    }
    debug_assert_eq!(spec.weights[i].dtype, DType::Int32);
    let wide: Vec<u8> = logical
        .chunks_exact(4)
        .flat_map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
        .collect();
    Ok(Cow::Owned(wide))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_weights_under_a_renamed_scope_bind_by_their_group() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Keras 2.0.x: a second build's scope.
        assert_eq!(
            bound_names(
                "conv2d_1",
                &names(&["conv2d_1_1/kernel:0", "conv2d_1_1/bias:0"])
            ),
            names(&["conv2d_1/kernel", "conv2d_1/bias"])
        );
        // As usually stored: unchanged, nested scopes kept.
        assert_eq!(
            bound_names("bi", &names(&["bi/forward_lstm/lstm_cell/kernel:0"])),
            names(&["bi/forward_lstm/lstm_cell/kernel"])
        );
        // Two scopes whose rename would collide stay as stored.
        assert_eq!(
            bound_names("b", &names(&["b_1/kernel:0", "b_2/kernel:0"])),
            names(&["b_1/kernel", "b_2/kernel"])
        );
        // A nested model's group holds its layers' own names.
        assert_eq!(
            bound_names("inner", &names(&["dense_2/kernel:0", "inner_1x/bias:0"])),
            names(&["dense_2/kernel", "inner_1x/bias"])
        );
    }
    use hdf5_pure::Source;

    #[test]
    fn reads_past_the_region_are_errors_not_overflows() {
        let backing = Arc::new(Backing::Owned(vec![1, 2, 3, 4, 5]));
        let r = Region {
            backing,
            start: 1,
            len: 3,
        };
        let mut buf = [0u8; 2];
        r.read_at(1, &mut buf).unwrap();
        assert_eq!(buf, [3, 4]);
        assert!(r.read_at(2, &mut buf).is_err());
        assert!(
            r.read_at(u64::MAX, &mut buf).is_err(),
            "found by the keras fuzz target"
        );
        assert!(r.read_at(u64::MAX - 1, &mut [0u8; 8]).is_err());
    }

    #[test]
    fn vars_groups_must_be_gapless() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = Path::new("m.keras");
        assert!(check_vars(p, "layers/d/vars", &names(&["1", "0", "2"])).is_ok());
        let err = check_vars(p, "layers/d/vars", &names(&["1", "2"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers/d/vars/0"), "{err}");
        assert!(check_vars(p, "vars", &names(&["kernel"])).is_err());
    }

    #[test]
    fn natural_order_puts_vars_2_before_vars_10() {
        let mut v = vec!["optimizer/vars/10", "optimizer/vars/2", "layers/a/vars/0"];
        v.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
        assert_eq!(
            v,
            ["layers/a/vars/0", "optimizer/vars/2", "optimizer/vars/10"]
        );
    }
}
