//! Discretization's buckets (bucketize.wgsl): each value's count of boundaries at or below it.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::kernels;
use crate::model::gpu::{GpuModel, Recording, Uploader};

/// The boundaries, uploaded (they come from the config, not from a weight).
pub(crate) struct Bucketize {
    boundaries: wgpu::Buffer,
    bins: u32,
}

impl Bucketize {
    pub(crate) fn new(up: &Uploader, boundaries: &[f32]) -> Bucketize {
        Bucketize {
            boundaries: up.floats(boundaries),
            bins: boundaries.len() as u32,
        }
    }
}

/// `bucketize.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    bins: u32,
    _pad: [u32; 2],
}

impl Primitive for Bucketize {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let n = out.1.iter().product::<usize>();
        gpu.check_loops("bucketize", self.bins as usize)?;
        let u = Uniform {
            n: n as u32,
            bins: self.bins,
            _pad: [0; 2],
        };
        gpu.dispatch(
            pass,
            kernels::BUCKETIZE,
            bytemuck::bytes_of(&u),
            &[ins[0].0, &self.boundaries, out.0],
            gpu.grid(n)?,
        )
    }
}
