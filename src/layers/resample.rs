//! Image resampling of channels_last `[batch, h, w, c]` tensors, as TF.js computes it: bilinear
//! and nearest resizing (`alignCorners` either way, no half-pixel centers) and `cropAndResize`
//! with nearest sampling. One description ([`Resample`]) gives the taps of every output element;
//! the CPU applies them and the GPU runs them as a weighted gather, so both read the same
//! coordinates. Layers: Resizing, CenterCrop, and UpSampling2D's bilinear mode.

use super::{one, Layer, LayerCtx, Shape, Taps};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How output coordinates map to input ones along one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// `resizeBilinear`: two taps.
    Bilinear {
        /// `alignCorners`.
        align: bool,
    },
    /// `resizeNearestNeighbor`: one tap.
    Nearest {
        /// `alignCorners`.
        align: bool,
    },
    /// `cropAndResize(…, 'nearest')` over the box `[start, end)` of the input (in input pixels,
    /// the box being `start / in … end / in` normalized): one tap, zero outside the input.
    CropNearest {
        /// Box start (pixels) on the height and width axes.
        start: [usize; 2],
    },
}

/// One output coordinate along an axis: `(input index, weight)` taps.
type AxisTaps = Vec<(Option<usize>, f64)>;

/// TF.js's effective sizes and scale (`alignCorners` uses `size - 1` when the output has more
/// than one element).
fn scale(input: usize, output: usize, align: bool) -> f64 {
    let (i, o) = if align && output > 1 {
        (input - 1, output - 1)
    } else {
        (input, output)
    };
    i as f64 / o.max(1) as f64
}

/// The taps along one axis: `input` → `output` elements (`box_len` for crops).
fn axis_taps(
    s: Sampling,
    input: usize,
    output: usize,
    start: usize,
    box_len: usize,
) -> Vec<AxisTaps> {
    (0..output)
        .map(|o| match s {
            Sampling::Bilinear { align } => {
                let src = scale(input, output, align) * o as f64;
                let lo = (src.floor().max(0.0) as usize).min(input - 1);
                let hi = (src.ceil() as usize).min(input - 1);
                let frac = src - lo as f64;
                vec![(Some(lo), 1.0 - frac), (Some(hi), frac)]
            }
            Sampling::Nearest { align } => {
                let src = scale(input, output, align) * o as f64;
                let i = if align { src.round() } else { src.floor() };
                vec![(Some((i as usize).min(input - 1)), 1.0)]
            }
            Sampling::CropNearest { .. } => {
                // TF's crop_and_resize: y = y1·(H−1) + o·(y2 − y1)·(H−1)/(crop − 1), rounded
                // half up (Math.round); outside [0, H−1] the extrapolation value 0.
                let (y1, y2) = (
                    start as f64 / input as f64,
                    (start + box_len) as f64 / input as f64,
                );
                let last = (input - 1) as f64;
                let src = if output > 1 {
                    y1 * last + o as f64 * (y2 - y1) * last / (output - 1) as f64
                } else {
                    0.5 * (y1 + y2) * last
                };
                let i = (src + 0.5).floor();
                if (0.0..=last).contains(&src) {
                    vec![(Some(i as usize), 1.0)]
                } else {
                    vec![(None, 0.0)]
                }
            }
        })
        .collect()
}

/// A resampling of `[b, h, w, c]` to `[b, out_h, out_w, c]`.
#[derive(Clone, Debug)]
pub struct Resample {
    /// Sampling on both spatial axes.
    pub sampling: Sampling,
    /// Output height and width.
    pub out: [usize; 2],
}

impl Resample {
    /// The taps of every output element for an input of `shape` (`[b, h, w, c]`).
    pub fn taps(&self, shape: &[usize]) -> Result<Taps> {
        let &[b, h, w, c] = shape else {
            return Err(Error::Model(format!(
                "resampling expects [batch, height, width, channels], got {shape:?}"
            )));
        };
        if h == 0 || w == 0 {
            return Err(Error::Model("resampling an empty image".into()));
        }
        let start = match self.sampling {
            Sampling::CropNearest { start } => start,
            _ => [0, 0],
        };
        let rows = axis_taps(self.sampling, h, self.out[0], start[0], self.out[0]);
        let cols = axis_taps(self.sampling, w, self.out[1], start[1], self.out[1]);
        let per = rows[0].len() * cols.first().map_or(1, Vec::len);
        let n = b * self.out[0] * self.out[1] * c;
        let (mut index, mut weight) = (Vec::with_capacity(n * per), Vec::with_capacity(n * per));
        for nb in 0..b {
            for row in &rows {
                for col in &cols {
                    for ch in 0..c {
                        for &(y, wy) in row {
                            for &(x, wx) in col {
                                match (y, x) {
                                    (Some(y), Some(x)) => {
                                        index.push((((nb * h + y) * w + x) * c + ch) as u32);
                                        weight.push((wy * wx) as f32);
                                    }
                                    _ => {
                                        index.push(super::GATHER_PAD);
                                        weight.push(0.0);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Taps {
            shape: vec![b, self.out[0], self.out[1], c],
            taps: per,
            index,
            weight,
        })
    }

    /// Apply to `x` on the CPU (the same taps the GPU gathers).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let t = self.taps(&x.shape)?;
        let data = t
            .index
            .chunks(t.taps)
            .zip(t.weight.chunks(t.taps))
            .map(|(idx, w)| {
                idx.iter()
                    .zip(w)
                    .filter(|(&i, _)| i != super::GATHER_PAD)
                    .map(|(&i, &w)| f64::from(x.data[i as usize]) * f64::from(w))
                    .sum::<f64>() as f32
            })
            .collect();
        Tensor::new(t.shape, data)
    }
}

/// A layer that is one [`Resample`] decided by its input's spatial size.
struct Resampling {
    name: String,
    out: [usize; 2],
    /// The resampling for an input of height and width `(h, w)`.
    plan: fn(&Resampling, usize, usize) -> Resample,
    align: bool,
    nearest: bool,
}

impl Resampling {
    fn for_shape(&self, shape: &[usize]) -> Result<Resample> {
        if shape.len() != 4 {
            return Err(Error::Model(format!(
                "layer '{}' expects [batch, height, width, channels], got {shape:?}",
                self.name
            )));
        }
        Ok((self.plan)(self, shape[1], shape[2]))
    }
}

impl super::WeightedMap for Resampling {
    fn weighted_map(&self, shape: &[usize]) -> Result<Taps> {
        self.for_shape(shape)?.taps(shape)
    }
}

impl Layer for Resampling {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let x = &inputs[0];
        if x.len() != 4 {
            return Err(Error::Model(format!(
                "layer '{}' expects a rank-4 input",
                self.name
            )));
        }
        Ok(vec![x[0], Some(self.out[0]), Some(self.out[1]), x[3]])
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        self.for_shape(&x.shape)?.apply(x)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::WeightedGather(self))
    }
}

/// Resizing: TF.js calls `resizeBilinear` / `resizeNearestNeighbor` with
/// `alignCorners = !crop_to_aspect_ratio` (so corners align by default) and crops nothing.
fn resize_plan(r: &Resampling, _h: usize, _w: usize) -> Resample {
    Resample {
        sampling: if r.nearest {
            Sampling::Nearest { align: r.align }
        } else {
            Sampling::Bilinear { align: r.align }
        },
        out: r.out,
    }
}

/// CenterCrop as TF.js computes it: offsets `floor((in − out)/2)` (a width offset of 0 becomes
/// 1 when the widths differ), sampled by `cropAndResize` with nearest rounding; an input smaller
/// than the crop on either axis is resized bilinearly instead.
fn center_crop_plan(r: &Resampling, h: usize, w: usize) -> Resample {
    let offset = |input: usize, out: usize| -> isize {
        if input == out {
            0
        } else {
            (input as isize - out as isize).div_euclid(2)
        }
    };
    let dh = offset(h, r.out[0]);
    let mut dw = offset(w, r.out[1]);
    if w != r.out[1] && dw == 0 {
        dw = 1;
    }
    let sampling = if dh >= 0 && dw >= 0 {
        Sampling::CropNearest {
            start: [dh as usize, dw as usize],
        }
    } else {
        Sampling::Bilinear { align: false }
    };
    Resample {
        sampling,
        out: r.out,
    }
}

pub(super) fn resizing(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let nearest = match ctx.str_or("interpolation", "bilinear") {
        "bilinear" => false,
        "nearest" => true,
        other => {
            return Err(ctx.err(format!(
                "interpolation '{other}' is not supported (bilinear, nearest)"
            )))
        }
    };
    let crop =
        ctx.bool_or("crop_to_aspect_ratio", false) || ctx.bool_or("cropToAspectRatio", false);
    Ok(Box::new(Resampling {
        name: ctx.name.to_string(),
        out: [ctx.usize("height")?, ctx.usize("width")?],
        plan: resize_plan,
        align: !crop,
        nearest,
    }))
}

pub(super) fn center_crop(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Resampling {
        name: ctx.name.to_string(),
        out: [ctx.usize("height")?, ctx.usize("width")?],
        plan: center_crop_plan,
        align: false,
        nearest: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_taps_follow_crop_and_resize() {
        // H = 10 cropped to 6 from offset 2: y = 1.8 + o·1.08, rounded half up.
        let t = axis_taps(Sampling::CropNearest { start: [2, 0] }, 10, 6, 2, 6);
        let rows: Vec<usize> = t.iter().map(|v| v[0].0.unwrap()).collect();
        assert_eq!(rows, [2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn aligned_bilinear_hits_the_corners() {
        let t = axis_taps(Sampling::Bilinear { align: true }, 4, 7, 0, 7);
        assert_eq!(t[0][0], (Some(0), 1.0));
        assert_eq!(t[6][0].0, Some(3));
        assert!((t[6][0].1 - 1.0).abs() < 1e-12);
    }
}
