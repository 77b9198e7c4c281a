//! model.json in one pass: the weights manifest deserialized straight into [`WeightSpec`]s (no
//! intermediate JSON tree per entry), the topology kept as its source text and parsed on first
//! use, every other field as a JSON value in its original order.
//!
//! A model with 100,000 tensors has a 13 MB model.json; building a `serde_json::Value` of it
//! (and freeing it) cost 10× the time of reading its 64 MiB of weights. Any input the fast path
//! does not take as is (a wrong type anywhere, a key with an escape) is parsed again by the
//! general path, so errors stay exactly the general path's.

use super::manifest::{check_unique, group_from_parts, parse_manifest, ManifestGroup, WeightSpec};
use crate::dtype::DType;
use crate::error::Result;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// `modelTopology` as the source wrote it, parsed into a JSON value on first use.
pub struct Topology {
    text: Box<RawValue>,
    parsed: OnceLock<std::result::Result<Value, String>>,
}

impl Topology {
    /// The source text.
    pub fn text(&self) -> &RawValue {
        &self.text
    }

    /// The parsed value, or why the text does not parse (e.g. nested deeper than the JSON
    /// parser's recursion limit).
    pub fn value(&self) -> std::result::Result<&Value, &str> {
        self.parsed
            .get_or_init(|| serde_json::from_str(self.text.get()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topology({} bytes)", self.text.get().len())
    }
}

/// model.json's parts.
pub(crate) struct Parsed {
    /// Top-level fields in order; `weightsManifest` (and `modelTopology` when held as text) are
    /// Null placeholders at their positions.
    pub fields: Map<String, Value>,
    /// The topology's text, when the fast path read it.
    pub topology: Option<Arc<Topology>>,
    pub groups: Vec<ManifestGroup>,
    pub weights: Vec<WeightSpec>,
}

/// Parse model.json's bytes (`path` names it in errors): it must be an object with an object
/// `modelTopology`; its manifest's entries are validated and their names must be unique.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // The shortest entry, `{"name":"a","shape":[],"dtype":"bool"}`, is 38 bytes: reserving for
    // that many touches no memory that the specs do not fill (untouched pages stay unmapped).
    let capacity = (bytes.len() / 38).min(1 << 22);
    let fast = de
        .deserialize_map(TopVisitor {
            file: path,
            capacity,
        })
        .and_then(|p| de.end().map(|()| p));
    match fast {
        Ok(p) if p.topology.text.get().starts_with('{') => {
            check_unique(path, &p.weights)?;
            Ok(Parsed {
                fields: p.fields,
                topology: Some(Arc::new(Topology {
                    text: p.topology.text,
                    parsed: OnceLock::new(),
                })),
                groups: p.groups,
                weights: p.weights,
            })
        }
        _ => general(path, bytes),
    }
}

/// The general path: a JSON tree, then the manifest taken out of it.
fn general(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut fields = super::tfjs::parse_model_json(path, bytes)?;
    let (groups, weights) = match fields.get_mut("weightsManifest").map(std::mem::take) {
        None | Some(Value::Null) => (Vec::new(), Vec::new()),
        Some(m) => parse_manifest(m, path)?,
    };
    Ok(Parsed {
        fields,
        topology: None,
        groups,
        weights,
    })
}

struct FastTop {
    fields: Map<String, Value>,
    topology: Topology,
    groups: Vec<ManifestGroup>,
    weights: Vec<WeightSpec>,
}

struct TopVisitor<'a> {
    file: &'a Path,
    /// Room to reserve for the weight specs (growing a list of 100,000 specs by doubling
    /// copied and faulted in twice its size).
    capacity: usize,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = FastTop;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a model.json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<FastTop, A::Error> {
        let mut fields = Map::new();
        let (mut topology, mut groups, mut weights) = (None, Vec::new(), Vec::new());
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "modelTopology" => topology = Some(map.next_value::<Box<RawValue>>()?),
                "weightsManifest" => {
                    let seed = ManifestSeed {
                        file: self.file,
                        capacity: self.capacity,
                    };
                    (groups, weights) = map.next_value_seed(seed)?;
                }
                _ => {
                    fields.insert(key, map.next_value::<Value>()?);
                    continue;
                }
            }
            fields.insert(key, Value::Null);
        }
        let text = topology.ok_or_else(|| de::Error::missing_field("modelTopology"))?;
        Ok(FastTop {
            fields,
            topology: Topology {
                text,
                parsed: OnceLock::new(),
            },
            groups,
            weights,
        })
    }
}

/// `weightsManifest`: null, or a list of groups.
struct ManifestSeed<'a> {
    file: &'a Path,
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for ManifestSeed<'_> {
    type Value = (Vec<ManifestGroup>, Vec<WeightSpec>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ManifestSeed<'_> {
    type Value = (Vec<ManifestGroup>, Vec<WeightSpec>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of weight groups")
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok((Vec::new(), Vec::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let (mut groups, mut weights) = (Vec::new(), Vec::with_capacity(self.capacity));
        while let Some(g) = seq.next_element_seed(GroupSeed {
            file: self.file,
            index: groups.len(),
            weights: &mut weights,
        })? {
            groups.push(g);
        }
        Ok((groups, weights))
    }
}

/// One group: its entries validated and appended to `weights` as they are read.
struct GroupSeed<'a> {
    file: &'a Path,
    index: usize,
    weights: &'a mut Vec<WeightSpec>,
}

impl<'de> DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = ManifestGroup;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GroupSeed<'_> {
    type Value = ManifestGroup;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a weight group object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let (mut paths, mut extra, mut read) = (None, Map::new(), None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "paths" => paths = Some(map.next_value::<Value>()?),
                "weights" if read.is_none() => {
                    let entries = EntriesSeed {
                        file: self.file,
                        weights: &mut *self.weights,
                    };
                    read = Some(map.next_value_seed(entries)?);
                }
                // A second list would replace the first's entries: the general path decides.
                "weights" => return Err(de::Error::custom("'weights' given twice")),
                _ => {
                    extra.insert(key, map.next_value::<Value>()?);
                }
            }
        }
        let count = read.ok_or_else(|| de::Error::missing_field("weights"))?;
        let none = std::iter::empty::<Result<WeightSpec>>();
        let mut group = group_from_parts(
            self.file,
            self.index,
            paths,
            Some(none),
            extra,
            &mut Vec::new(),
        )
        .map_err(de::Error::custom)?;
        group.count = count;
        Ok(group)
    }
}

/// A group's `weights` list; returns how many entries it held.
struct EntriesSeed<'a> {
    file: &'a Path,
    weights: &'a mut Vec<WeightSpec>,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of weight entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<usize, A::Error> {
        let before = self.weights.len();
        while let Some(spec) = seq.next_element_seed(EntrySeed { file: self.file })? {
            self.weights.push(spec);
        }
        Ok(self.weights.len() - before)
    }
}

/// One manifest entry, typed as it is read (no key or dtype string allocated). Anything the
/// general path would refuse or read differently (an empty name, an unknown dtype, a
/// non-integer dimension) fails here, so the general path reports it.
struct EntrySeed<'a> {
    file: &'a Path,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = WeightSpec;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<WeightSpec, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = WeightSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a weight entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<WeightSpec, A::Error> {
        let (mut name, mut shape, mut dtype) = (None, None, None);
        let (mut group, mut quantization, mut extra) = (None, None, Map::new());
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Known("name") => name = Some(map.next_value::<String>()?),
                Key::Known("shape") => shape = Some(map.next_value::<Vec<usize>>()?),
                Key::Known("dtype") => dtype = Some(map.next_value::<Dtype>()?.0),
                Key::Known("group") => group = map.next_value::<Option<String>>()?,
                Key::Known("quantization") => quantization = Some(map.next_value::<Value>()?),
                Key::Known(k) => {
                    extra.insert(k.to_string(), map.next_value::<Value>()?);
                }
                Key::Other(k) => {
                    extra.insert(k, map.next_value::<Value>()?);
                }
            }
        }
        let missing = |what| de::Error::custom(format_args!("entry without {what}"));
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| missing("name"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        WeightSpec::checked(name, shape, dtype, group, quantization, extra, self.file)
            .map_err(de::Error::custom)
    }
}

/// A supported dtype name, read without allocating it.
struct Dtype(DType);

impl<'de> Deserialize<'de> for Dtype {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Dtype, D::Error> {
        d.deserialize_str(DtypeVisitor)
    }
}

struct DtypeVisitor;

impl Visitor<'_> for DtypeVisitor {
    type Value = Dtype;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a supported dtype")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Dtype, E> {
        DType::parse(s)
            .map(Dtype)
            .ok_or_else(|| E::custom("unsupported dtype"))
    }
}

/// An entry key: one of the known ones (no allocation), or any other.
enum Key {
    Known(&'static str),
    Other(String),
}
impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Key, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Key, E> {
        const KNOWN: [&str; 5] = ["name", "shape", "dtype", "group", "quantization"];
        Ok(match KNOWN.iter().find(|k| **k == s) {
            Some(k) => Key::Known(k),
            None => Key::Other(s.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "m/model.json";

    /// A model.json with the manifest features real files have: two groups (one optimizer),
    /// quantized entries, unknown keys at every level, a name with an escape, fields before and
    /// after the manifest.
    fn varied() -> Value {
        json!({
            "format": "layers-model",
            "generatedBy": "keras v3.15",
            "modelTopology": {"class_name": "Sequential", "config": {"name": "s\u{e9}q", "layers": []}},
            "weightsManifest": [
                {"paths": ["group1-shard1of1.bin"], "note": 1, "weights": [
                    {"name": "dense/kernel", "shape": [3, 2], "dtype": "float32"},
                    {"dtype": "float32", "shape": [2], "name": "dense/b\"ias", "extra": [1, {"a": null}]},
                    {"name": "emb/embeddings", "shape": [4, 2], "dtype": "float32",
                     "quantization": {"dtype": "uint8", "min": -1.5, "scale": 0.01, "original_dtype": "float32"}},
                    {"name": "half", "shape": [], "dtype": "float32", "quantization": {"dtype": "float16"}},
                    {"name": "count", "shape": [1], "dtype": "int32", "group": null}
                ]},
                {"paths": ["a.bin", "b.bin"], "weights": [
                    {"name": "iter", "shape": [], "dtype": "int32", "group": "optimizer"}
                ]}
            ],
            "trainingConfig": {"loss": "mse"},
            "userDefinedMetadata": {"k": [1, 2.5]}
        })
    }

    fn both(bytes: &[u8]) -> (Result<Parsed>, Result<Parsed>) {
        (
            parse(Path::new(FILE), bytes),
            general(Path::new(FILE), bytes),
        )
    }

    fn same(fast: &Parsed, slow: &Parsed) {
        assert_eq!(fast.weights, slow.weights);
        assert_eq!(fast.groups, slow.groups);
        let keys = |p: &Parsed| p.fields.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(fast), keys(slow), "field order");
        for (k, v) in &fast.fields {
            if k != "modelTopology" {
                assert_eq!(v, &slow.fields[k], "{k}");
            }
        }
        let topology = fast
            .topology
            .as_ref()
            .expect("held as text")
            .value()
            .unwrap();
        assert_eq!(topology, &slow.fields["modelTopology"]);
    }

    #[test]
    fn the_fast_path_reads_what_the_general_path_reads() {
        let text = serde_json::to_vec_pretty(&varied()).unwrap();
        let (fast, slow) = both(&text);
        let (fast, slow) = (fast.unwrap(), slow.unwrap());
        assert!(slow.topology.is_none());
        same(&fast, &slow);
        assert_eq!(fast.weights.len(), 6);
        assert_eq!(fast.groups[0].count, 5);
        assert_eq!(fast.weights[1].extra["extra"], json!([1, {"a": null}]));
        assert_eq!(fast.groups[0].extra["note"], json!(1));
    }

    #[test]
    fn the_topology_is_written_back_as_its_source_text() {
        // Spacing, key order and number spelling the parser would not reproduce.
        let topology =
            r#"{ "class_name":"Sequential" ,"config":{"layers":[],"x":1.50,"name":"s"}}"#;
        let text = format!(r#"{{"modelTopology": {topology}, "weightsManifest": []}}"#);
        let parsed = parse(Path::new(FILE), text.as_bytes()).unwrap();
        assert_eq!(parsed.topology.as_ref().unwrap().text().get(), topology);
        let spec = crate::format::ModelSpec {
            fields: parsed.fields,
            weights: parsed.weights,
            layout: crate::format::Layout {
                style: crate::format::Style::Node,
                groups: Vec::new(),
                group_of: Vec::new(),
            },
            topology_text: parsed.topology,
        };
        let out = serde_json::to_string(&spec.model_json(json!([]))).unwrap();
        assert_eq!(
            out,
            format!(r#"{{"modelTopology":{topology},"weightsManifest":[]}}"#)
        );
        assert_eq!(spec.topology().unwrap()["config"]["x"], json!(1.5));
    }

    /// Inputs the fast path hands to the general one; each must come out exactly as the general
    /// path reads it (the same value or the same error).
    #[test]
    fn anything_unusual_gets_the_general_paths_answer() {
        let entry = |e: Value| {
            let mut v = varied();
            v["weightsManifest"][0]["weights"][0] = e;
            v.to_string()
        };
        let cases = [
            entry(json!({"name": "", "shape": [1], "dtype": "float32"})),
            entry(json!({"name": 3, "shape": [1], "dtype": "float32"})),
            entry(json!({"shape": [1], "dtype": "float32"})),
            entry(json!({"name": "x", "shape": [1.0], "dtype": "float32"})),
            entry(json!({"name": "x", "shape": [-1], "dtype": "float32"})),
            entry(json!({"name": "x", "shape": "1", "dtype": "float32"})),
            entry(json!({"name": "x", "shape": [1], "dtype": "float64"})),
            entry(json!({"name": "x", "shape": [1], "dtype": "int32", "quantization": {"dtype": "float16"}})),
            entry(json!({"name": "x", "shape": [1], "dtype": "float32", "group": 7})),
            entry(json!({"name": "x", "shape": [4294967296u64, 4294967296u64], "dtype": "float32"})),
            entry(json!("not an object")),
            entry(json!({"name": "dense/b\"ias", "shape": [2], "dtype": "float32"})),
            r#"{"modelTopology": {}, "weightsManifest": [{"paths": ["a"], "weights": [{"na\u006de": "x", "shape": [], "dtype": "bool"}]}]}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": [{"paths": ["a"], "weights": [], "weights": [{"name": "x", "shape": [], "dtype": "bool"}]}]}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": [{"paths": [1], "weights": []}]}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": [{"weights": []}]}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": [{"paths": []}]}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": [7]}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": {}}"#.into(),
            r#"{"modelTopology": {}, "weightsManifest": null}"#.into(),
            r#"{"modelTopology": [], "weightsManifest": []}"#.into(),
            r#"{"modelTopology": "x"}"#.into(),
            r#"{"weightsManifest": []}"#.into(),
            r#"[]"#.into(),
            r#"{"modelTopology": {}} trailing"#.into(),
            r#"{"modelTopology": {"a": [1, }}"#.into(),
            r#"{"modelTopology": {}, "modelTopology": {"b": 1}}"#.into(),
        ];
        for case in &cases {
            match both(case.as_bytes()) {
                (Ok(fast), Ok(slow)) => match fast.topology {
                    Some(_) => same(&fast, &slow),
                    None => assert_eq!(fast.weights, slow.weights, "{case}"),
                },
                (Err(fast), Err(slow)) => assert_eq!(fast.to_string(), slow.to_string(), "{case}"),
                (fast, slow) => panic!("{case}: fast {:?} vs general {:?}", fast.err(), slow.err()),
            }
        }
    }

    #[test]
    fn a_topology_too_deep_to_parse_says_so() {
        let deep = "[".repeat(300) + &"]".repeat(300);
        let text = format!(r#"{{"modelTopology": {{"config": {deep}}}}}"#);
        match parse(Path::new(FILE), text.as_bytes()) {
            Ok(p) => {
                let why = p.topology.unwrap().value().unwrap_err().to_string();
                assert!(why.contains("recursion limit"), "{why}");
            }
            Err(e) => assert!(e.to_string().contains("recursion limit"), "{e}"),
        }
    }
}
