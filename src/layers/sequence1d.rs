//! ZeroPadding1D, Cropping1D and UpSampling1D (Keras 3; TF.js 4.22 lacks them): data movement
//! along the steps of `[batch, steps, features]`. One implementation: output step `o` takes
//! input step `source(o)` or zero; the GPU gathers by the map the CPU forward yields.

use super::{one, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

#[derive(Clone, Copy)]
enum Move {
    /// Zeros before and after.
    Pad(usize, usize),
    /// Steps dropped at the start and the end.
    Crop(usize, usize),
    /// Each step repeated.
    Repeat(usize),
}

struct Steps {
    name: String,
    how: Move,
}

impl Steps {
    fn out_len(&self, n: usize) -> Result<usize> {
        match self.how {
            Move::Pad(a, b) => Ok(n + a + b),
            Move::Crop(a, b) if a + b < n => Ok(n - a - b),
            Move::Crop(a, b) => Err(Error::Model(format!(
                "layer '{}': cropping {a} + {b} steps leaves nothing of {n}",
                self.name
            ))),
            Move::Repeat(k) => Ok(n * k),
        }
    }

    /// The input step output step `o` reads, if any.
    fn source(&self, o: usize, n: usize) -> Option<usize> {
        match self.how {
            Move::Pad(a, _) => o.checked_sub(a).filter(|&i| i < n),
            Move::Crop(a, _) => Some(o + a),
            Move::Repeat(k) => Some(o / k),
        }
    }
}

impl Layer for Steps {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let s = &inputs[0];
        if s.len() != 3 {
            return Err(Error::Model(format!(
                "layer '{}': expects [batch, steps, features], got rank {}",
                self.name,
                s.len()
            )));
        }
        let steps = s[1].map(|n| self.out_len(n)).transpose()?;
        Ok(vec![s[0], steps, s[2]])
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let (b, n, f) = match x.shape[..] {
            [b, n, f] => (b, n, f),
            _ => {
                return Err(Error::Model(format!(
                    "layer '{}': rank-3 input expected",
                    self.name
                )))
            }
        };
        let m = self.out_len(n)?;
        let mut data = vec![0.0f32; b * m * f];
        for r in 0..b {
            for o in 0..m {
                if let Some(i) = self.source(o, n) {
                    let src = &x.data[(r * n + i) * f..(r * n + i + 1) * f];
                    data[(r * m + o) * f..(r * m + o + 1) * f].copy_from_slice(src);
                }
            }
        }
        Tensor::new(vec![b, m, f], data)
    }

    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Drop
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Gather)
    }
}

/// `(before, after)` from an int or a pair under `key`.
fn pair(ctx: &LayerCtx, key: &str, default: usize) -> Result<(usize, usize)> {
    let bad = || {
        ctx.err(format!(
            "config '{key}' must be an integer or a pair of integers"
        ))
    };
    match ctx.get(key) {
        None | Some(Value::Null) => Ok((default, default)),
        Some(Value::Array(a)) if a.len() == 2 => {
            let v = |i: usize| a[i].as_u64().map(|v| v as usize).ok_or_else(bad);
            Ok((v(0)?, v(1)?))
        }
        Some(v) => v.as_u64().map(|v| (v as usize, v as usize)).ok_or_else(bad),
    }
}

fn steps(ctx: &LayerCtx, how: Move) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Steps {
        name: ctx.name.to_string(),
        how,
    }))
}

pub(super) fn zero_padding(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let (a, b) = pair(ctx, "padding", 1)?;
    steps(ctx, Move::Pad(a, b))
}

pub(super) fn cropping(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let (a, b) = pair(ctx, "cropping", 1)?;
    steps(ctx, Move::Crop(a, b))
}

pub(super) fn upsampling(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let (k, _) = pair(ctx, "size", 2)?;
    if k == 0 {
        return Err(ctx.err("config 'size' must be at least 1"));
    }
    steps(ctx, Move::Repeat(k))
}
