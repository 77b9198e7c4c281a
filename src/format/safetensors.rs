//! Whole models as one `.safetensors` file, and plain safetensors weights paired with a topology.
//!
//! layercake's own files name each tensor by its TF.js manifest name and keep everything else in
//! one `__metadata__` entry, `layercake.tfjs`, a JSON object (one key, so the header is
//! byte-for-byte deterministic: the safetensors serializer writes metadata from a hash map):
//! - `version`: 1;
//! - `model_json`: model.json's fields (topology, trainingConfig, userDefinedMetadata, …);
//! - `weights`: the manifest entries in order (dtype, group, quantization);
//! - `layout`: the source's style, groups and file sizes, so a TF.js re-save can reproduce them.
//!
//! uint8 / uint16-quantized weights are written as their logical values (dequantized exactly as
//! TF.js does), so the stock safetensors readers see the model's weights; with
//! `SaveOptions::keep_codes` they keep their compact codes (U8 / U16 tensors, read back
//! byte-exact). float16 weights are F16 tensors. Parsing and validation use the `safetensors`
//! crate.

use super::manifest::WeightSpec;
use super::store::{Backing, Span, WeightStore};
use super::{
    output_bytes, output_specs, Artifacts, Container, GroupLayout, Layout, ModelSpec, Style,
    WeightBytes,
};
use crate::atomic;
use crate::dtype::{DType, Encoding, QuantDType};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The `__metadata__` key holding layercake's description of the model.
pub const METADATA_KEY: &str = "layercake.tfjs";
const MODEL_JSON_KEY: &str = "model_json";
const WEIGHTS_KEY: &str = "weights";
const LAYOUT_KEY: &str = "layout";

/// Read a `.safetensors` file. With `topology`, the model's topology (and other model.json
/// fields) come from that JSON file instead of the file's metadata.
pub fn read(path: &Path, topology: Option<&Path>) -> Result<Artifacts> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let backing = Backing::map(path, &file, len)?;
    read_backing(path, backing, topology)
}

/// Read safetensors bytes (mapped or in memory) named `path` in errors.
pub fn read_backing(path: &Path, backing: Backing, topology: Option<&Path>) -> Result<Artifacts> {
    let bytes = backing.bytes();
    let (n, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let data_start = 8 + n;
    let meta = match header.metadata().as_ref().and_then(|m| m.get(METADATA_KEY)) {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => obj,
            _ => {
                return Err(Error::format(
                    path,
                    format!("__metadata__ '{METADATA_KEY}' is not a JSON object"),
                ))
            }
        },
        None => Map::new(),
    };
    let mut fields = match topology {
        Some(t) => topology_fields(t)?,
        None => meta
            .get(MODEL_JSON_KEY)
            .cloned()
            .map(|v| v.as_object().cloned().unwrap_or_default())
            .unwrap_or_default(),
    };
    let (weights, spans) = match meta.get(WEIGHTS_KEY).cloned() {
        Some(list) => described_weights(path, &header, &list, data_start)?,
        None => plain_weights(path, &header, data_start)?,
    };
    let layout = match meta.get(LAYOUT_KEY).cloned() {
        Some(l) => parse_layout(path, &l, weights.len())?,
        None => default_layout(weights.len()),
    };
    fields.entry("weightsManifest").or_insert(Value::Null);
    Ok(Artifacts {
        spec: ModelSpec {
            fields,
            weights,
            layout,
            topology_text: None,
        },
        store: WeightStore::new(vec![backing], spans)?,
        origin: path.to_path_buf(),
        container: Container::Safetensors,
    })
}

/// model.json fields from a separate topology file: a whole model.json, or a bare topology.
fn topology_fields(path: &Path) -> Result<Map<String, Value>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| Error::json(path, e))?;
    let Value::Object(obj) = value else {
        return Err(Error::json(path, "the top level is not an object"));
    };
    if obj.contains_key("modelTopology") {
        let mut fields = obj;
        fields.insert("weightsManifest".into(), Value::Null);
        return Ok(fields);
    }
    if obj.contains_key("class_name") || obj.contains_key("model_config") {
        let mut fields = Map::new();
        fields.insert("modelTopology".into(), Value::Object(obj));
        fields.insert("format".into(), Value::from("layers-model"));
        return Ok(fields);
    }
    Err(Error::format(path, "neither a model.json nor a Keras topology (no 'modelTopology', 'class_name' or 'model_config')"))
}

fn tensor_span(path: &Path, name: &str, info: &TensorInfo, data_start: usize) -> Result<Span> {
    let (begin, end) = info.data_offsets;
    let start = data_start
        .checked_add(begin)
        .ok_or_else(|| Error::weight(path, name, "data offset overflows"))?;
    Ok(Span {
        buffer: 0,
        start,
        len: end - begin,
    })
}

/// Weights described by layercake's `tfjs.weights` metadata: check each tensor agrees with it.
fn described_weights(
    path: &Path,
    header: &Metadata,
    list: &Value,
    data_start: usize,
) -> Result<(Vec<WeightSpec>, Vec<Vec<Span>>)> {
    let entries = list.as_array().ok_or_else(|| {
        Error::format(
            path,
            format!("__metadata__ '{METADATA_KEY}': 'weights' is not a list"),
        )
    })?;
    let mut specs = Vec::with_capacity(entries.len());
    let mut spans = Vec::with_capacity(entries.len());
    for entry in entries {
        let spec = WeightSpec::from_json(entry, path)?;
        let info = header.info(&spec.name).ok_or_else(|| {
            Error::weight(
                path,
                &spec.name,
                "listed in the metadata but the file has no such tensor",
            )
        })?;
        let want = st_dtype(spec.encoding());
        if info.dtype != want || info.shape != spec.shape {
            return Err(Error::weight(
                path,
                &spec.name,
                format!(
                    "tensor is {:?} {:?} but the metadata says {want:?} {:?}",
                    info.dtype, info.shape, spec.shape
                ),
            ));
        }
        spans.push(vec![tensor_span(path, &spec.name, info, data_start)?]);
        specs.push(spec);
    }
    if header.tensors().len() != specs.len() {
        let listed: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        let extra = header
            .offset_keys()
            .into_iter()
            .find(|k| !listed.contains(k.as_str()))
            .unwrap_or_default();
        return Err(Error::weight(
            path,
            &extra,
            format!("tensor is not listed in __metadata__ '{METADATA_KEY}'"),
        ));
    }
    Ok((specs, spans))
}

/// A plain safetensors file: tensors in file order, dtypes mapped to TF.js's.
fn plain_weights(
    path: &Path,
    header: &Metadata,
    data_start: usize,
) -> Result<(Vec<WeightSpec>, Vec<Vec<Span>>)> {
    let mut specs = Vec::new();
    let mut spans = Vec::new();
    for name in header.offset_keys() {
        let info = header.info(&name).expect("offset_keys names tensors");
        let mut spec = WeightSpec::new(name.clone(), info.shape.clone(), DType::Float32);
        match info.dtype {
            Dtype::F32 => {}
            Dtype::I32 => spec.dtype = DType::Int32,
            Dtype::BOOL => spec.dtype = DType::Bool,
            Dtype::F16 => spec.quantization = Some(super::Quantization::new(QuantDType::Float16, None)),
            other => {
                return Err(Error::weight(path, &name, format!("safetensors dtype {other:?} has no TF.js equivalent (F32, I32, BOOL and F16 are read)")))
            }
        }
        spans.push(vec![tensor_span(path, &name, info, data_start)?]);
        specs.push(spec);
    }
    Ok((specs, spans))
}

/// One group, one `weights.bin`: the layout of a model that comes without one.
pub(super) fn default_layout(n: usize) -> Layout {
    Layout {
        style: Style::Node,
        groups: vec![GroupLayout {
            paths: vec!["weights.bin".into()],
            file_sizes: Vec::new(),
            extra: Map::new(),
        }],
        group_of: vec![0; n],
    }
}

fn parse_layout(path: &Path, v: &Value, n: usize) -> Result<Layout> {
    let bad = || {
        Error::format(
            path,
            format!("__metadata__ '{METADATA_KEY}': 'layout' is malformed"),
        )
    };
    let style = v
        .get("style")
        .and_then(Value::as_str)
        .and_then(Style::parse)
        .ok_or_else(bad)?;
    let groups = v
        .get("groups")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|g| {
            Some(GroupLayout {
                paths: serde_json::from_value(g.get("paths")?.clone()).ok()?,
                file_sizes: serde_json::from_value(g.get("file_sizes")?.clone()).ok()?,
                extra: g
                    .get("extra")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    let group_of: Vec<usize> = v
        .get("group_of")
        .and_then(|g| serde_json::from_value(g.clone()).ok())
        .ok_or_else(bad)?;
    if group_of.len() != n
        || group_of.iter().any(|&g| g >= groups.len())
        || group_of.windows(2).any(|w| w[0] > w[1])
    {
        return Err(bad());
    }
    Ok(Layout {
        style,
        groups,
        group_of,
    })
}

fn st_dtype(enc: Encoding) -> Dtype {
    match enc {
        Encoding::Plain(DType::Float32) => Dtype::F32,
        Encoding::Plain(DType::Int32) => Dtype::I32,
        Encoding::Plain(DType::Bool) => Dtype::BOOL,
        Encoding::Affine {
            storage: QuantDType::Uint16,
            ..
        } => Dtype::U16,
        Encoding::Affine { .. } => Dtype::U8,
        Encoding::Float16 => Dtype::F16,
        Encoding::BFloat16 => Dtype::BF16,
    }
}

/// Write `spec` + weights as one safetensors file at `dst` (atomically replaced).
///
/// The header is the `safetensors` crate's own `Metadata` type serialized as the crate does
/// (padded to 8 bytes); the data is streamed tensor by tensor, so a GPU-backed source is read
/// back in bounded batches instead of all at once (the crate's `serialize_to_file` needs every
/// tensor as an infallible in-memory view and sorts them itself). Tensors are ordered by element
/// size, largest first, then by manifest order, so every tensor is aligned to its element size.
pub fn write(
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: &super::SaveOptions,
) -> Result<u64> {
    let mut written = 0;
    atomic::replace_file(dst, opts.durable, |tmp| {
        let file = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let reserve = file.try_clone().map_err(|e| Error::io(tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        // Once the header is known, the file's whole size is: reserve it (see
        // `atomic::create_sized`).
        let mut sized = |len| atomic::reserve(&reserve, len).map_err(|e| Error::io(tmp, e));
        written = write_stream_sized(&mut w, dst, spec, data, opts, &mut sized)?;
        Ok(())
    })?;
    Ok(written)
}

/// Stream a safetensors file into `w` (named `dst` in errors); returns the data bytes written.
pub fn write_stream(
    w: &mut dyn Write,
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: &super::SaveOptions,
) -> Result<u64> {
    write_stream_sized(w, dst, spec, data, opts, &mut |_| Ok(()))
}

/// [`write_stream`], telling `sized` the file's total length before the first byte is written.
fn write_stream_sized(
    w: &mut dyn Write,
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: &super::SaveOptions,
    sized: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<u64> {
    let out_specs = safetensors_specs(dst, spec, data, opts)?;
    let hashed;
    let spec = if opts.hashes {
        hashed = with_tensor_hashes(spec, &out_specs, data)?;
        &hashed
    } else {
        spec
    };
    let mut order: Vec<usize> = (0..out_specs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(out_specs[i].encoding().size()));
    let mut infos = Vec::with_capacity(order.len());
    let mut offset = 0usize;
    for &i in &order {
        let w = &out_specs[i];
        let len = w.stored_len();
        let info = TensorInfo {
            dtype: st_dtype(w.encoding()),
            shape: w.shape.clone(),
            data_offsets: (offset, offset + len),
        };
        infos.push((w.name.clone(), info));
        offset += len;
    }
    let header = header_bytes(dst, spec, &out_specs, infos)?;
    sized(8 + header.len() as u64 + offset as u64)?;
    data.will_read(&order);
    let io = |e| Error::io(dst, e);
    w.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&header).map_err(io)?;
    for &i in &order {
        let bytes = output_bytes(&spec.weights[i], &out_specs[i], i, data)?;
        w.write_all(&bytes).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(offset as u64)
}

/// The specs the weights are written with: the save's quantization choice, with uint8 / uint16
/// codes dequantized to their logical values unless `opts.keep_codes` (see
/// [`super::SaveOptions::keep_codes`]).
fn safetensors_specs(
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: &super::SaveOptions,
) -> Result<Vec<WeightSpec>> {
    if let (false, super::QuantizeChoice::To(q @ (QuantDType::Uint8 | QuantDType::Uint16))) =
        (opts.keep_codes, opts.quantize)
    {
        return Err(Error::Usage(format!(
            "{}: quantizing to {q} for safetensors stores integer codes that the stock \
             safetensors readers take for the weights; add --keep-codes to write them anyway",
            dst.display()
        )));
    }
    let mut out = output_specs(spec, data, opts.quantize)?;
    if !opts.keep_codes {
        for w in &mut out {
            if matches!(w.encoding(), Encoding::Affine { .. }) {
                w.quantization = None;
            }
        }
    }
    Ok(out)
}

/// `spec` with every tensor's stored-bytes hash recorded in its metadata (a pass over the data
/// before the header, which precedes the data in the file, is written).
fn with_tensor_hashes(
    spec: &ModelSpec,
    out_specs: &[WeightSpec],
    data: &dyn WeightBytes,
) -> Result<ModelSpec> {
    let mut tensors = serde_json::Map::new();
    for (i, out) in out_specs.iter().enumerate() {
        let bytes = output_bytes(&spec.weights[i], out, i, data)?;
        tensors.insert(
            out.name.clone(),
            super::integrity::hash_bytes(&bytes).into(),
        );
    }
    let mut spec = spec.clone();
    let record = json!({"algorithm": super::integrity::ALGORITHM, "tensors": tensors});
    super::integrity::set_metadata(&mut spec.fields, "hashes", record);
    Ok(spec)
}

fn header_bytes(
    dst: &Path,
    spec: &ModelSpec,
    out_specs: &[WeightSpec],
    infos: Vec<(String, TensorInfo)>,
) -> Result<Vec<u8>> {
    // The manifest keeps its position and holds no copy (the weights are described below).
    let fields =
        serde_json::to_value(spec.model_json(Value::Null)).map_err(|e| Error::json(dst, e))?;
    let layout = &spec.layout;
    let groups: Vec<Value> = layout
        .groups
        .iter()
        .map(|g| json!({"paths": g.paths, "file_sizes": g.file_sizes, "extra": g.extra}))
        .collect();
    let description = json!({
        "version": 1,
        MODEL_JSON_KEY: fields,
        WEIGHTS_KEY: out_specs.iter().map(WeightSpec::to_json).collect::<Vec<_>>(),
        LAYOUT_KEY: {"style": layout.style.to_string(), "groups": groups, "group_of": layout.group_of},
    });
    let meta = HashMap::from([(METADATA_KEY.to_string(), description.to_string())]);
    let bad = |e: &dyn std::fmt::Display| Error::format(dst, format!("safetensors header: {e}"));
    let metadata = Metadata::new(Some(meta), infos).map_err(|e| bad(&e))?;
    let mut header = serde_json::to_vec(&metadata).map_err(|e| bad(&e))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    Ok(header)
}
