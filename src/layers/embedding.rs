//! Embedding: integer ids (carried as float32, cast as TF.js casts them) → rows of a table.

use super::{one, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct Embedding {
    table: Tensor,
    name: String,
    /// `mask_zero`: id 0 is padding, masked for the layers after.
    mask_zero: bool,
}

impl Layer for Embedding {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0]
            .iter()
            .copied()
            .chain([Some(self.table.shape[1])])
            .collect())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let (rows, dim) = (self.table.shape[0], self.table.shape[1]);
        let mut data = Vec::with_capacity(x.data.len() * dim);
        for &v in &x.data {
            let id = v as i64; // truncation, as TF.js casts float ids to int32
            if !v.is_finite() || id < 0 || id as usize >= rows {
                return Err(Error::Model(format!(
                    "layer '{}': token id {v} is outside [0, {rows})",
                    self.name
                )));
            }
            data.extend_from_slice(&self.table.data[id as usize * dim..(id as usize + 1) * dim]);
        }
        Tensor::new(x.shape.iter().copied().chain([dim]).collect(), data)
    }
    fn id_range(&self) -> Option<usize> {
        Some(self.table.shape[0])
    }
    fn mask_rule(&self) -> super::MaskRule {
        if self.mask_zero {
            super::MaskRule::Ids
        } else {
            super::MaskRule::Drop
        }
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Embedding(&self.table))
    }
}

pub(super) fn build(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let (rows, dim) = (ctx.usize("input_dim")?, ctx.usize("output_dim")?);
    Ok(Box::new(Embedding {
        table: ctx.weight("embeddings", &[rows, dim])?,
        name: ctx.name.to_string(),
        mask_zero: ctx.bool_or("mask_zero", false),
    }))
}
