//! MultiHeadAttention: the query, key and value projections as matmuls, scaled dot-product
//! attention over the heads (attention.wgsl), the output projection. The projections' kernels
//! are bound in place where they are the stored weights.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::{Activation, Attention as Layer, GpuForm};
use crate::model::gpu::{GpuModel, Projected, Recording, Uploader};

/// The four projections (query, key, value, output) and the layer's index in the plan.
pub(crate) struct Attention {
    layer: usize,
    proj: Box<[Projected; 4]>,
}

impl Attention {
    pub(crate) fn new(up: &Uploader, layer: usize, a: &Layer) -> Attention {
        let proj = [&a.query, &a.key, &a.value, &a.output].map(|p| up.projection(p));
        Attention {
            layer,
            proj: Box::new(proj),
        }
    }
}

/// `attention.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    batch: u32,
    t: u32,
    s: u32,
    heads: u32,
    kd: u32,
    vd: u32,
    flags: u32,
    window: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// `x · kernel + bias` into a new temporary.
fn project(
    gpu: &GpuModel<'_>,
    pass: &mut Recording,
    x: Arg<'_>,
    p: &Projected,
) -> Result<wgpu::Buffer> {
    let rows = x.1.iter().product::<usize>() / p.2.max(1);
    let buf = gpu.temp("attention projection", rows * p.3);
    gpu.matmul(
        pass,
        x.0,
        (rows, p.2, p.3),
        &p.0,
        p.1.as_ref(),
        Activation::Linear,
        (&buf, &[rows, p.3]),
    )?;
    Ok(buf)
}

impl Primitive for Attention {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let GpuForm::Attention(a) = gpu.layer_form(self.layer)? else {
            return Err(Error::Model("layer lost its GPU form".into()));
        };
        let (query, value) = (ins[0], ins[1]);
        let key = a.roles.key.map_or(value, |i| ins[i]);
        let keras_mask = pass.mask.clone();
        if keras_mask.is_some() {
            a.check_keras_mask(std::ptr::eq(query.0, value.0) && std::ptr::eq(key.0, value.0))?;
        }
        let (batch, t, s) = (query.1[0], query.1[1], value.1[1]);
        let q = project(gpu, pass, query, &self.proj[0])?;
        let k = project(gpu, pass, key, &self.proj[1])?;
        let v = project(gpu, pass, value, &self.proj[2])?;
        let context = gpu.temp("attention context", batch * t * a.heads * a.value_dim);
        let mask = a.roles.attention_mask.map(|i| ins[i].0);
        // Two passes over the keys, each scoring a key with a key_dim-long dot product.
        gpu.check_loops("attention", 2 * s * (a.key_dim + 1))?;
        let u = Uniform {
            batch: batch as u32,
            t: t as u32,
            s: s as u32,
            heads: a.heads as u32,
            kd: a.key_dim as u32,
            vd: a.value_dim as u32,
            flags: u32::from(a.causal)
                | u32::from(mask.is_some()) << 1
                | u32::from(keras_mask.is_some()) << 2
                | u32::from(a.zero_unattended) << 3,
            window: a.window as u32,
            scale: 1.0 / (a.key_dim as f32).sqrt(),
            _pad: [0; 3],
        };
        let dummy = gpu.dummy();
        gpu.dispatch(
            pass,
            kernels::ATTENTION,
            bytemuck::bytes_of(&u),
            &[
                &q,
                &k,
                &v,
                mask.unwrap_or(dummy),
                keras_mask.as_ref().unwrap_or(dummy),
                &context,
            ],
            gpu.grid(batch * t * a.heads * a.value_dim)?,
        )?;
        let o = &self.proj[3];
        gpu.matmul(
            pass,
            &context,
            (batch * t, o.2, o.3),
            &o.0,
            o.1.as_ref(),
            Activation::Linear,
            out,
        )
    }
}
