//! ZeroPadding1D/3D, Cropping1D/3D and UpSampling1D/3D (Keras 3; TF.js 4.22 lacks them): data
//! movement along each spatial axis of `[batch, *spatial, channels]` (or channels_first). One
//! implementation: output position `o` on an axis takes input position `source(o)` or zero; the
//! GPU gathers by the map the CPU forward yields.

use super::conv::{from_channels_last, to_channels_last};
use super::{one, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::{strides, Tensor};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Move {
    /// Zeros before and after.
    Pad(usize, usize),
    /// Positions dropped at the start and the end.
    Crop(usize, usize),
    /// Each position repeated.
    Repeat(usize),
}

impl Move {
    fn out_len(self, n: usize, name: &str) -> Result<usize> {
        match self {
            Move::Pad(a, b) => Ok(n + a + b),
            Move::Crop(a, b) if a + b < n => Ok(n - a - b),
            Move::Crop(a, b) => Err(Error::Model(format!(
                "layer '{name}': cropping {a} + {b} positions leaves nothing of {n}"
            ))),
            Move::Repeat(k) => Ok(n * k),
        }
    }

    /// The input position output position `o` reads, if any.
    fn source(self, o: usize, n: usize) -> Option<usize> {
        match self {
            Move::Pad(a, _) => o.checked_sub(a).filter(|&i| i < n),
            Move::Crop(a, _) => Some(o + a),
            Move::Repeat(k) => Some(o / k),
        }
    }
}

struct Moves {
    name: String,
    /// One move per spatial axis.
    axes: Vec<Move>,
    channels_first: bool,
}

impl Moves {
    fn spatial_range(&self, rank: usize) -> std::ops::Range<usize> {
        if self.channels_first {
            2..rank
        } else {
            1..rank - 1
        }
    }
}

impl Layer for Moves {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let s = &inputs[0];
        if s.len() != self.axes.len() + 2 {
            return Err(Error::Model(format!(
                "layer '{}': expects rank {}, got rank {}",
                self.name,
                self.axes.len() + 2,
                s.len()
            )));
        }
        let mut out = s.clone();
        for (d, m) in self.spatial_range(s.len()).zip(&self.axes) {
            out[d] = s[d].map(|n| m.out_len(n, &self.name)).transpose()?;
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let rank = x.rank();
        if rank != self.axes.len() + 2 {
            return Err(Error::Model(format!(
                "layer '{}': rank-{} input expected",
                self.name,
                self.axes.len() + 2
            )));
        }
        let mut shape = x.shape.clone();
        for (d, m) in self.axes.iter().enumerate() {
            shape[d + 1] = m.out_len(x.shape[d + 1], &self.name)?;
        }
        let c = shape[rank - 1];
        let (src_strides, positions) = (
            strides(&x.shape),
            shape[..rank - 1].iter().product::<usize>(),
        );
        let mut data = vec![0.0f32; positions * c];
        let mut index = vec![0usize; rank - 1];
        for p in 0..positions {
            let mut src = Some(index[0] * src_strides[0]);
            for (d, m) in self.axes.iter().enumerate() {
                src = src.and_then(|s| {
                    Some(s + m.source(index[d + 1], x.shape[d + 1])? * src_strides[d + 1])
                });
            }
            if let Some(s) = src {
                data[p * c..(p + 1) * c].copy_from_slice(&x.data[s..s + c]);
            }
            for d in (0..rank - 1).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(from_channels_last(
            Tensor::new(shape, data)?,
            self.channels_first,
        ))
    }

    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Drop
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Gather)
    }
}

/// `(before, after)` per axis from an int, a list of `n` ints, or `n` pairs under `key`.
fn pairs(ctx: &LayerCtx, key: &str, n: usize, default: usize) -> Result<Vec<(usize, usize)>> {
    let bad = || {
        ctx.err(format!(
            "config '{key}' must be an integer, {n} integers or {n} pairs of integers"
        ))
    };
    let int = |v: &Value| v.as_u64().map(|v| v as usize).ok_or_else(bad);
    let pair = |v: &Value| match v {
        Value::Array(a) if a.len() == 2 => Ok((int(&a[0])?, int(&a[1])?)),
        v => int(v).map(|i| (i, i)),
    };
    match ctx.get(key) {
        None | Some(Value::Null) => Ok(vec![(default, default); n]),
        // ZeroPadding1D's (before, after) pair.
        Some(Value::Array(a)) if n == 1 && a.len() == 2 && a.iter().all(Value::is_u64) => {
            Ok(vec![(int(&a[0])?, int(&a[1])?)])
        }
        Some(Value::Array(a)) if a.len() == n => a.iter().map(pair).collect(),
        Some(v) => int(v).map(|i| vec![(i, i); n]),
    }
}

fn moves(ctx: &LayerCtx, axes: Vec<Move>) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Moves {
        name: ctx.name.to_string(),
        channels_first: ctx.channels_first(),
        axes,
    }))
}

fn rank_of(ctx: &LayerCtx) -> usize {
    if ctx.class.ends_with("3D") {
        3
    } else {
        1
    }
}

pub(super) fn zero_padding(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let p = pairs(ctx, "padding", rank_of(ctx), 1)?;
    moves(ctx, p.into_iter().map(|(a, b)| Move::Pad(a, b)).collect())
}

pub(super) fn cropping(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let p = pairs(ctx, "cropping", rank_of(ctx), 1)?;
    moves(ctx, p.into_iter().map(|(a, b)| Move::Crop(a, b)).collect())
}

pub(super) fn upsampling(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let p = pairs(ctx, "size", rank_of(ctx), 2)?;
    if p.iter().any(|&(k, j)| k == 0 || k != j) {
        return Err(ctx.err("config 'size' must be one factor (at least 1) per axis"));
    }
    moves(ctx, p.into_iter().map(|(k, _)| Move::Repeat(k)).collect())
}
