//! The WGSL kernels under `shaders/`, compiled into the binary, and their uniform layouts.

/// A compute kernel: its name (for errors and the pipeline cache) and WGSL source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Name, the file stem under `shaders/`.
    pub name: &'static str,
    /// WGSL source.
    pub source: &'static str,
}

/// `y = a * x + b`: the device smoke test.
pub const AXPY: Kernel = Kernel {
    name: "axpy",
    source: include_str!("../../shaders/axpy.wgsl"),
};

/// Lookup-table dequantization of uint8 / uint16 / float16 codes.
pub const DEQUANTIZE: Kernel = Kernel {
    name: "dequantize",
    source: include_str!("../../shaders/dequantize.wgsl"),
};

/// Every kernel, for validation.
pub const ALL: &[Kernel] = &[AXPY, DEQUANTIZE];

/// Uniforms of [`DEQUANTIZE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DequantizeParams {
    /// Elements in the chunk.
    pub n: u32,
    /// Code width: 8 or 16.
    pub bits: u32,
    /// Padding to 16 bytes.
    pub pad: [u32; 2],
}

/// Uniforms of [`AXPY`].
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AxpyParams {
    /// Element count.
    pub n: u32,
    /// Scale.
    pub a: f32,
    /// Offset.
    pub b: f32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

/// Threads per workgroup of the element-wise kernels.
pub const WORKGROUP: u32 = 64;

/// A 2D grid of workgroups covering `n` elements without exceeding `max_dim` per dimension.
pub fn grid_for(n: u32, max_dim: u32) -> (u32, u32) {
    let groups = n.div_ceil(WORKGROUP).max(1);
    if groups <= max_dim {
        (groups, 1)
    } else {
        (max_dim, groups.div_ceil(max_dim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_element() {
        for &(n, max) in &[(1, 65535), (64 * 65535 + 1, 65535), (1000, 3)] {
            let (x, y) = grid_for(n, max);
            assert!(x <= max && (x * y * WORKGROUP) >= n, "{n} {max}");
        }
    }
}
