//! Predictions on the GPU. Each layer declares its computation in the executor's primitives
//! ([`GpuForm`]); parameters are uploaded once. The first predict for an input shape plans an
//! [`Execution`]: activation buffers assigned by lifetime (a buffer whose last reader has run is
//! reused for a later output), index maps uploaded, and every dispatch recorded with its pipeline
//! and bind group. Each predict for that shape then writes the inputs, replays the dispatches in
//! one compute pass, submits once, and reads back only the outputs.

use super::Model;
use crate::error::{Error, Result};
use crate::gpu::ids::{BinaryId, MaskId};
use crate::gpu::residency::GpuWeights;
use crate::gpu::{kernels, ops, Device};
use crate::layers::{Activation, GpuForm, MaskRule};
use crate::tensor::Tensor;
use std::sync::{Arc, Mutex};

/// A model ready to predict on one device.
pub struct GpuModel<'m> {
    model: ModelRef<'m>,
    /// Parameter bytes bound to resident weights and uploaded.
    pub param_bytes: ParamBytes,
    dev: Device,
    params: Vec<Box<dyn ops::Primitive>>,
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
pub(crate) struct Recording {
    dispatches: Vec<Dispatch>,
    /// The Keras mask (`[batch, steps]`) reaching the layer being encoded.
    pub(crate) mask: Option<wgpu::Buffer>,
    /// The extra output buffers of the layer being encoded (final states, the backward half).
    pub(crate) extra: Vec<wgpu::Buffer>,
}

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

pub(crate) use crate::gpu::ids::act_id;

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

/// `form` without its [`GpuForm::Permuted`] / [`GpuForm::MergeTime`] wrappers.
fn inner(form: GpuForm<'_>) -> GpuForm<'_> {
    match form {
        GpuForm::Permuted { inner: f, .. }
        | GpuForm::MergeTime(f)
        | GpuForm::ThenRow { inner: f, .. } => inner(*f),
        f => f,
    }
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
                || ops::build(&up, index, form),
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
            for d in &exec.dispatches.dispatches {
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
        let shapes = self.model.concrete_shapes(inputs)?;
        let mut pool = BufferPool::new(&self.dev);
        let buffer_of = self.dev.checked("allocating activation buffers", || {
            pool.assign(plan, &self.params, &shapes)
        })?;
        let mut rec = Recording::default();
        // The mask (`[batch, steps]`) each slot carries, made on the GPU (see `MaskRule`), at
        // run time and as Keras built it (see `model::masks`).
        let mut masks = super::masks::SlotMasks::<wgpu::Buffer>::new(shapes.len());
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
            let in_masks = masks.read(op);
            rec.mask = in_masks.first().cloned().flatten();
            rec.extra = op
                .extra
                .iter()
                .map(|&s| pool.buffers[buffer_of[s]].clone())
                .collect();
            let failed =
                |e: Error| Error::Model(format!("layer '{name}' ({class}) on the GPU: {e}"));
            self.params[op.layer]
                .encode(self, &mut rec, &ins, out)
                .map_err(failed)?;
            let rule = plan.layers[op.layer].mask_rule();
            let run = self
                .output_mask(&mut rec, rule, ins[0], &in_masks)
                .map_err(failed)?;
            let built = match masks.built_if_parted(op) {
                Some(m) => Some(
                    self.output_mask(&mut rec, rule, ins[0], &m)
                        .map_err(failed)?,
                ),
                None => None,
            };
            masks.finish(op, run, built);
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
        pass.dispatches.push(Dispatch {
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

    /// The adapter's storage binding limit, bytes.
    pub(crate) fn binding_limit(&self) -> usize {
        self.dev.limits.max_storage_buffer_binding_size as usize
    }

    /// `f` inside the device's validation and out-of-memory scopes (see [`Device::checked`]).
    pub(crate) fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.dev.checked(what, f)
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

    /// See [`Device::check_loops`]: refuses a dispatch whose invocations would loop more than
    /// the adapter runs.
    pub(crate) fn check_loops(&self, kernel: &str, iterations: usize) -> Result<()> {
        self.dev.check_loops(kernel, iterations as u64)
    }

    /// The most workgroups one dispatch may have per dimension.
    pub(crate) fn max_groups(&self) -> u32 {
        self.dev.limits.max_compute_workgroups_per_dimension
    }

    pub(crate) fn grid(&self, n: usize) -> Result<(u32, u32)> {
        let n = u32::try_from(n)
            .map_err(|_| Error::Model(format!("{n} elements exceed one dispatch")))?;
        Ok(kernels::grid_for(
            n,
            self.dev.limits.max_compute_workgroups_per_dimension,
        ))
    }

    pub(crate) fn softmax(
        &self,
        pass: &mut Recording,
        act: Activation,
        out: (&wgpu::Buffer, &[usize]),
    ) -> Result<()> {
        let Some(mode) = crate::gpu::ids::row_id(act) else {
            return Ok(());
        };
        let cols = *out.1.last().unwrap_or(&1);
        let rows = out.1.iter().product::<usize>() / cols.max(1);
        let u = [rows as u32, cols as u32, mode, 0];
        // Three passes over a row; sparsemax compares every pair.
        let sparse = act == Activation::Sparsemax;
        self.check_loops("softmax", if sparse { cols * (cols + 2) } else { 3 * cols })?;
        self.dispatch(
            pass,
            kernels::SOFTMAX,
            bytemuck::cast_slice(&u),
            &[out.0],
            self.grid(rows)?,
        )
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
        mode: MaskId,
        value: f32,
        (x, features): (&wgpu::Buffer, usize),
        mask_in: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        self.check_loops("mask", features)?;
        let u = [
            n as u32,
            features.max(1) as u32,
            mode as u32,
            value.to_bits(),
        ];
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
        let mut fold = |code: BinaryId| -> Result<Option<wgpu::Buffer>> {
            let Some((first, rest)) = present.split_first() else {
                return Ok(None);
            };
            let mut acc = (*first).clone();
            for m in rest {
                let out = self.temp("mask", rows[0]);
                self.binary_code(pass, (code, 1.0), (&acc, &rows), (m, &rows), (&out, &rows))?;
                acc = out;
            }
            Ok(Some(acc))
        };
        let (mode, value, features) = match rule {
            MaskRule::Drop => return Ok(None),
            MaskRule::Keep => return Ok(mask),
            MaskRule::All => return fold(BinaryId::Minimum),
            MaskRule::Any if present.len() == masks.len() => return fold(BinaryId::Maximum),
            MaskRule::Any => return Ok(None),
            MaskRule::Refuse(why) if !present.is_empty() => {
                return Err(Error::Model(format!("a Keras mask reaches it: {why}")))
            }
            MaskRule::Refuse(_) => return Ok(None),
            MaskRule::Ids => (MaskId::FromIds, 0.0, 1),
            MaskRule::Features(v) => (MaskId::FromFeatures, v, *x.1.last().unwrap_or(&1)),
        };
        let rows = n / features.max(1);
        let out = self.temp("mask", rows);
        self.mask_kernel(pass, mode, value, (x.0, features), &self.dummy, &out, rows)?;
        Ok(Some(out))
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
        params: &[Box<dyn ops::Primitive>],
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
            let b = if params[op.layer].aliases_input() {
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
