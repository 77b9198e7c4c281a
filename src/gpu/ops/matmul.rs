//! Matrix products (matmul.wgsl): Dense-like layers (`MatMul`) and convolutions as an im2col
//! gather then a product (`GatherMatMul`). A kernel above the adapter's storage binding limit is
//! bound in place as resident row chunks (the product summed chunk by chunk, K-split) or, where
//! it was not uploaded in such chunks, uploaded as column blocks.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::kernels;
use crate::layers::{Activation, GpuForm};
use crate::model::gpu::{act_id, GpuModel, Recording, Uploader};
use crate::tensor::Tensor;

/// Kernel rows one matmul dispatch reads at most: each invocation loops once per row, and
/// lavapipe (llvmpipe) silently ends an invocation's loops after 65,535 iterations in all.
const K_SPLIT: usize = 1 << 15;

/// `matmul.wgsl`'s `Params`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    group_cols: u32,
    /// Row stride of `a` (0: k).
    lda: u32,
    /// First column of `a` read; the top bit adds `c`'s current values.
    a_col: u32,
    /// Column tiles per row of tiles (workgroups are numbered row-major over the tiles).
    col_groups: u32,
    /// First row of the kernel read (a K-split dispatch).
    b_first_row: u32,
    _pad: [u32; 2],
}

/// `copy_block.wgsl`'s `Params`: `rows × cols` values into columns `first..` of rows `stride`
/// apart.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct CopyBlock {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) stride: u32,
    pub(crate) first: u32,
}

/// A `[k, n]` matmul kernel (and its bias) on the GPU: one buffer, or, where it exceeds the
/// adapter's storage binding limit (128 MiB on lavapipe), blocks of columns each within it.
pub(crate) struct Matrix {
    k: usize,
    n: usize,
    /// `(first column, columns, kernel [k, columns], bias [columns])`.
    blocks: Vec<(usize, usize, wgpu::Buffer, Option<wgpu::Buffer>)>,
    /// Or, bound in place to a resident weight stored in chunks: `(first row, rows, kernel
    /// [rows, n])`, summed block by block; the bias with them.
    rows: Vec<(usize, usize, wgpu::Buffer)>,
    bias: Option<wgpu::Buffer>,
}

impl Matrix {
    pub(crate) fn new(up: &Uploader, kernel: &Tensor, bias: Option<&Tensor>) -> Matrix {
        let (k, n) = (kernel.shape[0], kernel.shape[1]);
        let limit = up.binding_limit();
        let whole = |blocks, rows, bias| Matrix {
            k,
            n,
            blocks,
            rows,
            bias,
        };
        if k * n * 4 <= limit {
            let b = bias.map(|b| up.tensor(b));
            return whole(vec![(0, n, up.tensor(kernel), b)], Vec::new(), None);
        }
        if let Some(rows) = up.resident_rows(kernel, n) {
            return whole(Vec::new(), rows, bias.map(|b| up.tensor(b)));
        }
        let per_block = (limit / (4 * k).max(1)).max(1);
        let blocks = (0..n)
            .step_by(per_block)
            .map(|first| {
                let cols = per_block.min(n - first);
                let data: Vec<f32> = kernel
                    .data
                    .chunks(n)
                    .flat_map(|row| &row[first..first + cols])
                    .copied()
                    .collect();
                let b = bias.map(|b| up.floats(&b.data[first..first + cols]));
                (first, cols, up.floats(&data), b)
            })
            .collect();
        whole(blocks, Vec::new(), None)
    }
}

/// `out = act(x · kernel + bias)` over the last axis.
pub(crate) struct MatMul {
    pub(crate) kernel: Matrix,
    pub(crate) act: Activation,
}

impl Primitive for MatMul {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let m = ins[0].1.iter().product::<usize>() / self.kernel.k.max(1);
        gpu.matmul_blocks(pass, ins[0].0, m, &self.kernel, self.act, out)
    }
}

/// A convolution: the layer's im2col map gathers the input's windows into rows, then a product
/// with the kernel (its plan index for the map).
pub(crate) struct GatherMatMul {
    pub(crate) layer: usize,
    pub(crate) kernel: Matrix,
    pub(crate) act: Activation,
}

impl Primitive for GatherMatMul {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let GpuForm::GatherMatMul { map, .. } = gpu.layer_form(self.layer)? else {
            return Err(Error::Model("layer lost its GPU form".into()));
        };
        let (shape, index) =
            gpu.index_map(self.layer, "im2col", ins[0].1, || map.gather_map(ins[0].1))?;
        let n = shape.iter().product();
        let cols = gpu.checked("allocating an im2col buffer", || gpu.temp("im2col", n))?;
        gpu.gather(pass, ins[0].0, &index, n, &cols)?;
        gpu.matmul_blocks(pass, &cols, shape[0], &self.kernel, self.act, out)
    }
}

/// What of `act` a matmul's epilogue applies per value: a row-wise activation (softmax) runs
/// after the whole product instead.
fn elementwise_part(act: Activation) -> Activation {
    if crate::gpu::ids::row_id(act).is_some() {
        Activation::Linear
    } else {
        act
    }
}

impl GpuModel<'_> {
    /// `out = act(a[m×k] · kernel[k×n] + bias)` (softmax kinds as a second pass).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmul(
        &self,
        pass: &mut Recording,
        a: &wgpu::Buffer,
        (m, k, n): (usize, usize, usize),
        kernel: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        act: Activation,
        out: Arg<'_>,
    ) -> Result<()> {
        let elementwise = elementwise_part(act);
        self.product(
            pass,
            (a, 0, 0),
            (m, k, n),
            (kernel, bias),
            elementwise,
            out.0,
        )?;
        self.softmax(pass, act, out)
    }

    /// `out = act(a[m×k] · kernel + bias)` over the kernel's column blocks: each block's product
    /// lands in a temporary and is copied into its columns of `out`; row-wise activations
    /// (softmax) run once over the assembled rows.
    fn matmul_blocks(
        &self,
        pass: &mut Recording,
        a: &wgpu::Buffer,
        m: usize,
        kernel: &Matrix,
        act: Activation,
        out: Arg<'_>,
    ) -> Result<()> {
        if !kernel.rows.is_empty() {
            return self.matmul_rows(pass, a, m, kernel, act, out);
        }
        if let [(_, _, w, b)] = &kernel.blocks[..] {
            return self.matmul(pass, a, (m, kernel.k, kernel.n), w, b.as_ref(), act, out);
        }
        let limit = self.binding_limit() as u64;
        let elementwise = elementwise_part(act);
        for (first, cols, w, b) in &kernel.blocks {
            if w.size() > limit {
                return Err(Error::Model(format!(
                    "one column of a [{}, {}] kernel exceeds the {limit}-byte storage binding limit",
                    kernel.k, kernel.n
                )));
            }
            let part = self.temp("matmul column block", m * cols);
            let dims = (m, kernel.k, *cols);
            let to = (&part, &[m, *cols][..]);
            self.matmul(pass, a, dims, w, b.as_ref(), elementwise, to)?;
            let u = CopyBlock {
                rows: m as u32,
                cols: *cols as u32,
                stride: kernel.n as u32,
                first: *first as u32,
            };
            let grid = self.grid(m * cols)?;
            let u = bytemuck::bytes_of(&u);
            self.dispatch(pass, kernels::COPY_BLOCK, u, &[&part, out.0], grid)?;
        }
        self.softmax(pass, act, out)
    }

    /// `out = act(Σ_blocks a[:, rows] · kernel[rows, :] + bias)`: one matmul per resident block
    /// of kernel rows, each reading its columns of `a` and adding to the sum so far; the bias
    /// with the first block, the activation with the last.
    fn matmul_rows(
        &self,
        pass: &mut Recording,
        a: &wgpu::Buffer,
        m: usize,
        kernel: &Matrix,
        act: Activation,
        out: Arg<'_>,
    ) -> Result<()> {
        let last = kernel.rows.len() - 1;
        for (i, (first, rows, w)) in kernel.rows.iter().enumerate() {
            let bias = kernel.bias.as_ref().filter(|_| i == 0);
            let block_act = if i == last {
                elementwise_part(act)
            } else {
                Activation::Linear
            };
            let a = (a, kernel.k, *first as u32 | u32::from(i > 0) << 31);
            let dims = (m, *rows, kernel.n);
            self.product(pass, a, dims, (w, bias), block_act, out.0)?;
        }
        self.softmax(pass, act, out)
    }

    /// `c = act(a[:, a_col..][m×k] · kernel[k×n] + bias)`, rows of `a` `lda` apart (0: k);
    /// with the top bit of `a_col`, `c` adds to its current values. Split along K into
    /// dispatches of at most [`K_SPLIT`] rows of the kernel (the bias with the first, the
    /// activation with the last).
    fn product(
        &self,
        pass: &mut Recording,
        (a, lda, a_col): (&wgpu::Buffer, usize, u32),
        (m, k, n): (usize, usize, usize),
        (kernel, bias): (&wgpu::Buffer, Option<&wgpu::Buffer>),
        act: Activation,
        c: &wgpu::Buffer,
    ) -> Result<()> {
        let lda = if lda == 0 { k } else { lda };
        let (first_col, adds) = (a_col & 0x7fff_ffff, a_col >> 31 != 0);
        let parts = k.div_ceil(K_SPLIT).max(1);
        for part in 0..parts {
            let k0 = part * K_SPLIT;
            let rows = K_SPLIT.min(k - k0.min(k));
            let last = part + 1 == parts;
            let add = adds || part > 0;
            let a = (a, lda, (first_col + k0 as u32) | u32::from(add) << 31);
            let bias = bias.filter(|_| part == 0);
            let act = if last { act } else { Activation::Linear };
            self.dispatch_product(pass, a, (m, rows, n, k0), (kernel, bias), act, c)?;
        }
        Ok(())
    }

    /// One matmul.wgsl dispatch over kernel rows `k0..k0 + k`, its workgroups on a 2D grid
    /// within the per-dimension limit.
    fn dispatch_product(
        &self,
        pass: &mut Recording,
        (a, lda, a_col): (&wgpu::Buffer, usize, u32),
        (m, k, n, k0): (usize, usize, usize, usize),
        (kernel, bias): (&wgpu::Buffer, Option<&wgpu::Buffer>),
        act: Activation,
        c: &wgpu::Buffer,
    ) -> Result<()> {
        let (col_groups, row_groups) = kernels::matmul_groups(m, n);
        let u = Uniform {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            act: act_id(act),
            has_bias: u32::from(bias.is_some()),
            group_cols: kernels::matmul_group_cols(m, n),
            lda: lda as u32,
            a_col,
            col_groups,
            b_first_row: k0 as u32,
            _pad: [0; 2],
        };
        let tiles = col_groups as u64 * row_groups as u64;
        let max = self.max_groups() as u64;
        let grid = if tiles <= max {
            (tiles as u32, 1)
        } else {
            (max as u32, tiles.div_ceil(max) as u32)
        };
        if grid.1 as u64 > max {
            return Err(Error::Model(format!(
                "a {m}×{n} product needs {tiles} workgroups, more than one dispatch holds"
            )));
        }
        self.dispatch(
            pass,
            kernels::MATMUL,
            bytemuck::bytes_of(&u),
            &[a, kernel, bias.unwrap_or(self.dummy()), c],
            grid,
        )
    }
}
