//! ConvLSTM2D: the input convolution of every step as one im2col product, then per step an
//! im2col product of h with the recurrent kernel and the LSTM gates (recurrent.wgsl with its
//! product precomputed, every pixel a row).

use super::recurrent::Uniform;
use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::ids::CellId;
use crate::gpu::kernels;
use crate::layers::{Activation, ConvLstm, GpuForm};
use crate::model::gpu::{act_id, GpuModel, Recording, Uploader};

/// A ConvLSTM2D layer's kernels (its plan index for the window maps).
pub(crate) struct ConvLstmOp {
    layer: usize,
    kernel: wgpu::Buffer,
    recurrent: wgpu::Buffer,
    bias: wgpu::Buffer,
}

impl ConvLstmOp {
    pub(crate) fn new(up: &Uploader, layer: usize, l: &ConvLstm) -> Self {
        ConvLstmOp {
            layer,
            kernel: up.tensor(&l.kernel),
            recurrent: up.tensor(&l.recurrent),
            bias: up.tensor(&l.bias),
        }
    }
}

impl Primitive for ConvLstmOp {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let GpuForm::ConvLstm(l) = gpu.layer_form(self.layer)? else {
            return Err(Error::Model("layer lost its GPU form".into()));
        };
        let x = ins[0];
        let &[b, t, h, w, cin] = x.1 else {
            return Err(Error::Model(format!(
                "expects [batch, steps, height, width, channels], got {:?}",
                x.1
            )));
        };
        let g4 = 4 * l.filters;
        let (in_shape, in_map) = gpu.index_map(self.layer, "convlstm input", x.1, || {
            Ok(l.input_map(b * t, h, w, cin))
        })?;
        let (rows, kk) = (in_shape[0], in_shape[1]);
        let cols = gpu.temp("convlstm im2col", rows * kk);
        gpu.gather(pass, x.0, &in_map, rows * kk, &cols)?;
        let xw = gpu.temp("convlstm input projection", rows * g4);
        let to = (&xw, &[rows, g4][..]);
        let lin = Activation::Linear;
        gpu.matmul(
            pass,
            &cols,
            (rows, kk, g4),
            &self.kernel,
            Some(&self.bias),
            lin,
            to,
        )?;
        self.steps(gpu, pass, l, (b, t, in_shape[2], in_shape[3]), &xw, out.0)
    }
}

impl ConvLstmOp {
    /// The `t` steps over `oh × ow` pixels, the input products in `xw`.
    fn steps(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        l: &ConvLstm,
        (b, t, oh, ow): (usize, usize, usize, usize),
        xw: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let (f, p) = (l.filters, oh * ow);
        let g4 = 4 * f;
        let (h_shape, h_map) =
            gpu.index_map(self.layer, "convlstm state", &[b, oh, ow, f], || {
                Ok(l.state_map(b, oh, ow))
            })?;
        let rk = h_shape[1];
        let h_cols = gpu.temp("convlstm state im2col", b * p * rk);
        let hu = gpu.temp("convlstm recurrent", b * p * g4);
        let states = [
            gpu.temp("state", 2 * b * p * f),
            gpu.temp("state", 2 * b * p * f),
        ];
        for s in 0..t {
            let (state_in, state_out) = (&states[s % 2], &states[(s + 1) % 2]);
            if s > 0 {
                gpu.gather(pass, state_in, &h_map, b * p * rk, &h_cols)?;
                let to = (&hu, &[b * p, g4][..]);
                let lin = Activation::Linear;
                gpu.matmul(
                    pass,
                    &h_cols,
                    (b * p, rk, g4),
                    &self.recurrent,
                    None,
                    lin,
                    to,
                )?;
            }
            let u = Uniform {
                batch: (b * p) as u32,
                units: f as u32,
                steps: t as u32,
                step: if l.go_backwards { t - 1 - s } else { s } as u32,
                out_step: if l.return_sequences { s as u32 } else { 0 },
                cell: CellId::Lstm as u32,
                act: act_id(l.activation),
                gate_act: act_id(l.gate_activation),
                _phase: 1,
                first: u32::from(s == 0),
                out_stride: f as u32,
                out_steps: if l.return_sequences { t as u32 } else { 1 },
                pixels: p as u32,
                precomputed: 1,
                ..Uniform::default()
            };
            let dummy = gpu.dummy();
            let buffers = [xw, &hu, dummy, dummy, state_in, state_out, out];
            let grid = gpu.grid(b * p * f)?;
            gpu.dispatch(
                pass,
                kernels::RECURRENT,
                bytemuck::bytes_of(&u),
                &buffers,
                grid,
            )?;
        }
        Ok(())
    }
}
