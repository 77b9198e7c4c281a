//! Recurrent layers: SimpleRNN, GRU (TF.js's `reset_after: false` and Keras's `true`), LSTM,
//! with `return_sequences`, `go_backwards` and input masks (spec §5.4 formulas and gate order).
//!
//! The input projection `x·W (+ b)` of every step is one matrix product; the time loop then adds
//! `h·U` per step. At a masked step (mask 0) the state carries over and the step's output is
//! the previous output, as TF.js's `rnn()` does.

use super::{one, Activation, Layer, LayerCtx, Shape};
use crate::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde_json::{json, Value};

/// The recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// `h = act(x·W + b + h·U)`.
    Simple,
    /// Gates z, r, h; `reset_after` applies the reset gate after the recurrent product.
    Gru {
        /// Keras's variant (bias `[2, 3u]`).
        reset_after: bool,
    },
    /// Gates i, f, c, o.
    Lstm,
}

impl Cell {
    /// Gate blocks in the kernels' columns.
    pub fn gates(self) -> usize {
        match self {
            Cell::Simple => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm => 4,
        }
    }
}

/// A recurrent layer (also the forward and backward halves of Bidirectional).
pub struct Recurrent {
    pub(super) name: String,
    /// The cell.
    pub cell: Cell,
    /// `[in, gates·u]`.
    pub kernel: Tensor,
    /// `[u, gates·u]`.
    pub recurrent: Tensor,
    /// Input bias `[gates·u]` (zeros without `use_bias`).
    pub bias: Tensor,
    /// Recurrent bias `[gates·u]` (GRU `reset_after` only; zeros otherwise).
    pub recurrent_bias: Tensor,
    /// `activation`.
    pub activation: Activation,
    /// `recurrent_activation` (gates).
    pub gate_activation: Activation,
    /// Output every step (`[b, t, u]`) or the last (`[b, u]`).
    pub return_sequences: bool,
    /// Process the steps last to first.
    pub go_backwards: bool,
    /// Read the mask back to front (a later cell of a backwards stack, whose input sequence is
    /// already in processing order).
    pub mask_reversed: bool,
    /// Also output the final states (`[h]`, LSTM `[h, c]`).
    pub return_state: bool,
}

impl Recurrent {
    /// Units.
    pub fn units(&self) -> usize {
        self.recurrent.shape[0]
    }

    /// Run over `x` `[b, t, in]` with an optional mask `[b, t]`.
    pub fn run(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.run_with_states(x, mask, &[])?.0)
    }

    /// States of the cell: `[h]`, or `[h, c]` for LSTM.
    pub fn state_count(&self) -> usize {
        if self.cell == Cell::Lstm {
            2
        } else {
            1
        }
    }

    /// Run from the initial states `init` (`[b, u]` each; zeros when empty); returns the output
    /// and the final states.
    pub fn run_with_states(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        init: &[&Tensor],
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let [b, t, inp] = x.shape[..] else {
            return Err(Error::Model(format!(
                "layer '{}' expects [batch, steps, features], got {:?}",
                self.name, x.shape
            )));
        };
        if inp != self.kernel.shape[0] {
            return Err(Error::Model(format!(
                "layer '{}': input has {inp} features, the kernel expects {}",
                self.name, self.kernel.shape[0]
            )));
        }
        let (u, g) = (self.units(), self.cell.gates());
        let mut xw = vec![0.0f32; b * t * g * u];
        cpu::matmul(&x.data, &self.kernel.data, &mut xw, b * t, inp, g * u);
        cpu::add_bias(&mut xw, &self.bias.data);
        let state = |k: usize| -> Result<Vec<f32>> {
            match init.get(k) {
                None => Ok(vec![0.0f32; b * u]),
                Some(s) if s.shape == [b, u] => Ok(s.data.to_vec()),
                Some(s) => Err(Error::Model(format!(
                    "layer '{}': initial state {k} has shape {:?}, expected [{b}, {u}]",
                    self.name, s.shape
                ))),
            }
        };
        let (mut h, mut c) = (state(0)?, state(1)?);
        let mut outs = vec![0.0f32; b * t * u];
        for s in 0..t {
            let step = if self.go_backwards { t - 1 - s } else { s };
            let (nh, nc) = self.step(&xw, step, t, &h, &c, b);
            for r in 0..b {
                let at = if self.mask_reversed {
                    t - 1 - step
                } else {
                    step
                };
                let keep = mask.is_none_or(|m| m.data[r * t + at] != 0.0);
                if keep {
                    h[r * u..(r + 1) * u].copy_from_slice(&nh[r * u..(r + 1) * u]);
                    c[r * u..(r + 1) * u].copy_from_slice(&nc[r * u..(r + 1) * u]);
                }
                outs[(r * t + s) * u..(r * t + s + 1) * u].copy_from_slice(&h[r * u..(r + 1) * u]);
            }
        }
        let output = if self.return_sequences {
            Tensor::new(vec![b, t, u], outs)?
        } else {
            Tensor::new(vec![b, u], h.clone())?
        };
        let mut states = vec![Tensor::new(vec![b, u], h)?];
        if self.cell == Cell::Lstm {
            states.push(Tensor::new(vec![b, u], c)?);
        }
        Ok((output, states))
    }

    /// One step for every batch row: the new `(h, c)`.
    fn step(
        &self,
        xw: &[f32],
        step: usize,
        t: usize,
        h: &[f32],
        c: &[f32],
        b: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (u, g) = (self.units(), self.cell.gates());
        let mut hu = vec![0.0f32; b * g * u];
        // A step's product is small (batch rows): threads would cost more than they save.
        let threads = if b * u * g * u >= 1 << 22 {
            cpu::Threads::All
        } else {
            cpu::Threads::One
        };
        cpu::matmul_with(h, &self.recurrent.data, &mut hu, (b, u, g * u), threads);
        cpu::add_bias(&mut hu, &self.recurrent_bias.data);
        let (mut nh, mut nc) = (vec![0.0f32; b * u], c.to_vec());
        if let Cell::Gru { reset_after: false } = self.cell {
            for (r, row) in nh.chunks_mut(u).enumerate() {
                let x = &xw[(r * t + step) * g * u..][..g * u];
                let z: Vec<f32> = (0..u).map(|j| x[u + j] + hu[r * g * u + u + j]).collect();
                row.copy_from_slice(&z);
                self.gate_activation.apply(row, u); // r, finished below
            }
            self.gru_candidate(xw, step, t, h, &mut nh, &hu, b);
            return (nh, nc);
        }
        for r in 0..b {
            let x = &xw[(r * t + step) * g * u..][..g * u];
            let z = &mut hu[r * g * u..][..g * u];
            let rows = (&mut nh[r * u..][..u], &mut nc[r * u..][..u]);
            self.cell_row(x, z, &h[r * u..][..u], rows);
        }
        (nh, nc)
    }

    /// One batch row of a SimpleRNN, LSTM or GRU (`reset_after`) step: `x` the row's input
    /// projection, `z` its recurrent product (overwritten), `hp` the previous h; writes h (and c,
    /// which holds the previous c on entry).
    fn cell_row(&self, x: &[f32], z: &mut [f32], hp: &[f32], (h, c): (&mut [f32], &mut [f32])) {
        let (act, gate, u) = (self.activation, self.gate_activation, self.units());
        let add = |z: &mut [f32], x: &[f32]| z.iter_mut().zip(x).for_each(|(z, x)| *z += x);
        match self.cell {
            Cell::Simple => {
                add(z, x);
                act.apply(z, u);
                h.copy_from_slice(z);
            }
            Cell::Lstm => {
                add(z, x);
                let (ifg, rest) = z.split_at_mut(2 * u);
                let (cand, o) = rest.split_at_mut(u);
                gate.apply(ifg, u);
                act.apply(cand, u);
                gate.apply(o, u);
                for j in 0..u {
                    c[j] = ifg[u + j] * c[j] + ifg[j] * cand[j];
                }
                h.copy_from_slice(c);
                act.apply(h, u);
                h.iter_mut().zip(o.iter()).for_each(|(h, o)| *h *= o);
            }
            Cell::Gru { .. } => {
                let (zr, hr) = z.split_at_mut(2 * u);
                add(zr, &x[..2 * u]);
                gate.apply(zr, u);
                for j in 0..u {
                    hr[j] = x[2 * u + j] + zr[u + j] * hr[j];
                }
                act.apply(hr, u);
                for j in 0..u {
                    h[j] = zr[j] * hp[j] + (1.0 - zr[j]) * hr[j];
                }
            }
        }
    }

    /// GRU without `reset_after`: `nh` holds r on entry; `hh = act(xh + (r*h)·U_h)`.
    #[allow(clippy::too_many_arguments)]
    fn gru_candidate(
        &self,
        xw: &[f32],
        step: usize,
        t: usize,
        h: &[f32],
        nh: &mut [f32],
        hu: &[f32],
        b: usize,
    ) {
        let u = self.units();
        let rh: Vec<f32> = nh.iter().zip(h).map(|(r, h)| r * h).collect();
        let uh: Vec<f32> = (0..u * u)
            .map(|i| self.recurrent.data[(i / u) * 3 * u + 2 * u + i % u])
            .collect();
        let mut cand = vec![0.0f32; b * u];
        cpu::matmul(&rh, &uh, &mut cand, b, u, u);
        for r in 0..b {
            let x = &xw[(r * t + step) * 3 * u..(r * t + step + 1) * 3 * u];
            for j in 0..u {
                let zg = self.gate_activation.of(x[j] + hu[r * 3 * u + j]);
                let hh = self.activation.of(x[2 * u + j] + cand[r * u + j]);
                nh[r * u + j] = zg * h[r * u + j] + (1.0 - zg) * hh;
            }
        }
    }
}

impl Layer for Recurrent {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let x = &inputs[0];
        let u = Some(self.units());
        Ok(if self.return_sequences {
            vec![x[0], x.get(1).copied().flatten(), u]
        } else {
            vec![x[0], u]
        })
    }

    fn extra_output_shapes(&self, inputs: &[Shape]) -> Result<Vec<Shape>> {
        let state = vec![inputs[0][0], Some(self.units())];
        Ok(if self.return_state {
            vec![state; self.state_count()]
        } else {
            Vec::new()
        })
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(self.forward_all(inputs, None)?.0)
    }

    fn forward_all(
        &self,
        inputs: &[&Tensor],
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (x, init) = inputs
            .split_first()
            .ok_or_else(|| Error::Model(format!("layer '{}' has no input", self.name)))?;
        let (out, states) = self.run_with_states(x, mask, init)?;
        Ok((
            out,
            if self.return_state {
                states
            } else {
                Vec::new()
            },
        ))
    }

    fn mask_rule(&self) -> super::MaskRule {
        // TF.js passes the input mask on unchanged (not reversed for go_backwards).
        if self.return_sequences {
            super::MaskRule::Keep
        } else {
            super::MaskRule::Drop
        }
    }

    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Recurrent(self))
    }
}

/// `[b, t, …]` with the time axis reversed.
pub fn reverse_time(x: &Tensor) -> Tensor {
    let (b, t) = (x.shape[0], x.shape[1]);
    let inner = x.data.len() / (b * t).max(1);
    let mut data = Vec::with_capacity(x.data.len());
    for r in 0..b {
        for s in (0..t).rev() {
            data.extend_from_slice(&x.data[(r * t + s) * inner..(r * t + s + 1) * inner]);
        }
    }
    Tensor {
        shape: x.shape.clone(),
        data: data.into(),
        source: None,
    }
}

/// Build a recurrent layer of `class` from `ctx` (weights under `ctx.name`).
pub(super) fn build_recurrent(ctx: &LayerCtx) -> Result<Recurrent> {
    let cell = match ctx.class {
        "SimpleRNN" => Cell::Simple,
        "LSTM" => Cell::Lstm,
        // TF.js writes reset_after: false (and rejects true); Keras 3 defaults to true.
        "GRU" => Cell::Gru {
            reset_after: ctx.bool_or("reset_after", ctx.keras3()),
        },
        other => return Err(ctx.err(format!("'{other}' is not a recurrent layer"))),
    };
    let x = ctx.inputs.first().ok_or_else(|| ctx.err("has no input"))?;
    let inp = x
        .last()
        .copied()
        .flatten()
        .ok_or_else(|| ctx.err("the input's feature dimension must be known"))?;
    let u = ctx.usize("units")?;
    let gu = cell.gates() * u;
    let gate_default = if ctx.keras3() {
        "sigmoid"
    } else {
        "hard_sigmoid"
    };
    let gate_value = ctx
        .get("recurrent_activation")
        .cloned()
        .unwrap_or_else(|| gate_default.into());
    let gate_activation = match cell {
        Cell::Simple => Activation::Linear,
        _ => Activation::parse(Some(&gate_value), ctx.keras3()).map_err(|e| ctx.err(e))?,
    };
    let activation_value = ctx
        .get("activation")
        .cloned()
        .unwrap_or_else(|| "tanh".into());
    let activation =
        Activation::parse(Some(&activation_value), ctx.keras3()).map_err(|e| ctx.err(e))?;
    // The cells apply activations unit by unit; a row-wise one (softmax over the units) would
    // need the whole state row at once. Refused rather than computed element-wise (wrong).
    for (key, a) in [
        ("activation", activation),
        ("recurrent_activation", gate_activation),
    ] {
        if a.is_row_wise() {
            return Err(ctx.err(format!(
                "{key} {a:?} (a row-wise activation over the units) is not supported in recurrent cells"
            )));
        }
    }
    let zeros = || Tensor {
        shape: vec![gu],
        data: vec![0.0; gu].into(),
        source: None,
    };
    let (bias, recurrent_bias) = match (ctx.bool_or("use_bias", true), cell) {
        (false, _) => (zeros(), zeros()),
        (true, Cell::Gru { reset_after: true }) => {
            let both = ctx.weight("bias", &[2, gu])?;
            let (a, b) = both.data.split_at(gu);
            (
                Tensor {
                    shape: vec![gu],
                    data: a.to_vec().into(),
                    source: None,
                },
                Tensor {
                    shape: vec![gu],
                    data: b.to_vec().into(),
                    source: None,
                },
            )
        }
        (true, _) => (ctx.weight("bias", &[gu])?, zeros()),
    };
    Ok(Recurrent {
        name: ctx.name.to_string(),
        cell,
        kernel: ctx.weight("kernel", &[inp, gu])?,
        recurrent: ctx.weight("recurrent_kernel", &[u, gu])?,
        bias,
        recurrent_bias,
        activation,
        gate_activation,
        return_sequences: ctx.bool_or("return_sequences", false),
        go_backwards: ctx.bool_or("go_backwards", false),
        mask_reversed: false,
        return_state: ctx.bool_or("return_state", false),
    })
}

/// Recurrent cells run as one layer per time step (StackedRNNCells): each cell's output feeds
/// the next within the step, which equals running the cells one after another over the whole
/// sequence (the first in the layer's direction, the others forward over its output, already in
/// processing order).
pub struct Stack {
    name: String,
    /// The cells as layers, in order.
    pub cells: Vec<Recurrent>,
}

impl Layer for Stack {
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let last = self
            .cells
            .last()
            .ok_or_else(|| Error::Model(format!("layer '{}' has no cells", self.name)))?;
        last.output_shape(inputs)
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.forward_masked(inputs, None)
    }
    fn forward_masked(&self, inputs: &[&Tensor], mask: Option<&Tensor>) -> Result<Tensor> {
        if self.cells.iter().any(|c| c.return_state) {
            return Err(Error::Model(format!(
                "layer '{}': return_state over stacked cells is not supported",
                self.name
            )));
        }
        let mut x = one(inputs, &self.name)?.clone();
        for cell in &self.cells {
            x = cell.run(&x, mask)?;
        }
        Ok(x)
    }
    fn mask_rule(&self) -> super::MaskRule {
        self.cells
            .last()
            .map_or(super::MaskRule::Drop, Layer::mask_rule)
    }
    fn gpu(&self) -> Option<super::GpuForm<'_>> {
        Some(super::GpuForm::Stack(&self.cells))
    }
}

/// The layer class a cell class runs as.
fn cell_layer_class(cell: &str) -> Option<&'static str> {
    match cell {
        "SimpleRNNCell" => Some("SimpleRNN"),
        "GRUCell" => Some("GRU"),
        "LSTMCell" => Some("LSTM"),
        _ => None,
    }
}

/// The generic RNN layer: `cell` is one cell, or StackedRNNCells. TF.js scopes a single cell's
/// weights under the layer (`rnn/kernel`) and stacked cells under `rnn/RNNCell_<i>/…`.
pub(super) fn build_rnn(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    ctx.accept_initial_state()?;
    let cell = ctx
        .get("cell")
        .ok_or_else(|| ctx.err("config 'cell' is missing"))?;
    let class = cell.get("class_name").and_then(Value::as_str).unwrap_or("");
    let cells: Vec<&Value> = if class == "StackedRNNCells" {
        cell.get("config")
            .and_then(|c| c.get("cells"))
            .and_then(Value::as_array)
            .ok_or_else(|| ctx.err("StackedRNNCells has no 'cells' list"))?
            .iter()
            .collect()
    } else {
        vec![cell]
    };
    let go_backwards = ctx.bool_or("go_backwards", false);
    let sequences = ctx.bool_or("return_sequences", false);
    let mut built: Vec<Recurrent> = Vec::new();
    let mut shape = ctx.input()?.clone();
    for (i, c) in cells.iter().enumerate() {
        let cell_class = c.get("class_name").and_then(Value::as_str).unwrap_or("");
        let layer_class = cell_layer_class(cell_class)
            .ok_or_else(|| ctx.err(format!("cell class '{cell_class}' is not supported (SimpleRNNCell, GRUCell, LSTMCell, StackedRNNCells)")))?;
        let last = i + 1 == cells.len();
        let mut config = c.get("config").cloned().unwrap_or_else(|| json!({}));
        config["return_sequences"] = json!(sequences || !last);
        config["go_backwards"] = json!(go_backwards && i == 0);
        config["return_state"] = ctx.get("return_state").cloned().unwrap_or(json!(false));
        let name = if cells.len() == 1 {
            ctx.name.to_string()
        } else {
            format!("{}/RNNCell_{i}", ctx.name)
        };
        let h5 = ctx.h5.map(|p| {
            if cells.len() == 1 {
                p.to_string()
            } else {
                format!("{p}/cell/cells/{}", i)
            }
        });
        let inputs = [shape.clone()];
        let sub = LayerCtx {
            class: layer_class,
            name: &name,
            config: &config,
            inputs: &inputs,
            h5: h5.as_deref(),
            ..*ctx
        };
        let mut r = build_recurrent(&sub)?;
        r.mask_reversed = go_backwards && i > 0;
        shape = vec![shape[0], shape.get(1).copied().flatten(), Some(r.units())];
        built.push(r);
    }
    if built.len() == 1 {
        return Ok(Box::new(built.remove(0)));
    }
    Ok(Box::new(Stack {
        name: ctx.name.to_string(),
        cells: built,
    }))
}

pub(super) fn build(ctx: &LayerCtx) -> Result<Box<dyn Layer>> {
    ctx.accept_initial_state()?;
    Ok(Box::new(build_recurrent(ctx)?))
}
