//! Depthwise convolution over the layer's window map (depthwise.wgsl), optionally followed by a
//! pointwise matmul (SeparableConv); kernels bound in place where they are weights.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::{Activation, GpuForm};
use crate::model::gpu::{act_id, GpuModel, Recording, Uploader};
use crate::tensor::Tensor;

/// The depthwise kernel `[*k, cin, m]`, the pointwise `[cin·m, f]` and the bias.
pub(crate) struct Depthwise {
    layer: usize,
    depthwise: wgpu::Buffer,
    pointwise: Option<(wgpu::Buffer, usize)>,
    bias: Option<wgpu::Buffer>,
    multiplier: usize,
    act: Activation,
}

impl Depthwise {
    pub(crate) fn new(
        up: &Uploader,
        layer: usize,
        (depthwise, pointwise, bias): (&Tensor, Option<&Tensor>, Option<&Tensor>),
        act: Activation,
    ) -> Depthwise {
        Depthwise {
            layer,
            depthwise: up.tensor(depthwise),
            pointwise: pointwise.map(|p| (up.tensor(p), p.shape[p.rank() - 1])),
            bias: bias.map(|b| up.tensor(b)),
            multiplier: depthwise.shape[depthwise.rank() - 1],
            act,
        }
    }
}

/// `depthwise.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    rows: u32,
    window: u32,
    channels: u32,
    multiplier: u32,
    has_bias: u32,
    act: u32,
    _pad: [u32; 2],
}

impl Primitive for Depthwise {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let GpuForm::Depthwise { map, .. } = gpu.layer_form(self.layer)? else {
            return Err(Error::Model("layer lost its GPU form".into()));
        };
        let (shape, index) =
            gpu.index_map(self.layer, "windows", ins[0].1, || map.gather_map(ins[0].1))?;
        let (rows, window, channels) = (shape[0], shape[1], shape[2]);
        gpu.check_loops("depthwise", window)?;
        let mid = channels * self.multiplier;
        // Without a pointwise stage this dispatch is the layer: bias and activation apply here.
        let last = self.pointwise.is_none();
        let temp = (!last).then(|| gpu.temp("depthwise", rows * mid));
        let dst = temp.as_ref().unwrap_or(out.0);
        let bias = self.bias.as_ref().filter(|_| last);
        let u = Uniform {
            rows: rows as u32,
            window: window as u32,
            channels: channels as u32,
            multiplier: self.multiplier as u32,
            has_bias: u32::from(bias.is_some()),
            act: if last { act_id(self.act) } else { 0 },
            _pad: [0; 2],
        };
        gpu.dispatch(
            pass,
            kernels::DEPTHWISE,
            bytemuck::bytes_of(&u),
            &[
                ins[0].0,
                &index,
                &self.depthwise,
                bias.unwrap_or(gpu.dummy()),
                dst,
            ],
            gpu.grid(rows * mid)?,
        )?;
        match &self.pointwise {
            Some((pw, f)) => gpu.matmul(
                pass,
                dst,
                (rows, mid, *f),
                pw,
                self.bias.as_ref(),
                self.act,
                out,
            ),
            None => gpu.softmax(pass, self.act, out),
        }
    }
}
