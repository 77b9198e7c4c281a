//! Element-wise merges (binary.wgsl): Add, Subtract, Multiply, Average, Maximum, Minimum over
//! any number of inputs, the second operand of each step broadcast by strides.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::ids::BinaryId;
use crate::gpu::kernels;
use crate::layers::BinaryOp;
use crate::model::gpu::{GpuModel, Recording};
use crate::tensor::strides;

/// binary.wgsl's `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    op: u32,
    rank: u32,
    scale: f32,
    dims: [u32; 8],
    b_strides: [u32; 8],
}

/// A Keras merge layer.
pub(crate) struct Binary(pub(crate) BinaryOp);

impl Primitive for Binary {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let numel = out.1.iter().product::<usize>();
        let code = match self.0 {
            BinaryOp::Add | BinaryOp::Average => BinaryId::Add,
            BinaryOp::Multiply => BinaryId::Multiply,
            BinaryOp::Maximum => BinaryId::Maximum,
            BinaryOp::Minimum => BinaryId::Minimum,
            BinaryOp::Subtract => BinaryId::Subtract,
        };
        // Intermediate sums alternate between (at most) two temporaries: `acc` is read from one
        // while the next is written into the other.
        let temps = (0..2.min(ins.len().saturating_sub(2)))
            .map(|_| gpu.checked("allocating a merge temporary", || gpu.temp("merge", numel)))
            .collect::<Result<Vec<wgpu::Buffer>>>()?;
        let mut acc = ins[0];
        for (j, b) in ins.iter().enumerate().skip(1) {
            // The full-shape operand goes first; only the second one may broadcast. Swapping
            // the operands of a subtraction turns it into the reversed one.
            let swap = acc.1 != out.1;
            let (x, y) = if swap { (*b, acc) } else { (acc, *b) };
            if x.1 != out.1 {
                return Err(Error::Model(
                    "both operands broadcast; not supported on the GPU yet".into(),
                ));
            }
            let code = match code {
                BinaryId::Subtract if swap => BinaryId::ReversedSubtract,
                c => c,
            };
            let last = j == ins.len() - 1;
            let dst: &wgpu::Buffer = if last { out.0 } else { &temps[(j - 1) % 2] };
            let scale = if last && self.0 == BinaryOp::Average {
                1.0 / ins.len() as f32
            } else {
                1.0
            };
            gpu.binary_code(pass, (code, scale), x, y, (dst, out.1))?;
            acc = (dst, out.1);
        }
        Ok(())
    }
}

impl GpuModel<'_> {
    /// One binary dispatch: `dst = (x op y) * scale`, `x` of the output's shape, `y` broadcast
    /// (aligned on the right; a dimension of 1 repeats).
    pub(crate) fn binary_code(
        &self,
        pass: &mut Recording,
        (code, scale): (BinaryId, f32),
        x: Arg<'_>,
        y: Arg<'_>,
        (dst, shape): Arg<'_>,
    ) -> Result<()> {
        let rank = shape.len();
        if rank > 6 {
            return Err(Error::Model(
                "merges above rank 6 are not supported on the GPU".into(),
            ));
        }
        let numel = shape.iter().product::<usize>();
        let mut u = Uniform {
            n: numel as u32,
            op: code as u32,
            rank: rank as u32,
            scale,
            dims: [0; 8],
            b_strides: [0; 8],
        };
        let ys = strides(y.1);
        for (d, &size) in shape.iter().enumerate() {
            u.dims[d] = size as u32;
            u.b_strides[d] = match (d + y.1.len()).checked_sub(rank) {
                Some(yd) if y.1[yd] == size => ys[yd] as u32,
                _ => 0,
            };
        }
        self.dispatch(
            pass,
            kernels::BINARY,
            bytemuck::bytes_of(&u),
            &[x.0, y.0, dst],
            self.grid(numel)?,
        )
    }
}
