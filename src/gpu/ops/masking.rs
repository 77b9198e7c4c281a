//! Masking (mask.wgsl): steps whose features all equal the mask value are zeroed; the mask
//! itself is made by the executor's mask propagation.

use super::{Arg, Primitive};
use crate::error::Result;
use crate::gpu::ids::MaskId;
use crate::model::gpu::{GpuModel, Recording};

/// The mask value.
pub(crate) struct Masking(pub(crate) f32);

impl Primitive for Masking {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let n = out.1.iter().product::<usize>();
        let f = (*ins[0].1.last().unwrap_or(&1)).max(1);
        let keep = gpu.temp("masking", n / f);
        gpu.mask_kernel(
            pass,
            MaskId::FromFeatures,
            self.0,
            (ins[0].0, f),
            gpu.dummy(),
            &keep,
            n / f,
        )?;
        gpu.mask_kernel(pass, MaskId::Apply, 0.0, (ins[0].0, f), &keep, out.0, n)
    }
}
