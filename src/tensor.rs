//! Host tensors: row-major float32 data with a shape. Integer inputs (token ids) are carried as
//! float32 values, as TF.js casts them at the Embedding layer.

use crate::error::{Error, Result};
use crate::shape;

/// A dense row-major float32 tensor.
#[derive(Debug)]
pub struct Tensor {
    /// Dimensions (batch first).
    pub shape: Vec<usize>,
    /// `product(shape)` values (owned, or read in place from a mapped weight file).
    pub data: Data,
    /// The stored weight these values are, byte for byte in this order (set by
    /// `LayerCtx::weight`, kept by [`Tensor::reshaped`] and [`Tensor::view`]): the GPU then binds
    /// that weight's resident buffer instead of uploading a copy. A clone is a new tensor and has
    /// none, so a value computed from a weight can never pass for it.
    pub source: Option<std::sync::Arc<str>>,
}

/// Tensor values: owned, or a weight's float32 bytes read in place from its (memory-mapped)
/// file, so a loaded model holds no second copy of its plain float32 weights. Reads see a slice
/// either way; the first write to borrowed values copies them (copy on write).
#[derive(Clone)]
pub enum Data {
    /// Values owned by the tensor.
    Owned(Vec<f32>),
    /// `len` float32 values at byte `start` of a shared backing buffer (4-byte aligned).
    Mapped {
        /// The file's bytes.
        backing: std::sync::Arc<crate::format::store::Backing>,
        /// Byte offset.
        start: usize,
        /// Values.
        len: usize,
    },
}

impl Data {
    /// The values as an owned vector (a copy for mapped values).
    pub fn into_vec(self) -> Vec<f32> {
        match self {
            Data::Owned(v) => v,
            d => d.to_vec(),
        }
    }

    /// Whether the values are read in place from a file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Data::Mapped { .. })
    }
}

impl std::ops::Deref for Data {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Data::Owned(v) => v,
            Data::Mapped {
                backing,
                start,
                len,
            } => bytemuck::cast_slice(&backing.bytes()[*start..*start + 4 * *len]),
        }
    }
}

impl std::ops::DerefMut for Data {
    fn deref_mut(&mut self) -> &mut [f32] {
        if let Data::Mapped { .. } = self {
            *self = Data::Owned(self.to_vec());
        }
        match self {
            Data::Owned(v) => v,
            Data::Mapped { .. } => unreachable!("made owned above"),
        }
    }
}

impl<'a> IntoIterator for &'a Data {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Data {
    type Item = &'a mut f32;
    type IntoIter = std::slice::IterMut<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl FromIterator<f32> for Data {
    fn from_iter<I: IntoIterator<Item = f32>>(iter: I) -> Data {
        Data::Owned(iter.into_iter().collect())
    }
}

impl From<Vec<f32>> for Data {
    fn from(v: Vec<f32>) -> Data {
        Data::Owned(v)
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        **self == **other
    }
}

impl PartialEq<Vec<f32>> for Data {
    fn eq(&self, other: &Vec<f32>) -> bool {
        **self == other[..]
    }
}

impl<const N: usize> PartialEq<[f32; N]> for Data {
    fn eq(&self, other: &[f32; N]) -> bool {
        **self == other[..]
    }
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
        Tensor::with_data(shape, Data::Owned(data))
    }

    /// A tensor over `data` (owned or mapped); the length must match the shape.
    pub fn with_data(shape: Vec<usize>, data: Data) -> Result<Tensor> {
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
            data: vec![0.0; n].into(),
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
            data: out.into(),
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
