//! ConvLSTM2D: an LSTM whose input and recurrent products are 2D convolutions (gates i, f, c, o
//! along the kernels' last axis, spec §5.4). The input convolution uses the layer's padding,
//! strides and dilation; the recurrent one is `same` with stride 1, as in TF.js. Every step's
//! input convolution is one im2col product over `[batch·steps, h, w, c]`.

use super::conv::{geometry, Geometry, Im2col, Padding};
use super::{one, Activation, Layer, LayerCtx, Shape};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

/// ConvLSTM2D (channels_last).
pub struct ConvLstm {
    name: String,
    /// Input convolution.
    geometry: Geometry,
    /// Recurrent convolution: the kernel's size, `same`, stride 1.
    recurrent_geometry: Geometry,
    /// `[kh·kw·in, 4f]`.
    pub kernel: Tensor,
    /// `[kh·kw·f, 4f]`.
    pub recurrent: Tensor,
    /// `[4f]` (zeros without bias).
    pub bias: Tensor,
    /// Filters.
    pub filters: usize,
    /// `activation`.
    pub activation: Activation,
    /// `recurrent_activation`.
    pub gate_activation: Activation,
    /// Output every step.
    pub return_sequences: bool,
    /// Process the steps last to first.
    pub go_backwards: bool,
}

impl ConvLstm {
    /// `(h', w')` of the states for an input of spatial size `(h, w)`.
    pub fn state_size(&self, h: usize, w: usize) -> (usize, usize) {
        let (out, _) = self.geometry.output(&[h, w]);
        (out[0], out[1])
    }

    /// The input convolution's im2col gather map for `images` images of `h × w × cin`:
    /// `([rows, row length, out h, out w], map)`.
    pub fn input_map(
        &self,
        images: usize,
        h: usize,
        w: usize,
        cin: usize,
    ) -> (Vec<usize>, Vec<u32>) {
        let cols = Im2col::new(&self.geometry, &[h, w], cin);
        let shape = vec![images * cols.n_out, cols.row_len, cols.out[0], cols.out[1]];
        (shape, cols.index_map(images))
    }

    /// The recurrent convolution's im2col gather map over `b` states of `h × w × filters`:
    /// `([rows, row length], map)`.
    pub fn state_map(&self, b: usize, h: usize, w: usize) -> (Vec<usize>, Vec<u32>) {
        let cols = Im2col::new(&self.recurrent_geometry, &[h, w], self.filters);
        (vec![b * cols.n_out, cols.row_len], cols.index_map(b))
    }

    fn run(&self, x: &Tensor) -> Result<Tensor> {
        let &[b, t, h, w, cin] = &x.shape[..] else {
            return Err(Error::Model(format!(
                "layer '{}' expects [batch, steps, height, width, channels], got {:?}",
                self.name, x.shape
            )));
        };
        let f = self.filters;
        let (g4, kk) = (4 * f, self.kernel.shape[0]);
        let cols = Im2col::new(&self.geometry, &[h, w], cin);
        if cols.row_len != kk {
            return Err(Error::Model(format!(
                "layer '{}': input has {cin} channels, the kernel does not match",
                self.name
            )));
        }
        let p = cols.n_out;
        // Input convolution of every step at once: rows (b, t, pixel).
        let mut xw = vec![0.0f32; b * t * p * g4];
        cpu::matmul_rows(
            (b * t * p, kk, g4),
            &self.kernel.data,
            &mut xw,
            |r, row| cols.fill(&x.data, r, row),
            |blk| cpu::add_bias(blk, &self.bias.data),
        );
        let (oh, ow) = (cols.out[0], cols.out[1]);
        let rec_cols = Im2col::new(&self.recurrent_geometry, &[oh, ow], f);
        let (mut hs, mut cs) = (vec![0.0f32; b * p * f], vec![0.0f32; b * p * f]);
        let mut outs = vec![
            0.0f32;
            if self.return_sequences {
                b * t * p * f
            } else {
                0
            }
        ];
        let mut hu = vec![0.0f32; b * p * g4];
        let (act, gate) = (self.activation, self.gate_activation);
        for s in 0..t {
            let step = if self.go_backwards { t - 1 - s } else { s };
            let h_prev = hs.clone();
            cpu::matmul_rows(
                (b * p, rec_cols.row_len, g4),
                &self.recurrent.data,
                &mut hu,
                |r, row| rec_cols.fill(&h_prev, r, row),
                |_| {},
            );
            for row in 0..b * p {
                let (bi, px) = (row / p, row % p);
                let xr = &xw[((bi * t + step) * p + px) * g4..][..g4];
                let hr = &hu[row * g4..][..g4];
                for j in 0..f {
                    let z = |k: usize| xr[k * f + j] + hr[k * f + j];
                    let (i, fg, o) = (gate.of(z(0)), gate.of(z(1)), gate.of(z(3)));
                    let c = fg * cs[row * f + j] + i * act.of(z(2));
                    cs[row * f + j] = c;
                    hs[row * f + j] = o * act.of(c);
                }
                if self.return_sequences {
                    outs[((bi * t + s) * p + px) * f..][..f].copy_from_slice(&hs[row * f..][..f]);
                }
            }
        }
        if self.return_sequences {
            Tensor::new(vec![b, t, oh, ow, f], outs)
        } else {
            Tensor::new(vec![b, oh, ow, f], hs)
        }
    }
}

impl Layer for ConvLstm {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let x = &inputs[0];
        if x.len() != 5 {
            return Err(Error::Model(format!(
                "layer '{}' expects a rank-5 input",
                self.name
            )));
        }
        let dim = |i: usize, d: Option<usize>| {
            d.map(|n| {
                super::conv::out_len(
                    n,
                    self.geometry.kernel[i],
                    self.geometry.strides[i],
                    self.geometry.dilation[i],
                    self.geometry.padding,
                )
                .0
            })
        };
        let (oh, ow) = (dim(0, x[2]), dim(1, x[3]));
        Ok(if self.return_sequences {
            vec![x[0], x[1], oh, ow, Some(self.filters)]
        } else {
            vec![x[0], oh, ow, Some(self.filters)]
        })
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.run(one(inputs, &self.name)?)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::ConvLstm(self))
    }
}

pub(super) fn build(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    if ctx.channels_first() {
        return Err(ctx.err("channels_first is not supported for ConvLSTM2D"));
    }
    if ctx.bool_or("return_state", false) {
        return Err(ctx.err("return_state is not supported for ConvLSTM2D"));
    }
    let geometry = geometry(ctx, 2, true)?;
    let x = ctx.input()?;
    let cin = x
        .get(4)
        .copied()
        .flatten()
        .ok_or_else(|| ctx.err("the input's channel dimension must be known"))?;
    let f = ctx.usize("filters")?;
    let (kh, kw) = (geometry.kernel[0], geometry.kernel[1]);
    let kernel = ctx.weight("kernel", &[kh, kw, cin, 4 * f])?;
    let recurrent = ctx.weight("recurrent_kernel", &[kh, kw, f, 4 * f])?;
    let bias = if ctx.bool_or("use_bias", true) {
        ctx.weight("bias", &[4 * f])?
    } else {
        Tensor {
            shape: vec![4 * f],
            data: vec![0.0; 4 * f].into(),
            source: None,
        }
    };
    let parse = |key: &str, default: &str| {
        let v = ctx
            .get(key)
            .cloned()
            .unwrap_or_else(|| Value::from(default));
        Activation::parse(Some(&v), ctx.keras3()).map_err(|e| ctx.err(e))
    };
    let gate_default = if ctx.keras3() {
        "sigmoid"
    } else {
        "hard_sigmoid"
    };
    Ok(Box::new(ConvLstm {
        name: ctx.name.to_string(),
        recurrent_geometry: Geometry {
            kernel: geometry.kernel.clone(),
            strides: vec![1, 1],
            dilation: vec![1, 1],
            padding: Padding::Same,
        },
        geometry,
        kernel: kernel.clone().reshaped(vec![kh * kw * cin, 4 * f])?,
        recurrent: recurrent.clone().reshaped(vec![kh * kw * f, 4 * f])?,
        bias,
        filters: f,
        activation: parse("activation", "tanh")?,
        gate_activation: parse("recurrent_activation", gate_default)?,
        return_sequences: ctx.bool_or("return_sequences", false),
        go_backwards: ctx.bool_or("go_backwards", false),
    }))
}
