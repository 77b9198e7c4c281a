//! Merge layers: Add, Multiply, Average, Maximum, Minimum (element-wise with broadcasting),
//! Concatenate and Dot. The five element-wise merges share one implementation.

use super::{normalize_axis, Layer, LayerCtx, Shape};
use crate::error::{Error, Result};
use crate::tensor::{strides, Tensor};
use serde_json::Value;

use super::BinaryOp as Op;

struct Elementwise {
    op: Op,
    name: String,
    mask: super::MaskRule,
}

/// How an element-wise merge treats masks, by the model's origin (see ARCHITECTURE.md, "Masks
/// through merges"): Keras 3's merge layers OR the masks when every input has one (Multiply also
/// rewrites masked values: refused); its operations on symbolic tensors (`x + y`, serialized as
/// a bare `Add` without a dtype) drop them; TF.js 4.22's mask fails wherever it is read.
fn merge_mask(ctx: &LayerCtx, op: Op) -> super::MaskRule {
    use super::MaskRule;
    if !ctx.keras3 {
        // TF.js 4.22 gives the output a mask with an extra leading axis, which fails in any
        // layer that reads it; a model whose merge output no layer reads runs: nothing to carry.
        return MaskRule::Drop;
    }
    if ctx.config.get("dtype").is_none() {
        return MaskRule::Drop;
    }
    match op {
        Op::Multiply => MaskRule::Refuse(
            "Keras 3's Multiply sets masked values to 1, which layercake does not compute",
        ),
        _ => MaskRule::Any,
    }
}

/// Broadcast two shapes (numpy rules, aligned on the right).
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let x = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let y = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (x, y) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// `t` broadcast to `shape`.
pub(crate) fn broadcast_to(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape == shape {
        return Ok(t.clone());
    }
    let n: usize = shape.iter().product();
    let mut data = vec![0.0f32; n];
    combine_broadcast(&mut data, shape, t, |_, y| y)?;
    Tensor::new(shape.to_vec(), data)
}

/// `acc[i] = f(acc[i], t[broadcast i])` over `acc` of `shape`, `t` broadcast to it (aligned on
/// the right, dimensions of 1 repeated). Runs over contiguous stretches: the trailing dimensions
/// `t` shares with `shape` are read as one slice per outer index.
pub(crate) fn combine_broadcast(
    acc: &mut [f32],
    shape: &[usize],
    t: &Tensor,
    f: impl Fn(f32, f32) -> f32 + Copy,
) -> Result<()> {
    let ok = broadcast_shape(&t.shape, shape).is_some_and(|s| s == shape);
    if !ok {
        return Err(Error::Model(format!(
            "cannot broadcast {:?} to {:?}",
            t.shape, shape
        )));
    }
    let rank = shape.len();
    let offset = rank - t.rank();
    // t's shape padded on the left with 1s to the output's rank.
    let ts: Vec<usize> = (0..rank)
        .map(|d| d.checked_sub(offset).map_or(1, |e| t.shape[e]))
        .collect();
    let shared = (0..rank).rev().take_while(|&d| ts[d] == shape[d]).count();
    let run: usize = shape[rank - shared..].iter().product();
    let src_strides = strides(&ts);
    let outer_dims = &shape[..rank - shared];
    let mut index = vec![0usize; outer_dims.len()];
    for chunk in acc.chunks_exact_mut(run.max(1)) {
        let src: usize = index
            .iter()
            .enumerate()
            .map(|(d, &i)| if ts[d] == 1 { 0 } else { i * src_strides[d] })
            .sum();
        let from = &t.data[src..src + run];
        if run == 1 {
            chunk[0] = f(chunk[0], from[0]);
        } else {
            chunk.iter_mut().zip(from).for_each(|(x, &y)| *x = f(*x, y));
        }
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < outer_dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(())
}

fn shape_err(name: &str, a: &Shape, b: &Shape) -> Error {
    Error::Model(format!(
        "layer '{name}': input shapes {a:?} and {b:?} cannot be merged"
    ))
}

impl Layer for Elementwise {
    fn mask_rule(&self) -> super::MaskRule {
        self.mask
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let mut out = inputs
            .first()
            .cloned()
            .ok_or_else(|| Error::Model(format!("layer '{}': no inputs", self.name)))?;
        for s in &inputs[1..] {
            let rank = out.len().max(s.len());
            let pad = |v: &Shape| -> Shape {
                std::iter::repeat_n(Some(1), rank - v.len())
                    .chain(v.iter().copied())
                    .collect()
            };
            let (a, b) = (pad(&out), pad(s));
            out = a
                .iter()
                .zip(&b)
                .map(|(x, y)| match (x, y) {
                    (Some(1), y) => Ok(*y),
                    (x, Some(1)) => Ok(*x),
                    (Some(x), Some(y)) if x != y => Err(shape_err(&self.name, &a, &b)),
                    (x, None) => Ok(*x),
                    (x, _) => Ok(*x),
                })
                .collect::<Result<_>>()?;
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let shape = inputs
            .iter()
            .try_fold(inputs[0].shape.clone(), |s, t| {
                broadcast_shape(&s, &t.shape)
            })
            .ok_or_else(|| {
                Error::Model(format!("layer '{}': inputs do not broadcast", self.name))
            })?;
        let mut acc = broadcast_to(inputs[0], &shape)?;
        self.merge_into(&mut acc, &inputs[1..])?;
        Ok(acc)
    }
    fn forward_in_place(&self, x: &mut Tensor, rest: &[&Tensor]) -> Option<Result<()>> {
        // Only when the first input already has the output's shape (nothing broadcasts into it).
        let fits = rest
            .iter()
            .try_fold(x.shape.clone(), |s, t| broadcast_shape(&s, &t.shape))
            .is_some_and(|s| s == x.shape);
        fits.then(|| self.merge_into(x, rest))
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Binary(self.op))
    }
}
impl Elementwise {
    /// `acc ← acc (op) rest…`, `acc` of the output's shape, the others broadcast.
    fn merge_into(&self, acc: &mut Tensor, rest: &[&Tensor]) -> Result<()> {
        let shape = acc.shape.clone();
        for t in rest {
            let a = &mut acc.data;
            match self.op {
                Op::Add | Op::Average => combine_broadcast(a, &shape, t, |x, y| x + y)?,
                Op::Multiply => combine_broadcast(a, &shape, t, |x, y| x * y)?,
                Op::Maximum => combine_broadcast(a, &shape, t, f32::max)?,
                Op::Minimum => combine_broadcast(a, &shape, t, f32::min)?,
                Op::Subtract => combine_broadcast(a, &shape, t, |x, y| x - y)?,
            }
        }
        if let Op::Average = self.op {
            let n = (rest.len() + 1) as f32;
            acc.data.iter_mut().for_each(|x| *x /= n);
        }
        Ok(())
    }
}

fn elementwise(ctx: &LayerCtx, op: Op) -> Result<Box<dyn Layer>> {
    if !ctx.constants().is_empty() {
        return with_constant(ctx, op);
    }
    Ok(Box::new(Elementwise {
        op,
        mask: merge_mask(ctx, op),
        name: ctx.name.to_string(),
    }))
}

pub(super) fn add(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    elementwise(ctx, Op::Add)
}
pub(super) fn multiply(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    elementwise(ctx, Op::Multiply)
}
pub(super) fn average(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    elementwise(ctx, Op::Average)
}
pub(super) fn maximum(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    elementwise(ctx, Op::Maximum)
}
pub(super) fn minimum(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    elementwise(ctx, Op::Minimum)
}
pub(super) fn subtract(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    if !ctx.constants().is_empty() {
        return with_constant(ctx, Op::Subtract);
    }
    Ok(Box::new(Subtract(Elementwise {
        op: Op::Subtract,
        mask: merge_mask(ctx, Op::Subtract),
        name: ctx.name.to_string(),
    })))
}

/// Keras 3's `ops.add(x, c)`, `ops.subtract`, `ops.multiply` with one number operand (what
/// `x + 3.0`, `3.0 - x`, `x * (1 / 6)` in a functional model serialize to: MobileNetV3's
/// hard-sigmoid): `x * scale + offset`, element-wise, as Rescaling computes it.
fn with_constant(ctx: &LayerCtx, op: Op) -> Result<Box<dyn Layer>> {
    let fail = |why: &str| Error::Model(format!("layer '{}' ({}): {why}", ctx.name, ctx.class));
    let (&[(position, c)], 1) = (ctx.constants(), ctx.inputs.len()) else {
        return Err(fail(&format!(
            "called on {} tensor(s) and the constants {:?}: only one tensor and one number are supported",
            ctx.inputs.len(),
            ctx.constants()
        )));
    };
    let c = c as f32;
    let (scale, offset) = match (op, position) {
        (Op::Add, _) => (1.0, c),
        (Op::Multiply, _) => (c, 0.0),
        (Op::Subtract, 0) => (-1.0, c),
        (Op::Subtract, _) => (1.0, -c),
        _ => {
            return Err(fail(
                "a constant operand is supported for Add, Subtract and Multiply only",
            ))
        }
    };
    Ok(super::reshape::scalar_affine(scale, offset))
}

/// Keras's Subtract: the element-wise merge, called with exactly two inputs (Keras raises
/// "A `Subtract` layer should be called on exactly 2 inputs" otherwise).
struct Subtract(Elementwise);

impl Subtract {
    fn arity(&self, n: usize) -> Result<()> {
        if n == 2 {
            return Ok(());
        }
        Err(Error::Model(format!(
            "layer '{}' (Subtract): needs exactly 2 inputs, got {n}",
            self.0.name
        )))
    }
}

impl Layer for Subtract {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.arity(inputs.len())?;
        self.0.output_shape(inputs)
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.arity(inputs.len())?;
        self.0.forward(inputs)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        self.0.gpu()
    }
    fn mask_rule(&self) -> super::MaskRule {
        self.0.mask
    }
}

struct Concatenate {
    axis: isize,
    name: String,
    mask: super::MaskRule,
}

impl Layer for Concatenate {
    fn mask_rule(&self) -> super::MaskRule {
        self.mask
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let rank = inputs[0].len();
        let axis = normalize_axis(self.axis, rank).ok_or_else(|| {
            Error::Model(format!(
                "layer '{}': axis {} out of range",
                self.name, self.axis
            ))
        })?;
        let mut out = inputs[0].clone();
        out[axis] = inputs.iter().map(|s| s[axis]).sum::<Option<usize>>();
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let rank = inputs[0].rank();
        let axis = normalize_axis(self.axis, rank).ok_or_else(|| {
            Error::Model(format!(
                "layer '{}': axis {} out of range",
                self.name, self.axis
            ))
        })?;
        let outer: usize = inputs[0].shape[..axis].iter().product();
        let mut shape = inputs[0].shape.clone();
        shape[axis] = inputs.iter().map(|t| t.shape[axis]).sum();
        for t in inputs {
            if t.rank() != rank
                || t.shape[..axis] != shape[..axis]
                || t.shape[axis + 1..] != shape[axis + 1..]
            {
                return Err(Error::Model(format!(
                    "layer '{}': input shape {:?} does not concatenate with {:?} on axis {axis}",
                    self.name, t.shape, inputs[0].shape
                )));
            }
        }
        let mut data = Vec::with_capacity(shape.iter().product());
        for o in 0..outer {
            for t in inputs {
                let block = t.data.len() / outer.max(1);
                data.extend_from_slice(&t.data[o * block..(o + 1) * block]);
            }
        }
        Tensor::new(shape, data)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Concat { axis: self.axis })
    }
}
pub(super) fn concatenate(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let axis = ctx.get("axis").and_then(Value::as_i64).unwrap_or(-1) as isize;
    let rank = ctx.inputs.first().map_or(0, Vec::len) as isize;
    // Along the features the masks combine (TF.js: AND, unmasked inputs all kept; Keras 3: OR,
    // which an unmasked input makes all kept); along another axis they would be concatenated.
    let mask = match (axis == -1 || axis == rank - 1, ctx.keras3) {
        (true, false) => super::MaskRule::All,
        (true, true) => super::MaskRule::Any,
        (false, _) => {
            super::MaskRule::Refuse("masks concatenated along a non-feature axis are not supported")
        }
    };
    Ok(Box::new(Concatenate {
        axis,
        mask,
        name: ctx.name.to_string(),
    }))
}

/// Dot of two rank-2 or rank-3 inputs over one axis each (batch kept), optionally L2-normalized.
struct Dot {
    axes: [usize; 2],
    normalize: bool,
    name: String,
}

fn l2_normalize(t: &Tensor, axis: usize) -> Tensor {
    let mut out = t.clone();
    let inner: usize = t.shape[axis + 1..].iter().product();
    let len = t.shape[axis];
    let outer = t.data.len() / (len * inner).max(1);
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| o * len * inner + k * inner + i;
            let sum: f64 = (0..len).map(|k| (t.data[idx(k)] as f64).powi(2)).sum();
            let norm = sum.max(1e-12).sqrt();
            for k in 0..len {
                out.data[idx(k)] = (t.data[idx(k)] as f64 / norm) as f32;
            }
        }
    }
    out
}

impl Layer for Dot {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let mut out: Shape = vec![a[0]];
        out.extend(
            a.iter()
                .enumerate()
                .skip(1)
                .filter(|(i, _)| *i != self.axes[0])
                .map(|(_, d)| *d),
        );
        out.extend(
            b.iter()
                .enumerate()
                .skip(1)
                .filter(|(i, _)| *i != self.axes[1])
                .map(|(_, d)| *d),
        );
        if out.len() == 1 {
            out.push(Some(1));
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let [a, b] = inputs else {
            return Err(Error::Model(format!(
                "layer '{}' expects two inputs",
                self.name
            )));
        };
        let (a, b) = if self.normalize {
            (l2_normalize(a, self.axes[0]), l2_normalize(b, self.axes[1]))
        } else {
            ((*a).clone(), (*b).clone())
        };
        // Move the contracted axis last in a and first (after batch) in b, then batch matmul.
        let perm_a: Vec<usize> = (0..a.rank())
            .filter(|&i| i != self.axes[0])
            .chain([self.axes[0]])
            .collect();
        let perm_b: Vec<usize> = [0, self.axes[1]]
            .into_iter()
            .chain((1..b.rank()).filter(|&i| i != self.axes[1]))
            .collect();
        let (a, b) = (a.permuted(&perm_a), b.permuted(&perm_b));
        let batch = a.shape[0];
        let k = a.shape[a.rank() - 1];
        if b.shape[1] != k {
            return Err(Error::Model(format!(
                "layer '{}': contracted dimensions differ ({k} vs {})",
                self.name, b.shape[1]
            )));
        }
        let m = a.data.len() / (batch * k).max(1);
        let n = b.data.len() / (batch * k).max(1);
        let mut data = vec![0.0; batch * m * n];
        for i in 0..batch {
            crate::cpu::matmul(
                &a.data[i * m * k..],
                &b.data[i * k * n..],
                &mut data[i * m * n..(i + 1) * m * n],
                m,
                k,
                n,
            );
        }
        let mut shape: Vec<usize> = vec![batch];
        shape.extend(&a.shape[1..a.rank() - 1]);
        shape.extend(&b.shape[2..]);
        if shape.len() == 1 {
            shape.push(1);
        }
        Tensor::new(shape, data)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::RowDot {
            normalize: self.normalize,
            axes: self.axes,
        })
    }
}

pub(super) fn dot(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    let ranks: Vec<usize> = ctx.inputs.iter().map(Vec::len).collect();
    if ranks.len() != 2 {
        return Err(ctx.err("Dot expects two inputs"));
    }
    let axis = |v: i64, rank: usize| {
        normalize_axis(v as isize, rank).ok_or_else(|| ctx.err(format!("axis {v} out of range")))
    };
    let axes = match ctx.get("axes") {
        Some(Value::Number(n)) => {
            let v = n.as_i64().unwrap_or(-1);
            [axis(v, ranks[0])?, axis(v, ranks[1])?]
        }
        Some(Value::Array(a)) if a.len() == 2 => [
            axis(a[0].as_i64().unwrap_or(-1), ranks[0])?,
            axis(a[1].as_i64().unwrap_or(-1), ranks[1])?,
        ],
        _ => return Err(ctx.err("config 'axes' must be an integer or two integers")),
    };
    if axes.contains(&0) {
        return Err(ctx.err("Dot over the batch axis is not supported"));
    }
    Ok(Box::new(Dot {
        axes,
        normalize: ctx.bool_or("normalize", false),
        name: ctx.name.to_string(),
    }))
}

/// Flat offsets (by `shape`'s row-major strides) of every multi-index over the axes `dims`, in
/// row-major order of those axes.
fn offsets(shape: &[usize], dims: &[usize]) -> Vec<usize> {
    let st = crate::tensor::strides(shape);
    let mut out = vec![0usize];
    for &d in dims {
        let (len, step) = (shape[d], st[d]);
        out = out
            .iter()
            .flat_map(|&o| (0..len).map(move |i| o + i * step))
            .collect();
    }
    out
}

/// Gather maps that turn a Dot over any ranks into row dots: row `(b, i, j)` of the first map
/// holds the indices of `a`'s contracted vector at batch `b`, position `i`; the same row of the
/// second map those of `b`'s vector at `j` (`i`, `j` run over the non-contracted axes in the
/// output's order). Returns `(rows, k, a_map, b_map)`.
pub(crate) fn dot_row_maps(
    axes: [usize; 2],
    a: &[usize],
    b: &[usize],
) -> (usize, usize, Vec<u32>, Vec<u32>) {
    let rest = |rank: usize, axis: usize| (1..rank).filter(move |&d| d != axis).collect::<Vec<_>>();
    let (sa, sb) = (crate::tensor::strides(a), crate::tensor::strides(b));
    let (ia, jb) = (
        offsets(a, &rest(a.len(), axes[0])),
        offsets(b, &rest(b.len(), axes[1])),
    );
    let (batch, k) = (a[0], a[axes[0]]);
    let rows = batch * ia.len() * jb.len();
    let (mut am, mut bm) = (Vec::with_capacity(rows * k), Vec::with_capacity(rows * k));
    for n in 0..batch {
        for &i in &ia {
            for &j in &jb {
                am.extend((0..k).map(|kk| (n * sa[0] + i + kk * sa[axes[0]]) as u32));
                bm.extend((0..k).map(|kk| (n * sb[0] + j + kk * sb[axes[1]]) as u32));
            }
        }
    }
    (rows, k, am, bm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_in_place_matches_the_copying_merge() {
        let t = |shape: Vec<usize>, k: f32| {
            let n = shape.iter().product::<usize>();
            Tensor::new(shape, (0..n).map(|i| (i as f32 * k).sin()).collect()).unwrap()
        };
        let (a, b, c) = (
            t(vec![2, 3, 4], 0.7),
            t(vec![2, 1, 4], 1.3),
            t(vec![4], 2.1),
        );
        for op in [
            Op::Add,
            Op::Average,
            Op::Multiply,
            Op::Maximum,
            Op::Minimum,
            Op::Subtract,
        ] {
            let layer = Elementwise {
                op,
                name: "m".into(),
                mask: crate::layers::MaskRule::Drop,
            };
            let copied = layer.forward(&[&a, &b, &c]).unwrap();
            let mut x = a.clone();
            layer.forward_in_place(&mut x, &[&b, &c]).unwrap().unwrap();
            assert_eq!(x.data, copied.data, "{op:?}");
        }
        // The first input smaller than the output: no in-place form.
        let layer = Elementwise {
            op: Op::Add,
            name: "m".into(),
            mask: crate::layers::MaskRule::Drop,
        };
        assert!(layer.forward_in_place(&mut b.clone(), &[&a]).is_none());
    }
}
