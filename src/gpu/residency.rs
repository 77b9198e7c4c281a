//! Weights resident on the GPU: files → GPU buffers in one copy, GPU → host in batched readbacks.
//!
//! Load: every weight gets a place in a GPU buffer. Small tensors (biases, normalization vectors)
//! share arenas, so hundreds of them cost a few allocations and mappings; a tensor larger than the
//! device's storage binding limit is split into chunks, each its own buffer. Buffers are created
//! mapped, and each weight's bytes are copied straight from the memory-mapped shard files into the
//! mapping (a weight that straddles shards is assembled in place). Quantized weights are uploaded
//! in their compact form and expanded by the `dequantize` kernel.
//!
//! Readback: on adapters sharing memory with the host the storage buffers themselves are mapped
//! (wgpu's `MAPPABLE_PRIMARY_BUFFERS`); otherwise one encoder copies a batch of weights into a
//! MAP_READ staging buffer, one submit, one map, one wait per batch, batches bounded by a budget.

use super::{kernels, Device};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::manifest::WeightSpec;
use crate::format::{quant, Artifacts, WeightBytes};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where one piece of a weight lives: a byte range of one GPU buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index of the buffer in [`GpuWeights`].
    pub buffer: usize,
    /// Byte offset (aligned to the device's storage offset alignment).
    pub offset: u64,
    /// Bytes of the weight in this piece.
    pub len: u64,
}

/// A weight on the GPU in its logical dtype (float32 / int32 / bool bytes).
#[derive(Clone, Debug)]
pub struct Resident {
    /// Logical dtype.
    pub dtype: DType,
    /// Logical byte length.
    pub len: u64,
    /// Pieces in order: one, unless the weight is larger than the binding limit.
    pub chunks: Vec<Placement>,
}

/// How bytes reach GPU memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadPath {
    /// Buffers created mapped; wgpu stages the bytes and copies them on unmap. Readback through
    /// MAP_READ staging buffers. Right for discrete GPUs.
    Staged,
    /// Storage buffers that are themselves mappable (`MAPPABLE_PRIMARY_BUFFERS`): bytes are
    /// written into, and read from, the buffer's own memory. Right where the GPU shares memory
    /// with the host (integrated GPUs, software adapters such as lavapipe).
    Mapped,
}

/// Upload tuning.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// Force a path (default: [`UploadPath::Mapped`] when the device supports it, else staged;
    /// `LAYERCAKE_UPLOAD=staged|mapped` overrides).
    pub path: Option<UploadPath>,
    /// Tensors up to this size share arenas.
    pub small_tensor_bytes: u64,
    /// Arena size.
    pub arena_bytes: u64,
    /// Largest piece of one tensor (default: the device's storage binding / buffer limit).
    pub max_chunk_bytes: Option<u64>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            path: None,
            small_tensor_bytes: 1 << 20,
            arena_bytes: 8 << 20,
            max_chunk_bytes: None,
        }
    }
}

impl UploadOptions {
    /// One buffer per weight (no shared arenas): every weight starts its own buffer, so a
    /// kernel binds it whole (what [`crate::Session`] uploads for its predictions to read).
    pub fn dedicated() -> UploadOptions {
        UploadOptions {
            small_tensor_bytes: 0,
            ..UploadOptions::default()
        }
    }
}

/// What an upload did and how long each stage took.
#[derive(Clone, Debug, Default)]
pub struct UploadStats {
    /// Buffer creation + copying bytes into mappings + unmapping.
    pub copy: Duration,
    /// The dequantization dispatches (submit to completion).
    pub dequantize: Duration,
    /// Bytes copied from the files (compact form for quantized weights).
    pub uploaded_bytes: u64,
    /// Bytes resident after dequantization.
    pub resident_bytes: u64,
    /// GPU buffers holding the weights.
    pub buffers: usize,
    /// Tensors split into several chunks.
    pub split_tensors: usize,
    /// Tensors dequantized on the GPU.
    pub dequantized_tensors: usize,
}

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

/// Every weight of a model, resident on one device.
pub struct GpuWeights {
    device: Device,
    buffers: Vec<wgpu::Buffer>,
    /// Per weight (manifest order): where it lives.
    pub weights: Vec<Resident>,
    /// The path used.
    pub path: UploadPath,
    /// Upload statistics.
    pub stats: UploadStats,
}

/// Packs tensors into buffers: arenas for small ones, own buffers (chunked) for large ones.
struct Placer {
    align: u64,
    small: u64,
    arena: u64,
    max_chunk: u64,
    sizes: Vec<u64>,
    open_arena: Option<usize>,
}

impl Placer {
    fn new(device: &Device, opts: &UploadOptions) -> Placer {
        let limit = device
            .limits
            .max_buffer_size
            .min(device.limits.max_storage_buffer_binding_size);
        let align = u64::from(device.limits.min_storage_buffer_offset_alignment).max(4);
        let max_chunk = opts.max_chunk_bytes.unwrap_or(limit).min(limit);
        let max_chunk = (max_chunk / 256 * 256).max(256);
        Placer {
            align,
            small: opts.small_tensor_bytes.min(max_chunk),
            arena: opts.arena_bytes.clamp(1, max_chunk),
            max_chunk,
            sizes: Vec::new(),
            open_arena: None,
        }
    }

    fn place(&mut self, len: u64) -> Vec<Placement> {
        self.place_rows(len, 0)
    }

    /// [`Placer::place`] with large weights' chunks a whole number of `row` bytes where a row
    /// fits in a chunk (`row` 0: any).
    fn place_rows(&mut self, len: u64, row: u64) -> Vec<Placement> {
        if len == 0 {
            return Vec::new();
        }
        if len <= self.small {
            return vec![self.in_arena(len)];
        }
        let chunk = if row > 0 && row <= self.max_chunk && row.is_multiple_of(4) {
            self.max_chunk / row * row
        } else {
            self.max_chunk
        };
        let mut out = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (len - at).min(chunk);
            out.push(Placement {
                buffer: self.new_buffer(n),
                offset: 0,
                len: n,
            });
            at += n;
        }
        out
    }

    fn in_arena(&mut self, len: u64) -> Placement {
        if let Some(b) = self.open_arena {
            let offset = self.sizes[b].next_multiple_of(self.align);
            if offset + len <= self.arena {
                self.sizes[b] = offset + len;
                return Placement {
                    buffer: b,
                    offset,
                    len,
                };
            }
        }
        let buffer = self.new_buffer(len);
        self.open_arena = Some(buffer);
        Placement {
            buffer,
            offset: 0,
            len,
        }
    }

    fn new_buffer(&mut self, len: u64) -> usize {
        self.sizes.push(len);
        self.sizes.len() - 1
    }

    /// Buffer sizes, padded to the 4-byte copy alignment.
    fn buffer_sizes(&self) -> Vec<u64> {
        self.sizes.iter().map(|s| s.next_multiple_of(4)).collect()
    }
}

/// One GPU dequantization: a chunk of compact codes into a chunk of a resident weight.
struct DequantJob {
    weight: usize,
    codes: Placement,
    out: Placement,
    elements: u64,
}

/// A byte range of a weight's stored bytes to copy into a buffer at an offset.
struct Fill {
    weight: usize,
    start: u64,
    end: u64,
    offset: u64,
}

/// Where every weight goes: buffer sizes, the byte ranges each buffer is filled with, and the
/// dequantization jobs.
struct Plan {
    resident_sizes: Vec<u64>,
    code_sizes: Vec<u64>,
    resident_fills: Vec<Vec<Fill>>,
    code_fills: Vec<Vec<Fill>>,
    jobs: Vec<DequantJob>,
    residents: Vec<Resident>,
}

impl Plan {
    fn new(device: &Device, opts: &UploadOptions, specs: &[WeightSpec]) -> Plan {
        let mut resident_placer = Placer::new(device, opts);
        let mut code_placer = Placer::new(device, opts);
        let mut residents = Vec::with_capacity(specs.len());
        let mut jobs = Vec::new();
        let mut resident_fills: Vec<Vec<Fill>> = Vec::new();
        let mut code_fills: Vec<Vec<Fill>> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let len = spec.logical_len() as u64;
            // Chunks of a weight above the binding limit end on row boundaries (its last axis),
            // so a matmul can take the chunks as blocks of kernel rows.
            let row = spec
                .shape
                .last()
                .map_or(0, |&d| d as u64 * spec.dtype.size() as u64);
            let chunks = resident_placer.place_rows(len, row);
            let quantized = !spec.encoding().is_plain();
            let code_size = spec.encoding().size() as u64;
            let mut start = 0;
            for &c in &chunks {
                if quantized {
                    let elements = c.len / spec.dtype.size() as u64;
                    let codes = code_placer.place(elements * code_size);
                    let codes = *codes.first().expect("a chunk of at least one element");
                    let fill = Fill {
                        weight: i,
                        start: start * code_size / 4,
                        end: (start + c.len) * code_size / 4,
                        offset: codes.offset,
                    };
                    push_fill(&mut code_fills, codes.buffer, fill);
                    jobs.push(DequantJob {
                        weight: i,
                        codes,
                        out: c,
                        elements,
                    });
                } else {
                    let fill = Fill {
                        weight: i,
                        start,
                        end: start + c.len,
                        offset: c.offset,
                    };
                    push_fill(&mut resident_fills, c.buffer, fill);
                }
                start += c.len;
            }
            residents.push(Resident {
                dtype: spec.dtype,
                len,
                chunks,
            });
        }
        Plan {
            resident_sizes: resident_placer.buffer_sizes(),
            code_sizes: code_placer.buffer_sizes(),
            resident_fills,
            code_fills,
            jobs,
            residents,
        }
    }
}

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

    /// Expand compact codes into resident float32/int32 weights with the lookup-table kernel.
    fn dequantize(
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

fn push_fill(fills: &mut Vec<Vec<Fill>>, buffer: usize, fill: Fill) {
    if fills.len() <= buffer {
        fills.resize_with(buffer + 1, Vec::new);
    }
    fills[buffer].push(fill);
}

impl GpuWeights {
    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The GPU buffer behind `placement`.
    pub fn buffer(&self, placement: Placement) -> &wgpu::Buffer {
        &self.buffers[placement.buffer]
    }

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
