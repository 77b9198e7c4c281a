//! Concatenation along any axis (copy_block.wgsl): one block copy per input into its columns
//! of the output viewed as `[outer, axis × inner]`.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::normalize_axis;
use crate::model::gpu::{GpuModel, Recording};

/// The axis (negative counts from the end).
pub(crate) struct Concat(pub(crate) isize);

/// `copy_block.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    rows: u32,
    cols: u32,
    dst_cols: u32,
    offset: u32,
}

impl Primitive for Concat {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let rank = out.1.len();
        let axis = normalize_axis(self.0, rank)
            .ok_or_else(|| Error::Model(format!("axis {} out of range", self.0)))?;
        let outer: usize = out.1[..axis].iter().product();
        let inner: usize = out.1[axis + 1..].iter().product();
        let mut offset = 0;
        for (buf, shape) in ins {
            let cols = shape[axis] * inner;
            let u = Uniform {
                rows: outer as u32,
                cols: cols as u32,
                dst_cols: (out.1[axis] * inner) as u32,
                offset: offset as u32,
            };
            gpu.dispatch(
                pass,
                kernels::COPY_BLOCK,
                bytemuck::bytes_of(&u),
                &[buf, out.0],
                gpu.grid(outer * cols)?,
            )?;
            offset += cols;
        }
        Ok(())
    }
}
