//! BatchNormalization (inference: moving statistics) and LayerNormalization.

use super::{normalize_axis, one, Layer, LayerCtx, Shape};
use crate::error::Result;
use crate::tensor::Tensor;
use serde_json::Value;

/// `y = x * a[c] + b[c]` per channel `c` along `axis` (BatchNormalization folded at build time).
struct BatchNorm {
    axis: usize,
    /// The input's rank (the axis is last when `axis + 1 == rank`).
    rank: usize,
    mul: Vec<f32>,
    add: Vec<f32>,
}

impl BatchNorm {
    /// `x ← x · mul[c] + add[c]`, a run of `inner` values per channel (1 when channels are last).
    fn apply(&self, t: &mut Tensor) {
        let inner: usize = t.shape[self.axis + 1..].iter().product::<usize>().max(1);
        let (mul, add) = (&self.mul, &self.add);
        let c = mul.len().max(1);
        if inner == 1 {
            return self.affine_rows(&mut t.data);
        }
        for (i, run) in t.data.chunks_mut(inner).enumerate() {
            let (m, a) = (mul[i % c], add[i % c]);
            run.iter_mut().for_each(|x| *x = *x * m + a);
        }
    }

    /// `x ← x · mul[c] + add[c]` over whole rows whose last axis is the channels.
    fn affine_rows(&self, data: &mut [f32]) {
        crate::cpu::rows::affine(data, &self.mul, &self.add);
    }
}

impl Layer for BatchNorm {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut t = one(inputs, "BatchNormalization")?.clone();
        self.apply(&mut t);
        Ok(t)
    }
    fn forward_in_place(&self, x: &mut Tensor, _rest: &[&Tensor]) -> Option<Result<()>> {
        self.apply(x);
        Some(Ok(()))
    }
    fn row_epilogue(&self) -> Option<super::RowFn<'_>> {
        // Only on the last axis (channels last): a block of whole rows then starts at channel 0.
        (self.axis + 1 == self.rank)
            .then(|| Box::new(|block: &mut [f32]| self.affine_rows(block)) as super::RowFn<'_>)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Affine {
            mul: &self.mul,
            add: &self.add,
            axis: self.axis as isize,
            activation: super::Activation::Linear,
        })
    }
}
fn axis_of(ctx: &LayerCtx, rank: usize) -> Result<usize> {
    let v = match ctx.get("axis") {
        None => -1,
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_i64().unwrap_or(-1),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ctx.err("config 'axis' must be an integer"))?,
    };
    normalize_axis(v as isize, rank)
        .ok_or_else(|| ctx.err(format!("axis {v} out of range for rank {rank}")))
}

pub(super) fn batch_norm(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let rank = ctx.input()?.len();
    let axis = axis_of(ctx, rank)?;
    let c = ctx.input_dim(axis as isize)?;
    let eps = ctx.f64_or("epsilon", 1e-3)?;
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
    let mean = ctx.weight("moving_mean", &[c])?;
    let var = ctx.weight("moving_variance", &[c])?;
    let mut mul = Vec::with_capacity(c);
    let mut add = Vec::with_capacity(c);
    for i in 0..c {
        let g = gamma.as_ref().map_or(1.0, |g| g.data[i] as f64);
        let m = g / (var.data[i] as f64 + eps).sqrt();
        mul.push(m as f32);
        add.push(
            (beta.as_ref().map_or(0.0, |b| b.data[i] as f64) - mean.data[i] as f64 * m) as f32,
        );
    }
    Ok(Box::new(BatchNorm {
        axis,
        rank,
        mul,
        add,
    }))
}

/// Keras 3's Normalization (preprocessing): `(x - mean) / max(sqrt(variance), 1e-7)` per
/// channel along `axis` (`invert`: `mean + x * max(sqrt(variance), 1e-7)`), the statistics
/// from the config (`mean`, `variance`) or from the adapted variables (`mean`, `variance`,
/// `count`). Folded into the per-channel affine form BatchNormalization uses.
pub(super) fn keras_normalization(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let rank = ctx.input()?.len();
    let axis = match ctx.get("axis") {
        Some(Value::Null) => {
            return Err(ctx.err("axis None (one statistic for every value) is not supported"))
        }
        Some(Value::Array(a)) if a.len() > 1 => {
            return Err(ctx.err("statistics over several axes are not supported"))
        }
        _ => axis_of(ctx, rank)?,
    };
    let c = ctx.input_dim(axis as isize)?;
    let from_config = |key: &str| -> Result<Option<Vec<f64>>> {
        let v = match ctx.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let flat: Vec<f64> = match v {
            Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
            v => v.as_f64().into_iter().collect(),
        };
        match flat.len() {
            1 => Ok(Some(vec![flat[0]; c])),
            n if n == c => Ok(Some(flat)),
            _ => Err(ctx.err(format!("config '{key}' holds {v}, not 1 or {c} numbers"))),
        }
    };
    let (mean, var) = match (from_config("mean")?, from_config("variance")?) {
        (Some(m), Some(v)) => (m, v),
        (None, None) => {
            let wide = |t: Tensor| t.data.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
            let mean = wide(ctx.weight("mean", &[c])?);
            let var = wide(ctx.weight("variance", &[c])?);
            ctx.optional_weight("count", &[])?;
            (mean, var)
        }
        _ => return Err(ctx.err("config gives only one of 'mean' and 'variance'")),
    };
    let invert = ctx.bool_or("invert", false);
    let (mut mul, mut add) = (Vec::with_capacity(c), Vec::with_capacity(c));
    for (m, v) in mean.iter().zip(&var) {
        let d = v.sqrt().max(1e-7);
        let (a, b) = if invert { (d, *m) } else { (1.0 / d, -m / d) };
        mul.push(a as f32);
        add.push(b as f32);
    }
    Ok(Box::new(BatchNorm {
        axis,
        rank,
        mul,
        add,
    }))
}

/// ConvNeXt's LayerScale (keras.applications): `x * gamma`, `gamma` of `projection_dim`
/// values along the last axis. The per-channel affine form with a zero offset.
pub(super) fn layer_scale(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let rank = ctx.input()?.len();
    let c = ctx.input_dim(-1)?;
    let dim = ctx.usize_or("projection_dim", c)?;
    if dim != c {
        return Err(ctx.err(format!(
            "projection_dim {dim} differs from the input's last dimension {c}"
        )));
    }
    let gamma = ctx.weight("gamma", &[c])?;
    Ok(Box::new(BatchNorm {
        axis: rank - 1,
        rank,
        mul: gamma.data.into_vec(),
        add: vec![0.0; c],
    }))
}

/// Normalize over `axes` (trailing, contiguous), then scale and shift.
struct LayerNorm {
    axes: Vec<usize>,
    rank: usize,
    group: usize,
    eps: f64,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
}

impl Layer for LayerNorm {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, "LayerNormalization")?;
        let rank = x.rank();
        // Move the normalized axes last so each group is contiguous.
        let perm: Vec<usize> = (0..rank)
            .filter(|a| !self.axes.contains(a))
            .chain(self.axes.iter().copied())
            .collect();
        let mut t = x.permuted(&perm);
        let group: usize = self.axes.iter().map(|&a| x.shape[a]).product();
        for row in t.data.chunks_mut(group.max(1)) {
            let n = row.len() as f64;
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for (j, v) in row.iter_mut().enumerate() {
                let g = self.gamma.as_ref().map_or(1.0, |g| g.data[j] as f64);
                let b = self.beta.as_ref().map_or(0.0, |b| b.data[j] as f64);
                *v = ((*v as f64 - mean) * inv * g + b) as f32;
            }
        }
        let mut back = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            back[p] = i;
        }
        Ok(t.permuted(&back))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        // The kernel normalizes the trailing values of each row; other axes are moved last first
        // (gamma and beta are laid out in the order of the sorted axes, which moving keeps).
        let trailing = self.axes.windows(2).all(|w| w[1] == w[0] + 1)
            && self.axes.last() == Some(&(self.rank - 1));
        let norm = super::GpuForm::LayerNorm {
            group: self.group,
            eps: self.eps as f32,
            gamma: self.gamma.as_ref(),
            beta: self.beta.as_ref(),
        };
        Some(if trailing {
            norm
        } else {
            super::GpuForm::Permuted {
                to: super::axes_last(&self.axes, self.rank),
                inner: Box::new(norm),
            }
        })
    }
}

pub(super) fn layer_norm(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let rank = ctx.input()?.len();
    let raw: Vec<i64> = match ctx.get("axis") {
        None => vec![-1],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        Some(v) => vec![v
            .as_i64()
            .ok_or_else(|| ctx.err("config 'axis' must be an integer or a list"))?],
    };
    let mut axes: Vec<usize> = raw
        .iter()
        .map(|&a| {
            normalize_axis(a as isize, rank)
                .ok_or_else(|| ctx.err(format!("axis {a} out of range")))
        })
        .collect::<Result<_>>()?;
    axes.sort_unstable();
    let dims: Vec<usize> = axes
        .iter()
        .map(|&a| ctx.input_dim(a as isize))
        .collect::<Result<_>>()?;
    let gamma = if ctx.bool_or("scale", true) {
        Some(ctx.weight("gamma", &dims)?)
    } else {
        None
    };
    let beta = if ctx.bool_or("center", true) {
        Some(ctx.weight("beta", &dims)?)
    } else {
        None
    };
    Ok(Box::new(LayerNorm {
        rank,
        group: dims.iter().product(),
        axes,
        eps: ctx.f64_or("epsilon", 1e-3)?,
        gamma,
        beta,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_norm_broadcasts_along_its_axis() {
        // Keras semantics for axis 1 of [1, 2, 1, 3]: channel c scales all 3 values of row c.
        // (TF.js's CPU kernel instead cycles the parameters over the innermost axis.)
        let bn = BatchNorm {
            axis: 1,
            rank: 4,
            mul: vec![2.0, 10.0],
            add: vec![0.0, 1.0],
        };
        let x = Tensor::new(vec![1, 2, 1, 3], vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0]).unwrap();
        assert_eq!(
            bn.forward(&[&x]).unwrap().data,
            vec![2.0, 2.0, 2.0, 11.0, 11.0, 11.0]
        );
    }
}
