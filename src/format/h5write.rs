//! A streaming HDF5 writer for what Keras reads: groups of hard links and contiguous datasets of
//! little-endian float32 / float16 / int32 / int64 / bool (h5py's enum), no attributes.
//!
//! `hdf5-pure` writes richer files but builds every one in memory (`FileBuilder::finish`), which
//! would hold a second copy of the model. Here the metadata is laid out first — every object
//! header's size is known from the dataset list alone, so addresses are assigned before a byte is
//! written — and the data then streams dataset by dataset, each aligned to [`DATA_ALIGN`] bytes.
//!
//! The format is the HDF5 1.10 file format specification's "latest" encoding, which HDF5 1.8+
//! and h5py read: superblock version 2, version 2 object headers (`OHDR`, Jenkins lookup3
//! checksums), new-style compact groups (Link Info + Group Info + one Link message per member),
//! Dataspace v2, Datatype v1, Fill Value v3 and Data Layout v3 (contiguous) messages.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// Each dataset's data starts at a multiple of this offset (so a mapped file reads float32 in
/// place, and a GPU copy starts aligned).
pub const DATA_ALIGN: u64 = 64;

const UNDEF: u64 = u64::MAX;
const SUPERBLOCK_LEN: u64 = 48;

/// An element type the writer stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// Signed 32-bit.
    I32,
    /// Signed 64-bit.
    I64,
    /// h5py's bool: an enum {FALSE = 0, TRUE = 1} over int8.
    Bool,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 => 2,
            Elem::I64 => 8,
            Elem::Bool => 1,
        }
    }
}

/// One dataset to write: its `/`-separated path, shape and element type.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Path from the root group, e.g. `layers/dense/vars/0`.
    pub path: String,
    /// Dimensions (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Element type.
    pub elem: Elem,
}

impl Dataset {
    fn data_len(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64 * self.elem.size() as u64
    }
}

enum Node {
    Group(BTreeMap<String, Node>),
    Data(usize),
}

/// A laid-out file: the metadata bytes and where each dataset's data goes.
pub struct Plan {
    metadata: Vec<u8>,
    data: Vec<(u64, u64)>,
    total: u64,
}

impl Plan {
    /// Lay out `datasets`. Fails on an empty or repeated path, or one that is both a group and a
    /// dataset.
    pub fn new(datasets: &[Dataset]) -> Result<Plan, String> {
        let root = tree(datasets)?;
        let mut sizes = Vec::new();
        header_sizes(&root, datasets, &mut sizes);
        let meta_end = SUPERBLOCK_LEN + sizes.iter().sum::<u64>();
        let mut data = Vec::with_capacity(datasets.len());
        let mut at = meta_end;
        for d in datasets {
            let len = d.data_len();
            match len {
                0 => data.push((UNDEF, 0)),
                _ => {
                    at = at.div_ceil(DATA_ALIGN) * DATA_ALIGN;
                    data.push((at, len));
                    at += len;
                }
            }
        }
        let mut headers = Vec::new();
        let mut next = SUPERBLOCK_LEN;
        let mut sizes_iter = sizes.iter();
        serialize(
            &root,
            datasets,
            &data,
            &mut next,
            &mut sizes_iter,
            &mut headers,
        );
        let mut metadata = superblock(at, SUPERBLOCK_LEN);
        metadata.extend_from_slice(&headers);
        debug_assert_eq!(metadata.len() as u64, meta_end);
        Ok(Plan {
            metadata,
            data,
            total: at,
        })
    }

    /// The file's total length in bytes.
    pub fn total_len(&self) -> u64 {
        self.total
    }

    /// Where dataset `i`'s data lies: (offset, length); offset `u64::MAX` for an empty one.
    pub fn data_range(&self, i: usize) -> (u64, u64) {
        self.data[i]
    }

    /// Write the file: metadata, then each dataset's data from `fill(i, w)`, which must write
    /// exactly the dataset's bytes (checked).
    pub fn write(
        &self,
        w: &mut dyn Write,
        mut fill: impl FnMut(usize, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        w.write_all(&self.metadata)?;
        let mut at = self.metadata.len() as u64;
        for (i, &(offset, len)) in self.data.iter().enumerate() {
            if len == 0 {
                continue;
            }
            io::copy(&mut io::Read::take(io::repeat(0), offset - at), w)?;
            let mut counted = Counted { inner: w, n: 0 };
            fill(i, &mut counted)?;
            if counted.n != len {
                return Err(io::Error::other(format!(
                    "dataset {i}: {} bytes written, {len} expected",
                    counted.n
                )));
            }
            at = offset + len;
        }
        Ok(())
    }
}

struct Counted<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn tree(datasets: &[Dataset]) -> Result<Node, String> {
    let mut root = BTreeMap::new();
    for (i, d) in datasets.iter().enumerate() {
        let parts: Vec<&str> = d.path.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("dataset path '{}' has an empty component", d.path));
        }
        let (last, groups) = parts.split_last().expect("split yields one part");
        let mut at = &mut root;
        for g in groups {
            let node = at
                .entry(g.to_string())
                .or_insert_with(|| Node::Group(BTreeMap::new()));
            at = match node {
                Node::Group(children) => children,
                Node::Data(_) => return Err(format!("'{}' is below a dataset", d.path)),
            };
        }
        if at.insert(last.to_string(), Node::Data(i)).is_some() {
            return Err(format!(
                "'{}' is written twice (or is also a group)",
                d.path
            ));
        }
    }
    Ok(Node::Group(root))
}

/// Sizes of every object header, in the pre-order [`serialize`] writes them.
fn header_sizes(node: &Node, datasets: &[Dataset], out: &mut Vec<u64>) {
    match node {
        Node::Data(i) => out.push(dataset_header(&datasets[*i], (0, 0)).len() as u64),
        Node::Group(children) => {
            let links: Vec<(&str, u64)> = children.keys().map(|k| (k.as_str(), 0)).collect();
            out.push(group_header(&links).len() as u64);
            for child in children.values() {
                header_sizes(child, datasets, out);
            }
        }
    }
}

/// Write `node`'s header at `*next` (then its children's after it); returns its address.
fn serialize<'a>(
    node: &Node,
    datasets: &[Dataset],
    data: &[(u64, u64)],
    next: &mut u64,
    sizes: &mut impl Iterator<Item = &'a u64>,
    out: &mut Vec<u8>,
) -> u64 {
    let address = *next;
    let size = *sizes.next().expect("one size per header");
    *next += size;
    match node {
        Node::Data(i) => out.extend(dataset_header(&datasets[*i], data[*i])),
        Node::Group(children) => {
            // Children's headers follow this one; reserve ours (its size is known), then fill it in.
            let at = out.len();
            out.extend(std::iter::repeat_n(0, size as usize));
            let mut links = Vec::with_capacity(children.len());
            for (name, child) in children {
                links.push((
                    name.as_str(),
                    serialize(child, datasets, data, next, sizes, out),
                ));
            }
            let header = group_header(&links);
            debug_assert_eq!(header.len() as u64, size);
            out[at..at + header.len()].copy_from_slice(&header);
        }
    }
    address
}

fn superblock(eof: u64, root: u64) -> Vec<u8> {
    let mut s = b"\x89HDF\r\n\x1a\n".to_vec();
    s.extend([2, 8, 8, 0]);
    s.extend(0u64.to_le_bytes());
    s.extend(UNDEF.to_le_bytes());
    s.extend(eof.to_le_bytes());
    s.extend(root.to_le_bytes());
    let sum = lookup3(&s);
    s.extend(sum.to_le_bytes());
    s
}

/// A version 2 object header holding `messages` (type, body).
fn object_header(messages: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let body: usize = messages.iter().map(|(_, m)| 4 + m.len()).sum();
    let mut h = b"OHDR".to_vec();
    h.extend([2, 0x02]); // version 2; chunk size in 4 bytes
    h.extend((body as u32).to_le_bytes());
    for (kind, m) in messages {
        h.push(*kind);
        h.extend((m.len() as u16).to_le_bytes());
        h.push(0);
        h.extend(m);
    }
    let sum = lookup3(&h);
    h.extend(sum.to_le_bytes());
    h
}

fn group_header(links: &[(&str, u64)]) -> Vec<u8> {
    let mut link_info = vec![0, 0];
    link_info.extend(UNDEF.to_le_bytes());
    link_info.extend(UNDEF.to_le_bytes());
    let mut messages = vec![(0x02, link_info), (0x0A, vec![0, 0])];
    for (name, address) in links {
        messages.push((0x06, link(name, *address)));
    }
    object_header(&messages)
}

/// A hard link: version 1; name length in 1 or 2 bytes; UTF-8 names flagged as such.
fn link(name: &str, address: u64) -> Vec<u8> {
    let wide = name.len() > 255;
    let utf8 = !name.is_ascii();
    let mut m = vec![1, u8::from(wide) | if utf8 { 0x10 } else { 0 }];
    if utf8 {
        m.push(1);
    }
    match wide {
        true => m.extend((name.len() as u16).to_le_bytes()),
        false => m.push(name.len() as u8),
    }
    m.extend(name.as_bytes());
    m.extend(address.to_le_bytes());
    m
}

fn dataset_header(d: &Dataset, (address, len): (u64, u64)) -> Vec<u8> {
    let mut space = vec![2, d.shape.len() as u8, 0, u8::from(!d.shape.is_empty())];
    for &n in &d.shape {
        space.extend((n as u64).to_le_bytes());
    }
    let mut layout = vec![3, 1];
    layout.extend(address.to_le_bytes());
    layout.extend(len.to_le_bytes());
    object_header(&[
        (0x01, space),
        (0x03, datatype(d.elem)),
        (0x05, vec![3, 0x0A]), // fill value: allocated late, written if set, default value
        (0x08, layout),
    ])
}

fn datatype(e: Elem) -> Vec<u8> {
    // (class/version, bit fields, size) then the class's properties.
    let float = |size: u32, sign: u8, exp_at: u8, exp: u8, mant: u8, bias: u32| {
        let mut t = vec![0x11, 0x20, sign, 0];
        t.extend(size.to_le_bytes());
        t.extend(0u16.to_le_bytes());
        t.extend(((size * 8) as u16).to_le_bytes());
        t.extend([exp_at, exp, 0, mant]);
        t.extend(bias.to_le_bytes());
        t
    };
    let int = |size: u32| {
        let mut t = vec![0x10, 0x08, 0, 0];
        t.extend(size.to_le_bytes());
        t.extend(0u16.to_le_bytes());
        t.extend(((size * 8) as u16).to_le_bytes());
        t
    };
    match e {
        Elem::F32 => float(4, 31, 23, 8, 23, 127),
        Elem::F16 => float(2, 15, 10, 5, 10, 15),
        Elem::I32 => int(4),
        Elem::I64 => int(8),
        Elem::Bool => {
            let mut t = vec![0x18, 2, 0, 0];
            t.extend(1u32.to_le_bytes());
            t.extend(int(1));
            t.extend(b"FALSE\0\0\0TRUE\0\0\0\0");
            t.extend([0, 1]);
            t
        }
    }
}

/// Bob Jenkins's lookup3 `hashlittle` with seed 0, the checksum HDF5 puts on its metadata
/// (written from the published algorithm, http://burtleburtle.net/bob/c/lookup3.c).
pub fn lookup3(data: &[u8]) -> u32 {
    let init = 0xdead_beefu32.wrapping_add(data.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    let word = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let mut rest = data;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    let mut tail = [0u8; 12];
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    c = c.wrapping_add(word(&tail[8..12]));
    finish(&mut a, &mut b, &mut c);
    c
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    for (x, y, z, r) in [
        (0, 2, 1, 4),
        (1, 0, 2, 6),
        (2, 1, 0, 8),
        (0, 2, 1, 16),
        (1, 0, 2, 19),
        (2, 1, 0, 4),
    ] {
        let mut v = [*a, *b, *c];
        v[x] = v[x].wrapping_sub(v[y]);
        v[x] ^= v[y].rotate_left(r);
        v[y] = v[y].wrapping_add(v[z]);
        [*a, *b, *c] = v;
    }
}

fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    for (x, y, r) in [
        (2, 1, 14),
        (0, 2, 11),
        (1, 0, 25),
        (2, 1, 16),
        (0, 2, 4),
        (1, 0, 14),
        (2, 1, 24),
    ] {
        let mut v = [*a, *b, *c];
        v[x] ^= v[y];
        v[x] = v[x].wrapping_sub(v[y].rotate_left(r));
        [*a, *b, *c] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup3_matches_the_published_test_vectors() {
        // lookup3.c's driver5: hashlittle("", 0) = 0xdeadbeef,
        // hashlittle("Four score and seven years ago", 0) = 0x17770551.
        assert_eq!(lookup3(b""), 0xdead_beef);
        assert_eq!(lookup3(b"Four score and seven years ago"), 0x1777_0551);
    }

    #[test]
    fn written_files_read_back_with_hdf5_pure() {
        let sets = vec![
            Dataset {
                path: "layers/dense/vars/0".into(),
                shape: vec![2, 3],
                elem: Elem::F32,
            },
            Dataset {
                path: "layers/dense/vars/1".into(),
                shape: vec![3],
                elem: Elem::F16,
            },
            Dataset {
                path: "optimizer/vars/0".into(),
                shape: vec![],
                elem: Elem::I64,
            },
            Dataset {
                path: "optimizer/vars/1".into(),
                shape: vec![0],
                elem: Elem::F32,
            },
            Dataset {
                path: "flags".into(),
                shape: vec![2],
                elem: Elem::Bool,
            },
        ];
        let plan = Plan::new(&sets).unwrap();
        let mut file = Vec::new();
        plan.write(&mut file, |i, w| {
            let n = sets[i].data_len() as usize;
            w.write_all(
                &(0..n)
                    .map(|b| {
                        if sets[i].elem == Elem::Bool {
                            (b % 2) as u8
                        } else {
                            b as u8 + 1
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap();
        assert_eq!(file.len() as u64, plan.total_len());
        let h5 = hdf5_pure::File::from_bytes(file.clone()).unwrap();
        let ds = h5.dataset("layers/dense/vars/0").unwrap();
        assert_eq!(ds.shape().unwrap(), vec![2, 3]);
        let (at, len) = plan.data_range(0);
        assert_eq!(at % DATA_ALIGN, 0);
        assert_eq!(
            ds.read_raw().unwrap(),
            file[at as usize..(at + len) as usize].to_vec()
        );
        assert_eq!(
            h5.dataset("optimizer/vars/0").unwrap().read_raw().unwrap(),
            (1..=8).collect::<Vec<u8>>()
        );
        assert_eq!(
            h5.dataset("optimizer/vars/1").unwrap().shape().unwrap(),
            vec![0]
        );
        assert_eq!(h5.dataset("flags").unwrap().read_raw().unwrap(), vec![0, 1]);
        assert_eq!(h5.root().groups().unwrap(), vec!["layers", "optimizer"]);
    }

    #[test]
    fn bad_paths_are_refused() {
        let d = |p: &str| Dataset {
            path: p.into(),
            shape: vec![1],
            elem: Elem::F32,
        };
        assert!(Plan::new(&[d("a//b")]).is_err());
        assert!(Plan::new(&[d("a/b"), d("a/b")]).is_err());
        assert!(Plan::new(&[d("a"), d("a/b")]).is_err());
    }
}
