//! Wrappers: Bidirectional (a recurrent layer run forward and backward, merged) and
//! TimeDistributed (any layer applied to every time step), and the Masking layer.

use super::recurrent::{build_recurrent, reverse_time, Recurrent};
use super::{builder, one, Layer, LayerCtx, MaskRule, Shape};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

/// How Bidirectional merges its two directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    /// Not merged: the two directions are separate outputs.
    None,
    /// Concatenated on the last axis (forward first).
    Concat,
    /// Summed.
    Sum,
    /// Multiplied.
    Mul,
    /// Averaged.
    Ave,
}

/// Bidirectional over a recurrent layer.
pub struct Bidirectional {
    name: String,
    /// Forward direction.
    pub forward: Recurrent,
    /// Backward direction (`go_backwards` flipped).
    pub backward: Recurrent,
    /// Merge.
    pub merge: MergeMode,
}

impl Bidirectional {
    /// The output(s) and, with `return_state`, the forward then backward final states.
    fn run(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, Vec<Tensor>)> {
        let (f, fs) = self.forward.run_with_states(x, mask, &[])?;
        let (mut b, bs) = self.backward.run_with_states(x, mask, &[])?;
        if self.backward.return_sequences {
            b = reverse_time(&b);
        }
        let mut extra = Vec::new();
        let out = if self.merge == MergeMode::None {
            extra.push(b);
            f
        } else {
            merge(self.merge, &f, &b)
        };
        if self.forward.return_state {
            extra.extend(fs);
            extra.extend(bs);
        }
        Ok((out, extra))
    }
}

/// Merge the two directions' outputs (same shape).
pub fn merge(mode: MergeMode, f: &Tensor, b: &Tensor) -> Tensor {
    let zip = |op: fn(f32, f32) -> f32| Tensor {
        shape: f.shape.clone(),
        data: f
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| op(x, y))
            .collect(),
        source: None,
    };
    match mode {
        MergeMode::None => f.clone(),
        MergeMode::Sum => zip(|x, y| x + y),
        MergeMode::Mul => zip(|x, y| x * y),
        MergeMode::Ave => zip(|x, y| (x + y) / 2.0),
        MergeMode::Concat => {
            let u = *f.shape.last().unwrap_or(&1);
            let mut shape = f.shape.clone();
            if let Some(l) = shape.last_mut() {
                *l = 2 * u;
            }
            let data = f
                .data
                .chunks(u.max(1))
                .zip(b.data.chunks(u.max(1)))
                .flat_map(|(x, y)| x.iter().chain(y).copied())
                .collect();
            Tensor {
                shape,
                data,
                source: None,
            }
        }
    }
}

impl Layer for Bidirectional {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let mut s = self.forward.output_shape(inputs)?;
        if self.merge == MergeMode::Concat {
            if let Some(Some(l)) = s.last_mut() {
                *l *= 2;
            }
        }
        Ok(s)
    }
    fn extra_output_shapes(&self, inputs: &[Shape]) -> Result<Vec<Shape>> {
        let mut shapes = Vec::new();
        if self.merge == MergeMode::None {
            shapes.push(self.forward.output_shape(inputs)?);
        }
        let state = vec![inputs[0][0], Some(self.forward.units())];
        if self.forward.return_state {
            shapes.extend(vec![state; 2 * self.forward.state_count()]);
        }
        Ok(shapes)
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(self.run(one(inputs, &self.name)?, None)?.0)
    }
    fn forward_all(
        &self,
        inputs: &[&Tensor],
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        self.run(one(inputs, &self.name)?, mask)
    }
    fn mask_rule(&self) -> MaskRule {
        self.forward.mask_rule()
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Bidirectional(self))
    }
}

/// The wrapped layer's class and config.
fn inner<'v>(ctx: &'v LayerCtx) -> Result<(&'v str, &'v Value)> {
    let layer = ctx
        .get("layer")
        .ok_or_else(|| ctx.err("config 'layer' is missing"))?;
    let class = layer
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.err("the wrapped layer has no class_name"))?;
    let config = layer
        .get("config")
        .ok_or_else(|| ctx.err("the wrapped layer has no config"))?;
    Ok((class, config))
}

pub(super) fn bidirectional(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    ctx.accept_initial_state()?;
    // Absent: Keras's default, concat; null: the two directions as separate outputs.
    if ctx.config.get("merge_mode") == Some(&Value::Null) {
        return bidirectional_with(ctx, MergeMode::None);
    }
    let merge = match ctx.get("merge_mode").and_then(Value::as_str) {
        None | Some("concat") => MergeMode::Concat,
        Some("sum") => MergeMode::Sum,
        Some("mul") => MergeMode::Mul,
        Some("ave") => MergeMode::Ave,
        Some(other) => return Err(ctx.err(format!("merge_mode '{other}' is not supported"))),
    };
    bidirectional_with(ctx, merge)
}

fn bidirectional_with(ctx: &LayerCtx, merge: MergeMode) -> Result<Box<dyn Layer>> {
    let (class, config) = inner(ctx)?;
    let inner_name = config.get("name").and_then(Value::as_str).unwrap_or(class);
    let half = |dir: &str| -> Result<Recurrent> {
        let name = format!("{}/{dir}_{inner_name}", ctx.name);
        // Keras 3 keeps the halves in the wrapper's `forward_layer` / `backward_layer`.
        let h5 = ctx.h5.map(|p| format!("{p}/{dir}_layer"));
        let sub = LayerCtx {
            class,
            name: &name,
            config,
            h5: h5.as_deref(),
            ..*ctx
        };
        build_recurrent(&sub)
    };
    let forward = half("forward")?;
    let mut backward = half("backward")?;
    backward.go_backwards = !backward.go_backwards;
    Ok(Box::new(Bidirectional {
        name: ctx.name.to_string(),
        forward,
        backward,
        merge,
    }))
}

/// TimeDistributed: the inner layer on `[batch·steps, …]`.
pub struct TimeDistributed {
    name: String,
    /// The wrapped layer (built for one step's shape).
    pub inner: Box<dyn Layer>,
}

/// `[b, t, rest…]` → (`[b·t, rest…]`, b, t).
fn merge_time(x: &Tensor) -> Result<(Tensor, usize, usize)> {
    if x.rank() < 3 {
        return Err(Error::Model(format!(
            "TimeDistributed expects [batch, steps, …], got {:?}",
            x.shape
        )));
    }
    let (b, t) = (x.shape[0], x.shape[1]);
    let shape = [b * t]
        .into_iter()
        .chain(x.shape[2..].iter().copied())
        .collect();
    Ok((Tensor::with_data(shape, x.data.clone())?, b, t))
}

impl Layer for TimeDistributed {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let x = &inputs[0];
        let step: Shape = [x[0]].into_iter().chain(x[2..].iter().copied()).collect();
        let out = self.inner.output_shape(&[step])?;
        Ok([out[0], x[1]]
            .into_iter()
            .chain(out[1..].iter().copied())
            .collect())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let (flat, b, t) = merge_time(one(inputs, &self.name)?)?;
        let y = self.inner.forward(&[&flat])?;
        let shape = [b, t]
            .into_iter()
            .chain(y.shape[1..].iter().copied())
            .collect();
        Tensor::with_data(shape, y.data)
    }
    fn mask_rule(&self) -> MaskRule {
        MaskRule::Keep
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        // An identity (Flatten, Reshape, Dropout...) stays one: merging time into the batch does
        // not move data, and the planner aliases identities to their input buffer.
        self.inner.gpu().map(|f| match f {
            super::GpuForm::Identity => super::GpuForm::Identity,
            f => super::GpuForm::MergeTime(Box::new(f)),
        })
    }
}

pub(super) fn time_distributed(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let (class, config) = inner(ctx)?;
    let x = ctx.input()?;
    if x.len() < 3 {
        return Err(ctx.err("expects an input of rank 3 or more ([batch, steps, …])"));
    }
    let step: Shape = [x[0]].into_iter().chain(x[2..].iter().copied()).collect();
    let inputs = [step];
    // TF.js scopes the inner layer's weights under the wrapper's name; Keras 3 under the
    // wrapper's `layer` attribute.
    let h5 = ctx.h5.map(|p| format!("{p}/layer"));
    let sub = LayerCtx {
        class,
        config,
        inputs: &inputs,
        h5: h5.as_deref(),
        ..*ctx
    };
    let build = builder(class, ctx.name)?;
    Ok(Box::new(TimeDistributed {
        name: ctx.name.to_string(),
        inner: build(&sub)?,
    }))
}

/// Masking: steps whose features all equal `mask_value` are masked (and zeroed).
struct Masking {
    name: String,
    value: f32,
}

impl Masking {
    /// `[b, t]`: 1 where some feature differs from the mask value.
    fn mask(&self, x: &Tensor) -> Tensor {
        let rule = MaskRule::Features(self.value);
        rule.apply(x, None)
            .expect("a features rule always makes a mask")
    }
}

impl Layer for Masking {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let keep = self.mask(x);
        let f = *x.shape.last().unwrap_or(&1);
        let data = x
            .data
            .iter()
            .enumerate()
            .map(|(i, &v)| v * keep.data[i / f.max(1)])
            .collect();
        Tensor::new(x.shape.clone(), data)
    }
    fn mask_rule(&self) -> MaskRule {
        MaskRule::Features(self.value)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Masking(self.value))
    }
}

pub(super) fn masking(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Masking {
        name: ctx.name.to_string(),
        value: ctx.f64_or("mask_value", 0.0)? as f32,
    }))
}
