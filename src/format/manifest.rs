//! The weights manifest of model.json: typed weight specs that keep every field they were read
//! with, so a re-save reproduces the manifest's values.

use crate::dtype::{DType, Encoding, QuantDType};
use crate::error::{Error, Result};
use crate::shape;
use serde_json::{Map, Value};
use std::path::Path;

/// Quantization of a weight (`quantization` in a manifest entry).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantization {
    /// Storage type.
    pub dtype: QuantDType,
    /// Affine offset (uint8/uint16).
    pub min: Option<f64>,
    /// Affine step (uint8/uint16).
    pub scale: Option<f64>,
    /// Keys other than dtype/min/scale (e.g. `original_dtype`), kept as read.
    pub extra: Map<String, Value>,
}

impl Quantization {
    /// A fresh quantization record as the Python converter writes it.
    pub fn new(dtype: QuantDType, affine: Option<(f64, f64)>) -> Self {
        let mut extra = Map::new();
        extra.insert("original_dtype".into(), Value::from("float32"));
        Quantization {
            dtype,
            min: affine.map(|a| a.0),
            scale: affine.map(|a| a.1),
            extra,
        }
    }

    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("dtype".into(), Value::from(self.dtype.as_str()));
        if let Some(min) = self.min {
            obj.insert("min".into(), Value::from(min));
        }
        if let Some(scale) = self.scale {
            obj.insert("scale".into(), Value::from(scale));
        }
        obj.extend(self.extra.clone());
        Value::Object(obj)
    }
}

/// One weight of the model as the manifest declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightSpec {
    /// Manifest name, unique in the model (e.g. `dense_Dense1/kernel`).
    pub name: String,
    /// Dimensions, `[]` for a scalar.
    pub shape: Vec<usize>,
    /// Logical dtype (after dequantization).
    pub dtype: DType,
    /// `group` field: `Some("optimizer")` for optimizer state.
    pub group: Option<String>,
    /// Quantization, if the bytes are quantized.
    pub quantization: Option<Quantization>,
    /// Any other keys of the entry, kept as read.
    pub extra: Map<String, Value>,
}

impl WeightSpec {
    /// A plain (unquantized) weight.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, dtype: DType) -> Self {
        WeightSpec {
            name: name.into(),
            shape,
            dtype,
            group: None,
            quantization: None,
            extra: Map::new(),
        }
    }

    /// Number of elements (validated not to overflow when the spec was parsed).
    pub fn numel(&self) -> usize {
        shape::numel(&self.shape).unwrap_or(usize::MAX)
    }

    /// How the stored bytes encode the elements.
    pub fn encoding(&self) -> Encoding {
        match &self.quantization {
            None => Encoding::Plain(self.dtype),
            Some(q) => match q.dtype {
                QuantDType::Float16 => Encoding::Float16,
                storage => Encoding::Affine {
                    storage,
                    min: q.min.unwrap_or(0.0),
                    scale: q.scale.unwrap_or(1.0),
                },
            },
        }
    }

    /// Bytes the weight takes in its stored encoding.
    pub fn stored_len(&self) -> usize {
        self.numel().saturating_mul(self.encoding().size())
    }

    /// Bytes the weight takes once decoded to its logical dtype.
    pub fn logical_len(&self) -> usize {
        self.numel().saturating_mul(self.dtype.size())
    }

    /// True for optimizer state (`group: "optimizer"`, or Keras 3's `optimizer/vars/N` h5
    /// paths).
    pub fn is_optimizer(&self) -> bool {
        self.group.as_deref() == Some("optimizer") || self.name.starts_with("optimizer/vars/")
    }

    /// The manifest entry: name, shape, dtype, group, quantization, then any other keys.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("name".into(), Value::from(self.name.clone()));
        obj.insert("shape".into(), Value::from(self.shape.clone()));
        obj.insert("dtype".into(), Value::from(self.dtype.as_str()));
        if let Some(g) = &self.group {
            obj.insert("group".into(), Value::from(g.clone()));
        }
        if let Some(q) = &self.quantization {
            obj.insert("quantization".into(), q.to_json());
        }
        obj.extend(self.extra.clone());
        Value::Object(obj)
    }

    /// Parse and validate one manifest entry. `file` names the document for errors.
    pub fn from_json(value: &Value, file: &Path) -> Result<WeightSpec> {
        Self::from_value(value.clone(), file)
    }

    /// [`WeightSpec::from_json`], consuming the entry (no copies of its strings or keys).
    pub fn from_value(value: Value, file: &Path) -> Result<WeightSpec> {
        let Value::Object(obj) = value else {
            return Err(Error::format(
                file,
                "a weightsManifest entry is not an object",
            ));
        };
        Self::from_parts(EntryParts::from_map(obj), file)
    }

    /// Validate an entry already split into its known keys.
    fn from_parts(parts: EntryParts, file: &Path) -> Result<WeightSpec> {
        let EntryParts {
            name,
            shape,
            dtype: dtype_value,
            group,
            quantization,
            extra: obj,
        } = parts;
        let name = match name {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => {
                return Err(Error::format(
                    file,
                    "a weightsManifest entry has no string 'name'",
                ))
            }
        };
        let err = |m: String| Error::weight(file, &name, m);
        let shape = parse_shape(shape.as_ref()).map_err(err)?;
        let dtype_name = dtype_value.as_ref().and_then(Value::as_str).unwrap_or("");
        let dtype = DType::parse(dtype_name).ok_or_else(|| {
            err(format!("dtype '{dtype_name}' is not supported (layercake reads float32, int32 and bool weights)"))
        })?;
        let group = match group {
            None | Some(Value::Null) => None,
            Some(Value::String(g)) => Some(g),
            Some(_) => return Err(err("'group' is not a string".into())),
        };
        Self::checked(name, shape, dtype, group, quantization, obj, file)
    }

    /// The entry from its typed known keys: its quantization parsed, its byte size checked.
    pub(crate) fn checked(
        name: String,
        shape: Vec<usize>,
        dtype: DType,
        group: Option<String>,
        quantization: Option<Value>,
        extra: Map<String, Value>,
        file: &Path,
    ) -> Result<WeightSpec> {
        let err = |m: String| Error::weight(file, &name, m);
        let quantization = match quantization {
            None | Some(Value::Null) => None,
            Some(q) => Some(parse_quantization(&q, dtype).map_err(err)?),
        };
        let elem = quantization
            .as_ref()
            .map_or(dtype.size(), |q| q.dtype.size())
            .max(dtype.size());
        if shape::byte_len(&shape, elem).is_none() {
            return Err(err(format!(
                "shape {} is too large (its byte size overflows)",
                shape::show(&shape)
            )));
        }
        Ok(WeightSpec {
            name,
            shape,
            dtype,
            group,
            quantization,
            extra,
        })
    }
}

/// A manifest entry split into its known keys (each as read) and the others.
struct EntryParts {
    name: Option<Value>,
    shape: Option<Value>,
    dtype: Option<Value>,
    group: Option<Value>,
    quantization: Option<Value>,
    extra: Map<String, Value>,
}

impl EntryParts {
    fn from_map(mut obj: Map<String, Value>) -> EntryParts {
        EntryParts {
            name: obj.shift_remove("name"),
            shape: obj.shift_remove("shape"),
            dtype: obj.shift_remove("dtype"),
            group: obj.shift_remove("group"),
            quantization: obj.shift_remove("quantization"),
            extra: obj,
        }
    }
}

fn parse_shape(value: Option<&Value>) -> std::result::Result<Vec<usize>, String> {
    let dims = value
        .and_then(Value::as_array)
        .ok_or_else(|| "'shape' is missing or not a list".to_string())?;
    dims.iter()
        .map(|d| match d.as_u64() {
            Some(n) => usize::try_from(n).map_err(|_| format!("dimension {n} is too large")),
            None => Err(format!(
                "shape {value} has dimension {d}, not a non-negative integer",
                value = Value::Array(dims.clone())
            )),
        })
        .collect()
}

fn parse_quantization(value: &Value, dtype: DType) -> std::result::Result<Quantization, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| "'quantization' is not an object".to_string())?;
    let qname = obj.get("dtype").and_then(Value::as_str).unwrap_or("");
    let qdtype = QuantDType::parse(qname).ok_or_else(|| {
        format!("quantization dtype '{qname}' is not one of uint8, uint16, float16")
    })?;
    let number = |key: &str| -> std::result::Result<Option<f64>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(format!("quantization '{key}' is {v}, not a finite number")),
            },
        }
    };
    let (min, scale) = (number("min")?, number("scale")?);
    match qdtype {
        QuantDType::Float16 if dtype != DType::Float32 => {
            return Err(format!(
                "float16 quantization needs dtype float32, not {dtype}"
            ))
        }
        QuantDType::Uint8 | QuantDType::Uint16 => {
            if min.is_none() || scale.is_none() {
                return Err(format!(
                    "{qdtype} quantization needs both 'min' and 'scale'"
                ));
            }
            if dtype == DType::Bool {
                return Err(format!(
                    "{qdtype} quantization of a bool weight is not defined"
                ));
            }
        }
        _ => {}
    }
    let mut extra = obj.clone();
    for key in ["dtype", "min", "scale"] {
        extra.shift_remove(key);
    }
    Ok(Quantization {
        dtype: qdtype,
        min,
        scale,
        extra,
    })
}

/// Parse a `weightsManifest` into its groups' paths and the flat weight list (manifest order),
/// each weight tagged with the index of its group. Names must be unique.
pub fn parse_manifest(value: Value, file: &Path) -> Result<(Vec<ManifestGroup>, Vec<WeightSpec>)> {
    let Value::Array(groups) = value else {
        return Err(Error::format(file, "'weightsManifest' is not a list"));
    };
    let mut out_groups = Vec::with_capacity(groups.len());
    let mut specs = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        let Value::Object(mut obj) = group else {
            return Err(group_error(file, g, "is not an object"));
        };
        let paths = obj.shift_remove("paths");
        let weights = match obj.shift_remove("weights") {
            Some(Value::Array(w)) => Some(w.into_iter().map(|w| WeightSpec::from_value(w, file))),
            _ => None,
        };
        out_groups.push(group_from_parts(file, g, paths, weights, obj, &mut specs)?);
    }
    check_unique(file, &specs)?;
    Ok((out_groups, specs))
}

fn group_error(file: &Path, g: usize, what: &str) -> Error {
    Error::format(file, format!("weightsManifest group {} {what}", g + 1))
}

/// Group `g` from its `paths` and `weights` as read (`weights` already validated one by one),
/// its entries appended to `specs`.
pub(crate) fn group_from_parts(
    file: &Path,
    g: usize,
    paths: Option<Value>,
    weights: Option<impl Iterator<Item = Result<WeightSpec>>>,
    extra: Map<String, Value>,
    specs: &mut Vec<WeightSpec>,
) -> Result<ManifestGroup> {
    let paths = match paths {
        Some(Value::Array(p)) => p
            .into_iter()
            .map(|s| match s {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
    .ok_or_else(|| group_error(file, g, "has no list of string 'paths'"))?;
    let weights = weights.ok_or_else(|| group_error(file, g, "has no 'weights' list"))?;
    let before = specs.len();
    for w in weights {
        specs.push(w?);
    }
    Ok(ManifestGroup {
        paths,
        count: specs.len() - before,
        extra,
    })
}

/// Refuse a name that appears twice.
pub(crate) fn check_unique(file: &Path, specs: &[WeightSpec]) -> Result<()> {
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(specs.len(), Default::default());
    match specs.iter().find(|s| !seen.insert(s.name.as_str())) {
        Some(dup) => Err(Error::weight(
            file,
            &dup.name,
            "the name appears twice in the manifest",
        )),
        None => Ok(()),
    }
}

/// One group of a manifest: its files and how many of the flat weights it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestGroup {
    /// Weight file paths, relative to model.json.
    pub paths: Vec<String>,
    /// Number of consecutive weights (in the flat list) stored in this group.
    pub count: usize,
    /// Other keys of the group object, kept as read.
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<WeightSpec> {
        WeightSpec::from_json(&v, Path::new("model.json"))
    }

    #[test]
    fn entry_round_trips_with_unknown_keys() {
        let v = json!({"name": "d/kernel", "shape": [2, 3], "dtype": "float32", "group": "model",
            "quantization": {"dtype": "uint8", "min": -0.5, "scale": 0.25, "original_dtype": "float32"},
            "note": 1});
        let spec = parse(v.clone()).unwrap();
        assert_eq!(spec.to_json(), v);
        assert_eq!(spec.stored_len(), 6);
        assert_eq!(spec.logical_len(), 24);
    }

    #[test]
    fn bad_entries_name_the_weight() {
        let cases = [
            (
                json!({"name": "w", "shape": [-1], "dtype": "float32"}),
                "not a non-negative integer",
            ),
            (
                json!({"name": "w", "shape": [2], "dtype": "string"}),
                "dtype 'string' is not supported",
            ),
            (
                json!({"name": "w", "shape": [2], "dtype": "complex64"}),
                "dtype 'complex64'",
            ),
            (
                json!({"name": "w", "shape": [4294967296u64, 4294967296u64, 4], "dtype": "float32"}),
                "overflows",
            ),
            (
                json!({"name": "w", "shape": [2], "dtype": "float32", "quantization": {"dtype": "uint8"}}),
                "needs both",
            ),
            (
                json!({"name": "w", "shape": [2], "dtype": "int32", "quantization": {"dtype": "float16"}}),
                "needs dtype float32",
            ),
            (
                json!({"name": "w", "shape": [2], "dtype": "float32", "quantization": {"dtype": "int4"}}),
                "not one of",
            ),
        ];
        for (v, want) in cases {
            let e = parse(v).unwrap_err().to_string();
            assert!(e.contains("weight 'w'") && e.contains(want), "{e}");
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let m = json!([{"paths": ["a.bin"], "weights": [
            {"name": "w", "shape": [], "dtype": "float32"},
            {"name": "w", "shape": [], "dtype": "float32"}]}]);
        let e = parse_manifest(m, Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'w'") && e.contains("twice"), "{e}");
    }
}
