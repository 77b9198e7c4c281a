//! Spatial layout layers: ZeroPadding2D, Cropping2D, UpSampling2D (nearest, and bilinear as
//! TF.js's resizeBilinear without corner alignment, through [`super::resample`]).

use super::conv::{from_channels_last, to_channels_last};
use super::resample::{Resample, Sampling};
use super::{one, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

/// `[[top, bottom], [left, right]]` from an int, `[a, b]` or the nested form.
fn pairs(ctx: &LayerCtx, key: &str, default: usize) -> Result<[[usize; 2]; 2]> {
    let bad = || {
        ctx.err(format!(
            "config '{key}' must be an integer, two integers or two pairs"
        ))
    };
    let n = |v: &Value| v.as_u64().map(|u| u as usize).ok_or_else(bad);
    match ctx.get(key) {
        None => Ok([[default; 2]; 2]),
        Some(Value::Number(_)) => {
            let v = n(ctx.get(key).unwrap_or(&Value::Null))?;
            Ok([[v; 2]; 2])
        }
        Some(Value::Array(a)) if a.len() == 2 => match (&a[0], &a[1]) {
            (Value::Array(x), Value::Array(y)) if x.len() == 2 && y.len() == 2 => {
                Ok([[n(&x[0])?, n(&x[1])?], [n(&y[0])?, n(&y[1])?]])
            }
            (x, y) => {
                let (x, y) = (n(x)?, n(y)?);
                Ok([[x, x], [y, y]])
            }
        },
        _ => Err(bad()),
    }
}

/// Pads (positive) or crops (negative) rows and columns of an NHWC tensor.
struct Pad2D {
    rows: [isize; 2],
    cols: [isize; 2],
    channels_first: bool,
    name: String,
}

impl Pad2D {
    fn size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let oh = h as isize + self.rows[0] + self.rows[1];
        let ow = w as isize + self.cols[0] + self.cols[1];
        if oh < 0 || ow < 0 {
            return Err(Error::Model(format!(
                "layer '{}': cropping more than the input's {h}×{w}",
                self.name
            )));
        }
        Ok((oh as usize, ow as usize))
    }
}

impl Layer for Pad2D {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let s = &inputs[0];
        let (hi, wi) = if self.channels_first { (2, 3) } else { (1, 2) };
        let mut out = s.clone();
        out[hi] = s[hi].map(|h| (h as isize + self.rows[0] + self.rows[1]).max(0) as usize);
        out[wi] = s[wi].map(|w| (w as isize + self.cols[0] + self.cols[1]).max(0) as usize);
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        use rayon::prelude::*;
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = self.size(h, w)?;
        // Output columns [j0, j1) come from input columns [j0 - left, j1 - left).
        let left = self.cols[0];
        let j0 = left.clamp(0, ow as isize) as usize;
        let j1 = (w as isize + left).clamp(j0 as isize, ow as isize) as usize;
        let mut out = vec![0.0; b * oh * ow * c];
        // One output row per task; rows outside the input stay zero.
        out.par_chunks_mut((ow * c).max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let (n, i) = (r / oh.max(1), r % oh.max(1));
                let si = i as isize - self.rows[0];
                if si < 0 || si >= h as isize || j0 == j1 {
                    return;
                }
                let sj0 = (j0 as isize - left) as usize;
                let src = ((n * h + si as usize) * w + sj0) * c;
                row[j0 * c..j1 * c].copy_from_slice(&x.data[src..src + (j1 - j0) * c]);
            });
        Ok(from_channels_last(
            Tensor::new(vec![b, oh, ow, c], out)?,
            self.channels_first,
        ))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Gather)
    }
}

pub(super) fn zero_padding(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let p = pairs(ctx, "padding", 1)?;
    Ok(Box::new(Pad2D {
        rows: [p[0][0] as isize, p[0][1] as isize],
        cols: [p[1][0] as isize, p[1][1] as isize],
        channels_first: ctx.channels_first(),
        name: ctx.name.to_string(),
    }))
}

pub(super) fn cropping(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let p = pairs(ctx, "cropping", 0)?;
    Ok(Box::new(Pad2D {
        rows: [-(p[0][0] as isize), -(p[0][1] as isize)],
        cols: [-(p[1][0] as isize), -(p[1][1] as isize)],
        channels_first: ctx.channels_first(),
        name: ctx.name.to_string(),
    }))
}

struct UpSampling {
    size: [usize; 2],
    bilinear: bool,
    channels_first: bool,
    name: String,
}

impl UpSampling {
    /// The bilinear mode: TF.js's `resizeBilinear` without corner alignment.
    fn resample(&self, h: usize, w: usize) -> Resample {
        Resample {
            sampling: Sampling::Bilinear { align: false },
            out: [h * self.size[0], w * self.size[1]],
        }
    }
}

impl super::WeightedMap for UpSampling {
    /// Bilinear taps of a channels_last input (the CPU path applies the same taps).
    fn weighted_map(&self, shape: &[usize]) -> Result<super::Taps> {
        self.resample(shape[1], shape[2]).taps(shape)
    }
}

impl Layer for UpSampling {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let (hi, wi) = if self.channels_first { (2, 3) } else { (1, 2) };
        let mut out = inputs[0].clone();
        out[hi] = out[hi].map(|h| h * self.size[0]);
        out[wi] = out[wi].map(|w| w * self.size[1]);
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        if self.bilinear {
            let y = self.resample(h, w).apply(&x)?;
            return Ok(from_channels_last(y, self.channels_first));
        }
        let (oh, ow) = (h * self.size[0], w * self.size[1]);
        let mut out = Vec::with_capacity(b * oh * ow * c);
        for n in 0..b {
            for i in 0..oh {
                for j in 0..ow {
                    let at = ((n * h + i / self.size[0]) * w + j / self.size[1]) * c;
                    out.extend_from_slice(&x.data[at..at + c]);
                }
            }
        }
        Ok(from_channels_last(
            Tensor::new(vec![b, oh, ow, c], out)?,
            self.channels_first,
        ))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(match (self.bilinear, self.channels_first) {
            (false, _) => super::GpuForm::Gather,
            (true, cf) => super::cf_wrap(cf, super::GpuForm::WeightedGather(self)),
        })
    }
}

pub(super) fn upsampling(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let size = ctx.ints("size", 2, Some(2))?;
    let bilinear = match ctx.str_or("interpolation", "nearest") {
        "nearest" => false,
        "bilinear" => true,
        other => return Err(ctx.err(format!("interpolation '{other}' is not supported"))),
    };
    Ok(Box::new(UpSampling {
        size: [size[0], size[1]],
        bilinear,
        channels_first: ctx.channels_first(),
        name: ctx.name.to_string(),
    }))
}
