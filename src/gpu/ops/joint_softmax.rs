//! Softmax jointly over a tensor's trailing axes (a Softmax layer with a list `axis`, the axes
//! moved last by the executor's permutation): a copy, then the row softmax over their extent.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::layers::Activation;
use crate::model::gpu::{GpuModel, Recording};

/// Over the trailing `axes` axes.
pub(crate) struct JointSoftmax {
    pub(crate) axes: usize,
}

impl Primitive for JointSoftmax {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let n = out.1.iter().product::<usize>();
        gpu.copy(pass, ins[0].0, out.0, n)?;
        let cols: usize = out.1[out.1.len().saturating_sub(self.axes)..]
            .iter()
            .product();
        let rows = [n / cols.max(1), cols];
        gpu.softmax(pass, Activation::Softmax, (out.0, &rows))
    }
}
