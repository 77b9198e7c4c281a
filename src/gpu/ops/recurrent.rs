//! Recurrent layers (recurrent.wgsl): SimpleRNN, LSTM and GRU, stacked cells and Bidirectional.
//! The input projection of every step is one matmul; then one dispatch per step (two phases in
//! one for TF.js's GRU), the states alternating between two buffers.

use super::{Arg, Primitive};
use crate::error::{Error, Result};
use crate::gpu::ids::{BinaryId, CellId};
use crate::gpu::kernels;
use crate::layers::{Activation, Bidirectional, Cell, MergeMode, Recurrent};
use crate::model::gpu::{act_id, GpuModel, Recording, Uploader};

/// recurrent.wgsl's `Params`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Uniform {
    pub(crate) batch: u32,
    pub(crate) units: u32,
    pub(crate) steps: u32,
    pub(crate) step: u32,
    pub(crate) out_step: u32,
    pub(crate) cell: u32,
    pub(crate) act: u32,
    pub(crate) gate_act: u32,
    pub(crate) has_mask: u32,
    pub(crate) _phase: u32,
    pub(crate) first: u32,
    pub(crate) out_stride: u32,
    pub(crate) col: u32,
    pub(crate) out_steps: u32,
    pub(crate) mask_reversed: u32,
    pub(crate) _pad: u32,
    /// Rows per batch entry (ConvLSTM2D's pixels; 1 otherwise).
    pub(crate) pixels: u32,
    /// The recurrent product comes precomputed in `rec` (ConvLSTM2D).
    pub(crate) precomputed: u32,
    pub(crate) _pad1: [u32; 2],
}

/// A recurrent layer's parameters on the GPU.
pub(crate) struct Cells {
    kernel: wgpu::Buffer,
    recurrent: wgpu::Buffer,
    bias: wgpu::Buffer,
    recurrent_bias: wgpu::Buffer,
    cell: CellId,
    mask_reversed: bool,
    return_state: bool,
    gates: usize,
    units: usize,
    features: usize,
    act: Activation,
    gate_act: Activation,
    return_sequences: bool,
    go_backwards: bool,
}

impl Cells {
    pub(crate) fn new(up: &Uploader, r: &Recurrent) -> Cells {
        Cells {
            kernel: up.tensor(&r.kernel),
            recurrent: up.tensor(&r.recurrent),
            bias: up.tensor(&r.bias),
            recurrent_bias: up.tensor(&r.recurrent_bias),
            cell: match r.cell {
                Cell::Simple => CellId::Simple,
                Cell::Lstm => CellId::Lstm,
                Cell::Gru { reset_after: true } => CellId::GruResetAfter,
                Cell::Gru { reset_after: false } => CellId::Gru,
            },
            gates: r.cell.gates(),
            units: r.units(),
            features: r.kernel.shape[0],
            act: r.activation,
            gate_act: r.gate_activation,
            return_sequences: r.return_sequences,
            go_backwards: r.go_backwards,
            mask_reversed: r.mask_reversed,
            return_state: r.return_state,
        }
    }

    /// States: `[h]`, or `[h, c]` for LSTM.
    fn state_count(&self) -> usize {
        if self.cell == CellId::Lstm {
            2
        } else {
            1
        }
    }
}

/// Where one direction writes its per-step outputs.
struct StepOutput<'b> {
    buffer: &'b wgpu::Buffer,
    /// Row stride (units, or 2·units for a concatenating Bidirectional).
    stride: usize,
    /// Column offset.
    col: usize,
    /// Write the output sequence reversed (the backward half of Bidirectional, whose sequence
    /// TF.js reverses back).
    reversed: bool,
}

impl<'b> StepOutput<'b> {
    fn plain(buffer: &'b wgpu::Buffer, units: usize) -> Self {
        StepOutput {
            buffer,
            stride: units,
            col: 0,
            reversed: false,
        }
    }
}

/// One recurrent layer; extra inputs are initial states, extra outputs final states.
pub(crate) struct RecurrentOp(pub(crate) Cells);

impl Primitive for RecurrentOp {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let init: Vec<&wgpu::Buffer> = ins[1..].iter().map(|i| i.0).collect();
        let finals = pass.extra.clone();
        let to = StepOutput::plain(out.0, self.0.units);
        gpu.recurrent(pass, &self.0, ins[0], &to, (&init, &finals))
    }
}

/// StackedRNNCells: each cell's output sequence is the next one's input.
pub(crate) struct Stack(pub(crate) Vec<Cells>);

impl Primitive for Stack {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let [b, t] = [ins[0].1[0], ins[0].1.get(1).copied().unwrap_or(1)];
        let mut x = (ins[0].0.clone(), ins[0].1.to_vec());
        for (i, r) in self.0.iter().enumerate() {
            let seq = if i + 1 == self.0.len() {
                out.0.clone()
            } else {
                gpu.temp("stacked cell", b * t * r.units)
            };
            let to = StepOutput::plain(&seq, r.units);
            gpu.recurrent(pass, r, (&x.0, &x.1), &to, (&[], &[]))?;
            x = (seq, vec![b, t, r.units]);
        }
        Ok(())
    }
}

/// Bidirectional: both directions into the output (concat) or into two buffers merged by one
/// binary dispatch (sum, mul, ave); with `merge_mode: None` the backward half is an extra output.
pub(crate) struct BidirectionalOp {
    forward: Cells,
    backward: Cells,
    merge: MergeMode,
}

impl BidirectionalOp {
    pub(crate) fn new(up: &Uploader, b: &Bidirectional) -> Self {
        BidirectionalOp {
            forward: Cells::new(up, &b.forward),
            backward: Cells::new(up, &b.backward),
            merge: b.merge,
        }
    }
}

impl Primitive for BidirectionalOp {
    fn encode(
        &self,
        gpu: &GpuModel<'_>,
        pass: &mut Recording,
        ins: &[Arg<'_>],
        out: Arg<'_>,
    ) -> Result<()> {
        let (fwd, merge) = (&self.forward, self.merge);
        let u = fwd.units;
        // Extra outputs: the backward half (merge_mode None), then forward and backward states.
        let mut extra = pass.extra.clone().into_iter();
        let second = (merge == MergeMode::None).then(|| extra.next()).flatten();
        let n_states = if fwd.return_state {
            fwd.state_count()
        } else {
            0
        };
        let f_states: Vec<wgpu::Buffer> = extra.by_ref().take(n_states).collect();
        let b_states: Vec<wgpu::Buffer> = extra.take(n_states).collect();
        let numel: usize = out.1.iter().product();
        let (targets, stride) = match (merge, second) {
            (MergeMode::Concat, _) => ([out.0.clone(), out.0.clone()], 2 * u),
            (MergeMode::None, Some(b)) => ([out.0.clone(), b], u),
            _ => ([gpu.temp("forward", numel), gpu.temp("backward", numel)], u),
        };
        let halves = [(fwd, &f_states), (&self.backward, &b_states)];
        for (k, (half, states)) in halves.into_iter().enumerate() {
            let to = StepOutput {
                buffer: &targets[k],
                stride,
                col: if merge == MergeMode::Concat { k * u } else { 0 },
                reversed: k == 1,
            };
            gpu.recurrent(pass, half, ins[0], &to, (&[], states))?;
        }
        let op = match merge {
            MergeMode::Concat | MergeMode::None => return Ok(()),
            MergeMode::Sum => (BinaryId::Add, 1.0),
            MergeMode::Mul => (BinaryId::Multiply, 1.0),
            MergeMode::Ave => (BinaryId::Add, 0.5),
        };
        let (a, b) = ((&targets[0], out.1), (&targets[1], out.1));
        gpu.binary_code(pass, op, a, b, out)
    }
}

/// `[b, t, features]` checked against the kernel; the batch and step counts.
fn sequence_dims(r: &Cells, shape: &[usize]) -> Result<(usize, usize)> {
    let &[b, t, f] = shape else {
        return Err(Error::Model(format!(
            "expects [batch, steps, features], got {shape:?}"
        )));
    };
    if f != r.features {
        return Err(Error::Model(format!(
            "input has {f} features, the kernel expects {}",
            r.features
        )));
    }
    if r.cell == CellId::Gru && r.units > 4096 {
        return Err(Error::Model(format!(
            "a TF.js GRU (reset_after false) of {} units: the GPU kernel keeps a row's reset gates in workgroup memory, at most 4096",
            r.units
        )));
    }
    Ok((b, t))
}

impl GpuModel<'_> {
    /// A recurrent layer over `x` (`[b, t, features]`) into `to`, from the initial states
    /// `init` (none: zeros), its final states copied into `finals`.
    fn recurrent(
        &self,
        pass: &mut Recording,
        r: &Cells,
        x: Arg<'_>,
        to: &StepOutput<'_>,
        (init, finals): (&[&wgpu::Buffer], &[wgpu::Buffer]),
    ) -> Result<()> {
        let (b, t) = sequence_dims(r, x.1)?;
        let (u, gu) = (r.units, r.gates * r.units);
        let xw = self.temp("input projection", b * t * gu);
        let dims = (b * t, r.features, gu);
        let to_xw = (&xw, &[b * t, gu][..]);
        self.matmul(
            pass,
            x.0,
            dims,
            &r.kernel,
            Some(&r.bias),
            Activation::Linear,
            to_xw,
        )?;
        let states = [self.temp("state", 2 * b * u), self.temp("state", 2 * b * u)];
        // Initial states ([h] or [h, c], each [b, u]) go into the first state buffer.
        for (k, s) in init.iter().enumerate().take(2) {
            let params = super::matmul::CopyBlock {
                rows: 1,
                cols: (b * u) as u32,
                stride: (2 * b * u) as u32,
                first: (k * b * u) as u32,
            };
            let grid = self.grid(b * u)?;
            let params = bytemuck::bytes_of(&params);
            self.dispatch(pass, kernels::COPY_BLOCK, params, &[s, &states[0]], grid)?;
        }
        let mask = pass.mask.clone();
        // Per invocation and step: up to four gates, each a units-long product; TF.js's GRU row
        // runs a unit's three products for each of its ceil(units / 64) units.
        let loops = if r.cell == CellId::Gru {
            3 * (u + 1) * u.div_ceil(64)
        } else {
            4 * (u + 1)
        };
        self.check_loops("recurrent", loops)?;
        for s in 0..t {
            let mut p = step_uniform(r, (b, t, s), to, mask.is_some());
            p.first = u32::from(s == 0 && init.is_empty());
            // TF.js's GRU takes one workgroup (64 invocations) per row; the others one
            // invocation per (row, unit).
            let grid = self.grid(if r.cell == CellId::Gru { b * 64 } else { b * u })?;
            let (state_in, state_out) = (&states[s % 2], &states[(s + 1) % 2]);
            let buffers = [
                &xw,
                &r.recurrent,
                &r.recurrent_bias,
                mask.as_ref().unwrap_or(self.dummy()),
                state_in,
                state_out,
                to.buffer,
            ];
            let p = bytemuck::bytes_of(&p);
            self.dispatch(pass, kernels::RECURRENT, p, &buffers, grid)?;
        }
        // Final states ([h; c] in the last state buffer) to the extra outputs.
        for (k, dst) in finals.iter().enumerate().take(2) {
            let map: Vec<u32> = (k * b * u..(k + 1) * b * u).map(|i| i as u32).collect();
            let map = self.upload_slice("final state", bytemuck::cast_slice(&map));
            self.gather(pass, &states[t % 2], &map, b * u, dst)?;
        }
        Ok(())
    }
}

/// The uniform of step `s` of `t` (batch `b`).
fn step_uniform(
    r: &Cells,
    (b, t, s): (usize, usize, usize),
    to: &StepOutput,
    masked: bool,
) -> Uniform {
    let step = if r.go_backwards { t - 1 - s } else { s };
    let out_step = match (r.return_sequences, to.reversed) {
        (false, _) => 0,
        (true, false) => s,
        (true, true) => t - 1 - s,
    };
    Uniform {
        batch: b as u32,
        units: r.units as u32,
        steps: t as u32,
        step: step as u32,
        out_step: out_step as u32,
        cell: r.cell as u32,
        act: act_id(r.act),
        gate_act: act_id(r.gate_act),
        has_mask: u32::from(masked),
        out_stride: to.stride as u32,
        col: to.col as u32,
        out_steps: if r.return_sequences { t as u32 } else { 1 },
        mask_reversed: u32::from(r.mask_reversed),
        pixels: 1,
        ..Uniform::default()
    }
}
