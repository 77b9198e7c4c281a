//! Compact codes (uint8/uint16/float16) expanded into resident float32/int32 weights by the
//! lookup-table kernel.

use super::super::{kernels, Device};
use super::placement::*;
use super::*;
use crate::error::{Error, Result};
use crate::format::manifest::WeightSpec;
use crate::format::quant;
use std::collections::HashMap;

impl Device {
    /// Expand compact codes into resident float32/int32 weights with the lookup-table kernel.
    pub(super) fn dequantize(
        &self,
        specs: &[WeightSpec],
        jobs: &[DequantJob],
        out: &[wgpu::Buffer],
        codes: &[wgpu::Buffer],
    ) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let pipeline = self.pipeline(kernels::DEQUANTIZE)?;
        let mut tables: HashMap<usize, wgpu::Buffer> = HashMap::new();
        let mut groups = Vec::with_capacity(jobs.len());
        for job in jobs {
            let spec = &specs[job.weight];
            let table = tables.entry(job.weight).or_insert_with(|| {
                let lut = quant::lookup_table(spec.encoding(), spec.dtype).unwrap_or_default();
                self.buffer_with(
                    "dequantize table",
                    bytemuck::cast_slice(&lut),
                    wgpu::BufferUsages::STORAGE,
                )
            });
            let params = kernels::DequantizeParams {
                n: u32::try_from(job.elements).map_err(|_| {
                    Error::Gpu(format!(
                        "weight '{}': chunk too large to dequantize",
                        spec.name
                    ))
                })?,
                bits: spec.encoding().size() as u32 * 8,
                pad: [0; 2],
            };
            let uniform = self.buffer_with(
                "dequantize params",
                bytemuck::bytes_of(&params),
                wgpu::BufferUsages::UNIFORM,
            );
            fn bind(b: &wgpu::Buffer, p: Placement) -> wgpu::BufferBinding<'_> {
                wgpu::BufferBinding {
                    buffer: b,
                    offset: p.offset,
                    size: wgpu::BufferSize::new(p.len.next_multiple_of(4)),
                }
            }
            let resources = [
                uniform.as_entire_binding(),
                wgpu::BindingResource::Buffer(bind(&codes[job.codes.buffer], job.codes)),
                table.as_entire_binding(),
                wgpu::BindingResource::Buffer(bind(&out[job.out.buffer], job.out)),
            ];
            let group = self.bind_group(&pipeline, "dequantize", &resources);
            groups.push((group, params.n));
        }
        self.checked("dequantizing weights on the GPU", || {
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                for (group, n) in &groups {
                    let (gx, gy) =
                        kernels::grid_for(*n, self.limits.max_compute_workgroups_per_dimension);
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(gx, gy, 1);
                }
            }
            self.queue.submit([enc.finish()]);
        })?;
        self.wait()
    }
}
