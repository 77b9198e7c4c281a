//! MultiHeadAttention (Keras 3.15 semantics): query/key/value projections per head, scaled
//! dot-product attention with the causal, sliding-window, explicit and Keras-mask masks, the
//! output projection.

use super::{Layer, LayerCtx, Shape};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

/// One projection `x · kernel + bias` with the kernel viewed as `[in, out]`.
pub struct Projection {
    /// `[in, out]` (Keras stores `[in, heads, dim]` or `[heads, dim, out]`: the same bytes).
    pub kernel: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
}

impl Projection {
    fn load(ctx: &LayerCtx, sub: &str, shape: &[usize], bias: &[usize]) -> Result<Projection> {
        let name = format!("{}/{}", ctx.name, sub.trim_end_matches("_dense"));
        let h5 = ctx.h5.map(|p| format!("{p}/{sub}"));
        let sub_ctx = LayerCtx {
            class: "EinsumDense",
            name: &name,
            h5: h5.as_deref(),
            ..*ctx
        };
        let kernel = sub_ctx.weight("kernel", shape)?;
        let (k, n) = (shape[0] * shape[1], shape[2]);
        let (k, n) = if bias.len() == 2 {
            (shape[0], shape[1] * shape[2])
        } else {
            (k, n)
        };
        let use_bias = ctx.bool_or("use_bias", true);
        Ok(Projection {
            kernel: kernel.reshaped(vec![k, n])?,
            bias: if use_bias {
                Some(sub_ctx.weight("bias", bias)?.reshaped(vec![n])?)
            } else {
                None
            },
        })
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let (k, n) = (self.kernel.shape[0], self.kernel.shape[1]);
        let m = x.len() / k.max(1);
        let mut out = vec![0.0; m * n];
        cpu::matmul(x, &self.kernel.data, &mut out, m, k, n);
        if let Some(b) = &self.bias {
            cpu::add_bias(&mut out, &b.data);
        }
        out
    }
}

/// Which input is which: query is 0, value 1; key and the attention mask where given.
#[derive(Clone, Copy, Debug)]
pub struct Roles {
    /// Input index of `key` (else the value is the key).
    pub key: Option<usize>,
    /// Input index of `attention_mask` (`[batch, T, S]`, > 0.5 keeps).
    pub attention_mask: Option<usize>,
}

/// Keras's MultiHeadAttention over rank-3 inputs (attention over axis 1).
pub struct Attention {
    name: String,
    /// Heads.
    pub heads: usize,
    /// Query/key width per head.
    pub key_dim: usize,
    /// Value width per head.
    pub value_dim: usize,
    /// Projections: query, key, value (`[in, heads·dim]`), output (`[heads·value_dim, out]`).
    pub query: Projection,
    /// Key projection.
    pub key: Projection,
    /// Value projection.
    pub value: Projection,
    /// Output projection.
    pub output: Projection,
    /// `use_causal_mask`.
    pub causal: bool,
    /// `sliding_window` (0: none): `|t - s| < window` attends.
    pub window: usize,
    /// Where key and attention_mask are among the inputs.
    pub roles: Roles,
    /// A query that attends to no position gets zeros (Keras ≥ 3.10's masked Softmax,
    /// keras-team/keras#21149, on the path dropout takes); elsewhere it averages every value
    /// (a uniform softmax).
    pub zero_unattended: bool,
}

/// The attention core on projected heads, as attention.wgsl computes it (see there).
struct Heads<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: Option<&'a [f32]>,
    keras_mask: Option<&'a [f32]>,
    dims: (usize, usize, usize), // batch, t, s
}

impl Attention {
    fn keep(&self, h: &Heads, b: usize, t: usize, s: usize) -> bool {
        let (_, tn, sn) = h.dims;
        !(self.causal && s > t
            || self.window > 0 && t.abs_diff(s) >= self.window
            || h.mask.is_some_and(|m| m[(b * tn + t) * sn + s] <= 0.5)
            || h.keras_mask
                .is_some_and(|m| m[b * tn + t] == 0.0 || m[b * sn + s] == 0.0))
    }

    fn attend(&self, h: &Heads) -> Vec<f32> {
        let (batch, tn, sn) = h.dims;
        let (nh, kd, vd) = (self.heads, self.key_dim, self.value_dim);
        let scale = 1.0 / (kd as f32).sqrt();
        let mut out = vec![0.0f32; batch * tn * nh * vd];
        let mut scores = vec![0.0f32; sn];
        for b in 0..batch {
            for t in 0..tn {
                for head in 0..nh {
                    let qi = ((b * tn + t) * nh + head) * kd;
                    let mut kept = 0;
                    for (s, score) in scores.iter_mut().enumerate() {
                        let ki = ((b * sn + s) * nh + head) * kd;
                        *score = if self.keep(h, b, t, s) {
                            kept += 1;
                            (0..kd).fold(0.0, |acc, j| {
                                (h.q[qi + j] * scale).mul_add(h.k[ki + j], acc)
                            })
                        } else {
                            -1e9
                        };
                    }
                    if kept == 0 && self.zero_unattended {
                        continue;
                    }
                    let top = scores.iter().copied().fold(f32::MIN, f32::max);
                    scores.iter_mut().for_each(|x| *x = (*x - top).exp());
                    let total: f32 = scores.iter().sum();
                    let oi = ((b * tn + t) * nh + head) * vd;
                    for (s, p) in scores.iter().enumerate() {
                        let vi = ((b * sn + s) * nh + head) * vd;
                        for d in 0..vd {
                            out[oi + d] = p.mul_add(h.v[vi + d], out[oi + d]);
                        }
                    }
                    out[oi..oi + vd].iter_mut().for_each(|x| *x /= total);
                }
            }
        }
        out
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Model(format!("layer '{}' (MultiHeadAttention): {msg}", self.name))
    }

    /// A Keras mask reaching the layer is the query's; Keras also applies the value's (and
    /// key's). Both are known only when they are the same tensor (self-attention).
    pub fn check_keras_mask(&self, same_source: bool) -> Result<()> {
        if same_source {
            return Ok(());
        }
        Err(self.err(
            "a Keras mask (mask_zero / Masking upstream) on a cross-attention's inputs is not supported",
        ))
    }
}

impl Layer for Attention {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let (q, v) = (&inputs[0], &inputs[1]);
        if q.len() != 3 || v.len() != 3 {
            return Err(self.err("query and value must be rank 3 ([batch, steps, features])"));
        }
        let want = [self.query.kernel.shape[0], self.value.kernel.shape[0]];
        if q[2] != Some(want[0]) || v[2] != Some(want[1]) {
            return Err(self.err(format!(
                "query/value features {:?}/{:?}, the kernels expect {}/{}",
                q[2], v[2], want[0], want[1]
            )));
        }
        Ok(vec![q[0], q[1], Some(self.output.kernel.shape[1])])
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.forward_masked(inputs, None)
    }

    fn forward_masked(&self, inputs: &[&Tensor], mask: Option<&Tensor>) -> Result<Tensor> {
        let (query, value) = (inputs[0], inputs[1]);
        let key = self.roles.key.map_or(value, |i| inputs[i]);
        if mask.is_some() {
            let same = std::ptr::eq(query, value) && std::ptr::eq(key, value);
            self.check_keras_mask(same)?;
        }
        let (batch, tn, sn) = (query.shape[0], query.shape[1], value.shape[1]);
        if key.shape[..2] != value.shape[..2] {
            return Err(self.err(format!(
                "key {:?} and value {:?} differ in batch or steps",
                key.shape, value.shape
            )));
        }
        let attention_mask = self.roles.attention_mask.map(|i| inputs[i]);
        if let Some(m) = attention_mask {
            if m.shape != [batch, tn, sn] {
                return Err(self.err(format!(
                    "attention_mask {:?} is not [batch, {tn}, {sn}]",
                    m.shape
                )));
            }
        }
        let (q, k, v) = (
            self.query.apply(&query.data),
            self.key.apply(&key.data),
            self.value.apply(&value.data),
        );
        let heads = Heads {
            q: &q,
            k: &k,
            v: &v,
            mask: attention_mask.map(|m| &m.data[..]),
            keras_mask: mask.map(|m| &m.data[..]),
            dims: (batch, tn, sn),
        };
        let context = self.attend(&heads);
        let out = self.output.apply(&context);
        Tensor::new(vec![batch, tn, self.output.kernel.shape[1]], out)
    }

    /// The query's mask is the output's, as Keras sets it.
    fn mask_rule(&self) -> super::MaskRule {
        super::MaskRule::Keep
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Attention(self))
    }
}

/// The call's keyword arguments: roles of the keyword tensors and `use_causal_mask`.
fn call_roles(ctx: &LayerCtx) -> Result<(Roles, bool)> {
    let mut roles = Roles {
        key: None,
        attention_mask: None,
    };
    let mut causal = false;
    let kwargs = ctx.kwargs();
    let map = kwargs.as_object();
    let tensors = map.map_or(0, |m| m.values().filter(|v| v.is_object()).count());
    let mut next = ctx.inputs.len().saturating_sub(tensors);
    if next == 3 {
        roles.key = Some(2);
    } else if next != 2 {
        return Err(ctx.err(format!(
            "called with {next} positional tensors; expected query, value[, key]"
        )));
    }
    for (k, v) in map.into_iter().flatten() {
        match (k.as_str(), v) {
            ("key", Value::Object(_)) => roles.key = Some(next),
            ("attention_mask", Value::Object(_)) => roles.attention_mask = Some(next),
            ("use_causal_mask", v) => causal = v.as_bool().unwrap_or(false),
            ("return_attention_scores", Value::Bool(true)) => {
                return Err(ctx.err("return_attention_scores=True is not supported"))
            }
            ("training" | "return_attention_scores", _) | (_, Value::Null) => continue,
            (other, _) => {
                return Err(ctx.err(format!("keyword argument '{other}' is not supported")))
            }
        }
        next += usize::from(v.is_object());
    }
    Ok((roles, causal))
}

pub(super) fn multi_head_attention(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let (roles, causal) = call_roles(ctx)?;
    let dim = |i: usize| -> Result<usize> {
        ctx.inputs
            .get(i)
            .and_then(|s| if s.len() == 3 { s[2] } else { None })
            .ok_or_else(|| ctx.err(format!("input {i} must be rank 3 with known features")))
    };
    let (dq, dv) = (dim(0)?, dim(1)?);
    let dk = roles.key.map_or(Ok(dv), dim)?;
    let heads = ctx.usize("num_heads")?;
    let key_dim = ctx.usize("key_dim")?;
    let value_dim = ctx.usize_or("value_dim", key_dim)?;
    match ctx.get("attention_axes") {
        None => {}
        Some(Value::Array(a)) if a.len() == 1 && matches!(a[0].as_i64(), Some(1 | -2)) => {}
        Some(other) => {
            return Err(ctx.err(format!("attention_axes {other}: only axis 1 is supported")))
        }
    }
    if ctx.bool_or("use_gate", false) {
        return Err(ctx.err("use_gate=True is not supported"));
    }
    let out_dim = match ctx.get("output_shape") {
        None => dq,
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_u64().unwrap_or(0) as usize,
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ctx.err(format!("output_shape {v}: only one dimension is supported")))?,
    };
    let hk = [heads, key_dim];
    Ok(Box::new(Attention {
        name: ctx.name.to_string(),
        heads,
        key_dim,
        value_dim,
        query: Projection::load(ctx, "query_dense", &[dq, heads, key_dim], &hk)?,
        key: Projection::load(ctx, "key_dense", &[dk, heads, key_dim], &hk)?,
        value: Projection::load(
            ctx,
            "value_dense",
            &[dv, heads, value_dim],
            &[heads, value_dim],
        )?,
        output: Projection::load(
            ctx,
            "output_dense",
            &[heads, value_dim, out_dim],
            &[out_dim],
        )?,
        causal,
        window: ctx.usize_or("sliding_window", 0)?,
        // Keras ≥ 3.10's MultiHeadAttention with dropout computes its own masked Softmax, which
        // zeroes a query that keeps no key; without dropout it calls dot_product_attention,
        // whose masked positions score a large negative number: a uniform average.
        zero_unattended: ctx.keras3
            && ctx.keras_version >= (3, 10)
            && ctx.get("dropout").and_then(Value::as_f64).unwrap_or(0.0) > 0.0,
        roles,
    }))
}
