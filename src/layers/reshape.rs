//! Layers that move data without arithmetic (InputLayer and the inference-time identities such as
//! Dropout, Flatten, Reshape, Permute, RepeatVector) and Rescaling.

use super::{one, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

struct Identity;

impl Layer for Identity {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(one(inputs, "identity")?.clone())
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Identity)
    }
}

/// InputLayer, and noise / dropout layers, which are identities at inference.
pub(super) fn identity(_ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Identity))
}

/// Keras 3.15's RandomCrop at inference returns its input unchanged, while declaring a
/// `height × width` output: an identity where the input already has that size, refused
/// otherwise (Keras's own predict then breaks the layers after it).
pub(super) fn random_crop(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let shape = ctx.input()?;
    let (h, w) = if ctx.channels_first() { (2, 3) } else { (1, 2) };
    let want = (ctx.usize("height")?, ctx.usize("width")?);
    if shape.len() != 4 || (shape[h], shape[w]) != (Some(want.0), Some(want.1)) {
        return Err(ctx.err(format!(
            "input {shape:?} is not {}×{}: Keras 3.15 returns it uncropped at inference, contradicting the declared shape",
            want.0,
            want.1
        )));
    }
    Ok(Box::new(Identity))
}

struct Flatten {
    channels_first: bool,
}

impl Layer for Flatten {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let s = &inputs[0];
        Ok(vec![
            s[0],
            s[1..].iter().copied().product::<Option<usize>>(),
        ])
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, "Flatten")?;
        let rank = x.rank();
        let x = if self.channels_first && rank > 2 {
            let perm: Vec<usize> = [0].into_iter().chain(2..rank).chain([1]).collect();
            x.permuted(&perm)
        } else {
            x.clone()
        };
        let n = x.shape.first().copied().unwrap_or(1);
        let rest = x.data.len() / n.max(1);
        x.reshaped(vec![n, rest])
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        // channels_last data is already in flatten order; channels_first needs a transpose.
        Some(if self.channels_first {
            super::GpuForm::Gather
        } else {
            super::GpuForm::Identity
        })
    }
}

pub(super) fn flatten(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Flatten {
        channels_first: ctx.channels_first(),
    }))
}

struct Reshape {
    target: Vec<i64>,
    name: String,
}

impl Reshape {
    fn resolve(&self, known: usize) -> Result<Vec<usize>> {
        let fixed: i64 = self.target.iter().filter(|&&d| d != -1).product();
        let wild = self.target.iter().filter(|&&d| d == -1).count();
        let bad = || {
            Error::Model(format!(
                "layer '{}': cannot reshape {known} values per example into {:?}",
                self.name, self.target
            ))
        };
        match wild {
            0 if fixed as usize == known => Ok(self.target.iter().map(|&d| d as usize).collect()),
            1 if fixed > 0 && known.is_multiple_of(fixed as usize) => Ok(self
                .target
                .iter()
                .map(|&d| {
                    if d == -1 {
                        known / fixed as usize
                    } else {
                        d as usize
                    }
                })
                .collect()),
            _ => Err(bad()),
        }
    }
}

impl Layer for Reshape {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let known = inputs[0][1..].iter().copied().product::<Option<usize>>();
        let dims: Shape = match known {
            Some(k) => self.resolve(k)?.into_iter().map(Some).collect(),
            None => self
                .target
                .iter()
                .map(|&d| (d >= 0).then_some(d as usize))
                .collect(),
        };
        Ok([inputs[0][0]].into_iter().chain(dims).collect())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let n = x.shape[0];
        let dims = self.resolve(x.data.len() / n.max(1))?;
        x.clone().reshaped([n].into_iter().chain(dims).collect())
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Identity)
    }
}

pub(super) fn reshape(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let target = ctx
        .get("target_shape")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| ctx.err("config 'target_shape' must be a list of integers"))?;
    Ok(Box::new(Reshape {
        target,
        name: ctx.name.to_string(),
    }))
}

struct Permute {
    perm: Vec<usize>,
}

impl Layer for Permute {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(self.perm.iter().map(|&p| inputs[0][p]).collect())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(one(inputs, "Permute")?.permuted(&self.perm))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Gather)
    }
}

pub(super) fn permute(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let dims: Vec<usize> = ctx
        .get("dims")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|v| v.as_u64().map(|u| u as usize)).collect())
        .ok_or_else(|| ctx.err("config 'dims' must be a list of axes"))?;
    let rank = ctx.input()?.len();
    let mut sorted = dims.clone();
    sorted.sort_unstable();
    if sorted != (1..rank).collect::<Vec<_>>() {
        return Err(ctx.err(format!(
            "dims {dims:?} are not a permutation of 1..{}",
            rank - 1
        )));
    }
    Ok(Box::new(Permute {
        perm: [0].into_iter().chain(dims).collect(),
    }))
}

struct RepeatVector {
    n: usize,
}

impl Layer for RepeatVector {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(vec![inputs[0][0], Some(self.n), inputs[0][1]])
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, "RepeatVector")?;
        let (b, f) = (x.shape[0], x.shape[1]);
        let mut data = Vec::with_capacity(b * self.n * f);
        for row in x.data.chunks(f.max(1)) {
            for _ in 0..self.n {
                data.extend_from_slice(row);
            }
        }
        Tensor::new(vec![b, self.n, f], data)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Gather)
    }
}

pub(super) fn repeat_vector(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(RepeatVector { n: ctx.usize("n")? }))
}

struct Rescaling {
    scale: [f32; 1],
    offset: [f32; 1],
}

impl Layer for Rescaling {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut t = one(inputs, "Rescaling")?.clone();
        t.data
            .iter_mut()
            .for_each(|x| *x = *x * self.scale[0] + self.offset[0]);
        Ok(t)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Affine {
            mul: &self.scale,
            add: &self.offset,
            axis: -1,
            activation: super::Activation::Linear,
        })
    }
}

pub(super) fn rescaling(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let scale = ctx.f64_or("scale", 1.0)? as f32;
    let offset = ctx.f64_or("offset", 0.0)? as f32;
    Ok(scalar_affine(scale, offset))
}

/// `x * scale + offset`, element-wise: Rescaling, and Keras 3's arithmetic with a number
/// (`merge::with_constant`).
pub(super) fn scalar_affine(scale: f32, offset: f32) -> Box<dyn Layer> {
    Box::new(Rescaling {
        scale: [scale],
        offset: [offset],
    })
}
