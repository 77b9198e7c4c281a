//! Element-wise transcendental functions over f32 slices, written so that the compiler
//! vectorizes them (no calls into libm, no data-dependent branches) and compiled for the widest
//! vector unit found at run time (AVX-512, AVX2+FMA, or the baseline; `multiversion`).
//!
//! `exp` is Cephes' `expf` (range reduction by ln 2 in two parts, a degree-6 polynomial; relative
//! error ≤ 2 ulp over the finite range, NaN propagated); `tanh` and `sigmoid` are computed from it
//! with the formulas TF.js and Keras use, `tanh` switching to its odd series near 0 where
//! `1 - 2/(e^{2x}+1)` would cancel.

use multiversion::multiversion;

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that `n · LN2_HI` is exact for the `n` reached here (Cephes).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` for one value (inlined into the slice loops).
#[inline(always)]
fn exp1(v: f32) -> f32 {
    let x = v.clamp(-87.336_55, 88.722_83);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let e = p * r * r + r + 1.0;
    // 2^n through the exponent bits; n ∈ [-126, 128] after the clamp (128 only at the top,
    // where e < 1 keeps the product finite).
    // n as an integer without a saturating float→int cast (which does not vectorize): adding
    // 1.5·2^23 puts n, two's complement, in the low mantissa bits.
    let n = (n + 12_582_912.0).to_bits() as i32 - 0x4B40_0000;
    let half = n >> 1;
    let s1 = f32::from_bits(((half + 127) as u32) << 23);
    let s2 = f32::from_bits(((n - half + 127) as u32) << 23);
    let y = e * s1 * s2;
    if v > 88.722_83 {
        f32::INFINITY
    } else {
        y
    }
}

#[inline(always)]
fn sigmoid1(x: f32) -> f32 {
    1.0 / (1.0 + exp1(-x))
}

#[inline(always)]
fn tanh1(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - 2.0 / (exp1(2.0 * a) + 1.0);
    let x2 = x * x;
    // x - x³/3 + 2x⁵/15 - 17x⁷/315 + 62x⁹/2835: relative error < 1e-8 for |x| < 0.25.
    let tail = x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0));
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + tail)));
    if a < 0.25 {
        small
    } else {
        big.copysign(x)
    }
}

/// `x ← e^x`.
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn exp(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x = exp1(*x));
}

/// `x ← 1 / (1 + e^-x)`.
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn sigmoid(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x = sigmoid1(*x));
}

/// `x ← x · sigmoid(x)` (swish / silu).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn swish(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x *= sigmoid1(*x));
}

/// `x ← tanh(x)`.
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
pub fn tanh(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x = tanh1(*x));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst(f: fn(&mut [f32]), reference: fn(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
        let xs: Vec<f32> = (0..=200_000)
            .map(|i| (lo + (hi - lo) * i as f64 / 200_000.0) as f32)
            .collect();
        let mut ys = xs.clone();
        f(&mut ys);
        let (mut abs, mut rel) = (0.0f64, 0.0f64);
        for (&x, &y) in xs.iter().zip(&ys) {
            let r = reference(x as f64);
            let d = (y as f64 - r).abs();
            abs = abs.max(d);
            if r.abs() > 1e-30 {
                rel = rel.max(d / r.abs());
            }
        }
        (abs, rel)
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        let (_, rel) = worst(exp, f64::exp, -87.0, 88.0);
        assert!(rel < 3.0 * f32::EPSILON as f64, "relative error {rel:e}");
    }

    #[test]
    fn sigmoid_and_tanh_match_f64_closely() {
        let (abs, _) = worst(sigmoid, |x| 1.0 / (1.0 + (-x).exp()), -100.0, 100.0);
        assert!(abs < 2e-7, "sigmoid abs error {abs:e}");
        let (abs, rel) = worst(tanh, f64::tanh, -20.0, 20.0);
        assert!(abs < 2e-7 && rel < 5e-7, "tanh errors {abs:e} / {rel:e}");
        let (_, rel) = worst(tanh, f64::tanh, -0.1, 0.1);
        assert!(rel < 1e-6, "tanh near 0, relative error {rel:e}");
    }

    #[test]
    fn non_finite_values_behave() {
        let mut v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
        exp(&mut v);
        assert!(v[0].is_nan());
        assert!(v[1] == f32::INFINITY && (0.0..1e-37).contains(&v[2]));
        assert!(v[3] == 1.0 && v[4] == 1.0);
        let mut t = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0];
        tanh(&mut t);
        assert!(t[0].is_nan());
        assert_eq!(&t[1..], &[1.0, -1.0, -0.0]);
        let mut s = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        sigmoid(&mut s);
        assert!(s[0].is_nan());
        assert_eq!(&s[1..], &[1.0, 0.0]);
    }
}
