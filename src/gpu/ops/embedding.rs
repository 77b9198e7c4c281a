//! Embedding lookup (embedding.wgsl). The table is bound in place: whole where it fits the
//! storage binding limit, else as its resident row chunks, one dispatch per block of rows.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::kernels;
use crate::model::gpu::{GpuModel, Recording, Uploader};
use crate::tensor::Tensor;

/// The table as `(first row, rows, buffer)` blocks.
pub(crate) struct Embedding {
    blocks: Vec<(usize, usize, wgpu::Buffer)>,
    rows: usize,
    dim: usize,
}

impl Embedding {
    pub(crate) fn new(up: &Uploader, table: &Tensor) -> Embedding {
        let (rows, dim) = (table.shape[0], table.shape[1]);
        let limit = up.binding_limit();
        let blocks = if rows * dim * 4 <= limit {
            vec![(0, rows, up.tensor(table))]
        } else if let Some(resident) = up.resident_rows(table, dim) {
            resident
        } else {
            let per_block = (limit / (4 * dim).max(1)).clamp(1, rows.max(1));
            (0..rows)
                .step_by(per_block)
                .map(|first| {
                    let n = per_block.min(rows - first);
                    (
                        first,
                        n,
                        up.floats(&table.data[first * dim..(first + n) * dim]),
                    )
                })
                .collect()
        };
        Embedding { blocks, rows, dim }
    }
}

/// `embedding.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    dim: u32,
    rows: u32,
    first: u32,
    block_rows: u32,
    _pad: [u32; 3],
}

impl Primitive for Embedding {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let n = out.1.iter().product::<usize>();
        for (first, block_rows, buffer) in &self.blocks {
            let u = Uniform {
                n: n as u32,
                dim: self.dim as u32,
                rows: self.rows as u32,
                first: *first as u32,
                block_rows: *block_rows as u32,
                _pad: [0; 3],
            };
            gpu.dispatch(
                pass,
                kernels::EMBEDDING,
                bytemuck::bytes_of(&u),
                &[ins[0].0, buffer, out.0],
                gpu.grid(n)?,
            )?;
        }
        Ok(())
    }
}
