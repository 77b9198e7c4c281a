//! `layercake bench --memory`: peak resident memory of one prediction, per path, in this
//! process (Linux `VmHWM`, reset between runs): the CPU backend reading the mapped files in
//! place, the GPU on the resident weights ([`crate::Session`]'s flow), and the GPU with every
//! parameter copied from host tensors (`GpuModel::new`), the path the resident flow replaced.

use super::{current_rss, peak_rss, reset_peak_rss};
use crate::error::{Error, Result};
use crate::gpu::residency::UploadOptions;
use crate::gpu::Device;
use crate::model::gpu::GpuModel;
use crate::model::Model;
use std::path::Path;

/// One measured path.
#[derive(Clone, Debug)]
pub struct MemoryRow {
    /// What ran.
    pub path: &'static str,
    /// Peak resident bytes above the process's baseline before the run.
    pub peak: u64,
}

/// Load `model` and predict one seeded batch on each path; `None` device: the CPU path only.
pub fn predict_memory(model: &Path, device: Option<&Device>) -> Result<Vec<MemoryRow>> {
    let mut rows = vec![measure("predict, CPU (weights read in place)", || {
        let m = Model::load(model)?;
        m.predict(&crate::verify::random_inputs(&m, 7, 1)).map(drop)
    })?];
    if let Some(dev) = device {
        rows.push(measure("predict, GPU on the resident weights", || {
            let m = Model::load(model)?;
            let w = dev.upload(&m.artifacts, &UploadOptions::dedicated(), &mut |_, _| {})?;
            let g = GpuModel::with_weights(dev, &m, &w)?;
            g.predict(&crate::verify::random_inputs(&m, 7, 1)).map(drop)
        })?);
        rows.push(measure("predict, GPU with copied parameters", || {
            let m = Model::load(model)?;
            let g = GpuModel::new(dev, &m)?;
            g.predict(&crate::verify::random_inputs(&m, 7, 1)).map(drop)
        })?);
    }
    Ok(rows)
}

fn measure(path: &'static str, run: impl FnOnce() -> Result<()>) -> Result<MemoryRow> {
    // Hand the heap's free memory (kept by the allocator, see the CLI's `main`) back to the
    // kernel first, so that one path's freed buffers neither inflate the baseline nor serve
    // the next path without counting.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
    if !reset_peak_rss() {
        return Err(Error::Usage(
            "--memory needs Linux's /proc/self/clear_refs to reset the peak".into(),
        ));
    }
    let base = current_rss().unwrap_or(0);
    run()?;
    let peak = peak_rss().unwrap_or(0).saturating_sub(base);
    Ok(MemoryRow { path, peak })
}
