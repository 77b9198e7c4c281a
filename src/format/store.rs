//! Where the weight bytes of loaded artifacts live: memory-mapped weight files (or owned bytes),
//! and for each weight the spans that hold it. A weight that straddles shard files has several
//! spans; nothing is ever concatenated into a whole-model buffer.

use crate::error::{Error, Result};
use memmap2::Mmap;
use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

/// Backing bytes: a mapped file or bytes held in memory.
#[derive(Debug)]
pub enum Backing {
    /// A read-only memory map of a whole file. The file must not be truncated while mapped;
    /// layercake itself never writes over a file in place (saves go to new files and rename).
    Mapped(Mmap),
    /// Bytes owned by the store (in-memory models, empty files).
    Owned(Vec<u8>),
}

impl Backing {
    /// Map `path` read-only; empty files become empty owned buffers (mmap of length 0 fails).
    pub fn map(path: &Path, file: &File, len: u64) -> Result<Backing> {
        if len == 0 {
            return Ok(Backing::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and layercake never modifies weight files in place; a
        // third party truncating the file while it is loaded is outside the supported contract.
        let map = unsafe { Mmap::map(file) }.map_err(|e| Error::io(path, e))?;
        if map.len() as u64 != len {
            return Err(Error::format(
                path,
                format!(
                    "file changed size while loading ({len} → {} bytes)",
                    map.len()
                ),
            ));
        }
        Ok(Backing::Mapped(map))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True for an empty buffer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A contiguous run of one weight's bytes inside one backing buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Index into the store's buffers.
    pub buffer: usize,
    /// Byte offset in that buffer.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
}

/// The stored (possibly quantized) bytes of every weight, as spans over backing buffers.
#[derive(Debug, Default)]
pub struct WeightStore {
    buffers: Vec<std::sync::Arc<Backing>>,
    spans: Vec<Vec<Span>>,
}

impl WeightStore {
    /// A store over `buffers`, with `spans[i]` locating weight `i`. Spans must lie inside their
    /// buffers (checked).
    pub fn new(buffers: Vec<Backing>, spans: Vec<Vec<Span>>) -> Result<WeightStore> {
        let buffers = buffers.into_iter().map(std::sync::Arc::new).collect();
        Self::from_shared(buffers, spans)
    }

    /// [`WeightStore::new`] over buffers already shared (a Keras archive's map, which its HDF5
    /// parser read from before the spans were known).
    pub fn from_shared(
        buffers: Vec<std::sync::Arc<Backing>>,
        spans: Vec<Vec<Span>>,
    ) -> Result<WeightStore> {
        for (i, s) in spans.iter().flatten().enumerate() {
            let ok = buffers
                .get(s.buffer)
                .and_then(|b| s.start.checked_add(s.len).map(|end| end <= b.bytes().len()))
                .unwrap_or(false);
            if !ok {
                return Err(Error::Usage(format!(
                    "internal: span {i} lies outside its buffer"
                )));
            }
        }
        Ok(WeightStore { buffers, spans })
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the store holds no weights.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Stored byte length of weight `i`.
    pub fn stored_len(&self, i: usize) -> usize {
        self.spans[i].iter().map(|s| s.len).sum()
    }

    /// The pieces of weight `i`, in order (one for a weight inside a single file).
    pub fn pieces(&self, i: usize) -> impl Iterator<Item = &[u8]> {
        self.spans[i]
            .iter()
            .map(|s| &self.buffers[s.buffer].bytes()[s.start..s.start + s.len])
    }

    /// Backing buffer `b` (for TF.js artifacts: the manifest's files in order).
    pub fn buffer(&self, b: usize) -> Option<&[u8]> {
        self.buffers.get(b).map(|b| b.bytes())
    }

    /// Weight `i`'s stored bytes as float32 values read in place, where they lie in one
    /// memory-mapped file at a 4-byte aligned address (the common case for float32 weights):
    /// no copy. `None` otherwise (owned, straddling or unaligned bytes).
    pub fn mapped_f32(&self, i: usize) -> Option<crate::tensor::Data> {
        let [s] = self.spans.get(i)?[..] else {
            return None;
        };
        let backing = &self.buffers[s.buffer];
        let Backing::Mapped(map) = &**backing else {
            return None;
        };
        let aligned =
            (map.as_ptr() as usize + s.start).is_multiple_of(4) && s.len.is_multiple_of(4);
        aligned.then(|| crate::tensor::Data::Mapped {
            backing: std::sync::Arc::clone(backing),
            start: s.start,
            len: s.len / 4,
        })
    }

    /// Weight `i`'s stored bytes: borrowed when it lies in one file, assembled when it straddles.
    pub fn stored(&self, i: usize) -> Cow<'_, [u8]> {
        let mut pieces = self.pieces(i);
        match (pieces.next(), self.spans[i].len()) {
            (Some(p), 1) => Cow::Borrowed(p),
            (None, _) => Cow::Borrowed(&[]),
            (Some(first), _) => {
                let mut v = Vec::with_capacity(self.stored_len(i));
                v.extend_from_slice(first);
                pieces.for_each(|p| v.extend_from_slice(p));
                Cow::Owned(v)
            }
        }
    }

    /// The pieces of weight `i` covering its bytes `start..end`, in order.
    pub fn pieces_in(&self, i: usize, start: usize, end: usize) -> impl Iterator<Item = &[u8]> {
        let mut at = 0usize;
        self.pieces(i).filter_map(move |p| {
            let (lo, hi) = (at, at + p.len());
            at = hi;
            let (a, b) = (start.max(lo), end.min(hi));
            (a < b).then(|| &p[a - lo..b - lo])
        })
    }

    /// Where weight `i`'s bytes `start..end` lie: (buffer, offset, len) runs.
    pub fn source_ranges(
        &self,
        i: usize,
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let mut at = 0usize;
        self.spans[i].iter().filter_map(move |s| {
            let (lo, hi) = (start.max(at), end.min(at + s.len));
            let run = (lo < hi).then(|| (s.buffer, s.start + lo - at, hi - lo));
            at += s.len;
            run
        })
    }

    /// Drop the mapped pages behind `ranges` (from [`WeightStore::source_ranges`]) from this
    /// process's resident set once their bytes are copied elsewhere: `madvise(DONTNEED)`, after
    /// merging adjacent runs so a buffer of many small tensors costs one call. The page cache
    /// keeps the pages; a later read maps them again. Keeps a load's peak memory near the model
    /// size instead of twice it.
    pub fn release(&self, ranges: &mut [(usize, usize, usize)]) {
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize, usize)> = Vec::new();
        for &(b, off, len) in ranges.iter() {
            match merged.last_mut() {
                Some(m) if m.0 == b && m.1 + m.2 >= off => m.2 = m.2.max(off + len - m.1),
                _ => merged.push((b, off, len)),
            }
        }
        for (b, off, len) in merged {
            if let Backing::Mapped(map) = &*self.buffers[b] {
                #[cfg(unix)]
                // SAFETY: a read-only, file-backed mapping: DONTNEED only unmaps its pages, and the
                // next access reads them again from the file.
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len)
                };
                #[cfg(not(unix))]
                let _ = (map, off, len);
            }
        }
    }

    /// Copy weight `i`'s stored bytes into `dst` (exactly `stored_len(i)` bytes), assembling a
    /// straddling weight in place: the path used to fill mapped GPU buffers.
    pub fn copy_into(&self, i: usize, dst: &mut [u8]) {
        let mut at = 0;
        for p in self.pieces(i) {
            dst[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straddling_weight_is_assembled() {
        let store = WeightStore::new(
            vec![Backing::Owned(vec![1, 2, 3]), Backing::Owned(vec![4, 5])],
            vec![
                vec![Span {
                    buffer: 0,
                    start: 0,
                    len: 2,
                }],
                vec![
                    Span {
                        buffer: 0,
                        start: 2,
                        len: 1,
                    },
                    Span {
                        buffer: 1,
                        start: 0,
                        len: 2,
                    },
                ],
            ],
        )
        .unwrap();
        assert!(matches!(store.stored(0), Cow::Borrowed(&[1, 2])));
        assert_eq!(&*store.stored(1), &[3, 4, 5]);
        let mut dst = [0u8; 3];
        store.copy_into(1, &mut dst);
        assert_eq!(dst, [3, 4, 5]);
        let middle: Vec<&[u8]> = store.pieces_in(1, 0, 2).collect();
        assert_eq!(middle, vec![&[3u8][..], &[4u8][..]]);
        assert_eq!(
            store.pieces_in(1, 1, 3).collect::<Vec<_>>(),
            vec![&[4u8, 5][..]]
        );
    }

    #[test]
    fn spans_outside_buffers_are_refused() {
        let r = WeightStore::new(
            vec![Backing::Owned(vec![0; 4])],
            vec![vec![Span {
                buffer: 0,
                start: 2,
                len: 3,
            }]],
        );
        assert!(r.is_err());
    }
}
