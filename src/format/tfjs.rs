//! TF.js LayersModel artifacts: `model.json` + weight files in any of the three styles.

use super::manifest::ManifestGroup;
use super::store::{Backing, Span, WeightStore};
use super::{
    output_bytes, output_specs, Artifacts, Container, GroupLayout, Layout, ModelSpec,
    QuantizeChoice, Style, WeightBytes, DEFAULT_SHARD_SIZE,
};
use crate::atomic;
use crate::error::{Error, Result};
use crate::storage::{ModelSink, ModelSource};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};

/// Largest model.json accepted (the JSON is parsed into memory).
pub const MAX_MODEL_JSON_BYTES: u64 = 1 << 30;

/// Read and validate `model.json` and its weight files. No weight byte is touched before every
/// path is checked to stay inside the model's directory and every group's declared byte count
/// equals the size of its files.
pub fn read(json_path: &Path) -> Result<Artifacts> {
    read_from(&mut DirSource::new(json_path)?)
}

/// Read TF.js artifacts from any [`ModelSource`]: model.json first, then each weight file in
/// manifest order, each bounded by the bytes its group still needs. Every manifest path is
/// checked to be a plain relative path before the source is asked for it.
pub fn read_from(src: &mut dyn ModelSource) -> Result<Artifacts> {
    let manifest = read_manifest(src)?;
    let json_path = manifest.json_path.clone();
    let mut buffers = Vec::new();
    let spec = manifest.read_files(|_, entry, limit| {
        let backing = src.weight_file(entry, limit)?;
        let len = backing.len() as u64;
        buffers.push(backing);
        Ok(len)
    })?;
    let spans = weight_spans(&spec.layout.groups, &spec.weights, &spec.layout.group_of);
    Ok(Artifacts {
        spec,
        store: WeightStore::new(buffers, spans)?,
        origin: json_path,
        container: Container::Tfjs,
    })
}

/// model.json read and parsed, its manifest taken out and every path checked: what a reader
/// needs before the weight files.
pub struct Manifest {
    /// model.json's path or URL.
    pub json_path: PathBuf,
    /// model.json's fields (the manifest, and the topology when held as text, left as Null in
    /// their places).
    pub fields: Map<String, Value>,
    topology: Option<std::sync::Arc<super::model_json::Topology>>,
    groups: Vec<ManifestGroup>,
    /// Every weight, in manifest order.
    pub weights: Vec<super::manifest::WeightSpec>,
}

/// Read model.json from `src`, parse its manifest and check every path in it.
pub fn read_manifest(src: &mut dyn ModelSource) -> Result<Manifest> {
    let json_path = src.origin().to_path_buf();
    let bytes = src.model_json(MAX_MODEL_JSON_BYTES)?;
    // The manifest comes out as weight specs (a Null stays in its place, so a re-save writes
    // it there again).
    let parsed = super::model_json::parse(&json_path, &bytes)?;
    drop(bytes);
    let (fields, groups, weights) = (parsed.fields, parsed.groups, parsed.weights);
    for entry in groups.iter().flat_map(|g| &g.paths) {
        check_entry(&json_path, entry)?;
    }
    src.begin(
        weights
            .iter()
            .fold(0u64, |acc, w| acc.saturating_add(w.stored_len() as u64)),
    );
    Ok(Manifest {
        json_path,
        fields,
        topology: parsed.topology,
        groups,
        weights,
    })
}

impl Manifest {
    /// The group of each weight.
    pub fn group_of(&self) -> Vec<usize> {
        group_index(&self.groups)
    }

    /// Each group's weight files, in order.
    pub fn files(&self) -> impl Iterator<Item = (usize, &str)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| group.paths.iter().map(move |p| (g, p.as_str())))
    }

    /// Read every weight file in manifest order: `file(group, entry, limit)` reads one and
    /// returns its size (`limit`: the bytes its group still needs). Then the spec, once every
    /// group's files are checked to hold exactly what its weights need.
    pub fn read_files(
        self,
        mut file: impl FnMut(usize, &str, u64) -> Result<u64>,
    ) -> Result<ModelSpec> {
        let json_path = &self.json_path;
        let mut layouts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut first = 0;
        for (g, group) in self.groups.iter().enumerate() {
            let need = group_bytes(json_path, g, &self.weights[first..first + group.count])?;
            first += group.count;
            let (mut have, mut sizes) = (0u64, Vec::new());
            for entry in &group.paths {
                if !seen.insert(entry.trim_start_matches("./")) {
                    return Err(listed_twice(json_path, entry));
                }
                let len = file(g, entry, need.saturating_sub(have))?;
                have += len;
                sizes.push(len);
            }
            layouts.push(GroupLayout {
                paths: group.paths.clone(),
                file_sizes: sizes,
                extra: group.extra.clone(),
            });
        }
        check_group_sizes(json_path, &self.groups, &layouts, &self.weights)?;
        let style = detect_style(&layouts);
        Ok(ModelSpec {
            layout: Layout {
                style,
                groups: layouts,
                group_of: group_index(&self.groups),
            },
            fields: self.fields,
            weights: self.weights,
            topology_text: self.topology,
        })
    }
}

fn listed_twice(json_path: &Path, entry: &str) -> Error {
    Error::format(json_path, format!("weight file '{entry}' is listed twice"))
}

/// The bytes a group's weights need, by the manifest.
fn group_bytes(json_path: &Path, g: usize, specs: &[super::manifest::WeightSpec]) -> Result<u64> {
    specs
        .iter()
        .try_fold(0u64, |acc, w| acc.checked_add(w.stored_len() as u64))
        .ok_or_else(|| Error::format(json_path, format!("group {}: weight sizes overflow", g + 1)))
}

/// A model in a local directory, read through memory maps.
pub struct DirSource {
    json_path: PathBuf,
    canonical_dir: PathBuf,
    seen: std::collections::HashSet<PathBuf>,
}

impl DirSource {
    /// The model whose model.json is `json_path`.
    pub fn new(json_path: &Path) -> Result<DirSource> {
        let dir = match json_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Ok(DirSource {
            json_path: json_path.to_path_buf(),
            canonical_dir: dir.canonicalize().map_err(|e| Error::io(dir, e))?,
            seen: Default::default(),
        })
    }
}

impl ModelSource for DirSource {
    fn origin(&self) -> &Path {
        &self.json_path
    }

    fn model_json(&mut self, limit: u64) -> Result<Vec<u8>> {
        let path = &self.json_path;
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > limit {
            return Err(too_big(path, meta.len(), limit));
        }
        std::fs::read(path).map_err(|e| Error::io(path, e))
    }

    fn weight_file(&mut self, entry: &str, _limit: u64) -> Result<Backing> {
        // Sizes are checked against the manifest once every file is open (mapping reads nothing).
        let path = resolve_weight_path(&self.json_path, &self.canonical_dir, entry)?;
        if !self.seen.insert(path.clone()) {
            return Err(listed_twice(&self.json_path, entry));
        }
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Backing::map(&path, &file, len)
    }
}

fn too_big(path: &Path, len: u64, limit: u64) -> Error {
    Error::format(
        path,
        format!("model.json is {len} bytes, over the {limit}-byte limit"),
    )
}

/// Parse model.json into its top-level fields; it must be a JSON object with a `modelTopology`.
pub fn read_model_json(path: &Path) -> Result<Map<String, Value>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_MODEL_JSON_BYTES {
        return Err(too_big(path, meta.len(), MAX_MODEL_JSON_BYTES));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_model_json(path, &bytes)
}

/// Parse model.json's bytes (read from `path`, named in errors) into its top-level fields.
pub fn parse_model_json(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::json(path, e))?;
    let Value::Object(fields) = value else {
        return Err(Error::json(path, "the top level is not an object"));
    };
    match fields.get("modelTopology") {
        Some(Value::Object(_)) => Ok(fields),
        Some(_) => Err(Error::format(
            path,
            "'modelTopology' is not a JSON object (binary GraphDef models are not layers models)",
        )),
        None => Err(Error::format(
            path,
            "no 'modelTopology': not a TF.js layers model",
        )),
    }
}

/// Refuse a manifest path that is not a plain relative path (empty, NUL, URL, absolute, `..`).
pub fn check_entry(json_path: &Path, entry: &str) -> Result<()> {
    let unsafe_path = |reason: &str| Error::UnsafePath {
        path: json_path.to_path_buf(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    if entry.is_empty() {
        return Err(unsafe_path("it is empty"));
    }
    if entry.contains('\0') {
        return Err(unsafe_path("it holds a NUL byte"));
    }
    if entry.contains("://") {
        return Err(unsafe_path(
            "it is a URL, not a path relative to model.json",
        ));
    }
    // Resolved against a URL, `%2e%2e` is `..` and `?` / `#` end the path.
    let lower = entry.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) || entry.contains(['?', '#']) {
        return Err(unsafe_path(
            "it holds an escaped '.', '/' or '\\', or a '?' or '#'",
        ));
    }
    let rel = Path::new(entry);
    if rel.is_absolute()
        || entry.starts_with('/')
        || entry.starts_with('\\')
        || entry.get(1..2) == Some(":")
    {
        return Err(unsafe_path("it is absolute"));
    }
    if entry.split(['/', '\\']).any(|c| c == "..")
        || rel.components().any(|c| c == Component::ParentDir)
    {
        return Err(unsafe_path("it goes up with '..'"));
    }
    Ok(())
}

/// Resolve a manifest path (already [`check_entry`]-ed) against the model's directory, refusing
/// a symbolic link that leaves it.
fn resolve_weight_path(json_path: &Path, canonical_dir: &Path, entry: &str) -> Result<PathBuf> {
    let unsafe_path = |reason: &str| Error::UnsafePath {
        path: json_path.to_path_buf(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let rel = Path::new(entry);
    let joined = canonical_dir.join(rel);
    let resolved = match joined.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::format(
                json_path,
                format!(
                    "weight file '{entry}' does not exist ({})",
                    joined.display()
                ),
            ))
        }
        Err(e) => return Err(Error::io(&joined, e)),
    };
    if !resolved.starts_with(canonical_dir) {
        return Err(unsafe_path(
            "it resolves outside the model's directory (through a symbolic link)",
        ));
    }
    if !resolved.is_file() {
        return Err(Error::format(
            json_path,
            format!("weight file '{entry}' is not a regular file"),
        ));
    }
    Ok(resolved)
}

fn group_index(groups: &[ManifestGroup]) -> Vec<usize> {
    groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| std::iter::repeat_n(g, group.count))
        .collect()
}

/// Every group's weights must need exactly the bytes its files hold.
fn check_group_sizes(
    json_path: &Path,
    groups: &[ManifestGroup],
    layouts: &[GroupLayout],
    weights: &[super::manifest::WeightSpec],
) -> Result<()> {
    let mut first = 0;
    for (g, (group, layout)) in groups.iter().zip(layouts).enumerate() {
        let specs = &weights[first..first + group.count];
        first += group.count;
        let need = group_bytes(json_path, g, specs)?;
        let have: u64 = layout.file_sizes.iter().sum();
        if need == have {
            continue;
        }
        let odd = odd_shard(layout);
        if need > have {
            let (weight, start) = first_weight_past(specs, have);
            let mut msg = format!(
                "group {}: the manifest's weights need {need} bytes but the files hold {have} ({} missing); weight '{weight}' (bytes {start}..{} of the group) runs past the end of the data",
                g + 1,
                need - have,
                start + specs.iter().find(|w| w.name == weight).map_or(0, |w| w.stored_len() as u64),
            );
            if let Some(o) = odd {
                msg.push_str(&format!("; {o}"));
            } else if let Some(last) = layout.paths.last() {
                msg.push_str(&format!("; is '{last}' truncated or a shard missing?"));
            }
            return Err(Error::format(json_path, msg));
        }
        let extra = have - need;
        let last = layout.paths.last().cloned().unwrap_or_default();
        let last_size = layout.file_sizes.last().copied().unwrap_or(0);
        let mut msg = format!(
            "group {}: the files hold {have} bytes but the manifest's weights need only {need}: {extra} extra bytes at the end of '{last}' (from offset {} of that file)",
            g + 1,
            last_size.saturating_sub(extra),
        );
        if let Some(o) = odd {
            msg.push_str(&format!("; {o}"));
        }
        return Err(Error::format(json_path, msg));
    }
    Ok(())
}

/// In a converter group, every shard but the last has the same size: name one that differs.
fn odd_shard(layout: &GroupLayout) -> Option<String> {
    let sizes = &layout.file_sizes;
    if sizes.len() < 3 {
        return None;
    }
    let common = sizes[0].max(sizes[1]);
    let inner = &sizes[..sizes.len() - 1];
    let (i, &size) = inner.iter().enumerate().find(|(_, &s)| s != common)?;
    Some(format!(
        "'{}' holds {size} bytes where the group's other shards hold {common}",
        layout.paths[i]
    ))
}

fn first_weight_past(specs: &[super::manifest::WeightSpec], have: u64) -> (String, u64) {
    let mut offset = 0u64;
    for w in specs {
        let end = offset + w.stored_len() as u64;
        if end > have {
            return (w.name.clone(), offset);
        }
        offset = end;
    }
    (String::new(), offset)
}

/// Locate each weight in its group's files: a list of (file, offset, len) pieces.
fn weight_spans(
    layouts: &[GroupLayout],
    weights: &[super::manifest::WeightSpec],
    group_of: &[usize],
) -> Vec<Vec<Span>> {
    let mut file_base = Vec::new(); // index of each group's first file in the flat buffer list
    let mut n = 0;
    for l in layouts {
        file_base.push(n);
        n += l.paths.len();
    }
    let mut offsets = vec![0u64; layouts.len()];
    weights
        .iter()
        .zip(group_of)
        .map(|(w, &g)| {
            let start = offsets[g];
            let len = w.stored_len() as u64;
            offsets[g] += len;
            spans_in_group(&layouts[g].file_sizes, file_base[g], start, len)
        })
        .collect()
}

fn spans_in_group(sizes: &[u64], base: usize, start: u64, len: u64) -> Vec<Span> {
    let mut spans = Vec::new();
    let (mut pos, end) = (start, start + len);
    let mut file_start = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        let file_end = file_start + size;
        if pos < end && pos < file_end && size > 0 {
            let take = end.min(file_end) - pos;
            spans.push(Span {
                buffer: base + i,
                start: (pos - file_start) as usize,
                len: take as usize,
            });
            pos += take;
        }
        file_start = file_end;
    }
    spans
}

/// Recognize the three styles real tools write; anything else is `Custom`.
pub fn detect_style(groups: &[GroupLayout]) -> Style {
    if let [g] = groups {
        match g.paths.as_slice() {
            [p] if p == "weights.bin" => return Style::Node,
            [p] if p == "./model.weights.bin" => return Style::Downloads,
            _ => {}
        }
    }
    shard_size(groups).map_or(Style::Custom, |shard_size| Style::Shards { shard_size })
}

/// The shard size that reproduces these converter groups' paths and cuts, if there is one.
fn shard_size(groups: &[GroupLayout]) -> Option<u64> {
    if groups.is_empty() {
        return None;
    }
    let named = groups
        .iter()
        .enumerate()
        .all(|(g, l)| l.paths == shard_names(g, l.paths.len()));
    if !named {
        return None;
    }
    let multi: Vec<u64> = groups
        .iter()
        .filter(|l| l.file_sizes.len() > 1)
        .map(|l| l.file_sizes[0])
        .collect();
    let size = match multi.first() {
        Some(&s) => s,
        None => groups
            .iter()
            .flat_map(|l| l.file_sizes.iter().copied())
            .max()
            .unwrap_or(0)
            .max(DEFAULT_SHARD_SIZE),
    };
    let fits = groups.iter().all(|l| {
        let (last, inner) = l.file_sizes.split_last().unwrap_or((&0, &[]));
        inner.iter().all(|&s| s == size) && *last <= size && (*last > 0 || l.file_sizes.len() <= 1)
    });
    (size > 0 && fits).then_some(size)
}

/// `group{g+1}-shard{i}of{n}.bin` for i in 1..=n.
fn shard_names(g: usize, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| format!("group{}-shard{i}of{n}.bin", g + 1))
        .collect()
}

/// Options for writing TF.js artifacts.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// Style to write; `None` keeps the source's style.
    pub style: Option<Style>,
    /// Quantization policy.
    pub quantize: QuantizeChoice,
    /// fsync before and after the switch.
    pub durable: bool,
    /// Record each weight file's hash in the metadata ([`super::integrity`]).
    pub hashes: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            style: None,
            quantize: QuantizeChoice::Keep,
            durable: true,
            hashes: false,
        }
    }
}

/// What a write produced.
#[derive(Clone, Debug)]
pub struct WriteReport {
    /// The style written.
    pub style: Style,
    /// Files written (relative to the directory), model.json last.
    pub files: Vec<String>,
    /// Weight bytes written.
    pub weight_bytes: u64,
}

/// Write `spec` + weight bytes as TF.js artifacts into directory `dst`, atomically replacing a
/// model already there (files beside it that are not part of that model are kept).
pub fn write(
    dst: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: WriteOptions,
) -> Result<WriteReport> {
    let mut sink = DirSink::new(dst, opts.durable)?;
    let report = write_to(&mut sink, spec, data, opts)?;
    Box::new(sink).commit()?;
    Ok(report)
}

/// A TF.js model directory written through a temporary sibling and switched in atomically on
/// commit (files beside the old model that are not part of it are kept); dropped uncommitted,
/// nothing changes.
pub struct DirSink {
    staged: atomic::StagedDir,
    durable: bool,
}

impl DirSink {
    /// A sink replacing the model in directory `dst`; `durable`: fsync before and after the switch.
    pub fn new(dst: &Path, durable: bool) -> Result<DirSink> {
        Ok(DirSink {
            staged: atomic::StagedDir::new(dst)?,
            durable,
        })
    }
}

impl ModelSink for DirSink {
    fn origin(&self) -> &Path {
        self.staged.destination()
    }

    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>> {
        self.create_sized(name, 0)
    }

    fn create_sized(&mut self, name: &str, len: u64) -> Result<Box<dyn Write + Send>> {
        file_writer(&self.staged.path().join(name.trim_start_matches("./")), len)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let old = old_model_files(self.staged.destination());
        let keep = |name: &str| !old.iter().any(|f| f == name);
        self.staged.commit(keep, self.durable)
    }
}

/// Names of the files that make up the model currently in `dir` (model.json and its manifest
/// paths' first components); empty when there is none.
fn old_model_files(dir: &Path) -> Vec<String> {
    let json = dir.join("model.json");
    let Ok(fields) = read_model_json(&json) else {
        return if json.exists() {
            vec!["model.json".into()]
        } else {
            Vec::new()
        };
    };
    let mut names = vec!["model.json".to_string()];
    if let Some(Value::Array(groups)) = fields.get("weightsManifest") {
        for g in groups {
            for p in g
                .get("paths")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(first) = p
                    .as_str()
                    .and_then(|s| s.trim_start_matches("./").split('/').next())
                {
                    names.push(first.to_string());
                }
            }
        }
    }
    names
}

/// The groups to write: each a list of weight indices and its files (name, size).
struct PlannedGroup {
    weights: Vec<usize>,
    files: Vec<(String, u64)>,
    extra: Map<String, Value>,
}

fn plan_groups(spec: &ModelSpec, style: Style, out_sizes: &[u64]) -> (Style, Vec<PlannedGroup>) {
    let all: Vec<usize> = (0..spec.weights.len()).collect();
    let total: u64 = out_sizes.iter().sum();
    let single = |path: &str| PlannedGroup {
        weights: all.clone(),
        files: vec![(path.to_string(), total)],
        extra: Map::new(),
    };
    let source_groups = || -> Vec<(Vec<usize>, Map<String, Value>)> {
        let n = spec.layout.groups.len().max(1);
        (0..n)
            .map(|g| {
                let ws = all
                    .iter()
                    .copied()
                    .filter(|&i| spec.layout.group_of.get(i).copied().unwrap_or(0) == g)
                    .collect();
                let extra = spec
                    .layout
                    .groups
                    .get(g)
                    .map(|l| l.extra.clone())
                    .unwrap_or_default();
                (ws, extra)
            })
            .collect()
    };
    match style {
        Style::Node => (style, vec![single("weights.bin")]),
        Style::Downloads => (style, vec![single("./model.weights.bin")]),
        Style::Custom => {
            let groups: Vec<PlannedGroup> = source_groups()
                .into_iter()
                .zip(&spec.layout.groups)
                .map(|((weights, extra), l)| PlannedGroup {
                    weights,
                    files: l
                        .paths
                        .iter()
                        .cloned()
                        .zip(l.file_sizes.iter().copied())
                        .collect(),
                    extra,
                })
                .collect();
            let same = !groups.is_empty()
                && groups.iter().all(|g| {
                    g.files.iter().map(|f| f.1).sum::<u64>()
                        == g.weights.iter().map(|&i| out_sizes[i]).sum::<u64>()
                });
            if same {
                (style, groups)
            } else {
                plan_groups(
                    spec,
                    Style::Shards {
                        shard_size: DEFAULT_SHARD_SIZE,
                    },
                    out_sizes,
                )
            }
        }
        Style::Shards { shard_size } => {
            let groups = source_groups()
                .into_iter()
                .enumerate()
                .map(|(g, (weights, extra))| {
                    let bytes: u64 = weights.iter().map(|&i| out_sizes[i]).sum();
                    let n = bytes.div_ceil(shard_size) as usize;
                    let files = shard_names(g, n)
                        .into_iter()
                        .enumerate()
                        .map(|(k, name)| (name, shard_size.min(bytes - k as u64 * shard_size)))
                        .collect();
                    PlannedGroup {
                        weights,
                        files,
                        extra,
                    }
                })
                .collect();
            (style, groups)
        }
    }
}

/// Write the model's files into `dir` (no atomicity here; see [`write`]).
pub fn write_into(
    dir: &Path,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: WriteOptions,
) -> Result<WriteReport> {
    write_to(&mut PlainDir(dir.to_path_buf()), spec, data, opts)
}

/// A buffered writer of a new file at `path` that will hold `len` bytes (space reserved).
fn file_writer(path: &Path, len: u64) -> Result<Box<dyn Write + Send>> {
    let file = atomic::create_sized(path, len)?;
    Ok(Box::new(BufWriter::with_capacity(1 << 20, file)))
}

/// Files created straight in a directory.
struct PlainDir(PathBuf);

impl ModelSink for PlainDir {
    fn origin(&self) -> &Path {
        &self.0
    }
    fn create(&mut self, name: &str) -> Result<Box<dyn Write + Send>> {
        self.create_sized(name, 0)
    }
    fn create_sized(&mut self, name: &str, len: u64) -> Result<Box<dyn Write + Send>> {
        file_writer(&self.0.join(name.trim_start_matches("./")), len)
    }
    fn commit(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Write the model's files into `sink` (the caller commits it). Each file's xxh3 is computed as
/// it is written, for `opts.hashes`.
pub fn write_to(
    sink: &mut dyn ModelSink,
    spec: &ModelSpec,
    data: &dyn WeightBytes,
    opts: WriteOptions,
) -> Result<WriteReport> {
    let style = opts.style.unwrap_or(spec.layout.style);
    let out_specs = output_specs(spec, data, opts.quantize)?;
    let sizes: Vec<u64> = out_specs.iter().map(|w| w.stored_len() as u64).collect();
    let (style, groups) = plan_groups(spec, style, &sizes);
    let order: Vec<usize> = groups
        .iter()
        .flat_map(|g| g.weights.iter().copied())
        .collect();
    data.will_read(&order);
    let mut manifest = Vec::new();
    let mut files = Vec::new();
    let mut hashes = Map::new();
    let mut weight_bytes = 0;
    for group in &groups {
        let mut out = ShardWriter::new(sink, &group.files, opts.hashes);
        let mut entries = Vec::new();
        for &i in &group.weights {
            let bytes = output_bytes(&spec.weights[i], &out_specs[i], i, data)?;
            out.write_all(&bytes).map_err(|e| out.error(e))?;
            weight_bytes += bytes.len() as u64;
            entries.push(out_specs[i].to_json());
        }
        hashes.extend(out.finish()?);
        let mut obj = Map::new();
        obj.insert(
            "paths".into(),
            Value::from(group.files.iter().map(|f| f.0.clone()).collect::<Vec<_>>()),
        );
        obj.insert("weights".into(), Value::Array(entries));
        obj.extend(group.extra.clone());
        manifest.push(Value::Object(obj));
        files.extend(
            group
                .files
                .iter()
                .map(|f| f.0.trim_start_matches("./").to_string()),
        );
    }
    let mut json = spec.model_json(Value::Array(manifest));
    if opts.hashes {
        let record = serde_json::json!({"algorithm": super::integrity::ALGORITHM, "files": hashes});
        super::integrity::set_metadata(&mut json.fields, "hashes", record);
    }
    let json_path = sink.origin().join("model.json");
    let text = serde_json::to_vec(&json).map_err(|e| Error::json(&json_path, e))?;
    let mut w = sink.create("model.json")?;
    w.write_all(&text)
        .and_then(|()| w.flush())
        .map_err(|e| Error::io(&json_path, e))?;
    files.push("model.json".into());
    Ok(WriteReport {
        style,
        files,
        weight_bytes,
    })
}

/// Streams one group's bytes across its files, switching file at each planned size and, when
/// asked, hashing each file as it goes (xxh3 costs ~10 ms of a 256 MiB save: only on request).
struct ShardWriter<'a> {
    sink: &'a mut dyn ModelSink,
    files: &'a [(String, u64)],
    index: usize,
    left: u64,
    current: Option<Box<dyn Write + Send>>,
    hasher: Option<xxhash_rust::xxh3::Xxh3>,
    hashes: Map<String, Value>,
}

impl<'a> ShardWriter<'a> {
    fn new(sink: &'a mut dyn ModelSink, files: &'a [(String, u64)], hash: bool) -> Self {
        ShardWriter {
            sink,
            files,
            index: 0,
            left: 0,
            current: None,
            hasher: hash.then(Default::default),
            hashes: Map::new(),
        }
    }

    fn name(&self) -> &str {
        let i = self.index.min(self.files.len().saturating_sub(1));
        self.files
            .get(i)
            .map_or("", |f| f.0.trim_start_matches("./"))
    }

    fn error(&self, e: std::io::Error) -> Error {
        Error::io(self.sink.origin().join(self.name()), e)
    }

    /// Finish the open file (flush, record its hash).
    fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.current.take() {
            w.flush()?;
            if let Some(h) = &mut self.hasher {
                let hash = super::integrity::hex(h.digest());
                h.reset();
                self.hashes
                    .insert(self.name().to_string(), Value::from(hash));
            }
            self.index += 1;
        }
        Ok(())
    }

    fn open_next(&mut self) -> std::io::Result<()> {
        self.close()?;
        let Some((_, size)) = self.files.get(self.index) else {
            return Err(std::io::Error::other(
                "more weight bytes than the planned files hold",
            ));
        };
        self.left = *size;
        let name = self.name().to_string();
        let w = self
            .sink
            .create_sized(&name, *size)
            .map_err(std::io::Error::other)?;
        self.current = Some(w);
        Ok(())
    }

    /// Files planned but not opened yet.
    fn unopened(&self) -> usize {
        let opened = self.index + usize::from(self.current.is_some());
        self.files.len().saturating_sub(opened)
    }

    /// Check every planned byte was written; create planned files not reached (empty ones).
    /// Returns each file's hash.
    fn finish(mut self) -> Result<Map<String, Value>> {
        loop {
            if self.left > 0 {
                let msg = format!("internal: {} bytes short in {}", self.left, self.name());
                return Err(Error::Usage(msg));
            }
            if self.unopened() == 0 {
                break;
            }
            self.open_next().map_err(|e| self.error(e))?;
        }
        self.close().map_err(|e| self.error(e))?;
        Ok(self.hashes)
    }
}

impl Write for ShardWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_none() || self.left == 0 {
            self.open_next()?;
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let w = self.current.as_mut().expect("opened above");
        w.write_all(&buf[..n])?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.current.as_mut().map_or(Ok(()), |w| w.flush())
    }
}
