//! EinsumDense (Keras 3): `activation(einsum(equation, x, kernel) + bias)`, for equations that
//! are a contraction: every input letter is kept (free) or contracted with the kernel, every
//! kernel letter is contracted or new in the output; a leading `...` stands for the input's
//! leading axes. Computed as one product `x[free, contracted] · kernel[contracted, new]` between
//! permutations; the GPU runs the product when the permutations are identities (the common
//! `ab,bc->ac`, `abc,cd->abd`, `abc,cde->abde`, `...b,bc->...c` forms).

use super::{one, Activation, Layer, LayerCtx, Shape};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::Value;

struct EinsumDense {
    name: String,
    /// Input axes in the order `[free..., contracted...]`.
    input_perm: Vec<usize>,
    /// `[contracted, new]` (the stored kernel permuted and flattened).
    kernel: Tensor,
    /// Output axes of the `[free..., new...]` product, in the equation's output order.
    output_perm: Vec<usize>,
    /// Sizes of the new (kernel) output axes.
    new_dims: Vec<usize>,
    /// How many input axes are contracted (the last of `input_perm`).
    contracted: usize,
    /// Bias broadcast over the full output shape's trailing axes (Keras's bias shape).
    bias: Option<Tensor>,
    /// The bias as a `[new]` vector, where it broadcasts that way (GPU form).
    bias_row: Option<Tensor>,
    activation: Activation,
}

/// Letters of an equation side, `...` replaced by `elided` fresh upper-case letters.
fn letters(spec: &str, elided: usize) -> Result<Vec<char>> {
    let fresh = ('A'..='Z').take(elided);
    match spec.strip_prefix("...") {
        Some(rest) if !rest.contains('.') => Ok(fresh.chain(rest.chars()).collect()),
        None if !spec.contains('.') => Ok(spec.chars().collect()),
        _ => Err(Error::Model(format!(
            "'{spec}': only a leading '...' is supported"
        ))),
    }
}

impl Layer for EinsumDense {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let s = &inputs[0];
        let n_free = self.input_perm.len() - self.contracted;
        let mut product: Shape = self.input_perm[..n_free].iter().map(|&a| s[a]).collect();
        product.extend(self.new_dims.iter().map(|&d| Some(d)));
        Ok(self.output_perm.iter().map(|&a| product[a]).collect())
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs, &self.name)?;
        let xp = x.permuted(&self.input_perm);
        let (k, n) = (self.kernel.shape[0], self.kernel.shape[1]);
        let m = xp.data.len() / k.max(1);
        let mut y = vec![0.0; m * n];
        cpu::matmul(&xp.data, &self.kernel.data, &mut y, m, k, n);
        let n_free = self.input_perm.len() - self.contracted;
        let mut shape: Vec<usize> = xp.shape[..n_free].to_vec();
        shape.extend(&self.new_dims);
        let mut out = Tensor::new(shape, y)?.permuted(&self.output_perm);
        if let Some(b) = &self.bias {
            let full = super::merge::broadcast_to(b, &out.shape)?;
            out.data
                .iter_mut()
                .zip(&full.data)
                .for_each(|(o, b)| *o += b);
        }
        let last = *out.shape.last().unwrap_or(&1);
        self.activation.apply(&mut out.data, last);
        Ok(out)
    }

    /// The product on the GPU: a matmul, behind a gather where the input is permuted. An
    /// output permutation has no GPU form yet (the GPU then refuses the layer by name).
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        let identity = |p: &[usize]| p.iter().enumerate().all(|(i, &a)| i == a);
        if !identity(&self.output_perm) || (self.bias.is_some() && self.bias_row.is_none()) {
            return None;
        }
        let (kernel, bias, activation) = (&self.kernel, self.bias_row.as_ref(), self.activation);
        Some(if identity(&self.input_perm) {
            super::GpuForm::MatMul {
                kernel,
                bias,
                activation,
            }
        } else {
            super::GpuForm::GatherMatMul {
                map: self,
                kernel,
                bias,
                activation,
            }
        })
    }
}

impl super::GatherMap for EinsumDense {
    /// The input permuted to `[free..., contracted...]`, as `[rows, k]`.
    fn gather_map(&self, shape: &[usize]) -> Result<(Vec<usize>, Vec<u32>)> {
        let n: usize = shape.iter().product();
        let index = Tensor {
            shape: shape.to_vec(),
            data: (0..n).map(|i| i as f32).collect(),
            source: None,
        }
        .permuted(&self.input_perm);
        let k = self.kernel.shape[0];
        let map = index.data.iter().map(|&i| i as u32).collect();
        Ok((vec![n / k.max(1), k], map))
    }
}

pub(super) fn einsum_dense(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let input = ctx.input()?.clone();
    let equation = ctx
        .get("equation")
        .and_then(Value::as_str)
        .ok_or_else(|| ctx.err("config 'equation' is missing"))?;
    let fail = |why: String| ctx.err(format!("equation '{equation}': {why}"));
    let (lhs, out_spec) = equation
        .split_once("->")
        .ok_or_else(|| fail("no '->'".into()))?;
    let (in_spec, w_spec) = lhs
        .split_once(',')
        .ok_or_else(|| fail("not two operands".into()))?;
    let explicit = in_spec.trim_start_matches("...").len();
    let elided = input
        .len()
        .checked_sub(explicit)
        .ok_or_else(|| fail("more letters than input axes".into()))?;
    let (ins, ws, outs) = (
        letters(in_spec, elided).map_err(|e| fail(e.to_string()))?,
        letters(w_spec, 0).map_err(|e| fail(e.to_string()))?,
        letters(out_spec, elided).map_err(|e| fail(e.to_string()))?,
    );
    if ins.len() != input.len() || (elided > 0) != out_spec.starts_with("...") {
        return Err(fail(format!(
            "does not match the input's rank {}",
            input.len()
        )));
    }
    let dims = letter_dims(ctx, &input, &ins, &outs).map_err(fail)?;
    let dim = |c: &char| {
        dims.iter()
            .find(|(l, _)| l == c)
            .map(|(_, d)| *d)
            .unwrap_or(0)
    };
    for c in &ins {
        match (ws.contains(c), outs.contains(c)) {
            (true, true) => return Err(fail(format!("'{c}' is in the input, kernel and output"))),
            (false, false) => return Err(fail(format!("'{c}' is summed without the kernel"))),
            _ => {}
        }
    }
    if let Some(c) = ws.iter().find(|c| !ins.contains(c) && !outs.contains(c)) {
        return Err(fail(format!(
            "kernel letter '{c}' is in neither the input nor the output"
        )));
    }
    let free: Vec<char> = ins.iter().copied().filter(|c| outs.contains(c)).collect();
    let contracted: Vec<char> = ws.iter().copied().filter(|c| ins.contains(c)).collect();
    let new: Vec<char> = ws.iter().copied().filter(|c| !ins.contains(c)).collect();
    let pos = |set: &[char], c: char| set.iter().position(|&x| x == c).unwrap_or(0);
    let input_perm: Vec<usize> = free
        .iter()
        .chain(&contracted)
        .map(|&c| pos(&ins, c))
        .collect();
    let product: Vec<char> = free.iter().chain(&new).copied().collect();
    let output_perm: Vec<usize> = outs.iter().map(|&c| pos(&product, c)).collect();
    let kernel_shape: Vec<usize> = ws.iter().map(dim).collect();
    let kernel = ctx.weight("kernel", &kernel_shape)?;
    let w_perm: Vec<usize> = contracted
        .iter()
        .chain(&new)
        .map(|&c| pos(&ws, c))
        .collect();
    let k: usize = contracted.iter().map(dim).product();
    let n: usize = new.iter().map(dim).product();
    let kernel = kernel.permuted(&w_perm).reshaped(vec![k, n])?;
    let (bias, bias_row) = bias(ctx, &outs, &new, &dim)?;
    Ok(Box::new(EinsumDense {
        name: ctx.name.to_string(),
        input_perm,
        kernel,
        output_perm,
        new_dims: new.iter().map(dim).collect(),
        contracted: contracted.len(),
        bias,
        bias_row,
        activation: ctx.activation()?,
    }))
}

/// Each letter's size: input letters from the input, the others from `output_shape` (which
/// lists the output without its batch axis; a leading `...` is the input's leading axes).
fn letter_dims(
    ctx: &LayerCtx,
    input: &Shape,
    ins: &[char],
    outs: &[char],
) -> std::result::Result<Vec<(char, usize)>, String> {
    let listed: Vec<Option<usize>> = match ctx.get("output_shape") {
        Some(Value::Array(a)) => a.iter().map(|v| v.as_u64().map(|d| d as usize)).collect(),
        Some(v) => vec![v.as_u64().map(|d| d as usize)],
        None => return Err("config 'output_shape' is missing".into()),
    };
    let mut dims: Vec<(char, usize)> = Vec::new();
    for (c, d) in ins.iter().zip(input) {
        dims.push((*c, d.unwrap_or(0)));
    }
    // Output position i ≥ 1 (after the batch and any elided axes) is listed[i - 1 - elided'].
    let skip = outs.len().saturating_sub(listed.len());
    for (i, c) in outs.iter().enumerate() {
        if dims.iter().any(|(l, _)| l == c) {
            continue;
        }
        let d = i
            .checked_sub(skip)
            .and_then(|j| listed.get(j).copied().flatten())
            .ok_or_else(|| format!("the size of output axis '{c}' is not given"))?;
        dims.push((*c, d));
    }
    Ok(dims)
}

type Bias = (Option<Tensor>, Option<Tensor>);

/// Keras's bias (shape over the output from its first bias letter on, 1 where not a bias
/// letter) and, where it only spans new letters at the end, the same as a `[new]` row.
fn bias(ctx: &LayerCtx, outs: &[char], new: &[char], dim: &dyn Fn(&char) -> usize) -> Result<Bias> {
    let Some(axes) = ctx.get("bias_axes").and_then(Value::as_str) else {
        return Ok((None, None));
    };
    let first = outs
        .iter()
        .position(|c| axes.contains(*c))
        .ok_or_else(|| ctx.err(format!("bias_axes '{axes}' are not output letters")))?;
    let shape: Vec<usize> = outs[first..]
        .iter()
        .map(|c| if axes.contains(*c) { dim(c) } else { 1 })
        .collect();
    let b = ctx.weight("bias", &shape)?;
    let tail = &outs[outs.len() - new.len().min(outs.len())..];
    let row = (outs[first..].iter().all(|c| tail.contains(c)) && tail == new)
        .then(|| {
            let full: Vec<usize> = new.iter().map(dim).collect();
            let offset = new.len() - shape.len();
            let padded: Vec<usize> = (0..offset)
                .map(|_| 1)
                .chain(shape.iter().copied())
                .collect();
            let t = Tensor {
                shape: padded,
                data: b.data.clone(),
                source: None,
            };
            super::merge::broadcast_to(&t, &full).and_then(|t| {
                let n = t.data.len();
                t.reshaped(vec![n])
            })
        })
        .transpose()?;
    Ok((Some(b), row))
}
