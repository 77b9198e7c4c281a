//! GPU primitives, one file each: the parameters a layer's form binds (resident weights or
//! uploaded derived values, through the executor's `Uploader`), the uniform the kernel takes, and
//! how it records its dispatches. The executor (`model::gpu`) calls [`Primitive::encode`].
//!
//! Here so far: attention, embedding, group statistics, layer normalization, buckets, the joint
//! softmax, category encoding, the parameterized activations and PReLU, pooling, depthwise convolution, concatenation, the per-channel affine, Masking,
//! gathers; the others are still arms of the executor's
//! `Params` match, to move one by one (ARCHITECTURE.md, "The GPU executor").

pub(crate) mod affine;
pub(crate) mod attention;
pub(crate) mod bucketize;
pub(crate) mod category;
pub(crate) mod concat;
pub(crate) mod depthwise;
pub(crate) mod embedding;
pub(crate) mod gather;
pub(crate) mod group_norm;
pub(crate) mod joint_softmax;
pub(crate) mod layer_norm;
pub(crate) mod masking;
pub(crate) mod parametric;
pub(crate) mod window_reduce;

use crate::error::Result;
use crate::model::gpu::{GpuModel, Recording};

/// A tensor on the GPU: its buffer and shape.
pub(crate) type Arg<'a> = (&'a wgpu::Buffer, &'a [usize]);

/// One layer's GPU work.
pub(crate) trait Primitive: Send + Sync {
    /// Record the dispatches computing `out` from `ins` (shapes concrete for this plan).
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()>;
}
