//! Activation functions with TF.js's formulas (spec §6.1), and the activation layers: Activation,
//! ReLU, LeakyReLU, ELU, ThresholdedReLU, Softmax, PReLU.

use super::{normalize_axis, one, Layer, LayerCtx, Shape};
use crate::error::Result;
use crate::tensor::Tensor;
use serde_json::Value;

/// An activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x`.
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x > 0 ? x : exp(x) - 1`.
    Elu,
    /// Scaled ELU.
    Selu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// TF.js / Keras 2: `clip(0.2x + 0.5, 0, 1)`.
    HardSigmoid,
    /// Keras 3: `clip(x/6 + 0.5, 0, 1)`.
    HardSigmoidKeras3,
    /// `tanh(x)`.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// `log(1 + exp(x))`.
    Softplus,
    /// `x / (|x| + 1)`.
    Softsign,
    /// `x * sigmoid(x)`.
    Swish,
    /// `0.5x(1 + erf(x/√2))`.
    Gelu,
    /// `x * tanh(softplus(x))`.
    Mish,
    /// TF.js `gelu_new`: `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    GeluNew,
    /// Keras 3 `exponential`: `exp(x)`.
    Exponential,
    /// Keras 3 `hard_shrink`: `|x| > 0.5 ? x : 0`.
    HardShrink,
    /// Keras 3 `hard_silu` / `hard_swish`: `x * relu6(x + 3) / 6`.
    HardSilu,
    /// Keras 3 `hard_tanh`: `clip(x, -1, 1)`.
    HardTanh,
    /// Keras 3 `leaky_relu` as an activation: `x < 0 ? 0.2x : x`.
    LeakyRelu,
    /// Keras 3 `log_sigmoid`: `-softplus(-x)`.
    LogSigmoid,
    /// Keras 3 `soft_shrink`: `x > 0.5 ? x - 0.5 : x < -0.5 ? x + 0.5 : 0`.
    SoftShrink,
    /// Keras 3 `sparse_plus`: `0` below -1, `(x + 1)²/4` in (-1, 1), `x` from 1.
    SparsePlus,
    /// Keras 3 `sparse_sigmoid`: `clip((x + 1)/2, 0, 1)`.
    SparseSigmoid,
    /// Keras 3 `squareplus` (b = 4): `(x + sqrt(x² + 4)) / 2`.
    Squareplus,
    /// Keras 3 `tanh_shrink`: `x - tanh(x)`.
    TanhShrink,
    /// Keras 3 `sparsemax` over the last axis (Martins & Astudillo 2016).
    Sparsemax,
}

const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;

/// erf by Abramowitz–Stegun 7.1.26, the polynomial TF.js's CPU kernel uses.
fn erf(x: f64) -> f64 {
    let (p, a1, a2, a3, a4, a5) = (
        0.327_591_1,
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    );
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + p * x);
    sign * (1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * (-x * x).exp())
}

fn softplus(x: f64) -> f64 {
    // Stable: log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)).
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Activation {
    /// Parse a config value (`null` is linear). Accepts the snake_case and camelCase spellings.
    pub fn parse(value: Option<&Value>, keras3: bool) -> std::result::Result<Activation, String> {
        let name = match value {
            None | Some(Value::Null) => return Ok(Activation::Linear),
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Object(o)) => o.get("class_name").and_then(Value::as_str).unwrap_or(""),
            Some(other) => return Err(format!("activation {other} is not a name")),
        };
        Ok(match name {
            "linear" => Activation::Linear,
            "relu" => Activation::Relu,
            "relu6" => Activation::Relu6,
            "elu" => Activation::Elu,
            "selu" => Activation::Selu,
            "sigmoid" => Activation::Sigmoid,
            "hard_sigmoid" | "hardSigmoid" if keras3 => Activation::HardSigmoidKeras3,
            "hard_sigmoid" | "hardSigmoid" => Activation::HardSigmoid,
            "tanh" => Activation::Tanh,
            "softmax" => Activation::Softmax,
            "log_softmax" | "logSoftmax" => Activation::LogSoftmax,
            "softplus" => Activation::Softplus,
            "softsign" => Activation::Softsign,
            "swish" | "silu" => Activation::Swish,
            "gelu" => Activation::Gelu,
            "gelu_new" => Activation::GeluNew,
            "mish" => Activation::Mish,
            // Keras 3 only. `celu` with its default alpha = 1 is ELU.
            "celu" => Activation::Elu,
            "exponential" => Activation::Exponential,
            "hard_shrink" => Activation::HardShrink,
            "hard_silu" | "hard_swish" => Activation::HardSilu,
            "hard_tanh" => Activation::HardTanh,
            "leaky_relu" => Activation::LeakyRelu,
            "log_sigmoid" => Activation::LogSigmoid,
            "soft_shrink" => Activation::SoftShrink,
            "sparse_plus" => Activation::SparsePlus,
            "sparse_sigmoid" => Activation::SparseSigmoid,
            "squareplus" => Activation::Squareplus,
            "tanh_shrink" => Activation::TanhShrink,
            "sparsemax" => Activation::Sparsemax,
            "glu" | "threshold" => {
                return Err(format!(
                    "activation '{name}' is not supported (it changes the shape or needs arguments a config string cannot carry)"
                ))
            }
            other => return Err(format!("activation '{other}' is not supported")),
        })
    }

    /// The activation of one value (softmax kinds: identity; they act on rows).
    pub fn of(self, x: f32) -> f32 {
        self.scalar(f64::from(x)) as f32
    }

    fn scalar(self, x: f64) -> f64 {
        match self {
            Activation::Linear | Activation::Softmax | Activation::LogSoftmax => x,
            Activation::Sparsemax => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp() - 1.0
                }
            }
            Activation::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * (x.exp() - 1.0)
                }
            }
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid => (0.2 * x + 0.5).clamp(0.0, 1.0),
            Activation::HardSigmoidKeras3 => (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Tanh => x.tanh(),
            Activation::Softplus => softplus(x),
            Activation::Softsign => x / (x.abs() + 1.0),
            Activation::Swish => x * sigmoid(x),
            Activation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            Activation::Mish => x * softplus(x).tanh(),
            Activation::GeluNew => {
                let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                0.5 * x * (1.0 + inner.tanh())
            }
            Activation::Exponential => x.exp(),
            Activation::HardShrink => {
                if x.abs() > 0.5 {
                    x
                } else {
                    0.0
                }
            }
            Activation::HardSilu => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Activation::HardTanh => x.clamp(-1.0, 1.0),
            Activation::LeakyRelu => {
                if x < 0.0 {
                    0.2 * x
                } else {
                    x
                }
            }
            Activation::LogSigmoid => -softplus(-x),
            Activation::SoftShrink => x - x.clamp(-0.5, 0.5),
            Activation::SparsePlus => sparse_plus(x),
            Activation::SparseSigmoid => ((x + 1.0) * 0.5).clamp(0.0, 1.0),
            Activation::Squareplus => (x + (x * x + 4.0).sqrt()) * 0.5,
            Activation::TanhShrink => x - x.tanh(),
        }
    }

    /// Whether it acts on whole rows of the last axis (softmax, log-softmax, sparsemax).
    pub fn is_row_wise(self) -> bool {
        matches!(
            self,
            Activation::Softmax | Activation::LogSoftmax | Activation::Sparsemax
        )
    }

    /// Apply in place to `data` whose last axis has `last` elements.
    pub fn apply(self, data: &mut [f32], last: usize) {
        match self {
            Activation::Linear => {}
            Activation::Softmax | Activation::LogSoftmax => {
                for row in data.chunks_mut(last.max(1)) {
                    softmax_row(row, self == Activation::LogSoftmax);
                }
            }
            Activation::Sparsemax => data.chunks_mut(last.max(1)).for_each(sparsemax_row),
            Activation::Relu => crate::cpu::rows::relu(data),
            Activation::Relu6 => crate::cpu::rows::clamp(data, 0.0, 6.0),
            Activation::Sigmoid => crate::cpu::vmath::sigmoid(data),
            Activation::Tanh => crate::cpu::vmath::tanh(data),
            Activation::Swish => crate::cpu::vmath::swish(data),
            Activation::Exponential => crate::cpu::vmath::exp(data),
            Activation::HardSigmoid => data
                .iter_mut()
                .for_each(|x| *x = (0.2 * *x + 0.5).clamp(0.0, 1.0)),
            Activation::HardSigmoidKeras3 => data
                .iter_mut()
                .for_each(|x| *x = (*x / 6.0 + 0.5).clamp(0.0, 1.0)),
            Activation::HardSilu => data
                .iter_mut()
                .for_each(|x| *x = *x * (*x + 3.0).clamp(0.0, 6.0) / 6.0),
            f => data
                .iter_mut()
                .for_each(|x| *x = f.scalar(*x as f64) as f32),
        }
    }
}

fn sparse_plus(x: f64) -> f64 {
    if x <= -1.0 {
        0.0
    } else if x < 1.0 {
        0.25 * (x + 1.0) * (x + 1.0)
    } else {
        x
    }
}

/// Sparsemax: `max(x - tau, 0)` with `tau = (sum of the support - 1) / |support|`, the support being
/// the `x_j` with `1 + k_j x_j > s_j` (`k_j`, `s_j`: count and sum of the values `>= x_j`). This is
/// Martins & Astudillo (2016), as Keras computes it since keras-team/keras#23469; Keras 3.15 and
/// earlier summed the cumulative sums instead (keras-team/keras#23425), giving rows that do not
/// sum to 1. The GPU kernel uses the same sort-free O(n²) form.
fn sparsemax_row(row: &mut [f32]) {
    let (mut k, mut sum) = (0.0f64, 0.0f64);
    for &xj in row.iter() {
        let ge = row.iter().filter(|&&xi| xi >= xj);
        let (kj, sj) = ge.fold((0.0, 0.0), |(c, s), &xi| (c + 1.0, s + xi as f64));
        if 1.0 + kj * xj as f64 > sj {
            k += 1.0;
            sum += xj as f64;
        }
    }
    let tau = (sum - 1.0) / k.max(1.0);
    row.iter_mut()
        .for_each(|x| *x = (*x as f64 - tau).max(0.0) as f32);
}

fn softmax_row(row: &mut [f32], log: bool) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    for x in row.iter_mut() {
        let shifted = *x as f64 - max;
        *x = if log {
            (shifted - sum.ln()) as f32
        } else {
            (shifted.exp() / sum) as f32
        };
    }
}

/// An element-wise function with an optional parameter, as a layer.
/// A parameterized element-wise activation layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Parametric {
    /// ReLU clipped at `max_value` (infinity for none).
    ReluMax(f32),
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu(f32),
    /// `x > 0 ? x : alpha * (exp(x) - 1)`.
    Elu(f32),
    /// `x > theta ? x : 0`.
    Thresholded(f32),
}

impl Parametric {
    /// The value for `x`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Parametric::ReluMax(m) => x.max(0.0).min(m),
            Parametric::LeakyRelu(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Parametric::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    (a as f64 * ((x as f64).exp() - 1.0)) as f32
                }
            }
            Parametric::Thresholded(t) => {
                if x > t {
                    x
                } else {
                    0.0
                }
            }
        }
    }

    /// [`Parametric::apply`] on every value of `data` (the clipped ReLU through the vectorized
    /// row kernel; the match taken once, not per value).
    pub fn apply_all(self, data: &mut [f32]) {
        match self {
            Parametric::ReluMax(m) => crate::cpu::rows::relu_max(data, m),
            op => data.iter_mut().for_each(|x| *x = op.apply(*x)),
        }
    }
}

struct Elementwise {
    op: Parametric,
}

impl Layer for Elementwise {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut t = one(inputs, "activation")?.clone();
        self.op.apply_all(&mut t.data);
        Ok(t)
    }
    fn forward_in_place(&self, x: &mut Tensor, _rest: &[&Tensor]) -> Option<Result<()>> {
        self.op.apply_all(&mut x.data);
        Some(Ok(()))
    }
    fn row_epilogue(&self) -> Option<super::RowFn<'_>> {
        let op = self.op;
        Some(Box::new(move |block: &mut [f32]| op.apply_all(block)))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Parametric(self.op))
    }
}

/// `Activation(activation)`.
struct ActivationLayer {
    f: Activation,
}

impl Layer for ActivationLayer {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let mut t = one(inputs, "Activation")?.clone();
        let last = t.shape.last().copied().unwrap_or(1);
        self.f.apply(&mut t.data, last);
        Ok(t)
    }
    fn forward_in_place(&self, x: &mut Tensor, _rest: &[&Tensor]) -> Option<Result<()>> {
        let last = x.shape.last().copied().unwrap_or(1);
        self.f.apply(&mut x.data, last);
        Some(Ok(()))
    }
    fn row_epilogue(&self) -> Option<super::RowFn<'_>> {
        // Row-wise activations (softmax) need the row length, which the block does not carry.
        let f = self.f;
        (!f.is_row_wise()).then(|| Box::new(move |b: &mut [f32]| f.apply(b, 1)) as super::RowFn<'_>)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Affine {
            mul: &[1.0],
            add: &[0.0],
            axis: -1,
            activation: self.f,
        })
    }
}
pub(super) fn build_activation_layer(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(ActivationLayer {
        f: ctx.activation()?,
    }))
}

pub(super) fn build_relu(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let max = ctx
        .get("max_value")
        .and_then(Value::as_f64)
        .map_or(f32::INFINITY, |m| m as f32);
    Ok(Box::new(Elementwise {
        op: Parametric::ReluMax(max),
    }))
}

pub(super) fn build_leaky_relu(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    // TF.js default 0.3; Keras 3 writes `negative_slope` (default 0.2).
    let alpha = if ctx.keras3() {
        ctx.f64_or("negative_slope", 0.2)?
    } else {
        ctx.f64_or("alpha", 0.3)?
    };
    Ok(Box::new(Elementwise {
        op: Parametric::LeakyRelu(alpha as f32),
    }))
}

pub(super) fn build_elu(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Elementwise {
        op: Parametric::Elu(ctx.f64_or("alpha", 1.0)? as f32),
    }))
}

pub(super) fn build_thresholded_relu(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Elementwise {
        op: Parametric::Thresholded(ctx.f64_or("theta", 1.0)? as f32),
    }))
}

/// Softmax along one axis, or jointly over several (a list `axis`: `exp(x - logsumexp(x, axes))`,
/// as TF.js and Keras compute it).
struct Softmax {
    /// Normalized axes, sorted.
    axes: Vec<usize>,
    /// The permutation moving `axes` last, where they are not already (GPU form).
    moved: Option<Vec<usize>>,
}

impl Layer for Softmax {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let t = one(inputs, "softmax")?;
        let rank = t.rank();
        // Move the axes last, normalize over their joint extent, move them back.
        let perm = super::axes_last(&self.axes, rank);
        let group: usize = self.axes.iter().map(|&a| t.shape[a]).product();
        let mut moved = t.permuted(&perm);
        Activation::Softmax.apply(&mut moved.data, group);
        let mut back = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            back[p] = i;
        }
        Ok(moved.permuted(&back))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        // Over one axis or, the axes moved last, jointly over their trailing extent.
        let softmax = if self.axes.len() == 1 {
            super::GpuForm::Affine {
                mul: &[1.0],
                add: &[0.0],
                axis: -1,
                activation: Activation::Softmax,
            }
        } else {
            super::GpuForm::JointSoftmax(self.axes.len())
        };
        Some(match self.moved {
            None => softmax,
            Some(ref to) => super::GpuForm::Permuted {
                to: to.clone(),
                inner: Box::new(softmax),
            },
        })
    }
}

pub(super) fn build_softmax(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    // TF.js's Softmax layer defaults to axis 1 (Keras: -1).
    let raw: Vec<&Value> = match ctx.get("axis") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    let rank = ctx.input()?.len();
    let mut axes = raw
        .iter()
        .map(|v| {
            let a = v
                .as_i64()
                .ok_or_else(|| ctx.err(format!("config 'axis' holds {v}, not an integer")))?;
            normalize_axis(a as isize, rank)
                .filter(|&a| a > 0)
                .ok_or_else(|| ctx.err(format!("axis {a} is out of range for rank {rank}")))
        })
        .collect::<Result<Vec<usize>>>()?;
    if axes.is_empty() {
        axes.push(1.min(rank - 1));
    }
    axes.sort_unstable();
    axes.dedup();
    let perm = super::axes_last(&axes, rank);
    let moved = (perm.iter().enumerate().any(|(i, &p)| i != p)).then_some(perm);
    Ok(Box::new(Softmax { axes, moved }))
}

/// `x >= 0 ? x : alpha * x` with a learned, broadcast alpha.
struct PRelu {
    alpha: Tensor,
}

impl Layer for PRelu {
    /// The input's mask passes through, as in TF.js (`supportsMasking`) and Keras.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, "PReLU")?;
        let alpha = super::merge::broadcast_to(&self.alpha, &x.shape[1..])?;
        let per = alpha.data.len();
        let mut out = x.clone();
        for (i, v) in out.data.iter_mut().enumerate() {
            if *v < 0.0 {
                *v *= alpha.data[i % per];
            }
        }
        Ok(out)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::PRelu(&self.alpha))
    }
}

pub(super) fn build_prelu(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let input = ctx.input()?;
    let mut shape: Vec<usize> = input[1..]
        .iter()
        .map(|d| d.ok_or_else(|| ctx.err("PReLU needs known input dimensions")))
        .collect::<Result<_>>()?;
    let shared: Vec<usize> = match ctx.get("shared_axes") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_u64)
            .map(|v| v as usize)
            .collect(),
        Some(v) => v.as_u64().map(|v| vec![v as usize]).unwrap_or_default(),
    };
    for a in shared {
        if a >= 1 && a <= shape.len() {
            shape[a - 1] = 1;
        }
    }
    Ok(Box::new(PRelu {
        alpha: ctx.weight("alpha", &shape)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: Activation) -> Vec<f32> {
        let mut x = vec![-2.0f32, -0.5, 0.5, 3.0];
        f.apply(&mut x, 4);
        x
    }

    #[test]
    #[allow(clippy::excessive_precision)] // the spec's reference values, as printed by TF.js
    fn match_tfjs_reference_values() {
        // Spec §6.1: TF.js CPU at x = [-2, -0.5, 0.5, 3].
        let cases = [
            (
                Activation::Selu,
                [-1.5201665, -0.6917582, 0.5253505, 3.1521029],
            ),
            (Activation::HardSigmoid, [0.1, 0.4, 0.6, 1.0]),
            (
                Activation::Gelu,
                [-0.0455002, -0.1542688, 0.3457312, 2.9959502],
            ),
            (
                Activation::Swish,
                [-0.2384058, -0.1887703, 0.3112297, 2.8577223],
            ),
            (
                Activation::Mish,
                [-0.2525015, -0.2207438, 0.3752452, 2.9865351],
            ),
            (
                Activation::GeluNew,
                [-0.04540229, -0.154286, 0.345714, 2.9963627],
            ),
        ];
        for (f, want) in cases {
            for (a, b) in run(f).iter().zip(want) {
                assert!((a - b).abs() < 2e-6, "{f:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)]
    fn keras3_activations_match_their_formulas() {
        // Computed by hand from Keras 3.15's backend formulas at x = [-2, -0.5, 0.5, 3].
        let cases = [
            (
                "exponential",
                [0.13533528, 0.60653066, 1.6487213, 20.085537],
            ),
            ("hard_shrink", [-2.0, 0.0, 0.0, 3.0]),
            ("hard_swish", [-0.33333334, -0.20833333, 0.29166667, 3.0]),
            ("hard_tanh", [-1.0, -0.5, 0.5, 1.0]),
            ("leaky_relu", [-0.4, -0.1, 0.5, 3.0]),
            (
                "log_sigmoid",
                [-2.126928, -0.974077, -0.474077, -0.04858735],
            ),
            ("soft_shrink", [-1.5, 0.0, 0.0, 2.5]),
            ("sparse_plus", [0.0, 0.0625, 0.5625, 3.0]),
            ("sparse_sigmoid", [0.0, 0.25, 0.75, 1.0]),
            ("squareplus", [0.41421356, 0.7807764, 1.2807764, 3.3027756]),
            (
                "tanh_shrink",
                [-1.0359724, -0.03788284, 0.03788284, 2.0049453],
            ),
            ("celu", [-0.86466473, -0.39346933, 0.5, 3.0]),
            ("sparsemax", [0.0, 0.0, 0.0, 1.0]),
        ];
        for (name, want) in cases {
            let f = Activation::parse(Some(&Value::from(name)), true).unwrap();
            for (a, b) in run(f).iter().zip(want) {
                assert!((a - b).abs() < 2e-6, "{name}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn sparsemax_projects_rows_onto_the_simplex() {
        // keras-team/keras#23425's example, and a tie that enters the support together.
        for (x, want) in [
            (vec![0.0f32, 0.5, 1.0], vec![0.0f32, 0.25, 0.75]),
            (vec![1.0, 1.0, 0.0], vec![0.5, 0.5, 0.0]),
            (vec![0.1, 0.2, 0.3, 0.4, 0.5], vec![0.0, 0.1, 0.2, 0.3, 0.4]),
        ] {
            let mut got = x.clone();
            Activation::Sparsemax.apply(&mut got, x.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-6, "{x:?}: {got:?}");
            }
        }
        let glu = Activation::parse(Some(&Value::from("glu")), true).unwrap_err();
        assert!(glu.contains("glu"), "{glu}");
    }

    #[test]
    fn names_parse_in_both_spellings() {
        let p = |s: &str| Activation::parse(Some(&Value::from(s)), false).unwrap();
        assert_eq!(p("hard_sigmoid"), Activation::HardSigmoid);
        assert_eq!(p("hardSigmoid"), Activation::HardSigmoid);
        assert_eq!(p("log_softmax"), Activation::LogSoftmax);
        assert_eq!(Activation::parse(None, false).unwrap(), Activation::Linear);
        assert_eq!(p("gelu_new"), Activation::GeluNew);
        assert!(Activation::parse(Some(&Value::from("gelu_fast")), false).is_err());
    }
}
