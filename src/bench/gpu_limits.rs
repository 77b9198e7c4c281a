//! The GPU's own transfer limits, measured on the bytes of the model being benchmarked, beside
//! layercake's readback of its resident weights: a plain `queue.write_buffer` of the same bytes
//! into freshly created device buffers (what any wgpu program would do to upload them), and a plain copy back
//! through MAP_READ staging buffers into host memory.

use super::{secs, Row, Stat};
use crate::error::Result;
use crate::format::{Artifacts, WeightBytes};
use crate::gpu::residency::UploadOptions;
use crate::gpu::Device;
use std::time::Instant;

/// Row names (the ratios refer to them).
pub const READBACK: &str = "readback (resident weights → host)";
/// Plain `write_buffer` of the same bytes.
pub const WRITE_BUFFER: &str = "limit: GPU write_buffer (same bytes)";
/// Plain copy to staging + map + copy out of the same bytes.
pub const COPY_BACK: &str = "limit: GPU copy back + map (same bytes)";

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

/// The three rows, `repeat` samples each. `source` is the model's weight bytes in memory.
pub fn rows(dev: &Device, a: &Artifacts, source: &[u8], repeat: usize) -> Result<Vec<Row>> {
    let bytes = source.len() as u64;
    let chunk = dev
        .limits
        .max_buffer_size
        .min(dev.limits.max_storage_buffer_binding_size)
        .min(256 << 20)
        & !3;
    let chunks: Vec<&[u8]> = source.chunks(chunk.max(4) as usize).collect();
    let buffers: Vec<wgpu::Buffer> = chunks
        .iter()
        .map(|c| {
            buffer(
                dev,
                c.len(),
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            )
        })
        .collect();
    let staging: Vec<wgpu::Buffer> = chunks
        .iter()
        .map(|c| {
            buffer(
                dev,
                c.len(),
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )
        })
        .collect();
    let mut host = Vec::with_capacity(source.len());
    let (mut write, mut copy_back, mut readback) = (Vec::new(), Vec::new(), Vec::new());
    let gw = dev.upload(a, &UploadOptions::default(), &mut |_, _| {})?;
    for _ in 0..repeat.max(1) {
        // Into fresh buffers, as a load must: their creation is part of the upload.
        let t = Instant::now();
        let fresh: Vec<wgpu::Buffer> = chunks
            .iter()
            .map(|c| buffer(dev, c.len(), STORAGE))
            .collect();
        for (b, c) in fresh.iter().zip(&chunks) {
            dev.queue.write_buffer(b, 0, &padded(c));
        }
        dev.queue.submit([]);
        dev.wait()?;
        write.push(secs(t.elapsed()));
        drop(fresh);

        let t = Instant::now();
        copy_out(dev, &buffers, &staging, &chunks, &mut host)?;
        copy_back.push(secs(t.elapsed()));

        let t = Instant::now();
        read_resident(&gw.reader(256 << 20)?, a.spec.weights.len(), &mut host)?;
        readback.push(secs(t.elapsed()));
    }
    let row = |name: &str, s: &[f64]| Row {
        name: name.into(),
        secs: Stat::of(s),
        bytes,
    };
    Ok(vec![
        row(READBACK, &readback),
        row(WRITE_BUFFER, &write),
        row(COPY_BACK, &copy_back),
    ])
}

fn buffer(dev: &Device, len: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    dev.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench limit"),
        size: (len as u64).next_multiple_of(4),
        usage,
        mapped_at_creation: false,
    })
}

/// `write_buffer` needs a multiple of 4 bytes: only a short tail is ever copied.
fn padded(c: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if c.len().is_multiple_of(4) {
        return c.into();
    }
    let mut v = c.to_vec();
    v.resize(c.len().next_multiple_of(4), 0);
    v.into()
}

/// Copy every buffer into its staging twin, map them all with one wait, copy out to `host`.
fn copy_out(
    dev: &Device,
    buffers: &[wgpu::Buffer],
    staging: &[wgpu::Buffer],
    chunks: &[&[u8]],
    host: &mut Vec<u8>,
) -> Result<()> {
    let mut enc = dev.device.create_command_encoder(&Default::default());
    for (b, s) in buffers.iter().zip(staging) {
        enc.copy_buffer_to_buffer(b, 0, s, 0, s.size());
    }
    dev.queue.submit([enc.finish()]);
    let maps: Vec<(&wgpu::Buffer, u64)> = staging.iter().map(|s| (s, s.size())).collect();
    let views = dev.map_read("bench staging", &maps)?;
    host.clear();
    for (v, c) in views.iter().zip(chunks) {
        host.extend_from_slice(&v[..c.len()]);
    }
    drop(views);
    staging.iter().for_each(wgpu::Buffer::unmap);
    Ok(())
}

/// Every resident weight read back into `host`, in order, as a save reads them.
fn read_resident(reader: &dyn WeightBytes, n: usize, host: &mut Vec<u8>) -> Result<()> {
    let order: Vec<usize> = (0..n).collect();
    reader.will_read(&order);
    host.clear();
    for i in order {
        host.extend_from_slice(&reader.logical(i)?);
    }
    std::hint::black_box(&host);
    Ok(())
}
