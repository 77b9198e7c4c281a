//! Synthetic models for tests and benchmarks: a given number of float32 tensors summing to a
//! given size, filled with seeded values.

use super::manifest::WeightSpec;
use super::store::{Backing, Span, WeightStore};
use super::{Artifacts, Container, GroupLayout, Layout, ModelSpec, Style};
use crate::dtype::DType;
use crate::error::Result;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// A model whose weights are `shapes` (float32), values from a seeded generator.
pub fn from_shapes(shapes: &[Vec<usize>], seed: u64) -> Result<Artifacts> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: fast, seeded, good enough for test data.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((bits >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut specs = Vec::with_capacity(shapes.len());
    let mut buffers = Vec::with_capacity(shapes.len());
    let mut spans = Vec::with_capacity(shapes.len());
    for (i, shape) in shapes.iter().enumerate() {
        let spec = WeightSpec::new(format!("synthetic/w{i}"), shape.clone(), DType::Float32);
        let data: Vec<u8> = (0..spec.numel())
            .flat_map(|_| next().to_le_bytes())
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
    fields.insert(
        "modelTopology".into(),
        json!({"class_name": "Sequential", "config": {"name": "synthetic", "layers": []}}),
    );
    fields.insert("format".into(), Value::from("layers-model"));
    fields.insert("generatedBy".into(), Value::from("layercake synthetic"));
    fields.insert("convertedBy".into(), Value::Null);
    fields.insert("weightsManifest".into(), Value::Null);
    let n = specs.len();
    Ok(Artifacts {
        spec: ModelSpec {
            fields,
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
