//! Forms around another primitive: the identity (the output aliases the input's buffer),
//! `MergeTime` (TimeDistributed: batch and time merged into one axis), `Permuted`
//! (channels_first layers run channels-last between two transposing gathers) and `ThenRow`
//! (a row-wise activation after the inner form).

use super::{Arg, Primitive};
use crate::error::Result;
use crate::layers::Activation;
use crate::model::gpu::{GpuModel, Recording};
use crate::tensor::strides;

/// Nothing to compute: the executor gives the output the input's buffer.
pub(crate) struct Identity;

impl Primitive for Identity {
    fn encode(&self, _: &GpuModel<'_>, _: &mut Recording, _: &[Arg<'_>], _: Arg<'_>) -> Result<()> {
        Ok(())
    }

    fn aliases_input(&self) -> bool {
        true
    }
}

/// The inner form over `[b·t, ...]`.
pub(crate) struct MergeTime(pub(crate) Box<dyn Primitive>);

impl Primitive for MergeTime {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let merged = |s: &[usize]| -> Vec<usize> {
            [s[0] * s.get(1).copied().unwrap_or(1)]
                .into_iter()
                .chain(s.iter().skip(2).copied())
                .collect()
        };
        let (i_shape, o_shape) = (merged(ins[0].1), merged(out.1));
        self.0
            .encode(gpu, pass, &[(ins[0].0, &i_shape)], (out.0, &o_shape))
    }
}

/// The inner form on the input permuted by `to` (empty: channels, axis 1, moved last), its
/// output permuted back.
pub(crate) struct Permuted {
    pub(crate) to: Vec<usize>,
    pub(crate) inner: Box<dyn Primitive>,
}

impl Primitive for Permuted {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let rank = ins[0].1.len();
        let to = if self.to.is_empty() {
            [0].into_iter().chain(2..rank).chain([1]).collect()
        } else {
            self.to.clone()
        };
        let in_p: Vec<usize> = to.iter().map(|&p| ins[0].1[p]).collect();
        let x = gpu.temp("permuted", in_p.iter().product());
        let t = gpu.transpose(ins[0].1, &to)?;
        gpu.gather(pass, ins[0].0, &t, in_p.iter().product(), &x)?;
        if out.1.len() != rank {
            // Rank-changing inner forms (global pooling) leave nothing to move back.
            return self.inner.encode(gpu, pass, &[(&x, &in_p)], out);
        }
        let out_p: Vec<usize> = to.iter().map(|&p| out.1[p]).collect();
        let numel = out.1.iter().product();
        let y = gpu.temp("permuted", numel);
        self.inner.encode(gpu, pass, &[(&x, &in_p)], (&y, &out_p))?;
        let mut back = vec![0; rank];
        for (i, &p) in to.iter().enumerate() {
            back[p] = i;
        }
        let t = gpu.transpose(&out_p, &back)?;
        gpu.gather(pass, &y, &t, numel, out.0)
    }
}

/// The inner form, then a row-wise activation (softmax kinds) over its output.
pub(crate) struct ThenRow {
    pub(crate) inner: Box<dyn Primitive>,
    pub(crate) act: Activation,
}

impl Primitive for ThenRow {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        self.inner.encode(gpu, pass, ins, out)?;
        gpu.softmax(pass, self.act, out)
    }
}

impl GpuModel<'_> {
    /// The uploaded gather map of `x.permuted(perm)` for `x` of `shape`.
    fn transpose(&self, shape: &[usize], perm: &[usize]) -> Result<wgpu::Buffer> {
        let key: Vec<usize> = shape
            .iter()
            .copied()
            .chain([usize::MAX])
            .chain(perm.iter().copied())
            .collect();
        let (_, map) = self.index_map(usize::MAX, "transpose", &key, || {
            Ok((
                perm.iter().map(|&p| shape[p]).collect(),
                transpose_map(shape, perm),
            ))
        })?;
        Ok(map)
    }
}

/// Gather map of a transpose: output element `i` of `x.permuted(perm)` reads input `map[i]`.
fn transpose_map(shape: &[usize], perm: &[usize]) -> Vec<u32> {
    let st = strides(shape);
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut map = Vec::with_capacity(n);
    for _ in 0..n {
        map.push(
            idx.iter()
                .zip(perm)
                .map(|(&i, &p)| i * st[p])
                .sum::<usize>() as u32,
        );
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::transpose_map;

    #[test]
    fn transpose_map_reads_the_permuted_element() {
        // x [2, 3] transposed: out [3, 2], out[i][j] = x[j][i] = x.flat[j*3 + i].
        assert_eq!(transpose_map(&[2, 3], &[1, 0]), vec![0, 3, 1, 4, 2, 5]);
    }
}
