//! GPU → host: the mapped buffers themselves on shared-memory adapters, otherwise batches of
//! weights copied into a MAP_READ staging buffer (one submit, one map, one wait per batch).

use super::*;
use crate::error::Result;
use crate::format::WeightBytes;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

impl GpuWeights {
    /// A reader of the weights' logical bytes. `staging_budget` bounds the host memory of one
    /// readback batch on the staged path (the mapped path maps the buffers themselves).
    pub fn reader(&self, staging_budget: u64) -> Result<GpuReader<'_>> {
        self.device.check_lost()?;
        let views = match self.path {
            UploadPath::Mapped => self.map_all()?,
            UploadPath::Staged => Vec::new(),
        };
        let n = self.weights.len();
        Ok(GpuReader {
            weights: self,
            views,
            budget: staging_budget.max(4),
            staged: RefCell::new(Staged {
                order: (0..n).collect(),
                position: (0..n).collect(),
                cache: HashMap::new(),
                staging: None,
            }),
        })
    }

    fn map_all(&self) -> Result<Vec<wgpu::BufferView>> {
        let all: Vec<(&wgpu::Buffer, u64)> = self.buffers.iter().map(|b| (b, b.size())).collect();
        self.device.map_read("weight buffers", &all)
    }
}

struct Staged {
    order: Vec<usize>,
    position: Vec<usize>,
    cache: HashMap<usize, Vec<u8>>,
    staging: Option<wgpu::Buffer>,
}

/// Reads resident weights back to the host; implements [`WeightBytes`] so any writer can save
/// straight from the GPU.
pub struct GpuReader<'a> {
    weights: &'a GpuWeights,
    views: Vec<wgpu::BufferView>,
    budget: u64,
    staged: RefCell<Staged>,
}

impl GpuReader<'_> {
    fn mapped(&self, i: usize) -> Cow<'_, [u8]> {
        let w = &self.weights.weights[i];
        let slice =
            |p: &Placement| &self.views[p.buffer][p.offset as usize..(p.offset + p.len) as usize];
        match w.chunks.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(slice(one)),
            many => Cow::Owned(many.iter().flat_map(|p| slice(p).iter().copied()).collect()),
        }
    }

    /// Read back the batch of weights that starts at position `start` of the reading order.
    fn fetch(&self, st: &mut Staged, start: usize) -> Result<()> {
        let gw = self.weights;
        let dev = &gw.device;
        let mut batch = Vec::new();
        let mut total = 0u64;
        for &i in &st.order[start..] {
            let size: u64 = gw.weights[i]
                .chunks
                .iter()
                .map(|c| c.len.next_multiple_of(4))
                .sum();
            if !batch.is_empty() && total + size > self.budget {
                break;
            }
            batch.push((i, total));
            total += size;
        }
        let total = total.max(4);
        let reuse = st.staging.as_ref().is_some_and(|s| s.size() >= total);
        if !reuse {
            st.staging = Some(dev.checked("allocating a readback staging buffer", || {
                dev.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("weights readback"),
                    size: total,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })?);
        }
        let staging = st.staging.as_ref().expect("created above");
        let mut enc = dev.device.create_command_encoder(&Default::default());
        for &(i, at) in &batch {
            let mut at = at;
            for c in &gw.weights[i].chunks {
                let n = c.len.next_multiple_of(4);
                enc.copy_buffer_to_buffer(&gw.buffers[c.buffer], c.offset, staging, at, n);
                at += n;
            }
        }
        dev.queue.submit([enc.finish()]);
        {
            let view = dev
                .map_read("the readback buffer", &[(staging, total)])?
                .remove(0);
            for &(i, at) in &batch {
                let mut bytes = Vec::with_capacity(gw.weights[i].len as usize);
                let mut at = at as usize;
                for c in &gw.weights[i].chunks {
                    bytes.extend_from_slice(&view[at..at + c.len as usize]);
                    at += c.len.next_multiple_of(4) as usize;
                }
                st.cache.insert(i, bytes);
            }
        }
        staging.unmap();
        Ok(())
    }
}

impl WeightBytes for GpuReader<'_> {
    fn stored(&self, _i: usize) -> Option<Cow<'_, [u8]>> {
        None
    }

    fn logical(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        if self.weights.path == UploadPath::Mapped {
            return Ok(self.mapped(i));
        }
        let mut st = self.staged.borrow_mut();
        if let Some(bytes) = st.cache.remove(&i) {
            return Ok(Cow::Owned(bytes));
        }
        let start = st.position[i];
        self.fetch(&mut st, start)?;
        Ok(Cow::Owned(st.cache.remove(&i).unwrap_or_default()))
    }

    fn will_read(&self, order: &[usize]) {
        let mut st = self.staged.borrow_mut();
        let n = self.weights.weights.len();
        if order.len() != n || order.iter().any(|&i| i >= n) {
            return;
        }
        st.order = order.to_vec();
        for (p, &i) in order.iter().enumerate() {
            st.position[i] = p;
        }
        st.cache.clear();
    }
}

impl Drop for GpuReader<'_> {
    fn drop(&mut self) {
        if !self.views.is_empty() {
            self.views.clear();
            for b in &self.weights.buffers {
                b.unmap();
            }
        }
    }
}
