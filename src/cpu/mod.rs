//! Shared CPU kernels of the reference implementation: matrix multiply (the `gemm` crate, the
//! SGEMM behind candle) and broadcasting.

pub mod rows;
pub mod vmath;

use rayon::prelude::*;

/// How a matrix product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Every core (rayon's pool); `gemm` itself decides whether the size is worth splitting.
    All,
    /// The calling thread only: for products already inside a parallel loop.
    One,
}

/// `c[m×n] = a[m×k] · b[k×n]` (row-major, c overwritten), on every core.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_with(a, b, c, (m, k, n), Threads::All);
}

/// `c[m×n] = a[m×k] · b[k×n]` (row-major, c overwritten) with the given threading.
pub fn matmul_with(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    threads: Threads,
) {
    check_sizes(a, b, c, (m, k, n));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    let threads = match threads {
        Threads::All => rayon::current_num_threads(),
        Threads::One => 1,
    };
    // Few rows (a Dense layer on a small batch): `gemm` splits such products poorly, so split
    // the columns of `b` and `c` between the threads, each running a one-thread product.
    let strips = if m < 128 && n >= 256 * threads {
        threads
    } else {
        1
    };
    if strips > 1 {
        return column_strips(a, b, c, (m, k, n), strips);
    }
    // SAFETY: `c` holds m×n elements (asserted above) and is exclusively borrowed.
    unsafe { gemm_strided(a, (b, 0), c.as_mut_ptr(), (m, k, n), n, threads) };
}

/// Panics unless `a`, `b` and `c` hold an `m×k`, a `k×n` and an `m×n` matrix.
fn check_sizes(a: &[f32], b: &[f32], c: &[f32], (m, k, n): (usize, usize, usize)) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul operand sizes"
    );
}

/// A raw pointer into a result that threads write in disjoint parts.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used for disjoint writes (see `matmul_with`).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// SAFETY: `offset` is within the allocation.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }
}

/// `c[m×n] = a[m×k] · b[k×n]` with the columns of `b` and `c` split into `strips` parts, each a
/// one-thread product on its own core.
fn column_strips(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    strips: usize,
) {
    check_sizes(a, b, c, (m, k, n));
    // Strips of a multiple of 16 columns (one AVX-512 register of f32) keep the kernels' full width.
    let width = n.div_ceil(strips).next_multiple_of(16);
    let dst = SharedMut(c.as_mut_ptr());
    (0..n.div_ceil(width)).into_par_iter().for_each(|s| {
        let (j0, j1) = (s * width, ((s + 1) * width).min(n));
        // SAFETY: strips cover disjoint column ranges of `c`, so no element is written by two
        // threads; `c` holds m×n elements (asserted above) and outlives the parallel loop.
        unsafe { gemm_strided(a, (b, j0), dst.at(j0), (m, k, j1 - j0), n, 1) };
    });
}

/// How a product of `m` rows is cut into parallel tasks: blocks of `rows` rows (at most
/// [`ROW_BLOCK`], their count a multiple of the cores so that none idles at the end), each split
/// into `strips` column strips when there are fewer blocks than cores (the few rows of a late
/// convolution stage at batch 1: ResNet50's 7×7 and 14×14 maps are one block; splitting the
/// columns lets each core pack only its part of the large kernel matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Split {
    rows: usize,
    strips: usize,
}

fn split(m: usize, n: usize) -> Split {
    let threads = rayon::current_num_threads().max(1);
    let blocks = m.div_ceil(ROW_BLOCK).max(1);
    if blocks < threads {
        let strips = threads.div_ceil(blocks).min(n / 64).max(1);
        return Split {
            rows: m.div_ceil(blocks).max(1),
            strips,
        };
    }
    let blocks = blocks.next_multiple_of(threads);
    Split {
        rows: m.div_ceil(blocks).max(1),
        strips: 1,
    }
}

/// One block's product, `out[rows×n] = a[rows×k] · b[k×n]`, on `strips` cores.
fn block_product(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    (rows, k, n): (usize, usize, usize),
    strips: usize,
) {
    if strips > 1 {
        column_strips(a, b, out, (rows, k, n), strips);
    } else {
        matmul_with(a, b, out, (rows, k, n), Threads::One);
    }
}

/// `c[m×w] = a[m×k] · b[k×w]` where `b` is columns `col0..col0 + w` of a row-major `k×row_len`
/// matrix and `c` points at the same columns of a row-major `m×row_len` result.
///
/// SAFETY: `c` must point to column `col0` of a row-major matrix with at least `m` rows of
/// `row_len` elements, valid for writes and aliasing neither `a` nor `b`.
unsafe fn gemm_strided(
    a: &[f32],
    (b, col0): (&[f32], usize),
    c: *mut f32,
    (m, k, w): (usize, usize, usize),
    row_len: usize,
    threads: usize,
) {
    assert!(a.len() >= m * k && b.len() >= k * row_len && col0 + w <= row_len);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    unsafe {
        gemm::gemm(
            m,
            w,
            k,
            c,
            1,
            row_len as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b[col0..].as_ptr(),
            1,
            row_len as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Rows per block of [`matmul_rows`]: small enough that a block of the left operand stays in
/// L2 while the product runs, large enough for the GEMM's panels.
const ROW_BLOCK: usize = 256;

/// `c[m×n] = A · b[k×n]` where the rows of `A` are produced on demand by `fill(row, out_row)`
/// (e.g. im2col): blocks of rows are filled into a cache-sized buffer and multiplied, in
/// parallel over blocks, then `finish(block_of_c)` runs on each block while it is hot. The whole
/// `A` (k× larger than the input for a convolution) is never materialized.
pub fn matmul_rows(
    (m, k, n): (usize, usize, usize),
    b: &[f32],
    c: &mut [f32],
    fill: impl Fn(usize, &mut [f32]) + Sync,
    finish: impl Fn(&mut [f32]) + Sync,
) {
    assert!(b.len() >= k * n && c.len() >= m * n, "matmul operand sizes");
    if n == 0 {
        return;
    }
    thread_local! {
        // Each worker's block of `A`, kept between calls: no allocation or zeroing per block
        // (`fill` writes every value of its row).
        static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Split { rows, strips } = split(m, n);
    let fill_block = |blk: usize, a: &mut [f32]| {
        for (r, row) in a.chunks_exact_mut(k.max(1)).enumerate() {
            fill(blk * rows + r, row);
        }
    };
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(blk, out)| {
            let rows = out.len() / n;
            if strips > 1 {
                // The strips run in nested parallel tasks: while this thread waits for them it
                // may run another block, so the block buffer cannot be the thread's own.
                let mut a = vec![0.0f32; rows * k];
                fill_block(blk, &mut a);
                block_product(&a, b, out, (rows, k, n), strips);
            } else {
                BLOCK.with_borrow_mut(|a| {
                    if a.len() < rows * k {
                        a.resize(rows * k, 0.0);
                    }
                    let a = &mut a[..rows * k];
                    fill_block(blk, a);
                    matmul_with(a, b, out, (rows, k, n), Threads::One);
                });
            }
            finish(out);
        });
}

/// `c[m×n] = a[m×k] · b[k×n]` in parallel blocks of rows, `finish(block_of_c)` running on each
/// block while it is hot (a 1×1 convolution: its im2col is its input).
pub fn matmul_blocks(
    a: &[f32],
    (m, k, n): (usize, usize, usize),
    b: &[f32],
    c: &mut [f32],
    finish: impl Fn(&mut [f32]) + Sync,
) {
    check_sizes(a, b, c, (m, k, n));
    if n == 0 || k == 0 {
        return matmul_rows((m, k, n), b, c, |_, _| {}, finish);
    }
    let Split { rows, strips } = split(m, n);
    c[..m * n]
        .par_chunks_mut(rows * n)
        .zip(a[..m * k].par_chunks(rows * k))
        .for_each(|(out, a)| {
            block_product(a, b, out, (out.len() / n, k, n), strips);
            finish(out);
        });
}

/// Add `bias[n]` to every row of `c[m×n]`.
pub fn add_bias(c: &mut [f32], bias: &[f32]) {
    rows::add_bias(c, bias);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3×2
        let mut c = [0.0; 4];
        matmul(&a, &b, &mut c, 2, 3, 2);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    }

    fn naive(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    /// Every cell within 1e-3 of `want` (a NaN left in a cell the product never wrote fails).
    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (x, y)) in got.iter().zip(want).enumerate() {
            let within = (x - y).abs() < 1e-3;
            assert!(within, "{what}: cell {i}: {x} vs {y}");
        }
    }

    #[test]
    fn wide_products_split_into_column_strips_match() {
        for (m, k, n) in [(5, 33, 1031), (1, 7, 4096), (127, 3, 600), (200, 9, 700)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) / 4.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) / 2.0).collect();
            let mut c = vec![f32::NAN; m * n];
            matmul(&a, &b, &mut c, m, k, n);
            let want = naive(&a, &b, (m, k, n));
            assert_close(&c, &want, &format!("{m}×{k}×{n}"));
        }
    }

    #[test]
    fn row_blocks_match_one_product() {
        let (m, k, n) = (2 * ROW_BLOCK + 37, 19, 7);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.5).collect();
        let mut whole = vec![0.0; m * n];
        matmul(&a, &b, &mut whole, m, k, n);
        let mut blocked = vec![f32::NAN; m * n];
        matmul_rows(
            (m, k, n),
            &b,
            &mut blocked,
            |r, row| row.copy_from_slice(&a[r * k..(r + 1) * k]),
            |out| out.iter_mut().for_each(|x| *x += 1.0),
        );
        let plus_one: Vec<f32> = whole.iter().map(|x| x + 1.0).collect();
        assert_eq!(blocked, plus_one);
    }

    #[test]
    fn few_rows_split_into_column_strips_match_on_many_cores() {
        // 4 cores, 2 row blocks: each block's columns are split between the cores, the block
        // buffers are not shared between the nested tasks.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(
                split(49, 512),
                Split {
                    rows: 49,
                    strips: 4
                }
            );
            assert_eq!(
                split(392, 512),
                Split {
                    rows: 196,
                    strips: 2
                }
            );
            assert_eq!(
                split(2000, 64),
                Split {
                    rows: 250,
                    strips: 1
                }
            );
            for (m, k, n) in [(300, 37, 200), (49, 64, 512), (5, 3, 70)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) / 4.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) / 2.0).collect();
                let want = naive(&a, &b, (m, k, n));
                let mut rows = vec![f32::NAN; m * n];
                let fill = |r: usize, row: &mut [f32]| row.copy_from_slice(&a[r * k..(r + 1) * k]);
                matmul_rows((m, k, n), &b, &mut rows, fill, |_| {});
                let mut blocks = vec![f32::NAN; m * n];
                matmul_blocks(&a, (m, k, n), &b, &mut blocks, |_| {});
                for c in [&rows, &blocks] {
                    assert_close(c, &want, &format!("{m}×{k}×{n}"));
                }
            }
        });
    }
}
