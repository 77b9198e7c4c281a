//! Files → mapped GPU buffers in one streamed copy (a weight straddling shards assembled in
//! place), or through staging where buffers cannot be mapped.

use super::super::Device;
use super::placement::*;
use super::*;
use crate::error::{Error, Result};
use crate::format::manifest::WeightSpec;
use crate::format::Artifacts;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a weight's stored bytes `start..end` go: a mapped view and an offset in it.
struct Target {
    start: u64,
    end: u64,
    view: usize,
    offset: u64,
}

/// Copies a model's weight files, as they stream in, into mapped GPU buffers.
struct StreamFill<'b> {
    views: Vec<wgpu::BufferViewMut>,
    _buffers: std::marker::PhantomData<&'b wgpu::Buffer>,
    /// Per weight, its targets.
    targets: Vec<Vec<Target>>,
    /// Per group, where its stream is.
    groups: Vec<GroupCursor>,
}

/// A group's weights in order with their stored lengths, and the position reached: weight
/// `at`, byte `offset` of it.
#[derive(Default)]
struct GroupCursor {
    weights: Vec<(usize, u64)>,
    at: usize,
    offset: u64,
}

impl<'b> StreamFill<'b> {
    fn new(
        plan: &Plan,
        manifest: &crate::format::tfjs::Manifest,
        resident: &'b [wgpu::Buffer],
        codes: &'b [wgpu::Buffer],
    ) -> Result<StreamFill<'b>> {
        let views = resident
            .iter()
            .chain(codes)
            .map(|b| {
                b.get_mapped_range_mut(..)
                    .map_err(|e| Error::Gpu(format!("mapping a weight buffer: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut targets: Vec<Vec<Target>> =
            (0..manifest.weights.len()).map(|_| Vec::new()).collect();
        let fills = plan.resident_fills.iter().enumerate();
        let code_fills = plan
            .code_fills
            .iter()
            .enumerate()
            .map(|(b, f)| (b + resident.len(), f));
        for (view, list) in fills.chain(code_fills) {
            for f in list {
                targets[f.weight].push(Target {
                    start: f.start,
                    end: f.end,
                    view,
                    offset: f.offset,
                });
            }
        }
        let mut groups = Vec::new();
        for (i, g) in manifest.group_of().into_iter().enumerate() {
            if groups.len() <= g {
                groups.resize_with(g + 1, GroupCursor::default);
            }
            groups[g]
                .weights
                .push((i, manifest.weights[i].stored_len() as u64));
        }
        Ok(StreamFill {
            views,
            _buffers: std::marker::PhantomData,
            targets,
            groups,
        })
    }

    /// The next bytes of group `g`'s files (bytes past its weights are dropped here; the size
    /// check after the files names them).
    fn write(&mut self, g: usize, mut bytes: &[u8]) {
        let Some(GroupCursor {
            weights,
            at: wi,
            offset: woff,
        }) = self.groups.get_mut(g)
        else {
            return;
        };
        while !bytes.is_empty() && *wi < weights.len() {
            let (i, len) = weights[*wi];
            let take = (bytes.len() as u64).min(len - *woff);
            for t in &self.targets[i] {
                let (lo, hi) = (t.start.max(*woff), t.end.min(*woff + take));
                if lo < hi {
                    let at = (t.offset + lo - t.start) as usize;
                    let from = (lo - *woff) as usize;
                    let n = (hi - lo) as usize;
                    self.views[t.view]
                        .slice(at..at + n)
                        .copy_from_slice(&bytes[from..from + n]);
                }
            }
            *woff += take;
            bytes = &bytes[take as usize..];
            if *woff == len {
                *wi += 1;
                *woff = 0;
            }
        }
    }
}

fn buffer_usage(path: UploadPath) -> wgpu::BufferUsages {
    let mut usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    if path == UploadPath::Mapped {
        usage |= wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE;
    }
    usage
}

fn upload_path(device: &Device, opts: &UploadOptions) -> Result<UploadPath> {
    let forced = match std::env::var("LAYERCAKE_UPLOAD").ok().as_deref() {
        None | Some("") => opts.path,
        Some("staged") => Some(UploadPath::Staged),
        Some("mapped") => Some(UploadPath::Mapped),
        Some(other) => {
            return Err(Error::Usage(format!(
                "LAYERCAKE_UPLOAD={other}: expected staged or mapped"
            )))
        }
    };
    match forced {
        Some(UploadPath::Mapped) if !device.mappable_primary() => Err(Error::Gpu(format!(
            "{}: the mapped upload path needs MAPPABLE_PRIMARY_BUFFERS, which this device lacks",
            device.info.name
        ))),
        Some(p) => Ok(p),
        None if device.mappable_primary() => Ok(UploadPath::Mapped),
        None => Ok(UploadPath::Staged),
    }
}

impl Device {
    /// Upload every weight of `a` (model and optimizer state) to this device.
    /// `progress(done, total)` is called with uploaded bytes after each buffer.
    pub fn upload(
        &self,
        a: &Artifacts,
        opts: &UploadOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<GpuWeights> {
        self.check_lost()?;
        let started = Instant::now();
        let path = upload_path(self, opts)?;
        let plan = Plan::new(self, opts, &a.spec.weights);
        let total = a.spec.stored_bytes();
        let mut done = 0u64;
        let mut report = |n: u64| {
            done += n;
            progress(done, total);
        };
        let buffers = self.create_filled(
            &plan.resident_sizes,
            &plan.resident_fills,
            path,
            a,
            &mut report,
        )?;
        let code_buffers =
            self.create_filled(&plan.code_sizes, &plan.code_fills, path, a, &mut report)?;
        self.finish_upload(
            plan,
            &a.spec.weights,
            (buffers, code_buffers),
            path,
            started,
        )
    }

    /// Load a TF.js model from `src` straight into GPU buffers: model.json first, then each
    /// weight file streamed chunk by chunk into the mapped buffers its weights are placed in (the
    /// same placement as [`Device::upload`]), so no weight file, let alone the whole model, is
    /// ever held in host memory. Returns the model's spec (file sizes as read) and the weights;
    /// `progress(done, total)` follows the bytes streamed.
    pub fn upload_from(
        &self,
        src: &mut dyn crate::storage::ModelSource,
        opts: &UploadOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(crate::format::ModelSpec, GpuWeights)> {
        self.check_lost()?;
        let started = Instant::now();
        let path = upload_path(self, opts)?;
        let manifest = crate::format::tfjs::read_manifest(src)?;
        let plan = Plan::new(self, opts, &manifest.weights);
        let usage = buffer_usage(path);
        let resident = self.create_mapped(&plan.resident_sizes, usage)?;
        let codes = self.create_mapped(&plan.code_sizes, usage)?;
        let spec = {
            let mut sink = StreamFill::new(&plan, &manifest, &resident, &codes)?;
            let total: u64 = manifest.weights.iter().map(|w| w.stored_len() as u64).sum();
            let origin = manifest.json_path.clone();
            let mut done = 0u64;
            manifest.read_files(|g, entry, limit| {
                let mut reader = src.weight_reader(entry, limit)?;
                let mut chunk = vec![0u8; 1 << 20];
                let mut len = 0u64;
                loop {
                    let n = reader.read(&mut chunk).map_err(|e| {
                        Error::format(&origin, format!("weight file '{entry}': {e}"))
                    })?;
                    if n == 0 {
                        return Ok(len);
                    }
                    sink.write(g, &chunk[..n]);
                    len += n as u64;
                    done += n as u64;
                    progress(done, total);
                }
            })?
        };
        for b in resident.iter().chain(&codes) {
            b.unmap();
        }
        let gw = self.finish_upload(plan, &spec.weights, (resident, codes), path, started)?;
        Ok((spec, gw))
    }

    /// Buffers created mapped, left mapped for the caller to fill.
    fn create_mapped(&self, sizes: &[u64], usage: wgpu::BufferUsages) -> Result<Vec<wgpu::Buffer>> {
        sizes
            .iter()
            .enumerate()
            .map(|(b, &size)| {
                let what = format!("allocating GPU buffer {b} ({size} bytes) for weights");
                self.checked(&what, || {
                    self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("weights"),
                        size,
                        usage,
                        mapped_at_creation: true,
                    })
                })
            })
            .collect()
    }

    /// Dequantize, gather statistics, and wrap the filled buffers.
    fn finish_upload(
        &self,
        plan: Plan,
        specs: &[WeightSpec],
        (buffers, code_buffers): (Vec<wgpu::Buffer>, Vec<wgpu::Buffer>),
        path: UploadPath,
        started: Instant,
    ) -> Result<GpuWeights> {
        let copy = started.elapsed();
        let started = Instant::now();
        self.dequantize(specs, &plan.jobs, &buffers, &code_buffers)?;
        let weights = plan.residents;
        let stats = UploadStats {
            copy,
            dequantize: if plan.jobs.is_empty() {
                Duration::ZERO
            } else {
                started.elapsed()
            },
            uploaded_bytes: specs.iter().map(|w| w.stored_len() as u64).sum(),
            resident_bytes: weights.iter().map(|w| w.len).sum(),
            buffers: buffers.len(),
            split_tensors: weights.iter().filter(|w| w.chunks.len() > 1).count(),
            dequantized_tensors: specs.iter().filter(|w| !w.encoding().is_plain()).count(),
        };
        Ok(GpuWeights {
            device: self.clone(),
            buffers,
            weights,
            path,
            stats,
        })
    }

    /// Create buffers mapped, copy their fills from the artifacts' files, unmap. Buffers are
    /// spread over the cores: a fresh mapping is paid for in page faults (and wgpu's zeroing of
    /// it), which parallelize well, while one thread tops out near a single core's fault rate.
    fn create_filled(
        &self,
        sizes: &[u64],
        fills: &[Vec<Fill>],
        path: UploadPath,
        a: &Artifacts,
        report: &mut dyn FnMut(u64),
    ) -> Result<Vec<wgpu::Buffer>> {
        let usage = buffer_usage(path);
        let assignment = spread(sizes, upload_threads());
        let done = AtomicU64::new(0);
        let mut reported = 0;
        let results = std::thread::scope(|s| {
            let workers: Vec<_> = assignment
                .iter()
                .map(|list| {
                    let done = &done;
                    s.spawn(move || {
                        list.iter()
                            .map(|&b| {
                                self.create_one(
                                    b,
                                    sizes[b],
                                    fills.get(b).map_or(&[][..], Vec::as_slice),
                                    usage,
                                    a,
                                    done,
                                )
                                .map(|buf| (b, buf))
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            while !workers.iter().all(|w| w.is_finished()) {
                std::thread::sleep(Duration::from_millis(10));
                let now = done.load(Ordering::Relaxed);
                report(now - reported);
                reported = now;
            }
            workers.into_iter().map(|w| w.join()).collect::<Vec<_>>()
        });
        report(done.load(Ordering::Relaxed) - reported);
        let mut buffers: Vec<Option<wgpu::Buffer>> = (0..sizes.len()).map(|_| None).collect();
        for r in results {
            for (b, buf) in r.map_err(|_| Error::Gpu("an upload thread panicked".into()))?? {
                buffers[b] = Some(buf);
            }
        }
        Ok(buffers.into_iter().flatten().collect())
    }

    fn create_one(
        &self,
        b: usize,
        size: u64,
        fills: &[Fill],
        usage: wgpu::BufferUsages,
        a: &Artifacts,
        done: &AtomicU64,
    ) -> Result<wgpu::Buffer> {
        let buffer = self.checked(
            &format!("allocating GPU buffer {b} ({size} bytes) for weights"),
            || {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("weights"),
                    size,
                    usage,
                    mapped_at_creation: true,
                })
            },
        )?;
        let mut view = buffer
            .get_mapped_range_mut(..)
            .map_err(|e| Error::Gpu(format!("mapping weight buffer {b}: {e}")))?;
        for f in fills {
            let mut at = f.offset as usize;
            for piece in a
                .store
                .pieces_in(f.weight, f.start as usize, f.end as usize)
            {
                view.slice(at..at + piece.len()).copy_from_slice(piece);
                at += piece.len();
            }
            done.fetch_add(f.end - f.start, Ordering::Relaxed);
        }
        drop(view);
        buffer.unmap();
        let mut copied: Vec<_> = fills
            .iter()
            .flat_map(|f| {
                a.store
                    .source_ranges(f.weight, f.start as usize, f.end as usize)
            })
            .collect();
        a.store.release(&mut copied);
        Ok(buffer)
    }
}

/// Threads for uploads: the available cores, at most 8.
fn upload_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// Assign buffers to `threads` lists with balanced byte totals (largest first, to the lightest).
fn spread(sizes: &[u64], threads: usize) -> Vec<Vec<usize>> {
    let threads = threads.min(sizes.len()).max(1);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&b| std::cmp::Reverse(sizes[b]));
    let mut loads = vec![0u64; threads];
    let mut lists = vec![Vec::new(); threads];
    for b in order {
        let t = (0..threads).min_by_key(|&t| loads[t]).unwrap_or(0);
        loads[t] += sizes[b];
        lists[t].push(b);
    }
    lists
}
