//! GroupNormalization and UnitNormalization (Keras 3): statistics over groups of channels at
//! every position (GroupNormalization) or over the normalized axes (UnitNormalization's L2
//! norm). Both move their axes last (a permutation when they are not), then run over
//! `[batch, positions, channels]` as group_norm.wgsl does.

use super::{normalize_axis, one, Layer, LayerCtx, Shape};
use crate::error::Result;
use crate::tensor::Tensor;
use serde_json::Value;

/// Which statistic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GroupMode {
    /// `(x - mean) / sqrt(var + eps) * gamma + beta` per group.
    Normalize,
    /// `x * min(1 / ||x||, 1 / eps)` over the trailing axes.
    Unit,
}

/// A GroupNormalization or UnitNormalization layer.
pub struct GroupNorm {
    name: String,
    /// Statistic.
    pub mode: GroupMode,
    /// Channel groups (GroupNormalization); 1 for UnitNormalization.
    pub groups: usize,
    /// Epsilon.
    pub eps: f32,
    /// Per-channel scale.
    pub gamma: Option<Tensor>,
    /// Per-channel offset.
    pub beta: Option<Tensor>,
    /// The axes reduced together last (UnitNormalization) or the channel axis (GroupNorm).
    axes: Vec<usize>,
    /// The input's rank.
    rank: usize,
}

impl GroupNorm {
    /// The permutation moving `axes` last, or empty when they already are.
    pub fn permutation(&self, rank: usize) -> Vec<usize> {
        let rest = (0..rank).filter(|a| !self.axes.contains(a));
        let to: Vec<usize> = rest.chain(self.axes.iter().copied()).collect();
        if to.iter().enumerate().all(|(i, &a)| i == a) {
            Vec::new()
        } else {
            to
        }
    }

    /// `(batch, positions, channels)` of a permuted input (its reduced axes last) of `shape`.
    pub fn view(&self, shape: &[usize]) -> (usize, usize, usize) {
        let n: usize = shape.iter().product();
        let reduced: usize = shape[shape.len() - self.axes.len()..].iter().product();
        let batch = if self.mode == GroupMode::Unit {
            n / reduced.max(1)
        } else {
            shape[0]
        };
        (batch, n / (batch * reduced).max(1), reduced)
    }

    /// Normalize a channels-last `[batch, positions, channels]` view in place.
    fn run(&self, data: &mut [f32], (batch, positions, channels): (usize, usize, usize)) {
        let width = channels / self.groups.max(1);
        for b in 0..batch {
            for g in 0..self.groups {
                let at = |p: usize, j: usize| (b * positions + p) * channels + g * width + j;
                let all = || (0..positions).flat_map(move |p| (0..width).map(move |j| (p, j)));
                let n = (positions * width) as f32;
                let mean = all().map(|(p, j)| data[at(p, j)]).sum::<f32>() / n;
                let squares: f32 = all().map(|(p, j)| data[at(p, j)].powi(2)).sum();
                let var = all()
                    .map(|(p, j)| (data[at(p, j)] - mean).powi(2))
                    .sum::<f32>()
                    / n;
                for (p, j) in all() {
                    let c = g * width + j;
                    let x = &mut data[at(p, j)];
                    if self.mode == GroupMode::Unit {
                        *x *= (1.0 / squares.sqrt()).min(1.0 / self.eps);
                        continue;
                    }
                    let inv = (var + self.eps).sqrt().recip()
                        * self.gamma.as_ref().map_or(1.0, |t| t.data[c]);
                    let offset = self.beta.as_ref().map_or(0.0, |t| t.data[c]) - mean * inv;
                    *x = x.mul_add(inv, offset);
                }
            }
        }
    }
}

impl Layer for GroupNorm {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let to = self.permutation(x.rank());
        let mut t = if to.is_empty() {
            x.clone()
        } else {
            x.permuted(&to)
        };
        let view = self.view(&t.shape);
        self.run(&mut t.data, view);
        if to.is_empty() {
            return Ok(t);
        }
        let mut back = vec![0; to.len()];
        to.iter().enumerate().for_each(|(i, &p)| back[p] = i);
        Ok(t.permuted(&back))
    }

    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        let to = self.permutation(self.rank);
        let form = super::GpuForm::GroupNorm(self);
        Some(if to.is_empty() {
            form
        } else {
            super::GpuForm::Permuted {
                to,
                inner: Box::new(form),
            }
        })
    }
}

fn axes_of(ctx: &LayerCtx, rank: usize, default: i64) -> Result<Vec<usize>> {
    let raw: Vec<i64> = match ctx.get("axis") {
        None => vec![default],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_i64().unwrap_or(i64::MAX)).collect(),
        Some(v) => vec![v.as_i64().unwrap_or(i64::MAX)],
    };
    let mut axes = raw
        .iter()
        .map(|&a| {
            normalize_axis(a as isize, rank)
                .filter(|&a| a > 0)
                .ok_or_else(|| {
                    ctx.err(format!(
                        "axis {a} out of range for rank {rank} (or the batch)"
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    axes.sort_unstable();
    axes.dedup();
    Ok(axes)
}

pub(super) fn group_normalization(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let rank = ctx.input()?.len();
    let axes = axes_of(ctx, rank, -1)?;
    let [axis] = axes[..] else {
        return Err(ctx.err("one channel axis expected"));
    };
    let c = ctx.input_dim(axis as isize)?;
    let groups = match ctx.get("groups").and_then(Value::as_i64) {
        Some(-1) => c,
        Some(g) if g > 0 => g as usize,
        None => 32,
        Some(g) => return Err(ctx.err(format!("groups {g} must be positive or -1"))),
    };
    if c % groups != 0 {
        return Err(ctx.err(format!("groups {groups} does not divide the {c} channels")));
    }
    let gamma = if ctx.bool_or("scale", true) {
        Some(ctx.weight("gamma", &[c])?)
    } else {
        None
    };
    let beta = if ctx.bool_or("center", true) {
        Some(ctx.weight("beta", &[c])?)
    } else {
        None
    };
    Ok(Box::new(GroupNorm {
        name: ctx.name.to_string(),
        mode: GroupMode::Normalize,
        groups,
        eps: ctx.f64_or("epsilon", 1e-3)? as f32,
        gamma,
        beta,
        axes,
        rank,
    }))
}

pub(super) fn unit_normalization(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let rank = ctx.input()?.len();
    Ok(Box::new(GroupNorm {
        name: ctx.name.to_string(),
        mode: GroupMode::Unit,
        groups: 1,
        eps: 1e-12,
        gamma: None,
        beta: None,
        axes: axes_of(ctx, rank, -1)?,
        rank,
    }))
}
