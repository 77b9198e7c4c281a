//! `activation(x * mul[c] + add[c])` per channel along an axis (affine.wgsl): folded
//! BatchNormalization, Normalization, LayerScale, Rescaling, scalar arithmetic. Its factors are
//! derived values (folded statistics), uploaded and counted.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::{normalize_axis, Activation};
use crate::model::gpu::{act_id, GpuModel, Recording, Uploader};

/// Per-channel factors and offsets along `axis`, then `act`.
pub(crate) struct Affine {
    mul: wgpu::Buffer,
    add: wgpu::Buffer,
    channels: usize,
    axis: isize,
    act: Activation,
}

impl Affine {
    pub(crate) fn new(
        up: &Uploader,
        (mul, add): (&[f32], &[f32]),
        axis: isize,
        act: Activation,
    ) -> Affine {
        Affine {
            mul: up.floats(mul),
            add: up.floats(add),
            channels: mul.len(),
            axis,
            act,
        }
    }
}

/// `affine.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    inner: u32,
    channels: u32,
    act: u32,
    param: f32,
    _pad: [u32; 3],
}

impl Primitive for Affine {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let n = out.1.iter().product::<usize>();
        let axis = normalize_axis(self.axis, out.1.len())
            .ok_or_else(|| Error::Model(format!("axis {} out of range", self.axis)))?;
        let inner: usize = if self.channels == 1 {
            1
        } else {
            out.1[axis + 1..].iter().product()
        };
        let u = Uniform {
            n: n as u32,
            inner: inner as u32,
            channels: self.channels as u32,
            act: act_id(self.act),
            param: 0.0,
            _pad: [0; 3],
        };
        gpu.dispatch(
            pass,
            kernels::AFFINE,
            bytemuck::bytes_of(&u),
            &[ins[0].0, &self.mul, &self.add, out.0],
            gpu.grid(n)?,
        )?;
        gpu.softmax(pass, self.act, out)
    }
}
