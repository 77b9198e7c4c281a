//! LayerNormalization over the trailing `group` values of each row (layer_norm.wgsl); gamma and
//! beta bound in place where they are weights.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::kernels;
use crate::model::gpu::{GpuModel, Recording, Uploader};
use crate::tensor::Tensor;

/// Row length, epsilon, scale and offset.
pub(crate) struct LayerNorm {
    group: usize,
    eps: f32,
    gamma: Option<wgpu::Buffer>,
    beta: Option<wgpu::Buffer>,
}

impl LayerNorm {
    pub(crate) fn new(
        up: &Uploader,
        group: usize,
        eps: f32,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
    ) -> LayerNorm {
        LayerNorm {
            group,
            eps,
            gamma: gamma.map(|t| up.tensor(t)),
            beta: beta.map(|t| up.tensor(t)),
        }
    }
}

/// `layer_norm.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    rows: u32,
    group: u32,
    has_gamma: u32,
    has_beta: u32,
    eps: f32,
    _pad: [u32; 3],
}

impl Primitive for LayerNorm {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let rows = out.1.iter().product::<usize>() / self.group.max(1);
        let u = Uniform {
            rows: rows as u32,
            group: self.group as u32,
            has_gamma: u32::from(self.gamma.is_some()),
            has_beta: u32::from(self.beta.is_some()),
            eps: self.eps,
            _pad: [0; 3],
        };
        let gamma = self.gamma.as_ref().unwrap_or(gpu.dummy());
        let beta = self.beta.as_ref().unwrap_or(gpu.dummy());
        gpu.check_loops("layer_norm", 3 * self.group)?;
        gpu.dispatch(
            pass,
            kernels::LAYER_NORM,
            bytemuck::bytes_of(&u),
            &[ins[0].0, gamma, beta, out.0],
            gpu.grid(rows)?,
        )
    }
}
