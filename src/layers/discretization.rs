//! Discretization (Keras 3, `output_mode="int"`): each value's bucket, the number of
//! `bin_boundaries` at or below it (numpy.digitize), as Keras's int64 ids carried as float32.

use super::{one, Layer, LayerCtx, Shape};
use crate::error::Result;
use crate::tensor::Tensor;
use serde_json::Value;

struct Discretization {
    name: String,
    boundaries: Vec<f32>,
}

impl Layer for Discretization {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut t = one(inputs, &self.name)?.clone();
        for v in &mut t.data {
            let x = *v;
            // NaN is below no boundary: it lands past the last, as numpy.digitize puts it.
            let at_or_above = |b: &&f32| x.partial_cmp(b) != Some(std::cmp::Ordering::Less);
            *v = self.boundaries.iter().filter(at_or_above).count() as f32;
        }
        Ok(t)
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Bucketize(&self.boundaries))
    }
}

pub(super) fn build(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    match ctx.str_or("output_mode", "int") {
        "int" => {}
        other => {
            return Err(ctx.err(format!(
                "output_mode '{other}' is not supported (int; follow it with CategoryEncoding)"
            )))
        }
    }
    let boundaries: Vec<f32> = match ctx.get("bin_boundaries") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_f64().map(|f| f as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| ctx.err("config 'bin_boundaries' must be numbers"))?,
        _ => {
            return Err(
                ctx.err("config 'bin_boundaries' is missing (adapt the layer before saving)")
            )
        }
    };
    if boundaries
        .windows(2)
        .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less) && w[0] != w[1])
    {
        return Err(ctx.err("config 'bin_boundaries' must be increasing"));
    }
    Ok(Box::new(Discretization {
        name: ctx.name.to_string(),
        boundaries,
    }))
}
