//! Pooling and global pooling (window_reduce.wgsl): max or mean over each window of the layer's
//! gather map, the mean weighted by the input's Keras mask where the layer asks (Keras 3's
//! GlobalAveragePooling1D).

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::GpuForm;
use crate::model::gpu::{GpuModel, Recording};

/// Max or mean; masked mean.
pub(crate) struct WindowReduce {
    pub(crate) layer: usize,
    pub(crate) max: bool,
    pub(crate) masked: bool,
}

/// `window_reduce.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    rows: u32,
    window: u32,
    channels: u32,
    flags: u32,
}

impl Primitive for WindowReduce {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let GpuForm::WindowReduce { map, .. } = gpu.layer_form(self.layer)? else {
            return Err(Error::Model("layer lost its GPU form".into()));
        };
        let (shape, index) =
            gpu.index_map(self.layer, "windows", ins[0].1, || map.gather_map(ins[0].1))?;
        let mask = pass.mask.clone().filter(|_| self.masked);
        gpu.check_loops("window_reduce", shape[1])?;
        let u = Uniform {
            rows: shape[0] as u32,
            window: shape[1] as u32,
            channels: shape[2] as u32,
            flags: u32::from(self.max) | u32::from(mask.is_some()) << 1,
        };
        gpu.dispatch(
            pass,
            kernels::WINDOW_REDUCE,
            bytemuck::bytes_of(&u),
            &[
                ins[0].0,
                &index,
                mask.as_ref().unwrap_or(gpu.dummy()),
                out.0,
            ],
            gpu.grid(shape[0] * shape[2])?,
        )
    }
}
