//! The post-load NaN/Inf scan of every float32 weight, on the device.

use super::super::kernels;
use super::*;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// What a scan of one float32 weight found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightScan {
    /// Values in the weight.
    pub elements: u64,
    /// NaN and ±Inf values.
    pub non_finite: u64,
    /// Values other than ±0.
    pub non_zero: u64,
}

impl WeightScan {
    /// Scan float32 values on the host (the CPU path of the same check).
    pub fn of(values: &[f32]) -> WeightScan {
        WeightScan {
            elements: values.len() as u64,
            non_finite: values.iter().filter(|v| !v.is_finite()).count() as u64,
            non_zero: values.iter().filter(|&&v| v != 0.0).count() as u64,
        }
    }
}

impl GpuWeights {
    /// Scan every float32 weight on the device ([`kernels::SCAN`]): per weight (manifest
    /// order) its non-finite and non-zero value counts; `None` for other dtypes.
    pub fn scan(&self) -> Result<Vec<Option<WeightScan>>> {
        let dev = &self.device;
        dev.check_lost()?;
        let n = self.weights.len();
        let counts = dev.buffer_with(
            "scan counts",
            &vec![0u8; (2 * n).max(1) * 4],
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let pipeline = dev.pipeline(kernels::SCAN)?;
        let mut jobs = Vec::new();
        for (slot, w) in self.weights.iter().enumerate() {
            if w.dtype != DType::Float32 {
                continue;
            }
            for &c in &w.chunks {
                let words = u32::try_from(c.len / 4)
                    .map_err(|_| Error::Gpu(format!("weight {slot}: chunk too large to scan")))?;
                if words == 0 {
                    continue;
                }
                let params = [0u32, words, slot as u32, 0];
                let uniform = dev.buffer_with(
                    "scan params",
                    bytemuck::cast_slice(&params),
                    wgpu::BufferUsages::UNIFORM,
                );
                let region = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: self.buffer(c),
                    offset: c.offset,
                    size: wgpu::BufferSize::new(u64::from(words) * 4),
                });
                let resources = [
                    uniform.as_entire_binding(),
                    region,
                    counts.as_entire_binding(),
                ];
                let group = dev.bind_group(&pipeline, "scan", &resources);
                let max = dev.limits.max_compute_workgroups_per_dimension;
                let grid = kernels::grid_for(
                    words.div_ceil(kernels::SCAN_WORDS_PER_GROUP / kernels::WORKGROUP),
                    max,
                );
                jobs.push((group, grid));
            }
        }
        let staging = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scan readback"),
            size: counts.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        dev.checked("scanning weights on the GPU", || {
            let mut enc = dev.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                for (group, (gx, gy)) in &jobs {
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(*gx, *gy, 1);
                }
            }
            enc.copy_buffer_to_buffer(&counts, 0, &staging, 0, counts.size());
            dev.queue.submit([enc.finish()]);
        })?;
        let view = dev
            .map_read("scan counts", &[(&staging, staging.size())])?
            .remove(0);
        let c: Vec<u32> = bytemuck::pod_collect_to_vec(&view);
        drop(view);
        Ok(self
            .weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (w.dtype == DType::Float32).then(|| WeightScan {
                    elements: w.len / 4,
                    non_finite: u64::from(c[2 * i]),
                    non_zero: u64::from(c[2 * i + 1]),
                })
            })
            .collect())
    }
}
