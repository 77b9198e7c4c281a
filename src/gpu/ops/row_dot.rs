//! Keras Dot (row_dot.wgsl): one dot product (optionally cosine-normalized) per output element,
//! rank-2 inputs read directly, others after gathering each output element's two contracted
//! vectors into rows.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::kernels;
use crate::model::gpu::{GpuModel, Recording};

/// row_dot.wgsl's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    rows: u32,
    k: u32,
    normalize: u32,
    _pad: u32,
}

/// A Dot layer (its plan index for the row maps).
pub(crate) struct RowDot {
    pub(crate) layer: usize,
    pub(crate) normalize: bool,
    pub(crate) axes: [usize; 2],
}

impl Primitive for RowDot {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let (a, b) = (ins[0], ins[1]);
        let (rows, k, gathered);
        let (x, y) = if a.1.len() == 2 && b.1.len() == 2 {
            (rows, k) = (a.1[0], a.1[1]);
            (a.0, b.0)
        } else {
            let key: Vec<usize> =
                a.1.iter()
                    .chain([&usize::MAX])
                    .chain(b.1)
                    .copied()
                    .collect();
            let (shape, maps) = gpu.cached((self.layer, "dot", key), || {
                let (rows, k, am, bm) = crate::layers::dot_row_maps(self.axes, a.1, b.1);
                let up = |m: &[u32]| gpu.upload_slice("dot", bytemuck::cast_slice(m));
                Ok((vec![rows, k], vec![up(&am), up(&bm)]))
            })?;
            (rows, k) = (shape[0], shape[1]);
            gathered = [
                gpu.temp("dot rows a", rows * k),
                gpu.temp("dot rows b", rows * k),
            ];
            gpu.gather(pass, a.0, &maps[0], rows * k, &gathered[0])?;
            gpu.gather(pass, b.0, &maps[1], rows * k, &gathered[1])?;
            (&gathered[0], &gathered[1])
        };
        let u = Uniform {
            rows: rows as u32,
            k: k as u32,
            normalize: u32::from(self.normalize),
            _pad: 0,
        };
        let grid = gpu.grid(rows)?;
        gpu.check_loops("row_dot", k)?;
        gpu.dispatch(
            pass,
            kernels::ROW_DOT,
            bytemuck::bytes_of(&u),
            &[x, y, out.0],
            grid,
        )
    }
}
