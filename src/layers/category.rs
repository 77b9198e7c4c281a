//! CategoryEncoding: integer tokens (carried as float32) → one-hot, multi-hot or count vectors
//! of `num_tokens`, as TF.js's `denseBincount` per row.

use super::{one, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One token per row → a one-hot row.
    OneHot,
    /// 1 for every token present in the row.
    MultiHot,
    /// How often each token occurs in the row.
    Count,
}

struct CategoryEncoding {
    name: String,
    depth: usize,
    mode: Mode,
}

impl CategoryEncoding {
    /// Rows and tokens per row of an input of `shape`: `[b]` and `[b, 1]` are one token per
    /// row; `[b, n]` n tokens (one-hot takes one token per row only, as in TF.js).
    fn rows(&self, shape: &[usize]) -> Result<(usize, usize)> {
        match (shape, self.mode) {
            ([b], Mode::OneHot) | ([b, 1], _) => Ok((*b, 1)),
            ([b, n], Mode::MultiHot | Mode::Count) => Ok((*b, *n)),
            _ => Err(Error::Model(format!(
                "layer '{}': {:?} encoding of an input of shape {shape:?} is not supported (at most rank 2, one token per row for one_hot)",
                self.name, self.mode
            ))),
        }
    }
}

impl Layer for CategoryEncoding {
    fn id_range(&self) -> Option<usize> {
        Some(self.depth)
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(vec![inputs[0][0], Some(self.depth)])
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let (rows, n) = self.rows(&x.shape)?;
        let mut out = vec![0.0f32; rows * self.depth];
        for (r, tokens) in x.data.chunks(n.max(1)).enumerate().take(rows) {
            for &v in tokens {
                let t = v as i64;
                if t < 0 || t as usize >= self.depth {
                    return Err(Error::Model(format!(
                        "layer '{}': token {v} is outside [0, {})",
                        self.name, self.depth
                    )));
                }
                let cell = &mut out[r * self.depth + t as usize];
                *cell = if self.mode == Mode::Count {
                    *cell + 1.0
                } else {
                    1.0
                };
            }
        }
        Tensor::new(vec![rows, self.depth], out)
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::CategoryEncoding {
            depth: self.depth,
            count: self.mode == Mode::Count,
        })
    }
}

pub(super) fn build(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let mode = match ctx.str_or("output_mode", "multi_hot") {
        "one_hot" | "oneHot" => Mode::OneHot,
        "multi_hot" | "multiHot" => Mode::MultiHot,
        "count" => Mode::Count,
        other => {
            return Err(ctx.err(format!(
                "output_mode '{other}' is not supported (one_hot, multi_hot, count)"
            )))
        }
    };
    Ok(Box::new(CategoryEncoding {
        name: ctx.name.to_string(),
        depth: ctx.usize("num_tokens")?,
        mode,
    }))
}
