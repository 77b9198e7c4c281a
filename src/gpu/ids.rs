//! The ids the host writes into uniforms and the kernels switch on, defined once: each enum here
//! becomes WGSL constants (`ACT_RELU`, `CELL_LSTM`, `OP_ADD`, …) that [`wgsl_constants`] puts
//! before every kernel's source, so Rust and WGSL cannot disagree on a number.

use crate::layers::{Activation, Parametric};

/// Declares a `#[repr(u32)]` enum and the table of its WGSL constants.
macro_rules! shader_ids {
    ($(#[$m:meta])* enum $name:ident as $prefix:literal {
        $($(#[$vm:meta])* $v:ident = $n:literal),* $(,)?
    }) => {
        $(#[$m])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum $name { $($(#[$vm])* $v = $n),* }

        impl $name {
            /// The WGSL constant prefix and every variant's name and value.
            const WGSL: (&'static str, &'static [(&'static str, u32)]) =
                ($prefix, &[$((stringify!($v), $n)),*]);
        }
    };
}

shader_ids! {
    /// `activation()` / `activation_p()` in shaders/activation.wgsl (softmax kinds are `Linear`
    /// there: they run as a separate row-wise pass).
    enum ActId as "ACT_" {
        Linear = 0, Relu = 1, Relu6 = 2, Elu = 3, Selu = 4, Sigmoid = 5,
        /// TF.js / Keras 2: `clip(0.2x + 0.5)`.
        HardSigmoid = 6,
        /// Keras 3: `clip(x/6 + 0.5)`.
        HardSigmoidKeras3 = 7,
        Tanh = 8, Softplus = 9, Softsign = 10, Swish = 11, Gelu = 12, Mish = 13,
        /// ReLU with `max_value` (the parameter).
        ReluMax = 14,
        /// LeakyReLU(alpha).
        LeakyReluAlpha = 15,
        /// ELU(alpha).
        EluAlpha = 16,
        /// ThresholdedReLU(theta).
        Thresholded = 17,
        Exponential = 18, HardShrink = 19, HardSilu = 20, HardTanh = 21, LeakyRelu = 22,
        LogSigmoid = 23, SoftShrink = 24, SparsePlus = 25, SparseSigmoid = 26,
        Squareplus = 27, TanhShrink = 28,
        /// TF.js's tanh-approximated GELU.
        GeluNew = 29,
    }
}

shader_ids! {
    /// recurrent.wgsl's `cell`.
    enum CellId as "CELL_" {
        Simple = 0,
        Lstm = 1,
        /// Keras's GRU (`reset_after: true`).
        GruResetAfter = 2,
        /// TF.js's GRU (`reset_after: false`): a row's reset gates first, in workgroup memory.
        Gru = 3,
    }
}

shader_ids! {
    /// binary.wgsl's `op`.
    enum BinaryId as "OP_" {
        Add = 0, Multiply = 1, Maximum = 2, Minimum = 3,
        /// `a >= 0 ? a : a · b`.
        PRelu = 4,
        Subtract = 5,
        /// `b - a`.
        ReversedSubtract = 6,
    }
}

shader_ids! {
    /// mask.wgsl's `mode`.
    enum MaskId as "MASK_" {
        /// `mask[r] = x[r] != 0` (Embedding ids with `mask_zero`).
        FromIds = 0,
        /// `mask[r] = any(x[r, :] != value)` (Masking).
        FromFeatures = 1,
        /// `out[i] = x[i] · mask[i / features]`.
        Apply = 2,
    }
}

shader_ids! {
    /// softmax.wgsl's `mode`: the row-wise activations.
    enum RowId as "ROW_" {
        Softmax = 0, LogSoftmax = 1, Sparsemax = 2,
    }
}

/// The softmax.wgsl mode of a row-wise activation; `None` for per-value ones.
pub(crate) fn row_id(a: Activation) -> Option<u32> {
    match a {
        Activation::Softmax => Some(RowId::Softmax as u32),
        Activation::LogSoftmax => Some(RowId::LogSoftmax as u32),
        Activation::Sparsemax => Some(RowId::Sparsemax as u32),
        _ => None,
    }
}

/// The shader id of an activation applied per value.
pub(crate) fn act_id(a: Activation) -> u32 {
    use Activation as A;
    (match a {
        A::Linear | A::Softmax | A::LogSoftmax | A::Sparsemax => ActId::Linear,
        A::Relu => ActId::Relu,
        A::Relu6 => ActId::Relu6,
        A::Elu => ActId::Elu,
        A::Selu => ActId::Selu,
        A::Sigmoid => ActId::Sigmoid,
        A::HardSigmoid => ActId::HardSigmoid,
        A::HardSigmoidKeras3 => ActId::HardSigmoidKeras3,
        A::Tanh => ActId::Tanh,
        A::Softplus => ActId::Softplus,
        A::Softsign => ActId::Softsign,
        A::Swish => ActId::Swish,
        A::Gelu => ActId::Gelu,
        A::Mish => ActId::Mish,
        A::Exponential => ActId::Exponential,
        A::HardShrink => ActId::HardShrink,
        A::HardSilu => ActId::HardSilu,
        A::HardTanh => ActId::HardTanh,
        A::LeakyRelu => ActId::LeakyRelu,
        A::LogSigmoid => ActId::LogSigmoid,
        A::SoftShrink => ActId::SoftShrink,
        A::SparsePlus => ActId::SparsePlus,
        A::SparseSigmoid => ActId::SparseSigmoid,
        A::Squareplus => ActId::Squareplus,
        A::TanhShrink => ActId::TanhShrink,
        A::GeluNew => ActId::GeluNew,
    }) as u32
}

/// The shader id and parameter of a parameterized activation layer.
pub(crate) fn parametric_id(p: Parametric) -> (u32, f32) {
    let (id, param) = match p {
        Parametric::ReluMax(m) => (ActId::ReluMax, m),
        Parametric::LeakyRelu(a) => (ActId::LeakyReluAlpha, a),
        Parametric::Elu(a) => (ActId::EluAlpha, a),
        Parametric::Thresholded(t) => (ActId::Thresholded, t),
    };
    (id as u32, param)
}

/// `CamelCase` as `CAMEL_CASE`.
fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Every id as a WGSL `const` declaration.
pub fn wgsl_constants() -> String {
    [
        ActId::WGSL,
        CellId::WGSL,
        BinaryId::WGSL,
        MaskId::WGSL,
        RowId::WGSL,
    ]
    .iter()
    .flat_map(|(prefix, ids)| {
        ids.iter()
            .map(move |(name, n)| format!("const {prefix}{}: u32 = {n}u;\n", upper_snake(name)))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_named_in_upper_snake_case() {
        let c = wgsl_constants();
        assert!(
            c.contains("const ACT_HARD_SIGMOID_KERAS3: u32 = 7u;\n"),
            "{c}"
        );
        assert!(c.contains("const CELL_GRU_RESET_AFTER: u32 = 2u;\n"));
        assert!(c.contains("const OP_REVERSED_SUBTRACT: u32 = 6u;\n"));
    }

    #[test]
    fn the_kernels_switch_on_named_ids_only() {
        // A literal case label would be a number the Rust side does not own.
        for k in crate::gpu::kernels::ALL {
            let src = k.module_source();
            for line in src.lines().filter(|l| l.trim_start().starts_with("case ")) {
                let label = line.trim_start()[5..].trim_start();
                assert!(
                    !label.starts_with(|c: char| c.is_ascii_digit()),
                    "shaders/{}.wgsl: `{}` switches on a literal id",
                    k.name,
                    line.trim()
                );
            }
        }
    }
}
