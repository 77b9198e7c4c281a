//! Predictions on the GPU. Each layer declares its computation in the executor's primitives
//! ([`GpuForm`]); parameters are uploaded once. The first predict for an input shape plans an
//! [`Execution`]: activation buffers assigned by lifetime (a buffer whose last reader has run is
//! reused for a later output), index maps uploaded, and every dispatch recorded with its pipeline
//! and bind group. Each predict for that shape then writes the inputs, replays the dispatches in
//! one compute pass, submits once, and reads back only the outputs.

use super::Model;
use crate::error::{Error, Result};
use crate::gpu::residency::GpuWeights;
use crate::gpu::{kernels, ops, Device};
use crate::layers::{
    Activation, BinaryOp, Cell, ConvLstm, GpuForm, MaskRule, MergeMode, Recurrent,
};
use crate::tensor::{strides, Tensor};
use std::sync::{Arc, Mutex};

/// A recurrent layer's parameters on the GPU.
struct RecurrentParams {
    kernel: wgpu::Buffer,
    recurrent: wgpu::Buffer,
    bias: wgpu::Buffer,
    recurrent_bias: wgpu::Buffer,
    /// The shader's cell id (0 simple, 1 LSTM, 2 GRU reset_after, 3 GRU).
    cell: u32,
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

/// A layer's parameters on the GPU.
enum Params {
    /// A primitive with its own file under `gpu/ops/`.
    Op(Box<dyn crate::gpu::ops::Primitive>),
    Recurrent(Box<RecurrentParams>),
    Stack(Vec<RecurrentParams>),
    ConvLstm {
        layer: usize,
        kernel: wgpu::Buffer,
        recurrent: wgpu::Buffer,
        bias: wgpu::Buffer,
    },
    Bidirectional(Box<(RecurrentParams, RecurrentParams)>, MergeMode),
    MergeTime(Box<Params>),
    Identity,
    MatMul {
        kernel: Matrix,
        act: Activation,
    },
    Binary(BinaryOp),
    Permuted {
        to: Vec<usize>,
        inner: Box<Params>,
    },
    ThenRow {
        inner: Box<Params>,
        act: Activation,
    },
    RowDot {
        layer: usize,
        normalize: bool,
        axes: [usize; 2],
    },
    /// Depthwise (+ pointwise) convolution (its plan index for the map).
    /// Pooling over gathered windows (its plan index for the map).
    /// im2col gather then matmul (its plan index for the map).
    GatherMatMul {
        layer: usize,
        kernel: Matrix,
        act: Activation,
    },
}

/// A model ready to predict on one device.
pub struct GpuModel<'m> {
    model: ModelRef<'m>,
    /// Parameter bytes bound to resident weights and uploaded.
    pub param_bytes: ParamBytes,
    dev: Device,
    params: Vec<Params>,
    dummy: wgpu::Buffer,
    one: wgpu::Buffer,
    zero: wgpu::Buffer,
    /// Index maps already built and uploaded, by (layer, kind, input shape): a model predicting
    /// the same batch shape again reuses them (planned once per shape).
    maps: std::sync::Mutex<std::collections::HashMap<MapKey, UploadedMap>>,
    /// Planned executions by input shapes (at most [`MAX_EXECUTIONS`]).
    executions: Mutex<Vec<(InputShapes, Arc<Mutex<Execution>>)>>,
}

/// The shapes of a predict's inputs: the key of its planned [`Execution`].
type InputShapes = Vec<Vec<usize>>;

/// Input shapes whose executions are kept (the least recently planned is dropped first).
const MAX_EXECUTIONS: usize = 4;

/// One dispatch, ready to replay.
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    groups: (u32, u32),
}

/// The dispatches of one predict, in order (the encoding functions append to it).
#[derive(Default)]
/// The dispatches recorded for one plan, the mask of the layer being encoded, and the extra
/// output buffers of the layer being encoded.
pub(crate) struct Recording(
    Vec<Dispatch>,
    pub(crate) Option<wgpu::Buffer>,
    Vec<wgpu::Buffer>,
);

/// Everything a predict on one set of input shapes needs, planned at its first predict.
struct Execution {
    /// Activation buffers (inputs, outputs and intermediates; intermediates shared by lifetime).
    buffers: Vec<wgpu::Buffer>,
    /// The buffer each model input is written to.
    inputs: Vec<usize>,
    /// The buffer and shape of each model output.
    outputs: Vec<(usize, Vec<usize>)>,
    dispatches: Recording,
}

/// An uploaded map: its output shape (or tap count) and buffers.
pub(crate) type UploadedMap = (Vec<usize>, Vec<wgpu::Buffer>);

/// Identifies an uploaded index map: layer (or `usize::MAX` for transposes), kind, input shape.
pub(crate) type MapKey = (usize, &'static str, Vec<usize>);

/// The activation id the WGSL prelude uses (softmax kinds run as a separate pass).
/// What of `act` a matmul's epilogue applies per value: a row-wise activation (softmax) runs
/// after the whole product instead.
fn elementwise_part(act: Activation) -> Activation {
    if act.row_mode().is_some() {
        Activation::Linear
    } else {
        act
    }
}

pub(crate) fn act_id(a: Activation) -> u32 {
    match a {
        Activation::Linear
        | Activation::Softmax
        | Activation::LogSoftmax
        | Activation::Sparsemax => 0,
        Activation::Relu => 1,
        Activation::Relu6 => 2,
        Activation::Elu => 3,
        Activation::Selu => 4,
        Activation::Sigmoid => 5,
        Activation::HardSigmoid => 6,
        Activation::HardSigmoidKeras3 => 7,
        Activation::Tanh => 8,
        Activation::Softplus => 9,
        Activation::Softsign => 10,
        Activation::Swish => 11,
        Activation::Gelu => 12,
        Activation::Mish => 13,
        Activation::Exponential => 18,
        Activation::HardShrink => 19,
        Activation::HardSilu => 20,
        Activation::HardTanh => 21,
        Activation::LeakyRelu => 22,
        Activation::LogSigmoid => 23,
        Activation::SoftShrink => 24,
        Activation::SparsePlus => 25,
        Activation::SparseSigmoid => 26,
        Activation::Squareplus => 27,
        Activation::TanhShrink => 28,
        Activation::GeluNew => 29,
    }
}

/// A `[k, n]` matmul kernel (and its bias) on the GPU: one buffer, or, where it exceeds the
/// adapter's storage binding limit (128 MiB on lavapipe), blocks of columns each within it.
struct Matrix {
    k: usize,
    n: usize,
    /// `(first column, columns, kernel [k, columns], bias [columns])`.
    blocks: Vec<(usize, usize, wgpu::Buffer, Option<wgpu::Buffer>)>,
    /// Or, bound in place to a resident weight stored in chunks: `(first row, rows, kernel
    /// [rows, n])`, summed block by block; the bias with them.
    rows: Vec<(usize, usize, wgpu::Buffer)>,
    bias: Option<wgpu::Buffer>,
}

impl Matrix {
    fn new(up: &Uploader, kernel: &Tensor, bias: Option<&Tensor>) -> Matrix {
        let (k, n) = (kernel.shape[0], kernel.shape[1]);
        let limit = up.dev.limits.max_storage_buffer_binding_size as usize;
        if k * n * 4 <= limit {
            let b = bias.map(|b| up.tensor(b));
            return Matrix {
                k,
                n,
                blocks: vec![(0, n, up.tensor(kernel), b)],
                rows: Vec::new(),
                bias: None,
            };
        }
        if let Some(rows) = up.resident_rows(kernel, n) {
            return Matrix {
                k,
                n,
                blocks: Vec::new(),
                rows,
                bias: bias.map(|b| up.tensor(b)),
            };
        }
        let per_block = if k * n * 4 <= limit {
            n
        } else {
            (limit / (4 * k).max(1)).max(1)
        };
        let blocks = (0..n)
            .step_by(per_block.max(1))
            .map(|first| {
                let cols = per_block.min(n - first);
                let data: Vec<f32> = if cols == n {
                    kernel.data.to_vec()
                } else {
                    kernel
                        .data
                        .chunks(n)
                        .flat_map(|row| &row[first..first + cols])
                        .copied()
                        .collect()
                };
                let b = bias.map(|b| up.floats(&b.data[first..first + cols]));
                (first, cols, up.floats(&data), b)
            })
            .collect();
        Matrix {
            k,
            n,
            blocks,
            rows: Vec::new(),
            bias: None,
        }
    }
}

/// The bytes of a model's GPU parameters by where they come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParamBytes {
    /// Bound to the resident buffer of the stored weight they are (no copy).
    pub resident: u64,
    /// Uploaded: values derived from weights (BatchNormalization folded to scale and offset,
    /// re-laid or block-split kernels) or, without resident weights, every parameter.
    pub derived: u64,
}

/// Where a layer's GPU parameters come from. A tensor that is a stored weight (its
/// [`Tensor::source`]) binds that weight's resident buffer when the model's weights were
/// uploaded one buffer per weight ([`crate::gpu::UploadOptions::dedicated`]); anything else is
/// uploaded, and counted.
pub(crate) struct Uploader<'a> {
    dev: &'a Device,
    label: &'a str,
    resident: Option<(&'a GpuWeights, &'a crate::format::Artifacts)>,
    bytes: &'a std::cell::Cell<ParamBytes>,
}

impl Uploader<'_> {
    pub(crate) fn tensor(&self, t: &Tensor) -> wgpu::Buffer {
        match self.resident_buffer(t) {
            Some(b) => {
                let mut n = self.bytes.get();
                n.resident += b.size();
                self.bytes.set(n);
                b
            }
            None => self.floats(&t.data),
        }
    }

    pub(crate) fn floats(&self, data: &[f32]) -> wgpu::Buffer {
        let mut n = self.bytes.get();
        n.derived += 4 * data.len() as u64;
        self.bytes.set(n);
        storage(self.dev, self.label, data)
    }

    /// The adapter's storage binding limit, bytes.
    pub(crate) fn binding_limit(&self) -> usize {
        self.dev.limits.max_storage_buffer_binding_size as usize
    }

    /// The resident chunks of `t` (a `[k, n]` kernel stored in several buffers, each a whole
    /// number of rows), as `(first row, rows, buffer)`, if `t` is such a weight.
    pub(crate) fn resident_rows(
        &self,
        t: &Tensor,
        n: usize,
    ) -> Option<Vec<(usize, usize, wgpu::Buffer)>> {
        let (weights, artifacts) = self.resident?;
        let r = weights.weights.get(artifacts.find(t.source.as_deref()?)?)?;
        let row = 4 * n as u64;
        let whole = r
            .chunks
            .iter()
            .all(|c| c.offset == 0 && c.len.is_multiple_of(row));
        if r.dtype != crate::dtype::DType::Float32 || r.len != 4 * t.data.len() as u64 || !whole {
            return None;
        }
        let mut first = 0;
        let mut out = Vec::new();
        for &c in &r.chunks {
            let rows = (c.len / row) as usize;
            out.push((first, rows, weights.buffer(c).clone()));
            first += rows;
        }
        let mut b = self.bytes.get();
        b.resident += r.len;
        self.bytes.set(b);
        Some(out)
    }

    /// The resident buffer holding exactly `t`'s values, if there is one.
    fn resident_buffer(&self, t: &Tensor) -> Option<wgpu::Buffer> {
        let (weights, artifacts) = self.resident?;
        let r = weights.weights.get(artifacts.find(t.source.as_deref()?)?)?;
        if r.dtype != crate::dtype::DType::Float32 || r.len != 4 * t.data.len() as u64 {
            return None;
        }
        let [chunk] = r.chunks[..] else { return None };
        let buffer = weights.buffer(chunk);
        (chunk.offset == 0 && buffer.size() == r.len.next_multiple_of(4)).then(|| buffer.clone())
    }
}

/// The model a [`GpuModel`] runs: borrowed, or shared with a [`crate::Session`].
enum ModelRef<'m> {
    Borrowed(&'m Model),
    Shared(Arc<Model>),
}

impl std::ops::Deref for ModelRef<'_> {
    type Target = Model;
    fn deref(&self) -> &Model {
        match self {
            ModelRef::Borrowed(m) => m,
            ModelRef::Shared(m) => m,
        }
    }
}

/// A projection's buffers: kernel `[k, n]`, bias `[n]`, k, n.
pub(crate) type Projected = (wgpu::Buffer, Option<wgpu::Buffer>, usize, usize);

impl Uploader<'_> {
    /// A projection's kernel and bias (bound in place where they are weights), k, n.
    pub(crate) fn projection(&self, p: &crate::layers::attention::Projection) -> Projected {
        (
            self.tensor(&p.kernel),
            p.bias.as_ref().map(|b| self.tensor(b)),
            p.kernel.shape[0],
            p.kernel.shape[1],
        )
    }
}

fn storage(dev: &Device, label: &str, data: &[f32]) -> wgpu::Buffer {
    let bytes: &[u8] = if data.is_empty() {
        &[0; 4]
    } else {
        bytemuck::cast_slice(data)
    };
    dev.buffer_with(label, bytes, wgpu::BufferUsages::STORAGE)
}

/// Upload the parameters of layer `index` (named `name`) for its GPU form.
fn upload(up: &Uploader, index: usize, form: GpuForm<'_>) -> Params {
    match form {
        GpuForm::Identity => Params::Identity,
        GpuForm::JointSoftmax(axes) => {
            Params::Op(Box::new(ops::joint_softmax::JointSoftmax { axes }))
        }
        GpuForm::Bucketize(b) => Params::Op(Box::new(ops::bucketize::Bucketize::new(up, b))),
        GpuForm::GroupNorm(g) => {
            Params::Op(Box::new(ops::group_norm::GroupNorm::new(up, index, g)))
        }
        GpuForm::Attention(a) => Params::Op(Box::new(ops::attention::Attention::new(up, index, a))),
        GpuForm::Recurrent(r) => Params::Recurrent(Box::new(recurrent_params(up, r))),
        GpuForm::ConvLstm(l) => Params::ConvLstm {
            layer: index,
            kernel: up.tensor(&l.kernel),
            recurrent: up.tensor(&l.recurrent),
            bias: up.tensor(&l.bias),
        },
        GpuForm::Stack(cells) => {
            Params::Stack(cells.iter().map(|r| recurrent_params(up, r)).collect())
        }
        GpuForm::Bidirectional(b) => Params::Bidirectional(
            Box::new((
                recurrent_params(up, &b.forward),
                recurrent_params(up, &b.backward),
            )),
            b.merge,
        ),
        GpuForm::MergeTime(f) => Params::MergeTime(Box::new(upload(up, index, *f))),
        GpuForm::Masking(v) => Params::Op(Box::new(ops::masking::Masking(v))),
        GpuForm::CategoryEncoding { depth, count } => {
            Params::Op(Box::new(ops::category::CategoryEncoding { depth, count }))
        }
        GpuForm::MatMul {
            kernel,
            bias,
            activation,
        } => Params::MatMul {
            kernel: Matrix::new(up, kernel, bias),
            act: activation,
        },
        GpuForm::Affine {
            mul,
            add,
            axis,
            activation,
        } => Params::Op(Box::new(ops::affine::Affine::new(
            up,
            (mul, add),
            axis,
            activation,
        ))),
        GpuForm::Binary(op) => Params::Binary(op),
        GpuForm::Concat { axis } => Params::Op(Box::new(ops::concat::Concat(axis))),
        GpuForm::Parametric(p) => Params::Op(Box::new(ops::parametric::Parametric(p))),
        GpuForm::Gather => Params::Op(Box::new(ops::gather::Gather(index))),
        GpuForm::PRelu(alpha) => Params::Op(Box::new(ops::parametric::PRelu::new(up, alpha))),
        GpuForm::LayerNorm {
            group,
            eps,
            gamma,
            beta,
        } => Params::Op(Box::new(ops::layer_norm::LayerNorm::new(
            up, group, eps, gamma, beta,
        ))),
        GpuForm::WeightedGather(_) => Params::Op(Box::new(ops::gather::WeightedGather(index))),
        GpuForm::RowDot { normalize, axes } => Params::RowDot {
            layer: index,
            normalize,
            axes,
        },
        GpuForm::Embedding(table) => {
            Params::Op(Box::new(ops::embedding::Embedding::new(up, table)))
        }
        GpuForm::Permuted { to, inner } => Params::Permuted {
            to,
            inner: Box::new(upload(up, index, *inner)),
        },
        GpuForm::ThenRow { inner, activation } => Params::ThenRow {
            inner: Box::new(upload(up, index, *inner)),
            act: activation,
        },
        GpuForm::WindowReduce { max, masked, .. } => {
            Params::Op(Box::new(ops::window_reduce::WindowReduce {
                layer: index,
                max,
                masked,
            }))
        }
        GpuForm::Depthwise {
            depthwise,
            pointwise,
            bias,
            activation,
            ..
        } => Params::Op(Box::new(ops::depthwise::Depthwise::new(
            up,
            index,
            (depthwise, pointwise, bias),
            activation,
        ))),
        GpuForm::GatherMatMul {
            kernel,
            bias,
            activation,
            ..
        } => Params::GatherMatMul {
            layer: index,
            kernel: Matrix::new(up, kernel, bias),
            act: activation,
        },
    }
}

fn recurrent_params(up: &Uploader, r: &Recurrent) -> RecurrentParams {
    let buf = |t: &Tensor| up.tensor(t);
    RecurrentParams {
        kernel: buf(&r.kernel),
        recurrent: buf(&r.recurrent),
        bias: buf(&r.bias),
        recurrent_bias: buf(&r.recurrent_bias),
        cell: match r.cell {
            Cell::Simple => 0,
            Cell::Lstm => 1,
            Cell::Gru { reset_after: true } => 2,
            Cell::Gru { reset_after: false } => 3,
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

impl RecurrentParams {
    /// States: `[h]`, or `[h, c]` for LSTM.
    fn state_count(&self) -> usize {
        if self.cell == 1 {
            2
        } else {
            1
        }
    }
}

/// `form` without its [`GpuForm::Permuted`] / [`GpuForm::MergeTime`] wrappers.
fn inner(form: GpuForm<'_>) -> GpuForm<'_> {
    match form {
        GpuForm::Permuted { inner: f, .. }
        | GpuForm::MergeTime(f)
        | GpuForm::ThenRow { inner: f, .. } => inner(*f),
        f => f,
    }
}

/// The permutation moving channels (axis 1) last, and its inverse.
fn channels_last_perm(rank: usize) -> (Vec<usize>, Vec<usize>) {
    let to_last: Vec<usize> = [0].into_iter().chain(2..rank).chain([1]).collect();
    let to_first: Vec<usize> = [0, rank - 1].into_iter().chain(1..rank - 1).collect();
    (to_last, to_first)
}

/// Gather map of a transpose: output element `i` of `x.permuted(perm)` reads input `map[i]`.
fn transpose_map(shape: &[usize], perm: &[usize]) -> Vec<u32> {
    let st = strides(shape);
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut map = Vec::with_capacity(n);
    for _ in 0..n {
        map.push(
            idx.iter()
                .zip(perm)
                .map(|(&i, &p)| i * st[p])
                .sum::<usize>() as u32,
        );
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    map
}

impl<'m> GpuModel<'m> {
    /// Upload every layer's parameters. A layer without GPU kernels is an error naming it.
    pub fn new(dev: &Device, model: &'m Model) -> Result<GpuModel<'m>> {
        GpuModel::build(dev, ModelRef::Borrowed(model), None)
    }

    /// Bind every parameter that is a stored weight to its resident buffer in `weights` (the
    /// model's weights uploaded from its files, one buffer per weight), uploading only derived
    /// values: predictions then read the very buffers that are hashed and saved.
    pub fn with_weights(
        dev: &Device,
        model: &'m Model,
        weights: &GpuWeights,
    ) -> Result<GpuModel<'m>> {
        GpuModel::build(dev, ModelRef::Borrowed(model), Some(weights))
    }

    /// [`GpuModel::with_weights`] on a shared model (a [`crate::Session`] owns both).
    pub fn shared(
        dev: &Device,
        model: Arc<Model>,
        weights: &GpuWeights,
    ) -> Result<GpuModel<'static>> {
        GpuModel::build(dev, ModelRef::Shared(model), Some(weights))
    }

    fn build(
        dev: &Device,
        model: ModelRef<'m>,
        weights: Option<&GpuWeights>,
    ) -> Result<GpuModel<'m>> {
        dev.check_lost()?;
        let plan = &model.plan;
        let bytes = std::cell::Cell::new(ParamBytes::default());
        let mut params = Vec::with_capacity(plan.layers.len());
        for (index, (layer, (class, name))) in plan.layers.iter().zip(&plan.layer_info).enumerate()
        {
            let form = layer.gpu().ok_or_else(|| {
                Error::Model(format!(
                    "layer '{name}' ({class}) has no GPU kernels yet; predict with --device cpu"
                ))
            })?;
            let up = Uploader {
                dev,
                label: name,
                resident: weights.map(|w| (w, &model.artifacts)),
                bytes: &bytes,
            };
            params.push(dev.checked(
                &format!("uploading the parameters of layer '{name}'"),
                || upload(&up, index, form),
            )?);
        }
        let dummy = storage(dev, "unused", &[0.0]);
        let (one, zero) = (storage(dev, "one", &[1.0]), storage(dev, "zero", &[0.0]));
        Ok(GpuModel {
            model,
            param_bytes: bytes.get(),
            dev: dev.clone(),
            params,
            dummy,
            one,
            zero,
            maps: Default::default(),
            executions: Default::default(),
        })
    }

    /// Run the model on the GPU. Inputs in the order of [`Model::inputs`]; any batch size (each
    /// new set of input shapes is planned once, see the module docs).
    pub fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.dev.check_lost()?;
        self.model.check_inputs(inputs)?;
        let exec = self.execution(inputs)?;
        let exec = exec
            .lock()
            .map_err(|_| Error::Gpu("an earlier predict panicked".into()))?;
        let dev = &self.dev;
        for (&b, t) in exec.inputs.iter().zip(inputs) {
            if !t.data.is_empty() {
                dev.queue
                    .write_buffer(&exec.buffers[b], 0, bytemuck::cast_slice(&t.data));
            }
        }
        let mut enc = dev.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &exec.dispatches.0 {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.group, &[]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
            }
        }
        self.read_outputs(enc, &exec.buffers, &exec.outputs)
    }

    /// Device memory of the activation buffers planned for these inputs' shapes (inputs,
    /// outputs and intermediates, shared by lifetime), planning them if needed.
    pub fn activation_bytes(&self, inputs: &[Tensor]) -> Result<u64> {
        self.model.check_inputs(inputs)?;
        let exec = self.execution(inputs)?;
        let exec = exec
            .lock()
            .map_err(|_| Error::Gpu("an earlier predict panicked".into()))?;
        Ok(exec.buffers.iter().map(wgpu::Buffer::size).sum())
    }

    /// The planned execution for these inputs' shapes, planning it on first use.
    fn execution(&self, inputs: &[Tensor]) -> Result<Arc<Mutex<Execution>>> {
        let key: InputShapes = inputs.iter().map(|t| t.shape.clone()).collect();
        let mut cache = self
            .executions
            .lock()
            .map_err(|_| Error::Gpu("an earlier predict panicked".into()))?;
        if let Some((_, e)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(e.clone());
        }
        // Every buffer, uniform and bind group the plan creates is made inside the validation
        // and out-of-memory scopes: a failure is an error naming the step, never a panic.
        let planned = self
            .dev
            .checked("planning the predictions (buffers, bind groups)", || {
                self.plan(inputs)
            })??;
        let exec = Arc::new(Mutex::new(planned));
        if cache.len() >= MAX_EXECUTIONS {
            cache.remove(0);
        }
        cache.push((key, exec.clone()));
        Ok(exec)
    }

    /// Assign buffers and record every dispatch for these inputs' shapes.
    fn plan(&self, inputs: &[Tensor]) -> Result<Execution> {
        let plan = &self.model.plan;
        let shapes = self.concrete_shapes(inputs)?;
        let mut pool = BufferPool::new(&self.dev);
        let buffer_of = self.dev.checked("allocating activation buffers", || {
            pool.assign(plan, &self.params, &shapes)
        })?;
        let mut rec = Recording::default();
        // The mask (`[batch, steps]`) each slot carries, made on the GPU (see `MaskRule`).
        let mut masks: Vec<Option<wgpu::Buffer>> = vec![None; shapes.len()];
        for op in &plan.ops {
            let ins: Vec<(&wgpu::Buffer, &[usize])> = op
                .inputs
                .iter()
                .map(|&s| (&pool.buffers[buffer_of[s]], shapes[s].as_slice()))
                .collect();
            let out = (
                &pool.buffers[buffer_of[op.output]],
                shapes[op.output].as_slice(),
            );
            let (class, name) = &plan.layer_info[op.layer];
            let in_mask = op.inputs.first().and_then(|&s| masks[s].clone());
            rec.1 = in_mask.clone();
            rec.2 = op
                .extra
                .iter()
                .map(|&s| pool.buffers[buffer_of[s]].clone())
                .collect();
            let failed =
                |e: Error| Error::Model(format!("layer '{name}' ({class}) on the GPU: {e}"));
            self.encode(&mut rec, &self.params[op.layer], &ins, out)
                .map_err(failed)?;
            let rule = plan.layers[op.layer].mask_rule();
            let in_masks: Vec<Option<wgpu::Buffer>> =
                op.inputs.iter().map(|&s| masks[s].clone()).collect();
            masks[op.output] = self
                .output_mask(&mut rec, rule, ins[0], &in_masks)
                .map_err(failed)?;
        }
        Ok(Execution {
            inputs: plan.inputs.iter().map(|p| buffer_of[p.slot]).collect(),
            outputs: plan
                .outputs
                .iter()
                .map(|p| (buffer_of[p.slot], shapes[p.slot].clone()))
                .collect(),
            buffers: pool.buffers,
            dispatches: rec,
        })
    }

    /// Every slot's shape for these inputs.
    fn concrete_shapes(&self, inputs: &[Tensor]) -> Result<Vec<Vec<usize>>> {
        let plan = &self.model.plan;
        let mut shapes = vec![Vec::new(); plan.slot_shapes.len()];
        for (port, t) in plan.inputs.iter().zip(inputs) {
            shapes[port.slot] = t.shape.clone();
        }
        for op in &plan.ops {
            let ins: Vec<Vec<Option<usize>>> = op
                .inputs
                .iter()
                .map(|&s| shapes[s].iter().map(|&d| Some(d)).collect())
                .collect();
            let layer = &plan.layers[op.layer];
            let all = [layer.output_shape(&ins)?]
                .into_iter()
                .chain(layer.extra_output_shapes(&ins)?);
            for (slot, out) in [op.output].iter().chain(&op.extra).zip(all) {
                shapes[*slot] = out
                    .into_iter()
                    .map(|d| {
                        d.ok_or_else(|| {
                            Error::Model(
                                "an output dimension is unknown for concrete inputs".into(),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
            }
        }
        Ok(shapes)
    }

    pub(crate) fn dispatch(
        &self,
        pass: &mut Recording,
        kernel: kernels::Kernel,
        uniform: &[u8],
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) -> Result<()> {
        if uniform.len() != kernel.uniform_bytes as usize {
            return Err(Error::Gpu(format!(
                "internal: kernel '{}' takes a {}-byte uniform, given {} bytes",
                kernel.name,
                kernel.uniform_bytes,
                uniform.len()
            )));
        }
        let limit = self.dev.limits.max_storage_buffer_binding_size;
        if let Some(b) = buffers.iter().find(|b| b.size() > limit) {
            return Err(Error::Model(format!(
                "kernel '{}' would bind a {}-byte buffer, above this adapter's {limit}-byte storage binding limit (only Dense/convolution kernels and Embedding tables are split)",
                kernel.name,
                b.size()
            )));
        }
        let pipeline = self.dev.pipeline(kernel)?;
        let params = self
            .dev
            .buffer_with(kernel.name, uniform, wgpu::BufferUsages::UNIFORM);
        let resources: Vec<wgpu::BindingResource> = std::iter::once(params.as_entire_binding())
            .chain(buffers.iter().map(|b| b.as_entire_binding()))
            .collect();
        let group = self.dev.bind_group(&pipeline, kernel.name, &resources);
        pass.0.push(Dispatch {
            pipeline,
            group,
            groups,
        });
        Ok(())
    }

    /// Layer `layer`'s GPU form, without its permutation wrappers (what a primitive reads its
    /// configuration from).
    pub(crate) fn layer_form(&self, layer: usize) -> Result<GpuForm<'_>> {
        self.model.plan.layers[layer]
            .gpu()
            .map(inner)
            .ok_or_else(|| Error::Model("layer lost its GPU form".into()))
    }

    /// Layer `layer` of the plan.
    pub(crate) fn plan_layer(&self, layer: usize) -> &dyn crate::layers::Layer {
        self.model.plan.layers[layer].as_ref()
    }

    /// A one-value buffer bound where a kernel's optional input is absent.
    pub(crate) fn dummy(&self) -> &wgpu::Buffer {
        &self.dummy
    }

    /// `dst = activation_p(src)` (the affine kernel with a parameterized activation).
    pub(crate) fn activate(
        &self,
        pass: &mut Recording,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: usize,
        (id, param): (u32, f32),
    ) -> Result<()> {
        let u = [n as u32, 1, 1, id, param.to_bits(), 0, 0, 0];
        self.dispatch(
            pass,
            kernels::AFFINE,
            bytemuck::cast_slice(&u),
            &[src, &self.one, &self.zero, dst],
            self.grid(n)?,
        )
    }

    /// `dst[..n] = src[..n]` (the affine kernel as the identity).
    pub(crate) fn copy(
        &self,
        pass: &mut Recording,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        self.activate(pass, src, dst, n, (act_id(Activation::Linear), 0.0))
    }

    pub(crate) fn grid(&self, n: usize) -> Result<(u32, u32)> {
        let n = u32::try_from(n)
            .map_err(|_| Error::Model(format!("{n} elements exceed one dispatch")))?;
        Ok(kernels::grid_for(
            n,
            self.dev.limits.max_compute_workgroups_per_dimension,
        ))
    }

    /// `out = act(a[m×k] · kernel[k×n] + bias)` (softmax kinds as a second pass).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmul(
        &self,
        pass: &mut Recording,
        a: &wgpu::Buffer,
        (m, k, n): (usize, usize, usize),
        kernel: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        act: Activation,
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let u = [
            m as u32,
            n as u32,
            k as u32,
            act_id(act),
            u32::from(bias.is_some()),
            kernels::matmul_group_cols(m, n),
            0,
            0,
        ];
        self.dispatch(
            pass,
            kernels::MATMUL,
            bytemuck::cast_slice(&u),
            &[a, kernel, bias.unwrap_or(&self.dummy), out.0],
            kernels::matmul_groups(m, n),
        )?;
        self.softmax(pass, act, out)
    }

    /// `out = act(a[m×k] · kernel + bias)` over the kernel's column blocks: each block's product
    /// lands in a temporary and is copied into its columns of `out`; row-wise activations
    /// (softmax) run once over the assembled rows.
    fn matmul_blocks(
        &self,
        pass: &mut Recording,
        a: &wgpu::Buffer,
        m: usize,
        kernel: &Matrix,
        act: Activation,
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        if !kernel.rows.is_empty() {
            return self.matmul_rows(pass, a, m, kernel, act, out);
        }
        if let [(_, _, w, b)] = &kernel.blocks[..] {
            return self.matmul(pass, a, (m, kernel.k, kernel.n), w, b.as_ref(), act, out);
        }
        let limit = self.dev.limits.max_storage_buffer_binding_size;
        let elementwise = elementwise_part(act);
        for (first, cols, w, b) in &kernel.blocks {
            if w.size() > limit {
                return Err(Error::Model(format!(
                    "one column of a [{}, {}] kernel exceeds the {limit}-byte storage binding limit",
                    kernel.k, kernel.n
                )));
            }
            let part = self.temp("matmul column block", m * cols);
            self.matmul(
                pass,
                a,
                (m, kernel.k, *cols),
                w,
                b.as_ref(),
                elementwise,
                (&part, &[m, *cols]),
            )?;
            let u = [m as u32, *cols as u32, kernel.n as u32, *first as u32];
            self.dispatch(
                pass,
                kernels::COPY_BLOCK,
                bytemuck::cast_slice(&u),
                &[&part, out.0],
                self.grid(m * cols)?,
            )?;
        }
        self.softmax(pass, act, out)
    }

    /// `out = act(Σ_blocks a[:, rows] · kernel[rows, :] + bias)`: one matmul per resident block
    /// of kernel rows, each reading its columns of `a` and adding to the sum so far; the bias
    /// with the first block, the activation with the last.
    fn matmul_rows(
        &self,
        pass: &mut Recording,
        a: &wgpu::Buffer,
        m: usize,
        kernel: &Matrix,
        act: Activation,
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let last = kernel.rows.len() - 1;
        let elementwise = elementwise_part(act);
        for (i, (first, rows, w)) in kernel.rows.iter().enumerate() {
            let bias = kernel.bias.as_ref().filter(|_| i == 0);
            let block_act = if i == last {
                elementwise
            } else {
                Activation::Linear
            };
            let u = [
                m as u32,
                kernel.n as u32,
                *rows as u32,
                act_id(block_act),
                u32::from(bias.is_some()),
                kernels::matmul_group_cols(m, kernel.n),
                kernel.k as u32,
                *first as u32 | u32::from(i > 0) << 31,
            ];
            self.dispatch(
                pass,
                kernels::MATMUL,
                bytemuck::cast_slice(&u),
                &[a, w, bias.unwrap_or(&self.dummy), out.0],
                kernels::matmul_groups(m, kernel.n),
            )?;
        }
        self.softmax(pass, act, out)
    }

    pub(crate) fn softmax(
        &self,
        pass: &mut Recording,
        act: Activation,
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let Some(mode) = act.row_mode() else {
            return Ok(());
        };
        let cols = *out.1.last().unwrap_or(&1);
        let rows = out.1.iter().product::<usize>() / cols.max(1);
        let u = [rows as u32, cols as u32, mode, 0];
        self.dispatch(
            pass,
            kernels::SOFTMAX,
            bytemuck::cast_slice(&u),
            &[out.0],
            self.grid(rows)?,
        )
    }

    fn encode(
        &self,
        pass: &mut Recording,
        params: &Params,
        ins: &[(&wgpu::Buffer, &[usize])],
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let numel = out.1.iter().product::<usize>();
        match params {
            Params::Identity => Ok(()),
            Params::Op(op) => op.encode(self, pass, ins, out),
            Params::MatMul { kernel, act } => {
                let m = ins[0].1.iter().product::<usize>() / kernel.k.max(1);
                self.matmul_blocks(pass, ins[0].0, m, kernel, *act, out)
            }
            Params::RowDot {
                layer,
                normalize,
                axes,
            } => self.row_dot(pass, *layer, *normalize, *axes, ins, out.0),
            Params::Recurrent(r) => {
                let to = StepOutput {
                    buffer: out.0,
                    stride: r.units,
                    col: 0,
                    reversed: false,
                };
                let init: Vec<&wgpu::Buffer> = ins[1..].iter().map(|i| i.0).collect();
                let finals = pass.2.clone();
                self.recurrent(pass, r, ins[0], &to, (&init, &finals))
            }
            Params::ConvLstm {
                layer,
                kernel,
                recurrent,
                bias,
            } => {
                let Some(GpuForm::ConvLstm(l)) = self.model.plan.layers[*layer].gpu() else {
                    return Err(Error::Model("layer lost its GPU form".into()));
                };
                self.conv_lstm(pass, *layer, l, (kernel, recurrent, bias), ins[0], out.0)
            }
            Params::Stack(cells) => {
                let [b, t] = [ins[0].1[0], ins[0].1.get(1).copied().unwrap_or(1)];
                let mut x = (ins[0].0.clone(), ins[0].1.to_vec());
                for (i, r) in cells.iter().enumerate() {
                    let last = i + 1 == cells.len();
                    let seq = if last {
                        out.0.clone()
                    } else {
                        self.temp("stacked cell", b * t * r.units)
                    };
                    let to = StepOutput {
                        buffer: &seq,
                        stride: r.units,
                        col: 0,
                        reversed: false,
                    };
                    self.recurrent(pass, r, (&x.0, &x.1), &to, (&[], &[]))?;
                    x = (seq, vec![b, t, r.units]);
                }
                Ok(())
            }
            Params::Bidirectional(halves, merge) => {
                self.bidirectional(pass, halves, *merge, ins[0], out)
            }
            Params::MergeTime(inner) => {
                let merged = |s: &[usize]| -> Vec<usize> {
                    [s[0] * s.get(1).copied().unwrap_or(1)]
                        .into_iter()
                        .chain(s.iter().skip(2).copied())
                        .collect()
                };
                let (i_shape, o_shape) = (merged(ins[0].1), merged(out.1));
                self.encode(pass, inner, &[(ins[0].0, &i_shape)], (out.0, &o_shape))
            }
            Params::Permuted { to, inner } => {
                let rank = ins[0].1.len();
                // An empty permutation means channels_first: channels (axis 1) moved last.
                let to = if to.is_empty() {
                    channels_last_perm(rank).0
                } else {
                    to.clone()
                };
                let in_p: Vec<usize> = to.iter().map(|&p| ins[0].1[p]).collect();
                let temp = |n: usize| {
                    self.dev.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("permuted"),
                        size: (n * 4).max(4) as u64,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    })
                };
                let x = temp(in_p.iter().product());
                let (_, t) = self.transpose(ins[0].1, &to)?;
                self.gather(pass, ins[0].0, &t, in_p.iter().product(), &x)?;
                if out.1.len() != rank {
                    // Rank-changing inner forms (global pooling) leave nothing to move back.
                    return self.encode(pass, inner, &[(&x, &in_p)], out);
                }
                let out_p: Vec<usize> = to.iter().map(|&p| out.1[p]).collect();
                let y = temp(numel);
                self.encode(pass, inner, &[(&x, &in_p)], (&y, &out_p))?;
                let mut back = vec![0; rank];
                for (i, &p) in to.iter().enumerate() {
                    back[p] = i;
                }
                let (_, t) = self.transpose(&out_p, &back)?;
                self.gather(pass, &y, &t, numel, out.0)
            }
            Params::ThenRow { inner, act } => {
                self.encode(pass, inner, ins, out)?;
                self.softmax(pass, *act, out)
            }
            Params::Binary(op) => self.binary(pass, *op, ins, out),
            Params::GatherMatMul { layer, kernel, act } => {
                let Some(GpuForm::GatherMatMul { map, .. }) =
                    self.model.plan.layers[*layer].gpu().map(inner)
                else {
                    return Err(Error::Model("layer lost its GPU form".into()));
                };
                let (shape, index) =
                    self.index_map(*layer, "im2col", ins[0].1, || map.gather_map(ins[0].1))?;
                let cols = self.dev.checked("allocating an im2col buffer", || {
                    self.dev.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("im2col"),
                        size: (shape.iter().product::<usize>() * 4).max(4) as u64,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    })
                })?;
                self.gather(pass, ins[0].0, &index, shape.iter().product(), &cols)?;
                self.matmul_blocks(pass, &cols, shape[0], kernel, *act, out)
            }
        }
    }

    /// Upload `u32`/`f32` data as a read-only storage buffer.
    pub(crate) fn upload_slice(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        let contents = if bytes.is_empty() {
            &[0u8; 4][..]
        } else {
            bytes
        };
        self.dev
            .buffer_with(label, contents, wgpu::BufferUsages::STORAGE)
    }

    /// The uploaded index map `key`, built by `build` (shape, buffers) the first time.
    pub(crate) fn cached(
        &self,
        key: MapKey,
        build: impl FnOnce() -> Result<UploadedMap>,
    ) -> Result<UploadedMap> {
        if let Some(hit) = self.maps.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let value = build()?;
        if let Ok(mut m) = self.maps.lock() {
            m.insert(key, value.clone());
        }
        Ok(value)
    }

    /// A gather map of one layer for an input shape, uploaded once.
    pub(crate) fn index_map(
        &self,
        layer: usize,
        kind: &'static str,
        shape: &[usize],
        build: impl FnOnce() -> Result<(Vec<usize>, Vec<u32>)>,
    ) -> Result<(Vec<usize>, wgpu::Buffer)> {
        let (shape, mut buffers) = self.cached((layer, kind, shape.to_vec()), || {
            let (out, map) = build()?;
            Ok((
                out,
                vec![self.upload_slice(kind, bytemuck::cast_slice(&map))],
            ))
        })?;
        Ok((shape, buffers.remove(0)))
    }

    /// The uploaded gather map of `x.permuted(perm)` for `x` of `shape`.
    fn transpose(&self, shape: &[usize], perm: &[usize]) -> Result<(Vec<usize>, wgpu::Buffer)> {
        let key: Vec<usize> = shape
            .iter()
            .copied()
            .chain([usize::MAX])
            .chain(perm.iter().copied())
            .collect();
        self.index_map(usize::MAX, "transpose", &key, || {
            Ok((
                perm.iter().map(|&p| shape[p]).collect(),
                transpose_map(shape, perm),
            ))
        })
    }

    /// A scratch storage buffer of `n` floats (kept alive by the bind groups that use it).
    pub(crate) fn temp(&self, label: &str, n: usize) -> wgpu::Buffer {
        self.dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (n * 4).max(4) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    }

    /// One [`kernels::MASK`] dispatch over `n` rows or elements.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mask_kernel(
        &self,
        pass: &mut Recording,
        mode: u32,
        value: f32,
        (x, features): (&wgpu::Buffer, usize),
        mask_in: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        let u = [n as u32, features.max(1) as u32, mode, value.to_bits()];
        self.elementwise(pass, kernels::MASK, u, &[x, mask_in, dst], n)
    }

    /// A dispatch of an element-wise kernel over `n` items with a four-word uniform.
    fn elementwise(
        &self,
        pass: &mut Recording,
        kernel: kernels::Kernel,
        params: [u32; 4],
        buffers: &[&wgpu::Buffer],
        n: usize,
    ) -> Result<()> {
        let grid = self.grid(n)?;
        self.dispatch(pass, kernel, bytemuck::cast_slice(&params), buffers, grid)
    }

    /// The output mask of a layer with `rule` whose first input is `x`, carrying `mask`.
    fn output_mask(
        &self,
        pass: &mut Recording,
        rule: MaskRule,
        x: (&wgpu::Buffer, &[usize]),
        masks: &[Option<wgpu::Buffer>],
    ) -> Result<Option<wgpu::Buffer>> {
        let n: usize = x.1.iter().product();
        let mask = masks.first().cloned().flatten();
        let present: Vec<&wgpu::Buffer> = masks.iter().flatten().collect();
        // Masks are [batch, steps]: one value per row of features.
        let rows = [n / x.1.last().copied().unwrap_or(1).max(1)];
        let mut fold = |code: u32| -> Result<Option<wgpu::Buffer>> {
            let Some((first, rest)) = present.split_first() else {
                return Ok(None);
            };
            let mut acc = (*first).clone();
            for m in rest {
                let out = self.temp("mask", rows[0]);
                self.binary_code(pass, code, 1.0, (&acc, &rows), (m, &rows), &out, &rows)?;
                acc = out;
            }
            Ok(Some(acc))
        };
        let (mode, value, features) = match rule {
            MaskRule::Drop => return Ok(None),
            MaskRule::Keep => return Ok(mask),
            MaskRule::All => return fold(3),
            MaskRule::Any if present.len() == masks.len() => return fold(2),
            MaskRule::Any => return Ok(None),
            MaskRule::Refuse(why) if !present.is_empty() => {
                return Err(Error::Model(format!("a Keras mask reaches it: {why}")))
            }
            MaskRule::Refuse(_) => return Ok(None),
            MaskRule::Ids => (0, 0.0, 1),
            MaskRule::Features(v) => (1, v, *x.1.last().unwrap_or(&1)),
        };
        let rows = n / features.max(1);
        let out = self.temp("mask", rows);
        self.mask_kernel(pass, mode, value, (x.0, features), &self.dummy, &out, rows)?;
        Ok(Some(out))
    }

    /// A recurrent layer over `x` (`[b, t, features]`): the input projection as one matmul, then
    /// one dispatch per step (two for TF.js's GRU), states alternating between two buffers.
    fn recurrent(
        &self,
        pass: &mut Recording,
        r: &RecurrentParams,
        x: (&wgpu::Buffer, &[usize]),
        to: &StepOutput<'_>,
        (init, finals): (&[&wgpu::Buffer], &[wgpu::Buffer]),
    ) -> Result<()> {
        let &[b, t, f] = x.1 else {
            return Err(Error::Model(format!(
                "expects [batch, steps, features], got {:?}",
                x.1
            )));
        };
        if f != r.features {
            return Err(Error::Model(format!(
                "input has {f} features, the kernel expects {}",
                r.features
            )));
        }
        let (u, gu) = (r.units, r.gates * r.units);
        if r.cell == 3 && u > 4096 {
            return Err(Error::Model(format!(
                "a TF.js GRU (reset_after false) of {u} units: the GPU kernel keeps a row's reset gates in workgroup memory, at most 4096"
            )));
        }
        let xw = self.temp("input projection", b * t * gu);
        self.matmul(
            pass,
            x.0,
            (b * t, f, gu),
            &r.kernel,
            Some(&r.bias),
            Activation::Linear,
            (&xw, &[b * t, gu]),
        )?;
        let states = [self.temp("state", 2 * b * u), self.temp("state", 2 * b * u)];
        // Initial states ([h] or [h, c], each [b, u]) go into the first state buffer.
        for (k, s) in init.iter().enumerate().take(2) {
            let params = [1u32, (b * u) as u32, (2 * b * u) as u32, (k * b * u) as u32];
            let grid = self.grid(b * u)?;
            self.dispatch(
                pass,
                kernels::COPY_BLOCK,
                bytemuck::cast_slice(&params),
                &[s, &states[0]],
                grid,
            )?;
        }
        let mask = pass.1.clone();
        let out_steps = if r.return_sequences { t } else { 1 };
        for s in 0..t {
            let step = if r.go_backwards { t - 1 - s } else { s };
            let out_step = match (r.return_sequences, to.reversed) {
                (false, _) => 0,
                (true, false) => s,
                (true, true) => t - 1 - s,
            };
            let u32s = [
                b as u32,
                u as u32,
                t as u32,
                step as u32,
                out_step as u32,
                r.cell,
                act_id(r.act),
                act_id(r.gate_act),
                u32::from(mask.is_some()),
                0,
                u32::from(s == 0 && init.is_empty()),
                to.stride as u32,
                to.col as u32,
                out_steps as u32,
                u32::from(r.mask_reversed),
                0,
                1,
                0,
                0,
                0,
            ];
            let (state_in, state_out) = (&states[s % 2], &states[(s + 1) % 2]);
            // TF.js's GRU takes one workgroup (64 invocations) per row; the others one
            // invocation per (row, unit).
            let grid = self.grid(if r.cell == 3 { b * 64 } else { b * u })?;
            self.dispatch(
                pass,
                kernels::RECURRENT,
                bytemuck::cast_slice(&u32s),
                &[
                    &xw,
                    &r.recurrent,
                    &r.recurrent_bias,
                    mask.as_ref().unwrap_or(&self.dummy),
                    state_in,
                    state_out,
                    to.buffer,
                ],
                grid,
            )?;
        }
        // Final states ([h; c] in the last state buffer) to the extra outputs.
        for (k, dst) in finals.iter().enumerate().take(2) {
            let map: Vec<u32> = (k * b * u..(k + 1) * b * u).map(|i| i as u32).collect();
            let map = self.upload_slice("final state", bytemuck::cast_slice(&map));
            self.gather(pass, &states[t % 2], &map, b * u, dst)?;
        }
        Ok(())
    }

    /// ConvLSTM2D: the input convolution of every step as one im2col product, then per step an
    /// im2col product of h with the recurrent kernel and the LSTM gates (the recurrent shader
    /// with its product precomputed, every pixel a row).
    fn conv_lstm(
        &self,
        pass: &mut Recording,
        layer: usize,
        l: &ConvLstm,
        (kernel, recurrent, bias): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
        x: (&wgpu::Buffer, &[usize]),
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let &[b, t, h, w, cin] = x.1 else {
            return Err(Error::Model(format!(
                "expects [batch, steps, height, width, channels], got {:?}",
                x.1
            )));
        };
        let f = l.filters;
        let g4 = 4 * f;
        let (in_shape, in_map) = self.index_map(layer, "convlstm input", x.1, || {
            Ok(l.input_map(b * t, h, w, cin))
        })?;
        let (rows, kk, oh, ow) = (in_shape[0], in_shape[1], in_shape[2], in_shape[3]);
        let p = oh * ow;
        let cols = self.temp("convlstm im2col", rows * kk);
        self.gather(pass, x.0, &in_map, rows * kk, &cols)?;
        let xw = self.temp("convlstm input projection", rows * g4);
        self.matmul(
            pass,
            &cols,
            (rows, kk, g4),
            kernel,
            Some(bias),
            Activation::Linear,
            (&xw, &[rows, g4]),
        )?;
        let (h_shape, h_map) = self.index_map(layer, "convlstm state", &[b, oh, ow, f], || {
            Ok(l.state_map(b, oh, ow))
        })?;
        let rk = h_shape[1];
        let h_cols = self.temp("convlstm state im2col", b * p * rk);
        let hu = self.temp("convlstm recurrent", b * p * g4);
        let states = [
            self.temp("state", 2 * b * p * f),
            self.temp("state", 2 * b * p * f),
        ];
        let out_steps = if l.return_sequences { t } else { 1 };
        for s in 0..t {
            let (state_in, state_out) = (&states[s % 2], &states[(s + 1) % 2]);
            if s > 0 {
                self.gather(pass, state_in, &h_map, b * p * rk, &h_cols)?;
                self.matmul(
                    pass,
                    &h_cols,
                    (b * p, rk, g4),
                    recurrent,
                    None,
                    Activation::Linear,
                    (&hu, &[b * p, g4]),
                )?;
            }
            let step = if l.go_backwards { t - 1 - s } else { s };
            let out_step = if l.return_sequences { s } else { 0 };
            let u32s = [
                (b * p) as u32,
                f as u32,
                t as u32,
                step as u32,
                out_step as u32,
                1,
                act_id(l.activation),
                act_id(l.gate_activation),
                0,
                1,
                u32::from(s == 0),
                f as u32,
                0,
                out_steps as u32,
                0,
                0,
                p as u32,
                1,
                0,
                0,
            ];
            let grid = self.grid(b * p * f)?;
            self.dispatch(
                pass,
                kernels::RECURRENT,
                bytemuck::cast_slice(&u32s),
                &[&xw, &hu, &self.dummy, &self.dummy, state_in, state_out, out],
                grid,
            )?;
        }
        Ok(())
    }

    /// Bidirectional: both directions into the output (concat) or into two buffers merged by
    /// one binary dispatch (sum, mul, ave).
    fn bidirectional(
        &self,
        pass: &mut Recording,
        halves: &(RecurrentParams, RecurrentParams),
        merge: MergeMode,
        x: (&wgpu::Buffer, &[usize]),
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let (fwd, bwd) = halves;
        let u = fwd.units;
        // Extra outputs: the backward half (merge_mode None), then forward and backward states.
        let mut extra = pass.2.clone().into_iter();
        let second = if merge == MergeMode::None {
            extra.next()
        } else {
            None
        };
        let n_states = if fwd.return_state {
            fwd.state_count()
        } else {
            0
        };
        let f_states: Vec<wgpu::Buffer> = extra.by_ref().take(n_states).collect();
        let b_states: Vec<wgpu::Buffer> = extra.take(n_states).collect();
        let numel: usize = out.1.iter().product();
        let parts: [wgpu::Buffer; 2];
        let (targets, stride) = match (merge, &second) {
            (MergeMode::Concat, _) => ([out.0.clone(), out.0.clone()], 2 * u),
            (MergeMode::None, Some(b)) => ([out.0.clone(), b.clone()], u),
            _ => {
                parts = [self.temp("forward", numel), self.temp("backward", numel)];
                (parts.clone(), u)
            }
        };
        for (k, (half, states)) in [(fwd, &f_states), (bwd, &b_states)].into_iter().enumerate() {
            let to = StepOutput {
                buffer: &targets[k],
                stride,
                col: if merge == MergeMode::Concat { k * u } else { 0 },
                reversed: k == 1,
            };
            self.recurrent(pass, half, x, &to, (&[], states))?;
        }
        let (code, scale) = match merge {
            MergeMode::Concat | MergeMode::None => return Ok(()),
            MergeMode::Sum => (0, 1.0),
            MergeMode::Mul => (1, 1.0),
            MergeMode::Ave => (0, 0.5),
        };
        self.binary_code(
            pass,
            code,
            scale,
            (&targets[0], out.1),
            (&targets[1], out.1),
            out.0,
            out.1,
        )
    }

    /// Keras Dot: rank-2 inputs directly, others after gathering each output element's two
    /// contracted vectors into rows.
    fn row_dot(
        &self,
        pass: &mut Recording,
        layer: usize,
        normalize: bool,
        axes: [usize; 2],
        ins: &[(&wgpu::Buffer, &[usize])],
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let (a, b) = (ins[0], ins[1]);
        let (rows, k, gathered);
        let (x, y) = if a.1.len() == 2 && b.1.len() == 2 {
            (rows, k) = (a.1[0], a.1[1]);
            (a.0, b.0)
        } else {
            let key: Vec<usize> =
                a.1.iter()
                    .chain([&usize::MAX])
                    .chain(b.1)
                    .copied()
                    .collect();
            let (shape, maps) = self.cached((layer, "dot", key), || {
                let (rows, k, am, bm) = crate::layers::dot_row_maps(axes, a.1, b.1);
                let up = |m: &[u32]| self.upload_slice("dot", bytemuck::cast_slice(m));
                Ok((vec![rows, k], vec![up(&am), up(&bm)]))
            })?;
            (rows, k) = (shape[0], shape[1]);
            let temp = |label| {
                self.dev.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: (rows * k * 4).max(4) as u64,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            };
            gathered = [temp("dot rows a"), temp("dot rows b")];
            self.gather(pass, a.0, &maps[0], rows * k, &gathered[0])?;
            self.gather(pass, b.0, &maps[1], rows * k, &gathered[1])?;
            (&gathered[0], &gathered[1])
        };
        let u = [rows as u32, k as u32, u32::from(normalize), 0];
        self.dispatch(
            pass,
            kernels::ROW_DOT,
            bytemuck::cast_slice(&u),
            &[x, y, out],
            self.grid(rows)?,
        )
    }

    pub(crate) fn gather(
        &self,
        pass: &mut Recording,
        src: &wgpu::Buffer,
        index: &wgpu::Buffer,
        n: usize,
        dst: &wgpu::Buffer,
    ) -> Result<()> {
        self.elementwise(
            pass,
            kernels::GATHER,
            [n as u32, 0, 0, 0],
            &[src, index, dst],
            n,
        )
    }

    /// n-ary merge as a chain of binary dispatches (`b` broadcast by strides).
    fn binary(
        &self,
        pass: &mut Recording,
        op: BinaryOp,
        ins: &[(&wgpu::Buffer, &[usize])],
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let numel = out.1.iter().product::<usize>();
        let code = match op {
            BinaryOp::Add | BinaryOp::Average => 0u32,
            BinaryOp::Multiply => 1,
            BinaryOp::Maximum => 2,
            BinaryOp::Minimum => 3,
            BinaryOp::Subtract => 5,
        };
        // Intermediate sums alternate between (at most) two temporaries: `acc` is read from one
        // while the next is written into the other.
        let temps = (0..2.min(ins.len().saturating_sub(2)))
            .map(|_| {
                self.dev.checked("allocating a merge temporary", || {
                    self.dev.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("merge"),
                        size: (numel * 4).max(4) as u64,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    })
                })
            })
            .collect::<Result<Vec<wgpu::Buffer>>>()?;
        let mut acc = ins[0];
        for (j, b) in ins.iter().enumerate().skip(1) {
            // The full-shape operand goes first; only the second one may broadcast. Swapping
            // the operands of a subtraction turns it into the reversed one.
            let swap = acc.1 != out.1;
            let (x, y) = if swap { (*b, acc) } else { (acc, *b) };
            if x.1 != out.1 {
                return Err(Error::Model(
                    "both operands broadcast; not supported on the GPU yet".into(),
                ));
            }
            let code = if swap && code == 5 { 6 } else { code };
            let last = j == ins.len() - 1;
            let dst: &wgpu::Buffer = if last { out.0 } else { &temps[(j - 1) % 2] };
            let scale = if last && op == BinaryOp::Average {
                1.0 / ins.len() as f32
            } else {
                1.0
            };
            self.binary_code(pass, code, scale, x, y, dst, out.1)?;
            acc = (dst, out.1);
        }
        Ok(())
    }

    /// One binary dispatch: `dst = (x op y) * scale`, `x` of the output's shape, `y` broadcast
    /// (aligned on the right; a dimension of 1 repeats).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn binary_code(
        &self,
        pass: &mut Recording,
        code: u32,
        scale: f32,
        x: (&wgpu::Buffer, &[usize]),
        y: (&wgpu::Buffer, &[usize]),
        dst: &wgpu::Buffer,
        shape: &[usize],
    ) -> Result<()> {
        let rank = shape.len();
        if rank > 6 {
            return Err(Error::Model(
                "merges above rank 6 are not supported on the GPU".into(),
            ));
        }
        let numel = shape.iter().product::<usize>();
        let mut u = [0u32; 20];
        u[0] = numel as u32;
        u[1] = code;
        u[2] = rank as u32;
        u[3] = scale.to_bits();
        let ys = strides(y.1);
        for d in 0..rank {
            u[4 + d] = shape[d] as u32;
            u[12 + d] = match (d + y.1.len()).checked_sub(rank) {
                Some(yd) if y.1[yd] == shape[d] => ys[yd] as u32,
                _ => 0,
            };
        }
        self.dispatch(
            pass,
            kernels::BINARY,
            bytemuck::cast_slice(&u),
            &[x.0, y.0, dst],
            self.grid(numel)?,
        )
    }

    /// Copy the outputs into one staging buffer, submit everything once, map, wait, split.
    fn read_outputs(
        &self,
        mut enc: wgpu::CommandEncoder,
        buffers: &[wgpu::Buffer],
        outputs: &[(usize, Vec<usize>)],
    ) -> Result<Vec<Tensor>> {
        let dev = &self.dev;
        let sizes: Vec<u64> = outputs
            .iter()
            .map(|(_, s)| (s.iter().product::<usize>() * 4).max(4) as u64)
            .collect();
        let total: u64 = sizes.iter().sum();
        let staging = dev.checked("allocating the output readback buffer", || {
            dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("outputs"),
                size: total,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut at = 0;
        for ((b, _), &size) in outputs.iter().zip(&sizes) {
            enc.copy_buffer_to_buffer(&buffers[*b], 0, &staging, at, size);
            at += size;
        }
        dev.checked("running the model on the GPU", || {
            dev.queue.submit([enc.finish()])
        })?;
        let view = dev.map_read("the outputs", &[(&staging, total)])?.remove(0);
        let mut at = 0usize;
        let mut result = Vec::with_capacity(outputs.len());
        for ((_, shape), &size) in outputs.iter().zip(&sizes) {
            let n = shape.iter().product::<usize>();
            let data: Vec<f32> = bytemuck::pod_collect_to_vec(&view[at..at + n * 4]);
            result.push(Tensor::new(shape.clone(), data)?);
            at += size as usize;
        }
        drop(view);
        staging.unmap();
        Ok(result)
    }
}

/// Activation buffers for one execution, reused by lifetime: once the last op reading a buffer
/// has been recorded, the buffer goes back to the pool and the smallest pooled buffer large
/// enough serves a later output. Inputs and outputs are never shared.
struct BufferPool<'d> {
    dev: &'d Device,
    buffers: Vec<wgpu::Buffer>,
    free: Vec<usize>,
}

impl<'d> BufferPool<'d> {
    fn new(dev: &'d Device) -> Self {
        BufferPool {
            dev,
            buffers: Vec::new(),
            free: Vec::new(),
        }
    }

    /// The buffer of every slot.
    fn assign(
        &mut self,
        plan: &super::graph::Plan,
        params: &[Params],
        shapes: &[Vec<usize>],
    ) -> Vec<usize> {
        const PINNED: usize = usize::MAX / 2;
        let mut readers = vec![0usize; shapes.len()];
        plan.ops
            .iter()
            .flat_map(|op| &op.inputs)
            .for_each(|&s| readers[s] += 1);
        plan.inputs
            .iter()
            .chain(&plan.outputs)
            .for_each(|p| readers[p.slot] = PINNED);
        let mut buffer_of = vec![usize::MAX; shapes.len()];
        let mut pending = Vec::new(); // readers left per buffer
        for p in &plan.inputs {
            buffer_of[p.slot] = self.fresh(bytes_of(&shapes[p.slot]));
            pending.push(PINNED);
        }
        for op in &plan.ops {
            let b = if let Params::Identity = params[op.layer] {
                buffer_of[op.inputs[0]]
            } else {
                self.take(bytes_of(&shapes[op.output]))
            };
            buffer_of[op.output] = b;
            pending.resize(self.buffers.len(), 0);
            pending[b] = pending[b].saturating_add(readers[op.output]);
            // Extra outputs (recurrent states) get their own buffers, never an input's.
            let extra: Vec<usize> = op
                .extra
                .iter()
                .map(|&s| {
                    let e = self.take(bytes_of(&shapes[s]));
                    buffer_of[s] = e;
                    pending.resize(self.buffers.len(), 0);
                    pending[e] = pending[e].saturating_add(readers[s]);
                    e
                })
                .collect();
            for &s in &op.inputs {
                let b = buffer_of[s];
                pending[b] -= 1;
                if pending[b] == 0 {
                    self.free.push(b);
                }
            }
            for b in [b].into_iter().chain(extra) {
                if pending[b] == 0 {
                    self.free.push(b); // an output nothing reads
                }
            }
        }
        buffer_of
    }

    /// The smallest free buffer of at least `size` bytes, or a new one.
    fn take(&mut self, size: u64) -> usize {
        let best = (0..self.free.len())
            .filter(|&i| self.buffers[self.free[i]].size() >= size)
            .min_by_key(|&i| self.buffers[self.free[i]].size());
        match best {
            Some(i) => self.free.swap_remove(i),
            None => self.fresh(size),
        }
    }

    fn fresh(&mut self, size: u64) -> usize {
        self.buffers
            .push(self.dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activation"),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        self.buffers.len() - 1
    }
}

/// Bytes of an f32 tensor of this shape (at least 4: wgpu has no empty bindings).
fn bytes_of(shape: &[usize]) -> u64 {
    (shape.iter().product::<usize>() * 4).max(4) as u64
}
