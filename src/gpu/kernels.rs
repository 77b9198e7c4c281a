//! The WGSL kernels under `shaders/`, compiled into the binary, and their uniform layouts.

/// A compute kernel: its name (for errors and the pipeline cache), WGSL source, and whether the
/// activation prelude (`shaders/activation.wgsl`) is prepended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Name, the file stem under `shaders/`.
    pub name: &'static str,
    /// WGSL source.
    pub source: &'static str,
    /// Prepend [`ACTIVATION_PRELUDE`].
    pub activations: bool,
    /// Byte size of its `params` uniform struct (checked against the WGSL by naga in
    /// tests/shaders.rs, and against every dispatch's uniform bytes at run time).
    pub uniform_bytes: u32,
}

/// Activation functions shared by the kernels that apply them (not a kernel by itself).
pub const ACTIVATION_PRELUDE: &str = include_str!("../../shaders/activation.wgsl");

impl Kernel {
    /// The complete WGSL module: the shared ids ([`super::ids`]), the activation prelude where
    /// used, the kernel.
    pub fn module_source(&self) -> String {
        let ids = super::ids::wgsl_constants();
        if self.activations {
            format!("{ids}{ACTIVATION_PRELUDE}\n{}", self.source)
        } else {
            format!("{ids}{}", self.source)
        }
    }
}

/// `y = a * x + b`: the device smoke test.
pub const AXPY: Kernel = Kernel {
    name: "axpy",
    source: include_str!("../../shaders/axpy.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Tiled matrix multiply with bias and activation epilogue.
pub const MATMUL: Kernel = Kernel {
    name: "matmul",
    source: include_str!("../../shaders/matmul.wgsl"),
    activations: true,
    uniform_bytes: 48,
};
/// Per-channel affine + activation.
pub const AFFINE: Kernel = Kernel {
    name: "affine",
    source: include_str!("../../shaders/affine.wgsl"),
    activations: true,
    uniform_bytes: 32,
};
/// One time step of a recurrent layer.
pub const RECURRENT: Kernel = Kernel {
    name: "recurrent",
    source: include_str!("../../shaders/recurrent.wgsl"),
    activations: true,
    uniform_bytes: 80,
};
/// CategoryEncoding.
pub const CATEGORY: Kernel = Kernel {
    name: "category",
    source: include_str!("../../shaders/category.wgsl"),
    activations: false,
    uniform_bytes: 16,
};
/// Masks: from ids, from features, and applied.
pub const MASK: Kernel = Kernel {
    name: "mask",
    source: include_str!("../../shaders/mask.wgsl"),
    activations: false,
    uniform_bytes: 16,
};
/// Post-load weight scan: non-finite and non-zero float32 counts.
pub const SCAN: Kernel = Kernel {
    name: "scan",
    source: include_str!("../../shaders/scan.wgsl"),
    activations: false,
    uniform_bytes: 16,
};
/// Row softmax / log-softmax.
pub const SOFTMAX: Kernel = Kernel {
    name: "softmax",
    source: include_str!("../../shaders/softmax.wgsl"),
    activations: false,
    uniform_bytes: 16,
};
/// Broadcast binary ops.
pub const BINARY: Kernel = Kernel {
    name: "binary",
    source: include_str!("../../shaders/binary.wgsl"),
    activations: false,
    uniform_bytes: 80,
};
/// Block copy (concatenation).
pub const COPY_BLOCK: Kernel = Kernel {
    name: "copy_block",
    source: include_str!("../../shaders/copy_block.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Lookup-table dequantization of uint8 / uint16 / float16 codes.
pub const DEQUANTIZE: Kernel = Kernel {
    name: "dequantize",
    source: include_str!("../../shaders/dequantize.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Scaled dot-product attention over projected heads (MultiHeadAttention).
pub const ATTENTION: Kernel = Kernel {
    name: "attention",
    source: include_str!("../../shaders/attention.wgsl"),
    activations: false,
    uniform_bytes: 48,
};

/// Group statistics: GroupNormalization and UnitNormalization.
pub const GROUP_NORM: Kernel = Kernel {
    name: "group_norm",
    source: include_str!("../../shaders/group_norm.wgsl"),
    activations: false,
    uniform_bytes: 32,
};

/// Discretization's buckets.
pub const BUCKETIZE: Kernel = Kernel {
    name: "bucketize",
    source: include_str!("../../shaders/bucketize.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Every kernel, for validation.
pub const ALL: &[Kernel] = &[
    AXPY,
    DEQUANTIZE,
    MATMUL,
    AFFINE,
    SOFTMAX,
    BINARY,
    COPY_BLOCK,
    GATHER,
    WINDOW_REDUCE,
    DEPTHWISE,
    LAYER_NORM,
    WEIGHTED_GATHER,
    EMBEDDING,
    ROW_DOT,
    SCAN,
    RECURRENT,
    MASK,
    CATEGORY,
    ATTENTION,
    GROUP_NORM,
    BUCKETIZE,
];

/// float32 words one [`SCAN`] workgroup covers (64 invocations × 64 words).
pub const SCAN_WORDS_PER_GROUP: u32 = 64 * 64;

/// Row-wise dot product (Dot on rank-2 inputs).
pub const ROW_DOT: Kernel = Kernel {
    name: "row_dot",
    source: include_str!("../../shaders/row_dot.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Linear resampling with fixed taps (bilinear).
pub const WEIGHTED_GATHER: Kernel = Kernel {
    name: "weighted_gather",
    source: include_str!("../../shaders/weighted_gather.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Embedding lookup.
pub const EMBEDDING: Kernel = Kernel {
    name: "embedding",
    source: include_str!("../../shaders/embedding.wgsl"),
    activations: false,
    uniform_bytes: 32,
};

/// Row-wise layer normalization.
pub const LAYER_NORM: Kernel = Kernel {
    name: "layer_norm",
    source: include_str!("../../shaders/layer_norm.wgsl"),
    activations: false,
    uniform_bytes: 32,
};

/// Depthwise convolution over gathered windows.
pub const DEPTHWISE: Kernel = Kernel {
    name: "depthwise",
    source: include_str!("../../shaders/depthwise.wgsl"),
    activations: true,
    uniform_bytes: 32,
};

/// Max / average over gathered windows (pooling).
pub const WINDOW_REDUCE: Kernel = Kernel {
    name: "window_reduce",
    source: include_str!("../../shaders/window_reduce.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

/// Index-map gather (layout layers, im2col).
pub const GATHER: Kernel = Kernel {
    name: "gather",
    source: include_str!("../../shaders/gather.wgsl"),
    activations: false,
    uniform_bytes: 16,
};

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

/// The runtime checks naga adds to every kernel: all of them except loop bounding, which the
/// kernels do not need (every loop is a bounded `for`, enforced by `tests/shaders.rs`).
pub const RUNTIME_CHECKS: wgpu::ShaderRuntimeChecks = {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    checks.force_loop_bounding = false;
    checks
};

/// Output rows and columns one invocation of [`MATMUL`] computes.
pub const MATMUL_BLOCK: u32 = 8;

/// Invocations across the columns of one [`MATMUL`] workgroup (its `group_cols` uniform, a power
/// of two dividing 64); the workgroup's other invocations go down the rows. As many as the
/// output's width needs (up to 8), more when the output has too few rows to fill the rest: a
/// 16-filter convolution gets 256×16 tiles, a batch-32 Dense 32×128 ones, instead of idle lanes.
pub fn matmul_group_cols(m: usize, n: usize) -> u32 {
    let blocks = |len: usize| (len as u32).div_ceil(MATMUL_BLOCK).next_power_of_two();
    let for_width = blocks(n).clamp(1, 8);
    let for_height = 64 / blocks(m).clamp(1, 64);
    for_width.max(for_height)
}

/// Workgroups of [`MATMUL`] for an `m × n` output.
pub fn matmul_groups(m: usize, n: usize) -> (u32, u32) {
    let gx = matmul_group_cols(m, n);
    (
        (n as u32).div_ceil(gx * MATMUL_BLOCK).max(1),
        (m as u32).div_ceil((64 / gx) * MATMUL_BLOCK).max(1),
    )
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
    fn matmul_tiles_fit_the_output() {
        assert_eq!(matmul_group_cols(32768, 16), 2); // 256×16 tiles
        assert_eq!(matmul_group_cols(1024, 1024), 8); // 64×64
        assert_eq!(matmul_group_cols(32, 1024), 16); // 32×128
        assert_eq!(matmul_group_cols(1, 10), 64); // one row of 64 invocations
        assert_eq!(matmul_groups(32768, 16), (1, 128));
        assert_eq!(matmul_groups(1024, 1024), (16, 16));
        assert_eq!(matmul_groups(0, 0), (1, 1));
    }

    #[test]
    fn grid_covers_every_element() {
        for &(n, max) in &[(1, 65535), (64 * 65535 + 1, 65535), (1000, 3)] {
            let (x, y) = grid_for(n, max);
            assert!(x <= max && (x * y * WORKGROUP) >= n, "{n} {max}");
        }
    }
}
