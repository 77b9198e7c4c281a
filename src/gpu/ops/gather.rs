//! Pure data movement (gather.wgsl: `out = in[map]`, the map from the layer's CPU forward on
//! indices) and fixed linear resampling (weighted_gather.wgsl: bilinear upsampling and
//! resizing), their maps built once per input shape and cached by the executor.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::{gather_map_of, GpuForm};
use crate::model::gpu::{GpuModel, Recording};

/// A data-movement layer (its plan index).
pub(crate) struct Gather(pub(crate) usize);

impl Primitive for Gather {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let layer = gpu.plan_layer(self.0);
        let (_, map) = gpu.index_map(self.0, "gather", ins[0].1, || {
            gather_map_of(layer, ins[0].1)
        })?;
        gpu.gather(pass, ins[0].0, &map, out.1.iter().product(), out.0)
    }
}

/// A fixed linear resampling (its plan index).
pub(crate) struct WeightedGather(pub(crate) usize);

/// `weighted_gather.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    taps: u32,
    _pad: [u32; 2],
}

impl Primitive for WeightedGather {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let GpuForm::WeightedGather(map) = gpu.layer_form(self.0)? else {
            return Err(Error::Model("layer lost its GPU form".into()));
        };
        let (taps, buffers) = gpu.cached((self.0, "taps", ins[0].1.to_vec()), || {
            let t = map.weighted_map(ins[0].1)?;
            Ok((
                vec![t.taps],
                vec![
                    gpu.upload_slice("taps", bytemuck::cast_slice(&t.index)),
                    gpu.upload_slice("weights", bytemuck::cast_slice(&t.weight)),
                ],
            ))
        })?;
        let n = out.1.iter().product::<usize>();
        gpu.check_loops("weighted_gather", taps[0])?;
        let u = Uniform {
            n: n as u32,
            taps: taps[0] as u32,
            _pad: [0; 2],
        };
        gpu.dispatch(
            pass,
            kernels::WEIGHTED_GATHER,
            bytemuck::bytes_of(&u),
            &[ins[0].0, &buffers[0], &buffers[1], out.0],
            gpu.grid(n)?,
        )
    }
}
