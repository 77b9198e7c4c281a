//! GroupNormalization and UnitNormalization (group_norm.wgsl) over a channels-last
//! `[batch, positions, channels]` view; gamma and beta bound in place where they are weights.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::kernels;
use crate::layers::group_norm::{GroupMode, GroupNorm as Layer};
use crate::model::gpu::{GpuModel, Recording, Uploader};

/// The layer's statistics and its per-channel scale and offset.
pub(crate) struct GroupNorm {
    unit: bool,
    groups: u32,
    eps: f32,
    gamma: Option<wgpu::Buffer>,
    beta: Option<wgpu::Buffer>,
    layer: usize,
}

impl GroupNorm {
    pub(crate) fn new(up: &Uploader, layer: usize, g: &Layer) -> GroupNorm {
        GroupNorm {
            unit: g.mode == GroupMode::Unit,
            groups: g.groups as u32,
            eps: g.eps,
            gamma: g.gamma.as_ref().map(|t| up.tensor(t)),
            beta: g.beta.as_ref().map(|t| up.tensor(t)),
            layer,
        }
    }
}

/// `group_norm.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    batch: u32,
    positions: u32,
    channels: u32,
    groups: u32,
    mode: u32,
    has_gamma: u32,
    has_beta: u32,
    eps: f32,
}

impl Primitive for GroupNorm {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let crate::layers::GpuForm::GroupNorm(g) = gpu.layer_form(self.layer)? else {
            return Err(crate::error::Error::Model("layer lost its GPU form".into()));
        };
        let (batch, positions, channels) = g.view(ins[0].1);
        // Three passes over one group's positions × channels.
        let width = channels / (self.groups as usize).max(1);
        gpu.check_loops("group_norm", 3 * positions * (width + 1))?;
        let u = Uniform {
            batch: batch as u32,
            positions: positions as u32,
            channels: channels as u32,
            groups: self.groups,
            mode: u32::from(self.unit),
            has_gamma: u32::from(self.gamma.is_some()),
            has_beta: u32::from(self.beta.is_some()),
            eps: self.eps,
        };
        let gamma = self.gamma.as_ref().unwrap_or(gpu.dummy());
        let beta = self.beta.as_ref().unwrap_or(gpu.dummy());
        gpu.dispatch(
            pass,
            kernels::GROUP_NORM,
            bytemuck::bytes_of(&u),
            &[ins[0].0, gamma, beta, out.0],
            gpu.grid(batch * self.groups as usize)?,
        )
    }
}
