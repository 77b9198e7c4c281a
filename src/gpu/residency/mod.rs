//! Weights resident on the GPU: files → GPU buffers in one copy, GPU → host in batched readbacks.
//!
//! Load: every weight gets a place in a GPU buffer. Small tensors (biases, normalization vectors)
//! share arenas, so hundreds of them cost a few allocations and mappings; a tensor larger than the
//! device's storage binding limit is split into chunks, each its own buffer. Buffers are created
//! mapped, and each weight's bytes are copied straight from the memory-mapped shard files into the
//! mapping (a weight that straddles shards is assembled in place). Quantized weights are uploaded
//! in their compact form and expanded by the `dequantize` kernel.
//!
//! Readback: on adapters sharing memory with the host the storage buffers themselves are mapped
//! (wgpu's `MAPPABLE_PRIMARY_BUFFERS`); otherwise one encoder copies a batch of weights into a
//! MAP_READ staging buffer, one submit, one map, one wait per batch, batches bounded by a budget.

//!
//! Files: `placement` (where each weight goes), `upload` (the streamed copy into mapped
//! buffers), `dequantize` (compact codes expanded on the device), `readback` (GPU → host for
//! saving and hashing), `scan` (the NaN/Inf scan of the post-load checks).

mod dequantize;
mod placement;
mod readback;
mod scan;
mod upload;

pub use readback::GpuReader;
pub use scan::WeightScan;

use super::Device;
use crate::dtype::DType;
use std::time::Duration;

/// Where one piece of a weight lives: a byte range of one GPU buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index of the buffer in [`GpuWeights`].
    pub buffer: usize,
    /// Byte offset (aligned to the device's storage offset alignment).
    pub offset: u64,
    /// Bytes of the weight in this piece.
    pub len: u64,
}

/// A weight on the GPU in its logical dtype (float32 / int32 / bool bytes).
#[derive(Clone, Debug)]
pub struct Resident {
    /// Logical dtype.
    pub dtype: DType,
    /// Logical byte length.
    pub len: u64,
    /// Pieces in order: one, unless the weight is larger than the binding limit.
    pub chunks: Vec<Placement>,
}

/// How bytes reach GPU memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadPath {
    /// Buffers created mapped; wgpu stages the bytes and copies them on unmap. Readback through
    /// MAP_READ staging buffers. Right for discrete GPUs.
    Staged,
    /// Storage buffers that are themselves mappable (`MAPPABLE_PRIMARY_BUFFERS`): bytes are
    /// written into, and read from, the buffer's own memory. Right where the GPU shares memory
    /// with the host (integrated GPUs, software adapters such as lavapipe).
    Mapped,
}

/// Upload tuning.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// Force a path (default: [`UploadPath::Mapped`] when the device supports it, else staged;
    /// `LAYERCAKE_UPLOAD=staged|mapped` overrides).
    pub path: Option<UploadPath>,
    /// Tensors up to this size share arenas.
    pub small_tensor_bytes: u64,
    /// Arena size.
    pub arena_bytes: u64,
    /// Largest piece of one tensor (default: the device's storage binding / buffer limit).
    pub max_chunk_bytes: Option<u64>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            path: None,
            small_tensor_bytes: 1 << 20,
            arena_bytes: 8 << 20,
            max_chunk_bytes: None,
        }
    }
}

impl UploadOptions {
    /// One buffer per weight (no shared arenas): every weight starts its own buffer, so a
    /// kernel binds it whole (what [`crate::Session`] uploads for its predictions to read).
    pub fn dedicated() -> UploadOptions {
        UploadOptions {
            small_tensor_bytes: 0,
            ..UploadOptions::default()
        }
    }
}

/// What an upload did and how long each stage took.
#[derive(Clone, Debug, Default)]
pub struct UploadStats {
    /// Buffer creation + copying bytes into mappings + unmapping.
    pub copy: Duration,
    /// The dequantization dispatches (submit to completion).
    pub dequantize: Duration,
    /// Bytes copied from the files (compact form for quantized weights).
    pub uploaded_bytes: u64,
    /// Bytes resident after dequantization.
    pub resident_bytes: u64,
    /// GPU buffers holding the weights.
    pub buffers: usize,
    /// Tensors split into several chunks.
    pub split_tensors: usize,
    /// Tensors dequantized on the GPU.
    pub dequantized_tensors: usize,
}

/// Every weight of a model, resident on one device.
pub struct GpuWeights {
    device: Device,
    buffers: Vec<wgpu::Buffer>,
    /// Per weight (manifest order): where it lives.
    pub weights: Vec<Resident>,
    /// The path used.
    pub path: UploadPath,
    /// Upload statistics.
    pub stats: UploadStats,
}

impl GpuWeights {
    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The GPU buffer behind `placement`.
    pub fn buffer(&self, placement: Placement) -> &wgpu::Buffer {
        &self.buffers[placement.buffer]
    }
}
