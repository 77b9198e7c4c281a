//! Row kernels of the CPU backend that run on every activation block (bias, per-channel affine,
//! clamps, the depthwise convolution's taps), compiled for the widest vector unit found at run
//! time (`multiversion`): the crate is built for baseline x86-64, where these loops would use
//! 4-wide SSE without fused multiply-add.

use multiversion::multiversion;

/// `row ← row · mul + add` for every row of `data` (rows of `mul.len()` values; `mul` and `add`
/// have the same length).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn affine(data: &mut [f32], mul: &[f32], add: &[f32]) {
    let n = mul.len().max(1);
    for row in data.chunks_mut(n) {
        for ((x, m), a) in row.iter_mut().zip(mul).zip(add) {
            *x = *x * m + a;
        }
    }
}

/// `row ← row + bias` for every row of `data` (rows of `bias.len()` values).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn add_bias(data: &mut [f32], bias: &[f32]) {
    let n = bias.len().max(1);
    for row in data.chunks_mut(n) {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    }
}

/// `x ← max(x, 0)` (ReLU; NaN becomes 0, as `f32::max`).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn relu(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x = x.max(0.0));
}

/// `x ← min(max(x, 0), hi)` (ReLU with a `max_value`; NaN becomes 0, as `f32::max`).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn relu_max(data: &mut [f32], hi: f32) {
    data.iter_mut().for_each(|x| *x = x.max(0.0).min(hi));
}

/// `x ← clamp(x, lo, hi)` (ReLU6: `0, 6`; NaN stays NaN, as `f32::clamp`).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn clamp(data: &mut [f32], lo: f32, hi: f32) {
    data.iter_mut().for_each(|x| *x = x.clamp(lo, hi));
}

/// One output pixel of a pooling layer: the element-wise maximum (`max`) or mean of the channel
/// rows under its window (`rows`: those inside the input; padded cells take no part, as in TF.js).
/// An empty window gives -inf (max) or 0 (mean).
pub fn pool_pixel<'a>(out: &mut [f32], rows: impl Iterator<Item = &'a [f32]>, max: bool) {
    out.iter_mut()
        .for_each(|v| *v = if max { f32::NEG_INFINITY } else { 0.0 });
    let mut count = 0usize;
    for row in rows {
        if max {
            max_into(out, row);
        } else {
            add_into(out, row);
        }
        count += 1;
    }
    if !max && count > 1 {
        let inv = count as f32;
        out.iter_mut().for_each(|v| *v /= inv);
    }
}

/// `acc ← max(acc, x)` element-wise (NaN in `x` is skipped, as `f32::max`).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn max_into(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, &v)| *a = a.max(v));
}

/// `acc ← acc + x` element-wise.
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn add_into(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, &v)| *a += v);
}

/// Channels per register block of [`depthwise_pixel`]: four AVX-512 registers of f32.
const LANES: usize = 64;

/// One output pixel of a depthwise convolution with depth multiplier 1: `out[c] = Σ_k x_k[c] ·
/// w_k[c]` over the taps `k` whose input pixel `taps[k]` lies inside the input (`pad` marks
/// those outside). `x` is the image (`[pixels, width]`), `w` the kernel (`[taps, width]`). The
/// sums of each block of [`LANES`] channels stay in registers across all taps and are stored once.
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn depthwise_pixel(out: &mut [f32], x: &[f32], w: &[f32], taps: &[u32], pad: u32) {
    let width = out.len();
    let full = width - width % LANES;
    for c0 in (0..full).step_by(LANES) {
        let mut acc = [0.0f32; LANES];
        for (k, &s) in taps.iter().enumerate() {
            if s == pad {
                continue;
            }
            let xs: &[f32; LANES] = x[s as usize * width + c0..][..LANES].try_into().unwrap();
            let ws: &[f32; LANES] = w[k * width + c0..][..LANES].try_into().unwrap();
            for i in 0..LANES {
                acc[i] += xs[i] * ws[i];
            }
        }
        out[c0..c0 + LANES].copy_from_slice(&acc);
    }
    if full < width {
        let rest = &mut out[full..];
        rest.iter_mut().for_each(|v| *v = 0.0);
        for (k, &s) in taps.iter().enumerate() {
            if s == pad {
                continue;
            }
            let xs = &x[s as usize * width + full..(s as usize + 1) * width];
            let ws = &w[k * width + full..(k + 1) * width];
            for ((a, &v), &wv) in rest.iter_mut().zip(xs).zip(ws) {
                *a += v * wv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depthwise_pixel_matches_the_plain_sum() {
        for width in [1, 3, 64, 96, 150] {
            let taps = [0u32, u32::MAX, 2, 1];
            let x: Vec<f32> = (0..3 * width)
                .map(|i| (i % 17) as f32 * 0.25 - 2.0)
                .collect();
            let w: Vec<f32> = (0..4 * width)
                .map(|i| (i % 11) as f32 * 0.5 - 2.5)
                .collect();
            let mut out = vec![f32::NAN; width];
            depthwise_pixel(&mut out, &x, &w, &taps, u32::MAX);
            for c in 0..width {
                let want: f32 = [(0, 0), (2, 2), (1, 3)]
                    .iter()
                    .map(|&(p, k)| x[p * width + c] * w[k * width + c])
                    .sum();
                assert!((out[c] - want).abs() < 1e-5, "width {width} channel {c}");
            }
        }
    }

    #[test]
    fn affine_bias_and_clamp_act_per_channel() {
        let mut d = vec![1.0, -2.0, 3.0, f32::NAN, 8.0, -1.0];
        affine(&mut d, &[2.0, 1.0, 0.5], &[0.0, 1.0, 1.0]);
        assert_eq!(&d[..3], &[2.0, -1.0, 2.5]);
        assert!(d[3].is_nan());
        add_bias(&mut d, &[1.0, 1.0, 1.0]);
        let mut r = d.clone();
        clamp(&mut d, 0.0, 6.0);
        assert_eq!(&d[..3], &[3.0, 0.0, 3.5]);
        assert!(d[3].is_nan(), "clamp keeps NaN, as f32::clamp");
        assert_eq!(&d[4..], &[6.0, 1.5]);
        relu(&mut r);
        assert_eq!(r, [3.0, 0.0, 3.5, 0.0, 10.0, 1.5]);
    }
}
