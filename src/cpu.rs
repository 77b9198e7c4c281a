//! Shared CPU kernels of the reference implementation: matrix multiply (the `matrixmultiply`
//! crate's blocked SGEMM) and broadcasting.

/// `c[m×n] = a[m×k] · b[k×n]` (row-major, c overwritten).
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    // SAFETY: the slices hold m×k, k×n and m×n elements (checked below); strides describe
    // row-major layouts within them.
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul operand sizes"
    );
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Add `bias[n]` to every row of `c[m×n]`.
pub fn add_bias(c: &mut [f32], bias: &[f32]) {
    let n = bias.len().max(1);
    for row in c.chunks_mut(n) {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    }
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
}
