//! CategoryEncoding (category.wgsl): integer tokens to one-hot, multi-hot or count rows.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::kernels;
use crate::model::gpu::{GpuModel, Recording};

/// Depth and whether tokens are counted (else marked).
pub(crate) struct CategoryEncoding {
    pub(crate) depth: usize,
    pub(crate) count: bool,
}

/// `category.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    rows: u32,
    per_row: u32,
    depth: u32,
    count: u32,
}

impl Primitive for CategoryEncoding {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let rows = out.1.first().copied().unwrap_or(1);
        let u = Uniform {
            rows: rows as u32,
            per_row: (ins[0].1.iter().product::<usize>() / rows.max(1)) as u32,
            depth: self.depth as u32,
            count: u32::from(self.count),
        };
        let n = out.1.iter().product::<usize>();
        gpu.check_loops("category", u.per_row as usize)?;
        gpu.dispatch(
            pass,
            kernels::CATEGORY,
            bytemuck::bytes_of(&u),
            &[ins[0].0, out.0],
            gpu.grid(n)?,
        )
    }
}
