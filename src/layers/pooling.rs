//! Pooling: Max/AveragePooling 1D/2D/3D (average excludes padded cells, as TF.js) and the global
//! pooling layers.

use super::conv::{from_channels_last, to_channels_last, Geometry, Padding};
use super::{one, Layer, LayerCtx, Shape};
use crate::error::Result;
use crate::tensor::Tensor;

struct Pool {
    name: String,
    geometry: Geometry,
    max: bool,
    channels_first: bool,
}

impl super::GatherMap for Pool {
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
        Ok(super::conv::window_map(&self.geometry, shape))
    }
}

impl Layer for Pool {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let input = &inputs[0];
        let g = &self.geometry;
        let c = match (self.channels_first, input.len()) {
            (_, 0) => None,
            (true, _) => input.get(1).copied().flatten(),
            (false, rank) => input[rank - 1],
        };
        super::conv::spatial_shape(input, self.channels_first, g.kernel.len(), c, |i, n| {
            super::conv::out_len(n, g.kernel[i], g.strides[i], 1, g.padding).0
        })
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        use rayon::prelude::*;
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let rank = x.rank();
        let (batch, c) = (x.shape[0], x.shape[rank - 1]);
        let spatial = &x.shape[1..rank - 1];
        let (out, taps) = super::conv::pixel_taps(&self.geometry, spatial);
        let n_out: usize = out.iter().product();
        let n_in: usize = spatial.iter().product();
        let window: usize = self.geometry.kernel.iter().product();
        let mut acc = vec![0.0f32; batch * n_out * c];
        // In parallel over output pixels; each pixel reduces the channel rows under its window.
        acc.par_chunks_mut(c.max(1))
            .enumerate()
            .for_each(|(row, dst)| {
                let (b, o) = (row / n_out, row % n_out);
                let xb = &x.data[b * n_in * c..(b + 1) * n_in * c];
                let inside = taps[o * window..(o + 1) * window]
                    .iter()
                    .filter(|&&s| s != super::GATHER_PAD)
                    .map(|&s| &xb[s as usize * c..(s as usize + 1) * c]);
                crate::cpu::rows::pool_pixel(dst, inside, self.max);
            });
        let y = Tensor::new([batch].into_iter().chain(out).chain([c]).collect(), acc)?;
        Ok(from_channels_last(y, self.channels_first))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::cf_wrap(
            self.channels_first,
            super::GpuForm::WindowReduce {
                map: self,
                max: self.max,
                masked: false,
            },
        ))
    }
}

pub(super) fn pool(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let n = if ctx.class.contains("1D") {
        1
    } else if ctx.class.contains("3D") {
        3
    } else {
        2
    };
    let size = ctx.ints("pool_size", n, Some(2))?;
    let strides = match ctx.get("strides") {
        None => size.clone(),
        Some(_) => ctx.ints("strides", n, None)?,
    };
    let padding = Padding::parse(ctx)?;
    let geometry = Geometry {
        kernel: size,
        strides,
        dilation: vec![1; n],
        padding,
    };
    Ok(Box::new(Pool {
        name: ctx.name.to_string(),
        geometry,
        max: ctx.class.starts_with("Max"),
        channels_first: ctx.channels_first(),
    }))
}

struct Global {
    name: String,
    max: bool,
    channels_first: bool,
    /// Keras 3's `keepdims`: the pooled axes stay, with size 1 (MobileNet's head,
    /// MobileNetV3's squeeze-excite blocks).
    keepdims: bool,
    /// Keras 3's GlobalAveragePooling1D averages over the unmasked steps only (TF.js ignores
    /// the mask).
    masked_mean: bool,
}

impl Global {
    /// `[batch, channels]` reshaped to the output's rank when `keepdims` is set.
    fn out_shape<T: Copy>(&self, rank: usize, batch: T, c: T, one: T) -> Vec<T> {
        if !self.keepdims {
            return vec![batch, c];
        }
        let mut s = vec![one; rank];
        s[0] = batch;
        s[if self.channels_first { 1 } else { rank - 1 }] = c;
        s
    }
}

impl super::GatherMap for Global {
    /// One window over every position: `[batch, positions, channels]`.
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
        let rank = shape.len();
        let (batch, c) = (shape[0], shape[rank - 1]);
        let n: usize = shape[1..rank - 1].iter().product();
        Ok((vec![batch, n, c], (0..(batch * n * c) as u32).collect()))
    }
}

impl Layer for Global {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let s = &inputs[0];
        let c = if self.channels_first {
            s[1]
        } else {
            s[s.len() - 1]
        };
        Ok(self.out_shape(s.len(), s[0], c, Some(1)))
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.forward_masked(inputs, None)
    }

    fn forward_masked(&self, inputs: &[&Tensor], mask: Option<&Tensor>) -> Result<Tensor> {
        let mask = mask.filter(|_| self.masked_mean);
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let rank = x.rank();
        let (batch, c) = (x.shape[0], x.shape[rank - 1]);
        let n: usize = x.shape[1..rank - 1].iter().product();
        let mut out = vec![if self.max { f32::NEG_INFINITY } else { 0.0 }; batch * c];
        let mut weight = vec![0.0f32; batch];
        for b in 0..batch {
            let o = &mut out[b * c..(b + 1) * c];
            for p in 0..n {
                let m = mask.map_or(1.0, |m| m.data[b * n + p]);
                weight[b] += m;
                let row = &x.data[(b * n + p) * c..][..c];
                // One branch per row, not per value: the loops vectorize.
                match (self.max, mask.is_some()) {
                    (true, _) => o.iter_mut().zip(row).for_each(|(o, &v)| *o = o.max(v * m)),
                    (false, false) => o.iter_mut().zip(row).for_each(|(o, &v)| *o += v),
                    (false, true) => o.iter_mut().zip(row).for_each(|(o, &v)| *o += v * m),
                }
            }
        }
        if !self.max {
            for (b, row) in out.chunks_mut(c.max(1)).enumerate() {
                // Keras divides by the mask's sum: an all-masked row is 0/0.
                let d = if mask.is_some() {
                    weight[b]
                } else {
                    n.max(1) as f32
                };
                row.iter_mut().for_each(|v| *v /= d);
            }
        }
        Tensor::new(self.out_shape(rank, batch, c, 1), out)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::cf_wrap(
            self.channels_first,
            super::GpuForm::WindowReduce {
                map: self,
                max: self.max,
                masked: self.masked_mean,
            },
        ))
    }
}

pub(super) fn global(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Global {
        name: ctx.name.to_string(),
        max: ctx.class.starts_with("GlobalMax"),
        channels_first: ctx.channels_first(),
        keepdims: ctx.bool_or("keepdims", false),
        masked_mean: ctx.keras3 && ctx.class == "GlobalAveragePooling1D",
    }))
}
