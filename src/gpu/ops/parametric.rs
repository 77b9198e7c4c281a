//! Parameterized element-wise activations (ReLU with a maximum, LeakyReLU, ELU,
//! ThresholdedReLU) and PReLU's learned slopes (its alpha bound in place).

use super::{Arg, Primitive};
use crate::error::Result;
use crate::layers::Parametric as Kind;
use crate::model::gpu::{GpuModel, Recording, Uploader};
use crate::tensor::Tensor;

/// One of the prelude's parameterized activations, through the affine kernel.
pub(crate) struct Parametric(pub(crate) Kind);

impl Primitive for Parametric {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let (id, param) = crate::gpu::ids::parametric_id(self.0);
        let n = out.1.iter().product::<usize>();
        gpu.activate(pass, ins[0].0, out.0, n, (id, param))
    }
}

/// `x >= 0 ? x : alpha * x`, alpha broadcast over the non-batch axes.
pub(crate) struct PRelu {
    alpha: wgpu::Buffer,
    shape: Vec<usize>,
}

impl PRelu {
    pub(crate) fn new(up: &Uploader, alpha: &Tensor) -> PRelu {
        PRelu {
            alpha: up.tensor(alpha),
            shape: alpha.shape.clone(),
        }
    }
}

impl Primitive for PRelu {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        // A leading 1 for the batch.
        let shape: Vec<usize> = [1].into_iter().chain(self.shape.iter().copied()).collect();
        gpu.binary_code(
            pass,
            (crate::gpu::ids::BinaryId::PRelu, 1.0),
            ins[0],
            (&self.alpha, &shape),
            out,
        )
    }
}
