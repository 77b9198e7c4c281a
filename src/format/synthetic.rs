//! Synthetic models for tests and benchmarks: a given number of float32 tensors summing to a
//! given size, filled with seeded values.

use super::manifest::WeightSpec;
use super::store::{Backing, Span, WeightStore};
use super::{Artifacts, Container, GroupLayout, Layout, ModelSpec, Style};
use crate::dtype::DType;
use crate::error::Result;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// A model whose weights are `shapes` (float32, named `synthetic/w<i>`, no layers), values from
/// a seeded generator.
pub fn from_shapes(shapes: &[Vec<usize>], seed: u64) -> Result<Artifacts> {
    let named: Vec<(String, Vec<usize>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("synthetic/w{i}"), s.clone()))
        .collect();
    build(
        &named,
        json!({"class_name": "Sequential", "config": {"name": "synthetic", "layers": []}}),
        seed,
        1.0,
    )
}

/// A Sequential stack of square Dense layers (`dense_<k>/kernel` `[d, d]`, `dense_<k>/bias`
/// `[d]`) with `tensors` weights summing to about `total_bytes`: a model real TF.js loads, with
/// the realistic mix of large kernels and small biases. An odd `tensors` drops the last bias.
pub fn mlp(total_bytes: u64, tensors: usize) -> Result<Artifacts> {
    dense_stack(total_bytes, tensors, "linear", false)
}

/// [`mlp`] with `activation` on every layer; `contracting` draws the weights with standard
/// deviation 0.5/√d, so that each layer contracts and a deep stack's predictions stay stable
/// (weights of order 1 make a deep tanh stack chaotic).
pub fn dense_stack(
    total_bytes: u64,
    tensors: usize,
    activation: &str,
    contracting: bool,
) -> Result<Artifacts> {
    let tensors = tensors.max(1);
    let layers = tensors.div_ceil(2);
    let d = ((total_bytes / 4 / layers as u64) as f64).sqrt().max(1.0) as usize;
    let mut named = Vec::with_capacity(tensors);
    let mut configs = Vec::with_capacity(layers);
    for k in 1..=layers {
        let bias = named.len() + 2 <= tensors;
        named.push((format!("dense_{k}/kernel"), vec![d, d]));
        if bias {
            named.push((format!("dense_{k}/bias"), vec![d]));
        }
        let mut config = json!({"units": d, "activation": activation, "use_bias": bias, "name": format!("dense_{k}"), "trainable": true, "dtype": "float32"});
        if k == 1 {
            config["batch_input_shape"] = json!([null, d]);
        }
        configs.push(json!({"class_name": "Dense", "config": config}));
    }
    let topology = json!({"class_name": "Sequential", "config": {"name": "synthetic", "layers": configs}, "keras_version": "tfjs-layers 4.22.0", "backend": "tensor_flow.js"});
    // Uniform in [-scale/2, scale/2): standard deviation scale/√12.
    let scale = if contracting {
        3f32.sqrt() / (d as f32).sqrt()
    } else {
        1.0
    };
    build(&named, topology, 1, scale)
}

/// A model with this `topology` and seeded float32 weights of these names and shapes.
pub fn with_topology(
    named: &[(String, Vec<usize>)],
    topology: Value,
    seed: u64,
) -> Result<Artifacts> {
    build(named, topology, seed, 1.0)
}

fn build(
    named: &[(String, Vec<usize>)],
    topology: Value,
    seed: u64,
    scale: f32,
) -> Result<Artifacts> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: fast, seeded, good enough for test data.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((bits >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut specs = Vec::with_capacity(named.len());
    let mut buffers = Vec::with_capacity(named.len());
    let mut spans = Vec::with_capacity(named.len());
    for (i, (name, shape)) in named.iter().enumerate() {
        let spec = WeightSpec::new(name.clone(), shape.clone(), DType::Float32);
        let data: Vec<u8> = (0..spec.numel())
            .flat_map(|_| (next() * scale).to_le_bytes())
            .collect();
        spans.push(vec![Span {
            buffer: i,
            start: 0,
            len: data.len(),
        }]);
        buffers.push(Backing::Owned(data));
        specs.push(spec);
    }
    let mut fields = Map::new();
    fields.insert("modelTopology".into(), topology);
    fields.insert("format".into(), Value::from("layers-model"));
    fields.insert("generatedBy".into(), Value::from("layercake synthetic"));
    fields.insert("convertedBy".into(), Value::Null);
    fields.insert("weightsManifest".into(), Value::Null);
    let n = specs.len();
    Ok(Artifacts {
        spec: ModelSpec {
            fields,
            topology_text: None,
            weights: specs,
            layout: Layout {
                style: Style::Node,
                groups: vec![GroupLayout {
                    paths: vec!["weights.bin".into()],
                    file_sizes: Vec::new(),
                    extra: Map::new(),
                }],
                group_of: vec![0; n],
            },
        },
        store: WeightStore::new(buffers, spans)?,
        origin: PathBuf::from("<synthetic>"),
        container: Container::Tfjs,
    })
}

/// Shapes of a realistic mix summing to about `total_bytes` in `tensors` tensors: square-ish
/// kernels taking most of the bytes, each followed by small bias / normalization vectors.
pub fn mixed_shapes(total_bytes: u64, tensors: usize) -> Vec<Vec<usize>> {
    let tensors = tensors.max(1);
    let kernels = (tensors / 4).max(1);
    let smalls = tensors - kernels;
    let small_len = 64usize;
    let small_bytes = (smalls * small_len * 4) as u64;
    let per_kernel = (total_bytes.saturating_sub(small_bytes) / 4 / kernels as u64).max(1) as usize;
    let rows = (per_kernel as f64).sqrt().max(1.0) as usize;
    let mut shapes = Vec::with_capacity(tensors);
    for k in 0..kernels {
        shapes.push(vec![rows, per_kernel / rows]);
        let share = smalls / kernels + usize::from(k < smalls % kernels);
        shapes.extend((0..share).map(|_| vec![small_len]));
    }
    shapes
}

/// `tensors` equal float32 vectors summing to about `total_bytes`.
pub fn uniform_shapes(total_bytes: u64, tensors: usize) -> Vec<Vec<usize>> {
    let each = (total_bytes / 4 / tensors.max(1) as u64).max(1) as usize;
    vec![vec![each]; tensors.max(1)]
}
