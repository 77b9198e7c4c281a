//! Convolutions: Conv1D/2D/3D (im2col + GEMM), Conv2DTranspose, DepthwiseConv2D and
//! SeparableConv2D, channels_last and channels_first, with TF's padding semantics (spec §6.2).

use super::{one, Activation, Layer, LayerCtx, Shape};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::borrow::Cow;

/// Padding mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Padding {
    Valid,
    Same,
    Causal,
}

impl Padding {
    pub(super) fn parse(ctx: &LayerCtx) -> Result<Padding> {
        match ctx.str_or("padding", "valid") {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            "causal" => Ok(Padding::Causal),
            other => Err(ctx.err(format!("padding '{other}' is not supported"))),
        }
    }
}

/// Output length and padding before, per TF: valid `ceil((n - k_eff + 1)/s)`; same `ceil(n/s)` with
/// the odd padded pixel at the end.
pub(super) fn out_len(n: usize, k: usize, s: usize, d: usize, pad: Padding) -> (usize, usize) {
    let k_eff = (k - 1) * d + 1;
    match pad {
        Padding::Valid => ((n + 1).saturating_sub(k_eff).div_ceil(s), 0),
        Padding::Same => {
            let out = n.div_ceil(s);
            let total = ((out.max(1) - 1) * s + k_eff).saturating_sub(n);
            (out, total / 2)
        }
        Padding::Causal => (n.div_ceil(s), k_eff - 1),
    }
}

/// Spatial geometry of one convolution.
#[derive(Clone, Debug)]
pub(super) struct Geometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilation: Vec<usize>,
    pub padding: Padding,
}

impl Geometry {
    pub(super) fn output(&self, input: &[usize]) -> (Vec<usize>, Vec<usize>) {
        input
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                out_len(
                    n,
                    self.kernel[i],
                    self.strides[i],
                    self.dilation[i],
                    self.padding,
                )
            })
            .unzip()
    }
}

/// Calls `f(out_index, in_spatial_index or None for padding, kernel_index)` in row-major order of
/// (output position, kernel position): the im2col walk shared by the convolutions.
pub(super) fn for_each_tap(
    g: &Geometry,
    input: &[usize],
    out: &[usize],
    pads: &[usize],
    mut f: impl FnMut(usize, Option<usize>, usize),
) {
    let rank = input.len();
    let n_out: usize = out.iter().product();
    let n_k: usize = g.kernel.iter().product();
    let mut o_idx = vec![0usize; rank];
    let mut k_idx = vec![0usize; rank];
    for o in 0..n_out {
        k_idx.iter_mut().for_each(|k| *k = 0);
        for k in 0..n_k {
            let mut flat = 0usize;
            let mut inside = true;
            for d in 0..rank {
                let pos = (o_idx[d] * g.strides[d] + k_idx[d] * g.dilation[d]) as isize
                    - pads[d] as isize;
                if pos < 0 || pos >= input[d] as isize {
                    inside = false;
                    break;
                }
                flat = flat * input[d] + pos as usize;
            }
            f(o, inside.then_some(flat), k);
            increment(&mut k_idx, &g.kernel);
        }
        increment(&mut o_idx, out);
    }
}

fn increment(idx: &mut [usize], bounds: &[usize]) {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < bounds[d] {
            return;
        }
        idx[d] = 0;
    }
}

/// The windows of a channels_last input: `[rows = batch × outputs, window, channels]` input
/// indices ([`super::GATHER_PAD`] outside the input). Shared by pooling and depthwise convolution.
pub(super) fn window_map(g: &Geometry, shape: &[usize]) -> (Vec<usize>, Vec<u32>) {
    let rank = shape.len();
    let (batch, c) = (shape[0], shape[rank - 1]);
    let spatial = &shape[1..rank - 1];
    let (out, pads) = g.output(spatial);
    let n_out: usize = out.iter().product();
    let n_in: usize = spatial.iter().product();
    let window: usize = g.kernel.iter().product();
    let mut map = vec![super::GATHER_PAD; batch * n_out * window * c];
    for b in 0..batch {
        for_each_tap(g, spatial, &out, &pads, |o, src, k| {
            if let Some(s) = src {
                for ch in 0..c {
                    map[((b * n_out + o) * window + k) * c + ch] = ((b * n_in + s) * c + ch) as u32;
                }
            }
        });
    }
    (vec![batch * n_out, window, c], map)
}

/// Row-wise im2col of a channels_last input: row `(b, o)` holds the `kernel × cin` input values
/// under the kernel at output position `o` (zeros in the padding). Runs along the last spatial
/// axis are copied as one slice when the dilation there is 1.
pub(super) struct Im2col<'g> {
    g: &'g Geometry,
    input: Vec<usize>,
    pub out: Vec<usize>,
    pads: Vec<usize>,
    cin: usize,
    n_in: usize,
    pub n_out: usize,
    pub row_len: usize,
}

impl<'g> Im2col<'g> {
    pub(super) fn new(g: &'g Geometry, input: &[usize], cin: usize) -> Self {
        let (out, pads) = g.output(input);
        Im2col {
            n_in: input.iter().product(),
            n_out: out.iter().product(),
            row_len: g.kernel.iter().product::<usize>() * cin,
            g,
            input: input.to_vec(),
            out,
            pads,
            cin,
        }
    }

    /// Whether each im2col row is one input pixel (1×1 kernel, stride 1, no padding): the
    /// matrix is the input itself.
    pub(super) fn is_identity(&self) -> bool {
        self.row_len == self.cin
            && self.g.strides.iter().all(|&s| s == 1)
            && self.pads.iter().all(|&p| p == 0)
    }

    /// Write row `r` (batch-major) of the im2col matrix of `x` into `row`.
    pub(super) fn fill(&self, x: &[f32], r: usize, row: &mut [f32]) {
        self.fill_with(x, r, row, 0.0);
    }

    /// The whole im2col matrix of a `batch`-image input as input indices (the GPU's gather
    /// map; [`super::GATHER_PAD`] in the padding): the same walk as [`Im2col::fill`].
    pub(super) fn index_map(&self, batch: usize) -> Vec<u32> {
        let idx: Vec<u32> = (0..(batch * self.n_in * self.cin) as u32).collect();
        let mut map = vec![super::GATHER_PAD; batch * self.n_out * self.row_len];
        for (r, row) in map.chunks_exact_mut(self.row_len.max(1)).enumerate() {
            self.fill_with(&idx, r, row, super::GATHER_PAD);
        }
        map
    }

    /// [`Im2col::fill`] over any element type, `pad` in the padding.
    fn fill_with<T: Copy>(&self, x: &[T], r: usize, row: &mut [T], pad: T) {
        if self.input.len() == 2 && self.g.dilation[..2] == [1, 1] {
            self.fill_2d(x, r, row, pad);
        } else {
            self.fill_any(x, r, row, pad);
        }
    }

    /// [`Im2col::fill_with`] for any spatial rank and dilation.
    fn fill_any<T: Copy>(&self, x: &[T], r: usize, row: &mut [T], pad: T) {
        let rank = self.input.len();
        let (b, mut o) = (r / self.n_out, r % self.n_out);
        // Spatial rank is at most 3 (Conv3D): fixed arrays keep allocation out of the hot loop.
        let mut start = [0isize; 3];
        for d in (0..rank).rev() {
            start[d] = ((o % self.out[d]) * self.g.strides[d]) as isize - self.pads[d] as isize;
            o /= self.out[d];
        }
        let xb = &x[b * self.n_in * self.cin..(b + 1) * self.n_in * self.cin];
        let last = rank - 1;
        let run = self.g.kernel[last] * self.cin;
        let mut k_idx = [0usize; 2];
        let k_idx = &mut k_idx[..last];
        for dst in row.chunks_exact_mut(run) {
            match self.lead_offset(&start, k_idx) {
                Some(base) => self.fill_run(xb, base, start[last], dst, pad),
                None => dst.fill(pad),
            }
            increment(k_idx, &self.g.kernel[..last]);
        }
    }

    /// [`Im2col::fill_with`] for the common case (2-D, no dilation), with the index arithmetic
    /// of the general walk done once per row.
    fn fill_2d<T: Copy>(&self, x: &[T], r: usize, row: &mut [T], pad: T) {
        let (h, w, c) = (self.input[0] as isize, self.input[1] as isize, self.cin);
        let (kh, kw) = (self.g.kernel[0], self.g.kernel[1]);
        let (b, o) = (r / self.n_out, r % self.n_out);
        let (oy, ox) = (o / self.out[1], o % self.out[1]);
        let y0 = (oy * self.g.strides[0]) as isize - self.pads[0] as isize;
        let x0 = (ox * self.g.strides[1]) as isize - self.pads[1] as isize;
        let xb = &x[b * self.n_in * c..(b + 1) * self.n_in * c];
        let run = kw * c;
        if run == 0 {
            return;
        }
        let inside_x = x0 >= 0 && x0 + kw as isize <= w;
        for (ky, dst) in row.chunks_exact_mut(run).take(kh).enumerate() {
            let iy = y0 + ky as isize;
            if iy < 0 || iy >= h {
                dst.fill(pad);
                continue;
            }
            let base = iy * w;
            if inside_x {
                let from = (base + x0) as usize * c;
                dst.copy_from_slice(&xb[from..from + run]);
                continue;
            }
            for (kx, d) in dst.chunks_exact_mut(c).enumerate() {
                let ix = x0 + kx as isize;
                if ix < 0 || ix >= w {
                    d.fill(pad);
                } else {
                    let from = (base + ix) as usize * c;
                    d.copy_from_slice(&xb[from..from + c]);
                }
            }
        }
    }

    /// Flat input offset (in pixels) of the leading-axes tap `k_idx`, None in the padding.
    fn lead_offset(&self, start: &[isize], k_idx: &[usize]) -> Option<usize> {
        let mut flat = 0usize;
        for (d, &k) in k_idx.iter().enumerate() {
            let pos = start[d] + (k * self.g.dilation[d]) as isize;
            if pos < 0 || pos >= self.input[d] as isize {
                return None;
            }
            flat = flat * self.input[d] + pos as usize;
        }
        Some(flat * self.input[k_idx.len()])
    }

    /// The kernel's taps along the last spatial axis, starting at input position `start`.
    fn fill_run<T: Copy>(&self, xb: &[T], base: usize, start: isize, dst: &mut [T], pad: T) {
        let last = self.input.len() - 1;
        let (n, kw, dil, c) = (
            self.input[last] as isize,
            self.g.kernel[last],
            self.g.dilation[last],
            self.cin,
        );
        let end = start + ((kw - 1) * dil) as isize;
        if dil == 1 && start >= 0 && end < n {
            let from = (base + start as usize) * c;
            dst.copy_from_slice(&xb[from..from + kw * c]);
            return;
        }
        for (k, d) in dst.chunks_exact_mut(c).enumerate() {
            let pos = start + (k * dil) as isize;
            if pos < 0 || pos >= n {
                d.fill(pad);
            } else {
                let from = (base + pos as usize) * c;
                d.copy_from_slice(&xb[from..from + c]);
            }
        }
    }
}

/// Move channels last (`channels_first` inputs), and back.
pub(super) fn to_channels_last(x: &Tensor, channels_first: bool) -> Cow<'_, Tensor> {
    if !channels_first {
        return Cow::Borrowed(x);
    }
    let rank = x.rank();
    Cow::Owned(
        x.permuted(
            &[0].into_iter()
                .chain(2..rank)
                .chain([1])
                .collect::<Vec<_>>(),
        ),
    )
}

pub(super) fn from_channels_last(x: Tensor, channels_first: bool) -> Tensor {
    if !channels_first {
        return x;
    }
    let rank = x.rank();
    x.permuted(
        &[0, rank - 1]
            .into_iter()
            .chain(1..rank - 1)
            .collect::<Vec<_>>(),
    )
}

fn symbolic_shape(
    input: &Shape,
    channels_first: bool,
    g: &Geometry,
    channels: usize,
) -> Result<Shape> {
    spatial_shape(
        input,
        channels_first,
        g.kernel.len(),
        Some(channels),
        |i, n| out_len(n, g.kernel[i], g.strides[i], g.dilation[i], g.padding).0,
    )
}

/// The output shape of a spatial layer over `dims` spatial axes: batch kept, each known spatial
/// size `n` on axis `i` mapped by `out(i, n)`, the channel axis (first or last) set to
/// `channels`. An input of another rank is an error.
pub(super) fn spatial_shape(
    input: &Shape,
    channels_first: bool,
    dims: usize,
    channels: Option<usize>,
    out: impl Fn(usize, usize) -> usize,
) -> Result<Shape> {
    let rank = input.len();
    if rank != dims + 2 {
        return Err(Error::Model(format!(
            "expects a rank-{} input (batch, {dims} spatial axes, channels), got rank {rank}",
            dims + 2
        )));
    }
    let spatial = if channels_first {
        &input[2..]
    } else {
        &input[1..rank - 1]
    };
    let sizes: Vec<Option<usize>> = spatial
        .iter()
        .enumerate()
        .map(|(i, n)| n.map(|n| out(i, n)))
        .collect();
    if let Some(i) = sizes.iter().position(|&s| s == Some(0)) {
        // Keras refuses such a layer ("negative dimension"); TF.js computes a negative shape.
        return Err(Error::Model(format!(
            "the window is larger than spatial axis {i} of the input (size {}): the output would be empty",
            spatial[i].unwrap_or(0)
        )));
    }
    let sizes = sizes.into_iter();
    Ok(if channels_first {
        [input[0], channels].into_iter().chain(sizes).collect()
    } else {
        [input[0]]
            .into_iter()
            .chain(sizes)
            .chain([channels])
            .collect()
    })
}

/// Conv1D/2D/3D.
struct Conv {
    name: String,
    geometry: Geometry,
    kernel: Tensor, // [*k, cin, f]
    /// The same values viewed as `[k·cin, f]`, the GPU matmul's operand.
    kernel_2d: Tensor,
    bias: Option<Tensor>,
    activation: Activation,
    channels_first: bool,
}

impl super::GatherMap for Conv {
    /// im2col of a channels_last input: row `(b, o)` holds the `k × cin` values under the kernel.
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
        let rank = shape.len();
        let cols = Im2col::new(&self.geometry, &shape[1..rank - 1], shape[rank - 1]);
        Ok((
            vec![shape[0] * cols.n_out, cols.row_len],
            cols.index_map(shape[0]),
        ))
    }
}

impl Layer for Conv {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        symbolic_shape(
            &inputs[0],
            self.channels_first,
            &self.geometry,
            *self.kernel.shape.last().unwrap_or(&0),
        )
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.forward_with(inputs, None)
    }
    fn forward_then(&self, inputs: &[&Tensor], then: &super::RowFn<'_>) -> Option<Result<Tensor>> {
        (!self.channels_first).then(|| self.forward_with(inputs, Some(then)))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(lowered_gpu(
            self.channels_first,
            self,
            &self.kernel_2d,
            self.bias.as_ref(),
            self.activation,
        ))
    }
}

impl Conv {
    /// [`Layer::forward`], `then` run on each output block after the bias and activation.
    fn forward_with(&self, inputs: &[&Tensor], then: Option<&super::RowFn<'_>>) -> Result<Tensor> {
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let rank = x.rank();
        let (batch, cin) = (x.shape[0], x.shape[rank - 1]);
        let spatial = &x.shape[1..rank - 1];
        let f = *self.kernel.shape.last().unwrap_or(&0);
        if self.kernel.shape[rank - 2] != cin {
            return Err(Error::Model(format!(
                "layer '{}': input has {cin} channels, the kernel expects {}",
                self.name,
                self.kernel.shape[rank - 2]
            )));
        }
        let cols = Im2col::new(&self.geometry, spatial, cin);
        let rows = (batch * cols.n_out, cols.row_len);
        let fill = |r: usize, row: &mut [f32]| cols.fill(&x.data, r, row);
        let source = if cols.is_identity() {
            Rows::Direct(&x.data)
        } else {
            Rows::Fill(&fill)
        };
        let result = lowered_product(
            &self.kernel_2d,
            self.bias.as_ref(),
            self.activation,
            rows,
            source,
            then,
        );
        let out = cols.out.clone();
        let shape = [batch].into_iter().chain(out).chain([f]).collect();
        Ok(from_channels_last(
            Tensor::new(shape, result)?,
            self.channels_first,
        ))
    }
}

/// The product every lowered convolution ends with: `rows.0 × f` = (im2col rows of length
/// `rows.1`, built by `fill`) · `kernel_2d` (`[rows.1, f]`). Blocks of rows are built in cache and
/// multiplied at once, in parallel; bias and activation run on each output block while it is hot.
fn lowered_product(
    kernel_2d: &Tensor,
    bias: Option<&Tensor>,
    activation: Activation,
    (rows, kk): (usize, usize),
    source: Rows<'_>,
    then: Option<&super::RowFn<'_>>,
) -> Vec<f32> {
    let f = kernel_2d.shape[1];
    let mut out = vec![0.0f32; rows * f];
    let finish = |block: &mut [f32]| {
        if let Some(b) = bias {
            cpu::add_bias(block, &b.data);
        }
        activation.apply(block, f);
        if let Some(then) = then {
            then(block);
        }
    };
    let dims = (rows, kk, f);
    match source {
        Rows::Fill(fill) => cpu::matmul_rows(dims, &kernel_2d.data, &mut out, fill, finish),
        Rows::Direct(a) => cpu::matmul_blocks(a, dims, &kernel_2d.data, &mut out, finish),
    }
    out
}

/// Where a lowered convolution's im2col rows come from.
pub(super) enum Rows<'a> {
    /// Built on demand, block by block.
    Fill(&'a (dyn Fn(usize, &mut [f32]) + Sync)),
    /// The input itself (1×1 kernel, stride 1, no padding).
    Direct(&'a [f32]),
}

/// The GPU form of a lowered convolution: gather by `map`, then the matmul (channels_first
/// inputs transposed around it).
fn lowered_gpu<'a>(
    channels_first: bool,
    map: &'a dyn super::GatherMap,
    kernel: &'a Tensor,
    bias: Option<&'a Tensor>,
    activation: Activation,
) -> super::GpuForm<'a> {
    super::cf_wrap(
        channels_first,
        super::GpuForm::GatherMatMul {
            map,
            kernel,
            bias,
            activation,
        },
    )
}

fn spatial_rank(class: &str) -> usize {
    if class.contains("1D") {
        1
    } else if class.contains("3D") {
        3
    } else {
        2
    }
}

pub(super) fn geometry(ctx: &LayerCtx, n: usize, with_dilation: bool) -> Result<Geometry> {
    Ok(Geometry {
        kernel: ctx.ints("kernel_size", n, None)?,
        strides: ctx.ints("strides", n, Some(1))?,
        dilation: if with_dilation {
            ctx.ints("dilation_rate", n, Some(1))?
        } else {
            vec![1; n]
        },
        padding: Padding::parse(ctx)?,
    })
}

fn input_channels(ctx: &LayerCtx, channels_first: bool) -> Result<usize> {
    ctx.input_dim(if channels_first { 1 } else { -1 })
}

fn bias(ctx: &LayerCtx, n: usize) -> Result<Option<Tensor>> {
    if ctx.bool_or("use_bias", true) {
        Ok(Some(ctx.weight("bias", &[n])?))
    } else {
        Ok(None)
    }
}

pub(super) fn conv(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let n = spatial_rank(ctx.class);
    let channels_first = ctx.channels_first();
    let geometry = geometry(ctx, n, true)?;
    let cin = input_channels(ctx, channels_first)?;
    let f = ctx.usize("filters")?;
    let groups = ctx.usize_or("groups", 1)?;
    if groups == 0 || cin % groups != 0 || f % groups != 0 {
        return Err(ctx.err(format!(
            "groups {groups} must divide both the input channels ({cin}) and filters ({f})"
        )));
    }
    let kshape: Vec<usize> = geometry
        .kernel
        .iter()
        .copied()
        .chain([cin / groups, f])
        .collect();
    let kernel = ctx.weight("kernel", &kshape)?;
    let (activation, after) = super::split_row_activation(ctx.activation()?, ctx.channels_first());
    let bias = bias(ctx, f)?;
    if groups > 1 && groups == cin && n == 2 {
        // One input channel per group (ConvNeXt's 7×7 "depthwise" Conv2D): output channel
        // `c·m + j` reads input channel `c` only, which is DepthwiseConv2D with multiplier `m`,
        // and `[kh, kw, 1, cin·m]` is already the `[kh, kw, cin, m]` layout.
        let depthwise = kernel.reshaped(vec![kshape[0], kshape[1], cin, f / cin])?;
        let layer: Box<dyn Layer> = Box::new(Depthwise {
            name: ctx.name.to_string(),
            geometry,
            depthwise,
            pointwise: None,
            bias,
            activation,
            channels_first,
        });
        return Ok(super::then_row(layer, after));
    }
    let kernel = block_diagonal(kernel, groups, cin);
    let kernel_2d = kernel.view(vec![kernel.data.len() / f.max(1), f])?;
    let layer: Box<dyn Layer> = Box::new(Conv {
        name: ctx.name.to_string(),
        kernel,
        kernel_2d,
        bias,
        activation,
        channels_first,
        geometry,
    });
    Ok(super::then_row(layer, after))
}

/// A grouped kernel `[*k, cin/groups, f]` as the equivalent full kernel `[*k, cin, f]`: output
/// channel `o` (group `o / (f/groups)`) reads only its group's input channels, zeros elsewhere.
/// The lowered product then computes a grouped convolution exactly, at `groups` times the work
/// of a per-group product (only the depthwise case, `groups == cin`, has its own kernel).
fn block_diagonal(kernel: Tensor, groups: usize, cin: usize) -> Tensor {
    if groups == 1 {
        return kernel;
    }
    let rank = kernel.rank();
    let (per_in, f) = (kernel.shape[rank - 2], kernel.shape[rank - 1]);
    let per_out = f / groups;
    let taps = kernel.data.len() / (per_in * f).max(1);
    let mut full = vec![0.0f32; taps * cin * f];
    for t in 0..taps {
        for i in 0..per_in {
            for o in 0..f {
                let c = (o / per_out) * per_in + i;
                full[(t * cin + c) * f + o] = kernel.data[(t * per_in + i) * f + o];
            }
        }
    }
    let mut shape = kernel.shape;
    shape[rank - 2] = cin;
    Tensor {
        shape,
        data: full.into(),
        source: None,
    }
}

/// Conv2DTranspose / Conv3DTranspose: the gradient of a convolution; kernel `[*k, filters, in]`.
struct ConvTranspose {
    name: String,
    geometry: Geometry,
    kernel: Tensor,
    /// `[kh·kw·in, filters]`: entry `(k·in + c, f)` is `kernel[k, f, c]`, the GPU matmul operand.
    kernel_2d: Tensor,
    bias: Option<Tensor>,
    activation: Activation,
    channels_first: bool,
}

fn transpose_len(n: usize, k: usize, s: usize, pad: Padding) -> (usize, usize) {
    let out = match pad {
        Padding::Same => n * s,
        _ => n * s + k.saturating_sub(s),
    };
    let total = ((n.max(1) - 1) * s + k).saturating_sub(out);
    (out, if pad == Padding::Same { total / 2 } else { 0 })
}

impl super::GatherMap for ConvTranspose {
    /// The transposed convolution as a convolution: row `(b, o)` gathers, for every kernel tap
    /// `k` and channel, the input pixel `(o + p − k)/s` (per spatial axis) where that division
    /// is exact and lands inside the input (zero elsewhere). Any spatial rank.
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
        let rank = shape.len();
        let (batch, cin) = (shape[0], shape[rank - 1]);
        let spatial = &shape[1..rank - 1];
        let g = &self.geometry;
        let (out, pads): (Vec<usize>, Vec<usize>) = spatial
            .iter()
            .enumerate()
            .map(|(d, &n)| transpose_len(n, g.kernel[d], g.strides[d], g.padding))
            .unzip();
        let (n_out, n_in): (usize, usize) = (out.iter().product(), spatial.iter().product());
        let n_k: usize = g.kernel.iter().product();
        let kk = n_k * cin;
        let mut map = vec![super::GATHER_PAD; batch * n_out * kk];
        let (mut o_idx, mut k_idx) = (vec![0usize; rank - 2], vec![0usize; rank - 2]);
        for o in 0..n_out {
            k_idx.iter_mut().for_each(|k| *k = 0);
            for k in 0..n_k {
                let src = (0..rank - 2).try_fold(0usize, |flat, d| {
                    let v = (o_idx[d] + pads[d]).checked_sub(k_idx[d])?;
                    (v % g.strides[d] == 0 && v / g.strides[d] < spatial[d])
                        .then(|| flat * spatial[d] + v / g.strides[d])
                });
                if let Some(src) = src {
                    for b in 0..batch {
                        let row = ((b * n_out + o) * n_k + k) * cin;
                        for c in 0..cin {
                            map[row + c] = ((b * n_in + src) * cin + c) as u32;
                        }
                    }
                }
                increment(&mut k_idx, &g.kernel);
            }
            increment(&mut o_idx, &out);
        }
        Ok((vec![batch * n_out, kk], map))
    }
}

impl Layer for ConvTranspose {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let f = self.kernel.shape[self.kernel.rank() - 2];
        let g = &self.geometry;
        spatial_shape(
            &inputs[0],
            self.channels_first,
            g.kernel.len(),
            Some(f),
            |i, n| transpose_len(n, g.kernel[i], g.strides[i], g.padding).0,
        )
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        use super::GatherMap;
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let f = self.kernel_2d.shape[1];
        let (rows_shape, map) = self.gather_map(&x.shape)?;
        let kk = rows_shape[1];
        let rows = (rows_shape[0], kk);
        let fill = |r: usize, row: &mut [f32]| {
            for (v, &i) in row.iter_mut().zip(&map[r * kk..(r + 1) * kk]) {
                *v = if i == super::GATHER_PAD {
                    0.0
                } else {
                    x.data[i as usize]
                };
            }
        };
        let out = lowered_product(
            &self.kernel_2d,
            self.bias.as_ref(),
            self.activation,
            rows,
            Rows::Fill(&fill),
            None,
        );
        let rank = x.rank();
        let spatial: Vec<usize> = (1..rank - 1)
            .map(|d| {
                let g = &self.geometry;
                transpose_len(x.shape[d], g.kernel[d - 1], g.strides[d - 1], g.padding).0
            })
            .collect();
        let shape = [x.shape[0]].into_iter().chain(spatial).chain([f]).collect();
        Ok(from_channels_last(
            Tensor::new(shape, out)?,
            self.channels_first,
        ))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(lowered_gpu(
            self.channels_first,
            self,
            &self.kernel_2d,
            self.bias.as_ref(),
            self.activation,
        ))
    }
}

pub(super) fn conv_transpose(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let n = spatial_rank(ctx.class);
    let channels_first = ctx.channels_first();
    // TF.js drops dilation_rate (and ignores output_padding) for transposed convolutions; Keras
    // applies both, which layercake does not compute yet: refused rather than dropped.
    if ctx.keras3 {
        let dilated = ctx
            .ints("dilation_rate", n, Some(1))?
            .iter()
            .any(|&d| d != 1);
        if dilated || ctx.get("output_padding").is_some() {
            return Err(ctx.err(
                "dilation_rate > 1 or output_padding on a transposed convolution is not supported",
            ));
        }
    }
    let geometry = geometry(ctx, n, false)?;
    let cin = input_channels(ctx, channels_first)?;
    let f = ctx.usize("filters")?;
    let kshape: Vec<usize> = geometry.kernel.iter().copied().chain([f, cin]).collect();
    let kernel = ctx.weight("kernel", &kshape)?;
    let taps: usize = geometry.kernel.iter().product();
    let mut flat = vec![0.0; kernel.data.len()];
    for k in 0..taps {
        for fo in 0..f {
            for c in 0..cin {
                flat[(k * cin + c) * f + fo] = kernel.data[(k * f + fo) * cin + c];
            }
        }
    }
    let kernel_2d = Tensor::new(vec![taps * cin, f], flat)?;
    let (activation, after) = super::split_row_activation(ctx.activation()?, ctx.channels_first());
    let layer: Box<dyn Layer> = Box::new(ConvTranspose {
        name: ctx.name.to_string(),
        kernel,
        kernel_2d,
        bias: bias(ctx, f)?,
        activation,
        channels_first,
        geometry,
    });
    Ok(super::then_row(layer, after))
}

/// The output spatial shape of a windowed layer over `spatial`, and `taps[o · window + k]`: the
/// input pixel under tap `k` of output pixel `o` ([`super::GATHER_PAD`] outside the input).
/// Shared by the depthwise convolution and pooling.
pub(super) fn pixel_taps(g: &Geometry, spatial: &[usize]) -> (Vec<usize>, Vec<u32>) {
    let (out, pads) = g.output(spatial);
    let n_out: usize = out.iter().product();
    let window: usize = g.kernel.iter().product();
    let mut taps = vec![super::GATHER_PAD; n_out * window];
    for_each_tap(g, spatial, &out, &pads, |o, src, k| {
        if let Some(s) = src {
            taps[o * window + k] = s as u32;
        }
    });
    (out, taps)
}

/// Depthwise convolution of a channels_last `x` with `kernel` (`[*k, cin, m]`), in parallel over
/// blocks of output pixels; `finish` runs on each block of the output while it is hot (bias and
/// activation). Each output pixel accumulates, tap by tap, the input pixel under the tap times
/// the tap's weights: contiguous runs of `cin·m` values, so the inner loop vectorizes.
fn depthwise_forward(
    x: &Tensor,
    kernel: &Tensor,
    g: &Geometry,
    finish: impl Fn(&mut [f32]) + Sync,
) -> Result<Tensor> {
    use rayon::prelude::*;
    let rank = x.rank();
    let (batch, cin) = (x.shape[0], x.shape[rank - 1]);
    let spatial = &x.shape[1..rank - 1];
    let m = kernel.shape[kernel.rank() - 1];
    let (out, taps) = pixel_taps(g, spatial);
    let n_out: usize = out.iter().product();
    let n_in: usize = spatial.iter().product();
    let window: usize = g.kernel.iter().product();
    let width = cin * m;
    let mut result = vec![0.0f32; batch * n_out * width];
    const PIXELS: usize = 64;
    result
        .par_chunks_mut(PIXELS * width.max(1))
        .enumerate()
        .for_each(|(blk, chunk)| {
            for (i, acc) in chunk.chunks_exact_mut(width.max(1)).enumerate() {
                let row = blk * PIXELS + i;
                let (b, o) = (row / n_out, row % n_out);
                let xb = &x.data[b * n_in * cin..(b + 1) * n_in * cin];
                let taps = &taps[o * window..(o + 1) * window];
                if m == 1 {
                    cpu::rows::depthwise_pixel(acc, xb, &kernel.data, taps, super::GATHER_PAD);
                    continue;
                }
                for (k, &s) in taps.iter().enumerate() {
                    if s != super::GATHER_PAD {
                        let xs = &xb[s as usize * cin..][..cin];
                        depthwise_tap(acc, xs, &kernel.data[k * width..][..width], m);
                    }
                }
            }
            finish(chunk);
        });
    let shape = [batch].into_iter().chain(out).chain([width]).collect();
    Tensor::new(shape, result)
}

/// `acc[c·m + j] += x[c] · w[c·m + j]` (depth multiplier `m` > 1; 1 is
/// [`cpu::rows::depthwise_pixel`]).
#[inline]
fn depthwise_tap(acc: &mut [f32], x: &[f32], w: &[f32], m: usize) {
    for (c, &v) in x.iter().enumerate() {
        for j in 0..m {
            acc[c * m + j] += v * w[c * m + j];
        }
    }
}

struct Depthwise {
    name: String,
    geometry: Geometry,
    depthwise: Tensor,
    pointwise: Option<Tensor>,
    bias: Option<Tensor>,
    activation: Activation,
    channels_first: bool,
}

impl super::GatherMap for Depthwise {
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
        Ok(window_map(&self.geometry, shape))
    }
}

impl Layer for Depthwise {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let last = |t: &Tensor| t.shape[t.rank() - 1];
        let channels = match &self.pointwise {
            Some(p) => last(p),
            None => {
                self.depthwise.data.len() / self.geometry.kernel.iter().product::<usize>().max(1)
            }
        };
        symbolic_shape(&inputs[0], self.channels_first, &self.geometry, channels)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.forward_with(inputs, None)
    }
    fn forward_then(&self, inputs: &[&Tensor], then: &super::RowFn<'_>) -> Option<Result<Tensor>> {
        (!self.channels_first).then(|| self.forward_with(inputs, Some(then)))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::cf_wrap(
            self.channels_first,
            super::GpuForm::Depthwise {
                map: self,
                depthwise: &self.depthwise,
                pointwise: self.pointwise.as_ref(),
                bias: self.bias.as_ref(),
                activation: self.activation,
            },
        ))
    }
}

impl Depthwise {
    /// [`Layer::forward`], `then` run on each output block after the bias and activation.
    fn forward_with(&self, inputs: &[&Tensor], then: Option<&super::RowFn<'_>>) -> Result<Tensor> {
        let x = to_channels_last(one(inputs, &self.name)?, self.channels_first);
        let r = self.depthwise.rank();
        let width = self.depthwise.shape[r - 2] * self.depthwise.shape[r - 1];
        let epilogue = |block: &mut [f32]| {
            if self.pointwise.is_none() {
                if let Some(bias) = &self.bias {
                    cpu::add_bias(block, &bias.data);
                }
                self.activation.apply(block, width);
                if let Some(then) = then {
                    then(block);
                }
            }
        };
        let mut y = depthwise_forward(&x, &self.depthwise, &self.geometry, epilogue)?;
        if let Some(p) = &self.pointwise {
            let r = p.rank();
            let (k, f) = (p.shape[r - 2], p.shape[r - 1]);
            let rows = y.data.len() / k.max(1);
            let mut z = vec![0.0; rows * f];
            cpu::matmul(&y.data, &p.data, &mut z, rows, k, f);
            let mut shape = y.shape.clone();
            *shape.last_mut().unwrap_or(&mut 0) = f;
            y = Tensor::new(shape, z)?;
            if let Some(bias) = &self.bias {
                cpu::add_bias(&mut y.data, &bias.data);
            }
            self.activation.apply(&mut y.data, f);
            if let Some(then) = then {
                then(&mut y.data);
            }
        }
        Ok(from_channels_last(y, self.channels_first))
    }
}

pub(super) fn depthwise(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let channels_first = ctx.channels_first();
    // TF.js passes no dilation to DepthwiseConv2D; Keras 3 applies `dilation_rate`.
    let n = spatial_rank(ctx.class);
    let geometry = geometry(ctx, n, ctx.keras3)?;
    let cin = input_channels(ctx, channels_first)?;
    let m = ctx
        .get("depth_multiplier")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1) as usize;
    let depthwise = ctx.weight("depthwise_kernel", &depthwise_shape(&geometry, cin, m))?;
    let (activation, after) = super::split_row_activation(ctx.activation()?, ctx.channels_first());
    let layer: Box<dyn Layer> = Box::new(Depthwise {
        name: ctx.name.to_string(),
        bias: bias(ctx, cin * m)?,
        activation,
        depthwise,
        pointwise: None,
        channels_first,
        geometry,
    });
    Ok(super::then_row(layer, after))
}

/// `[*kernel, cin, m]`.
fn depthwise_shape(g: &Geometry, cin: usize, m: usize) -> Vec<usize> {
    g.kernel.iter().copied().chain([cin, m]).collect()
}

pub(super) fn separable(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let channels_first = ctx.channels_first();
    let n = spatial_rank(ctx.class);
    let geometry = geometry(ctx, n, true)?;
    let cin = input_channels(ctx, channels_first)?;
    let m = ctx
        .get("depth_multiplier")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1) as usize;
    let f = ctx.usize("filters")?;
    let depthwise = ctx.weight("depthwise_kernel", &depthwise_shape(&geometry, cin, m))?;
    let ones = vec![1; n];
    let pw: Vec<usize> = ones.into_iter().chain([cin * m, f]).collect();
    let pointwise = ctx.weight("pointwise_kernel", &pw)?;
    let (activation, after) = super::split_row_activation(ctx.activation()?, ctx.channels_first());
    let layer: Box<dyn Layer> = Box::new(Depthwise {
        name: ctx.name.to_string(),
        bias: bias(ctx, f)?,
        activation,
        depthwise,
        pointwise: Some(pointwise),
        channels_first,
        geometry,
    });
    Ok(super::then_row(layer, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2d_im2col_fill_matches_the_general_walk() {
        let cases = [
            ([3, 3], [1, 1], Padding::Same, [7, 6], 3),
            ([3, 3], [2, 2], Padding::Same, [8, 7], 2),
            ([5, 2], [2, 1], Padding::Valid, [9, 5], 4),
            ([7, 7], [2, 2], Padding::Same, [10, 10], 1),
            ([1, 3], [1, 3], Padding::Same, [4, 11], 5),
        ];
        for (kernel, strides, padding, input, cin) in cases {
            let g = Geometry {
                kernel: kernel.to_vec(),
                strides: strides.to_vec(),
                dilation: vec![1, 1],
                padding,
            };
            let cols = Im2col::new(&g, &input, cin);
            let x: Vec<i32> = (1..=(2 * input[0] * input[1] * cin) as i32).collect();
            for r in 0..2 * cols.n_out {
                let (mut fast, mut general) = (vec![-7; cols.row_len], vec![-7; cols.row_len]);
                cols.fill_2d(&x, r, &mut fast, 0);
                cols.fill_any(&x, r, &mut general, 0);
                assert_eq!(fast, general, "{kernel:?} {strides:?} {input:?} row {r}");
            }
        }
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_at_the_end() {
        assert_eq!(out_len(4, 3, 2, 1, Padding::Same), (2, 0));
        assert_eq!(out_len(5, 3, 2, 1, Padding::Same), (3, 1));
        assert_eq!(out_len(5, 3, 1, 2, Padding::Valid), (1, 0));
        assert_eq!(out_len(7, 3, 2, 1, Padding::Valid), (3, 0));
    }

    #[test]
    fn spec_example_4x4_ones_stride_2_same() {
        // Spec §6.2: a 4×4 input 1..16, 3×3 kernel of ones, stride 2, same → [54, 45, 72, 54].
        let g = Geometry {
            kernel: vec![3, 3],
            strides: vec![2, 2],
            dilation: vec![1, 1],
            padding: Padding::Same,
        };
        let conv = Conv {
            name: "c".into(),
            geometry: g,
            kernel: Tensor::new(vec![3, 3, 1, 1], vec![1.0; 9]).unwrap(),
            kernel_2d: Tensor::new(vec![9, 1], vec![1.0; 9]).unwrap(),
            bias: None,
            activation: Activation::Linear,
            channels_first: false,
        };
        let x = Tensor::new(vec![1, 4, 4, 1], (1..=16).map(|v| v as f32).collect()).unwrap();
        assert_eq!(
            conv.forward(&[&x]).unwrap().data,
            vec![54.0, 45.0, 72.0, 54.0]
        );
    }
}
