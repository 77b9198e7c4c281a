//! Host tensors: row-major float32 data with a shape. Integer inputs (token ids) are carried as
//! float32 values, as TF.js casts them at the Embedding layer.

use crate::error::{Error, Result};
use crate::shape;

/// A dense row-major float32 tensor.
#[derive(Debug)]
pub struct Tensor {
    /// Dimensions (batch first).
    pub shape: Vec<usize>,
    /// `product(shape)` values.
    pub data: Vec<f32>,
    /// The stored weight these values are, byte for byte in this order (set by
    /// `LayerCtx::weight`, kept by [`Tensor::reshaped`] and [`Tensor::view`]): the GPU then binds
    /// that weight's resident buffer instead of uploading a copy. A clone is a new tensor and has
    /// none, so a value computed from a weight can never pass for it.
    pub source: Option<std::sync::Arc<str>>,
}

impl Clone for Tensor {
    fn clone(&self) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.clone(),
            source: None,
        }
    }
}

impl PartialEq for Tensor {
    /// Shapes and values; the provenance is not part of the value.
    fn eq(&self, other: &Tensor) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

impl Tensor {
    /// A tensor from parts; the data length must match the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        match shape::numel(&shape) {
            Some(n) if n == data.len() => Ok(Tensor {
                shape,
                data,
                source: None,
            }),
            _ => Err(Error::Usage(format!(
                "tensor of shape {} cannot hold {} values",
                shape::show(&shape),
                data.len()
            ))),
        }
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let n = shape::numel(&shape).unwrap_or(0);
        Tensor {
            shape,
            data: vec![0.0; n],
            source: None,
        }
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The same data with another shape of the same element count.
    pub fn reshaped(mut self, shape: Vec<usize>) -> Result<Tensor> {
        if shape::numel(&shape) != Some(self.data.len()) {
            return Err(Error::Usage(format!(
                "cannot reshape {} into {}",
                shape::show(&self.shape),
                shape::show(&shape)
            )));
        }
        self.shape = shape;
        Ok(self)
    }

    /// A copy with another shape that keeps [`Tensor::source`] (the same values in the same
    /// order are still that weight).
    pub fn view(&self, shape: Vec<usize>) -> Result<Tensor> {
        let source = self.source.clone();
        let mut t = self.clone().reshaped(shape)?;
        t.source = source;
        Ok(t)
    }

    /// Permute axes: output axis `i` is input axis `perm[i]`.
    pub fn permuted(&self, perm: &[usize]) -> Tensor {
        let rank = self.rank();
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let in_strides = strides(&self.shape);
        let mut out = Vec::with_capacity(self.data.len());
        let mut index = vec![0usize; rank];
        for _ in 0..self.data.len() {
            let src: usize = (0..rank).map(|i| index[i] * in_strides[perm[i]]).sum();
            out.push(self.data[src]);
            for d in (0..rank).rev() {
                index[d] += 1;
                if index[d] < out_shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Tensor {
            shape: out_shape,
            data: out,
            source: None,
        }
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_swaps_axes() {
        let t = Tensor::new(vec![2, 3], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        let p = t.permuted(&[1, 0]);
        assert_eq!(p.shape, vec![3, 2]);
        assert_eq!(p.data, vec![0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(Tensor::new(vec![2, 2], vec![1.0]).is_err());
    }
}
