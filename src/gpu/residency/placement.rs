//! Where each weight goes: arenas for small tensors, own (chunked) buffers for large ones.

use super::super::Device;
use super::*;
use crate::format::manifest::WeightSpec;

/// Packs tensors into buffers: arenas for small ones, own buffers (chunked) for large ones.
pub(super) struct Placer {
    pub(super) align: u64,
    pub(super) small: u64,
    pub(super) arena: u64,
    pub(super) max_chunk: u64,
    pub(super) sizes: Vec<u64>,
    pub(super) open_arena: Option<usize>,
}

impl Placer {
    pub(super) fn new(device: &Device, opts: &UploadOptions) -> Placer {
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

    pub(super) fn place(&mut self, len: u64) -> Vec<Placement> {
        self.place_rows(len, 0)
    }

    /// [`Placer::place`] with large weights' chunks a whole number of `row` bytes where a row
    /// fits in a chunk (`row` 0: any).
    pub(super) fn place_rows(&mut self, len: u64, row: u64) -> Vec<Placement> {
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

    pub(super) fn in_arena(&mut self, len: u64) -> Placement {
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

    pub(super) fn new_buffer(&mut self, len: u64) -> usize {
        self.sizes.push(len);
        self.sizes.len() - 1
    }

    /// Buffer sizes, padded to the 4-byte copy alignment.
    pub(super) fn buffer_sizes(&self) -> Vec<u64> {
        self.sizes.iter().map(|s| s.next_multiple_of(4)).collect()
    }
}

/// One GPU dequantization: a chunk of compact codes into a chunk of a resident weight.
pub(super) struct DequantJob {
    pub(super) weight: usize,
    pub(super) codes: Placement,
    pub(super) out: Placement,
    pub(super) elements: u64,
}

/// A byte range of a weight's stored bytes to copy into a buffer at an offset.
pub(super) struct Fill {
    pub(super) weight: usize,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) offset: u64,
}

/// Where every weight goes: buffer sizes, the byte ranges each buffer is filled with, and the
/// dequantization jobs.
pub(super) struct Plan {
    pub(super) resident_sizes: Vec<u64>,
    pub(super) code_sizes: Vec<u64>,
    pub(super) resident_fills: Vec<Vec<Fill>>,
    pub(super) code_fills: Vec<Vec<Fill>>,
    pub(super) jobs: Vec<DequantJob>,
    pub(super) residents: Vec<Resident>,
}

impl Plan {
    pub(super) fn new(device: &Device, opts: &UploadOptions, specs: &[WeightSpec]) -> Plan {
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

pub(super) fn push_fill(fills: &mut Vec<Vec<Fill>>, buffer: usize, fill: Fill) {
    if fills.len() <= buffer {
        fills.resize_with(buffer + 1, Vec::new);
    }
    fills[buffer].push(fill);
}
