//! `Model`: artifacts + the rebuilt layer graph, and predictions on the CPU reference backend.

pub mod gpu;
pub mod graph;
pub mod image;
pub(crate) mod masks;
pub mod npy;
pub mod summary;

pub use summary::{ParamTotals, SummaryRow};

use crate::error::{Error, Result};
use crate::format::{self, Artifacts};
use crate::layers::WeightSource;
use crate::shape;
use crate::tensor::{Data, Tensor};
use graph::{Plan, Port};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Weights decoded from artifacts by name. Model weights only (optimizer state is skipped); a
/// manifest name with an extra middle component (`lstm/lstm_cell/kernel`) also answers to the
/// name without it, as TF.js matches them.
struct ArtifactWeights<'a> {
    artifacts: &'a Artifacts,
    index: HashMap<String, usize>,
}

impl<'a> ArtifactWeights<'a> {
    fn new(artifacts: &'a Artifacts) -> Self {
        let mut index = HashMap::new();
        let mut aliases = Vec::new();
        for (i, w) in artifacts
            .spec
            .weights
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.is_optimizer())
        {
            index.insert(w.name.clone(), i);
            let parts: Vec<&str> = w.name.split('/').collect();
            if parts.len() >= 3 {
                let short = parts[..parts.len() - 2]
                    .iter()
                    .chain([parts[parts.len() - 1]].iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("/");
                aliases.push((short, i));
            }
        }
        for (short, i) in aliases {
            index.entry(short).or_insert(i);
        }
        ArtifactWeights { artifacts, index }
    }
}

impl WeightSource for ArtifactWeights<'_> {
    fn get(&self, name: &str) -> Option<(Vec<usize>, Data)> {
        let &i = self.index.get(name)?;
        let spec = &self.artifacts.spec.weights[i];
        if spec.dtype == crate::DType::Float32 && spec.encoding().is_plain() {
            if let Some(mapped) = self.artifacts.store.mapped_f32(i) {
                return Some((spec.shape.clone(), mapped));
            }
        }
        let bytes = self.artifacts.logical(i);
        let values = match spec.dtype {
            crate::DType::Float32 => bytemuck::pod_collect_to_vec(&bytes),
            crate::DType::Int32 => bytemuck::pod_collect_to_vec::<u8, i32>(&bytes)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            crate::DType::Bool => bytes.iter().map(|&b| f32::from(b)).collect(),
        };
        Some((spec.shape.clone(), Data::Owned(values)))
    }
}

/// A loaded model: its artifacts and the rebuilt graph with bound weights.
pub struct Model {
    /// The artifacts (spec and mapped weight bytes) the model was loaded from.
    pub artifacts: Artifacts,
    pub(crate) plan: Plan,
}

/// A named tensor, as the fixtures' tensor JSON holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// Input or output name.
    pub name: String,
    /// Declared dtype (`float32`, `int32`).
    pub dtype: String,
    /// The values.
    pub tensor: Tensor,
}

impl Model {
    /// Load a model (model.json, its directory, or a .safetensors file) and rebuild its graph.
    /// Every model weight in the file must be taken by a layer, and every layer weight must be in
    /// the file (strict, like TF.js).
    pub fn load(path: &Path) -> Result<Model> {
        Model::from_artifacts(format::open(path)?)
    }

    /// Rebuild the graph of loaded artifacts.
    pub fn from_artifacts(artifacts: Artifacts) -> Result<Model> {
        let topology = artifacts.spec.topology().ok_or_else(|| {
            let why = artifacts.spec.topology_error();
            Error::Model(match why {
                Some(why) => format!("{}: modelTopology: {why}", artifacts.origin.display()),
                None => format!(
                    "{}: the model has no modelTopology",
                    artifacts.origin.display()
                ),
            })
        })?;
        let weights = ArtifactWeights::new(&artifacts);
        let plan = graph::build(topology, &weights)
            .map_err(|e| Error::Model(format!("{}: {e}", artifacts.origin.display())))?;
        let unused: Vec<&str> = artifacts
            .spec
            .weights
            .iter()
            .filter(|w| {
                !w.is_optimizer() && !plan.taken.contains(&w.name) && !alias_taken(&w.name, &plan)
            })
            .map(|w| w.name.as_str())
            .collect();
        if !unused.is_empty() {
            return Err(Error::Model(format!(
                "{}: {} weight(s) in the file belong to no layer: {}",
                artifacts.origin.display(),
                unused.len(),
                unused.join(", ")
            )));
        }
        Ok(Model { artifacts, plan })
    }

    /// Model inputs (name, shape with `None` for free dimensions, dtype).
    pub fn inputs(&self) -> &[Port] {
        &self.plan.inputs
    }

    /// Per model input, the id range `0..n` of the layers that read it as integer ids
    /// (Embedding, CategoryEncoding; the smallest when several do), `None` for other inputs.
    /// TF.js models often declare such inputs float32: the ids travel as floats.
    pub fn input_id_ranges(&self) -> Vec<Option<usize>> {
        self.plan
            .inputs
            .iter()
            .map(|port| {
                self.plan
                    .ops
                    .iter()
                    .filter(|op| op.inputs.first() == Some(&port.slot))
                    .filter_map(|op| self.plan.layers[op.layer].id_range())
                    .min()
            })
            .collect()
    }

    /// Model outputs.
    pub fn outputs(&self) -> &[Port] {
        &self.plan.outputs
    }

    /// `(class, name, output shape)` of every layer call, in execution order.
    pub fn summary(&self) -> Vec<(String, String, String)> {
        self.plan
            .ops
            .iter()
            .map(|op| {
                let (class, name) = &self.plan.layer_info[op.layer];
                let dims: Vec<String> = self.plan.slot_shapes[op.output]
                    .iter()
                    .map(|d| d.map_or("?".into(), |d| d.to_string()))
                    .collect();
                (
                    class.clone(),
                    name.clone(),
                    format!("[{}]", dims.join(", ")),
                )
            })
            .collect()
    }

    /// Every slot's shape (plan order) for these inputs.
    pub fn concrete_shapes(&self, inputs: &[Tensor]) -> Result<Vec<Vec<usize>>> {
        let plan = &self.plan;
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

    /// Run the model on the CPU reference backend. Inputs in the order of [`Model::inputs`].
    pub fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        // LAYERCAKE_TRACE=1 prints every layer's output shape and first values (unfused).
        let trace = std::env::var("LAYERCAKE_TRACE").is_ok_and(|v| v == "1");
        self.run(inputs, trace, !trace)
    }

    /// [`Model::predict`] with every layer as a pass of its own (no fused epilogues).
    #[cfg(test)]
    pub(crate) fn predict_unfused(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run(inputs, false, false)
    }

    fn run(&self, inputs: &[Tensor], trace: bool, fuse: bool) -> Result<Vec<Tensor>> {
        self.check_inputs(inputs)?;
        let mut slots: Vec<Option<Tensor>> = vec![None; self.plan.slot_shapes.len()];
        let mut uses = vec![0usize; slots.len()];
        self.plan
            .ops
            .iter()
            .flat_map(|op| op.inputs.iter())
            .for_each(|&s| uses[s] += 1);
        self.plan.outputs.iter().for_each(|p| uses[p.slot] += 1);
        for (port, t) in self.plan.inputs.iter().zip(inputs) {
            slots[port.slot] = Some(t.clone());
        }
        // Masks travel beside the tensors (`[batch, steps]`), from the layers that make them to
        // the recurrent layers that use them.
        let mut masks = masks::SlotMasks::<Tensor>::new(slots.len());
        let ops = &self.plan.ops;
        let mut i = 0;
        while i < ops.len() {
            let chain = if !fuse {
                0
            } else {
                self.fusable_chain(i, &uses, &masks)
            };
            let fused = match chain {
                0 => None,
                _ => self.run_fused(&ops[i..=i + chain], &slots)?,
            };
            let (op, (out, extra), skipped) = match fused {
                Some(out) => (&ops[i + chain], (out, Vec::new()), chain),
                None => {
                    let op = &ops[i];
                    (
                        op,
                        self.run_op(op, &mut slots, &mut masks, &uses, trace)?,
                        0,
                    )
                }
            };
            for &s in &ops[i].inputs {
                uses[s] -= 1;
                if uses[s] == 0 {
                    slots[s] = None;
                }
            }
            // The outputs of the fused producer and the chain before the last: never made.
            for inner in &ops[i..i + skipped] {
                uses[inner.output] = 0;
            }
            slots[op.output] = Some(out);
            for (&s, t) in op.extra.iter().zip(extra) {
                slots[s] = Some(t);
            }
            i += skipped + 1;
        }
        Ok(self
            .plan
            .outputs
            .iter()
            .map(|p| slots[p.slot].clone().expect("outputs computed"))
            .collect())
    }

    /// How many ops after `ops[i]` run inside its epilogue: each the only reader of the one
    /// before, with a [`Layer::row_epilogue`], and no Keras mask anywhere in the chain.
    fn fusable_chain(&self, i: usize, uses: &[usize], masks: &masks::SlotMasks<Tensor>) -> usize {
        let ops = &self.plan.ops;
        if !ops[i].extra.is_empty() || ops[i].inputs.iter().any(|&s| masks.any(s)) {
            return 0;
        }
        let mut n = 0;
        while let Some(next) = ops.get(i + n + 1) {
            let prev = ops[i + n].output;
            let fits = next.inputs[..] == [prev] && uses[prev] == 1 && next.extra.is_empty();
            if !fits || self.plan.layers[next.layer].row_epilogue().is_none() {
                break;
            }
            n += 1;
        }
        n
    }

    /// `chain[0]` with `chain[1..]` in its epilogue ([`Layer::forward_then`]); `None` when the
    /// producer has no such form (it then runs alone).
    fn run_fused(&self, chain: &[graph::Op], slots: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        let layers = &self.plan.layers;
        let fns: Vec<crate::layers::RowFn<'_>> = chain[1..]
            .iter()
            .filter_map(|op| layers[op.layer].row_epilogue())
            .collect();
        let then: crate::layers::RowFn<'_> = Box::new(move |block: &mut [f32]| {
            fns.iter().for_each(|f| f(block));
        });
        let args: Vec<&Tensor> = chain[0]
            .inputs
            .iter()
            .map(|&s| slots[s].as_ref().expect("inputs computed before use"))
            .collect();
        let (class, name) = &self.plan.layer_info[chain[0].layer];
        match layers[chain[0].layer].forward_then(&args, &then) {
            None => Ok(None),
            Some(r) => r
                .map(Some)
                .map_err(|e| Error::Model(format!("layer '{name}' ({class}): {e}"))),
        }
    }

    /// One op of [`Model::predict`]: its outputs, and its output's mask set in `masks`. A
    /// one-input layer with an in-place form ([`Layer::forward_in_place`]) takes the input's
    /// values when this op is their last reader.
    fn run_op(
        &self,
        op: &graph::Op,
        slots: &mut [Option<Tensor>],
        masks: &mut masks::SlotMasks<Tensor>,
        uses: &[usize],
        trace: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (class, name) = &self.plan.layer_info[op.layer];
        let layer = &self.plan.layers[op.layer];
        let failed = |e: Error| Error::Model(format!("layer '{name}' ({class}): {e}"));
        let in_masks = masks.read(op);
        let out_of = |input_masks: &[Option<Tensor>]| -> Result<Option<Tensor>> {
            let input_masks: Vec<Option<&Tensor>> =
                input_masks.iter().map(Option::as_ref).collect();
            match op.inputs.first().and_then(|&s| slots[s].as_ref()) {
                Some(x) => layer.mask_rule().combine(x, &input_masks).map_err(failed),
                None => Ok(None),
            }
        };
        let out_mask = out_of(&in_masks)?;
        let built_mask = masks.built_if_parted(op).map(|m| out_of(&m)).transpose()?;
        let in_place = match op.inputs[..] {
            [s, ref rest @ ..] if uses[s] == 1 && !rest.contains(&s) && op.extra.is_empty() => {
                let mut x = slots[s].take().expect("inputs computed before use");
                let others: Vec<&Tensor> = rest
                    .iter()
                    .map(|&r| slots[r].as_ref().expect("inputs computed before use"))
                    .collect();
                match layer.forward_in_place(&mut x, &others) {
                    Some(done) => Some(done.map(|()| (x, Vec::new())).map_err(failed)?),
                    None => {
                        slots[s] = Some(x);
                        None
                    }
                }
            }
            _ => None,
        };
        let (out, extra) = match in_place {
            Some(done) => done,
            None => {
                let args: Vec<&Tensor> = op
                    .inputs
                    .iter()
                    .map(|&s| slots[s].as_ref().expect("inputs computed before use"))
                    .collect();
                let mask = in_masks.first().and_then(Option::as_ref);
                layer.forward_all(&args, mask).map_err(failed)?
            }
        };
        masks.finish(op, out_mask, built_mask);
        if trace {
            eprintln!(
                "{name} ({class}) {} {:?}",
                shape::show(&out.shape),
                &out.data[..out.data.len().min(4)]
            );
        }
        Ok((out, extra))
    }

    pub(crate) fn check_inputs(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() != self.plan.inputs.len() {
            return Err(Error::Model(format!(
                "the model takes {} input(s), got {}",
                self.plan.inputs.len(),
                inputs.len()
            )));
        }
        for (port, t) in self.plan.inputs.iter().zip(inputs) {
            let fits = port.shape.len() == t.shape.len()
                && port
                    .shape
                    .iter()
                    .zip(&t.shape)
                    .all(|(want, &got)| want.is_none_or(|w| w == got));
            if !fits {
                let want: Vec<String> = port
                    .shape
                    .iter()
                    .map(|d| d.map_or("?".into(), |d| d.to_string()))
                    .collect();
                return Err(Error::Model(format!(
                    "input '{}' has shape {} but the model expects [{}]",
                    port.name,
                    shape::show(&t.shape),
                    want.join(", ")
                )));
            }
        }
        self.check_ids(inputs)
    }

    /// Ids fed straight from a model input to a layer that reads ids (Embedding,
    /// CategoryEncoding) must be finite and, truncated as TF.js casts them, in `0..n`: the CPU
    /// and the GPU refuse the same inputs with the same error, before any work.
    fn check_ids(&self, inputs: &[Tensor]) -> Result<()> {
        for (port, t) in self.plan.inputs.iter().zip(inputs) {
            for op in &self.plan.ops {
                let Some(n) = self.plan.layers[op.layer].id_range() else {
                    continue;
                };
                if op.inputs.first() != Some(&port.slot) {
                    continue;
                }
                let bad = t
                    .data
                    .iter()
                    .find(|v| !v.is_finite() || v.trunc() < 0.0 || v.trunc() >= n as f32);
                if let Some(v) = bad {
                    let (class, name) = &self.plan.layer_info[op.layer];
                    return Err(Error::Model(format!(
                        "layer '{name}' ({class}): input '{}' holds id {v}, outside [0, {n})",
                        port.name
                    )));
                }
            }
        }
        Ok(())
    }
}

fn alias_taken(name: &str, plan: &Plan) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() >= 3
        && plan.taken.contains(
            &[&parts[..parts.len() - 2], &parts[parts.len() - 1..]]
                .concat()
                .join("/"),
        )
}

/// Read a tensor bundle (`{"inputs": [{name, shape, dtype, data}]}` or `"outputs"`).
pub fn read_bundle(path: &Path, key: &str) -> Result<Vec<Named>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::json(path, e))?;
    parse_bundle(&v, key, path)
}

/// The `key` list (`inputs` / `outputs`) of a tensor bundle already parsed; `path` names its
/// origin in errors.
pub fn parse_bundle(v: &Value, key: &str, path: &Path) -> Result<Vec<Named>> {
    let list = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| Error::format(path, format!("no '{key}' list")))?;
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let bad = |m: &str| Error::format(path, format!("{key}[{i}]: {m}"));
            let shape: Vec<usize> = t
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|d| d.as_u64().map(|u| u as usize)).collect())
                .ok_or_else(|| bad("'shape' is not a list of sizes"))?;
            let data: Vec<f32> = t
                .get("data")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|d| d.as_f64().map(|f| f as f32)).collect())
                .ok_or_else(|| bad("'data' is not a list of numbers"))?;
            let tensor = Tensor::new(shape, data).map_err(|e| bad(&e.to_string()))?;
            Ok(Named {
                name: t
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                dtype: t
                    .get("dtype")
                    .and_then(Value::as_str)
                    .unwrap_or("float32")
                    .to_string(),
                tensor,
            })
        })
        .collect()
}

/// The tensor JSON form of outputs.
pub fn bundle_json(key: &str, tensors: &[Named]) -> Value {
    json!({ key: tensors.iter().map(|t| json!({"name": t.name, "shape": t.tensor.shape, "dtype": t.dtype, "data": &t.tensor.data[..]})).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A channels-last net whose every BatchNormalization and activation can run inside the
    /// epilogue of the convolution or Dense before it.
    fn fusable_model() -> Model {
        let bn = |name: &str| json!({"class_name": "BatchNormalization", "config": {"name": name, "epsilon": 1.0}});
        let layers = json!([
            {"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": [null, 7, 7, 3]}},
            {"class_name": "Conv2D", "config": {"name": "c0", "filters": 4, "kernel_size": 3, "padding": "same"}},
            bn("b0"),
            {"class_name": "ReLU", "config": {"name": "r0", "max_value": 0.2}},
            {"class_name": "DepthwiseConv2D", "config": {"name": "d1", "kernel_size": 3, "strides": 2, "padding": "same"}},
            bn("b1"),
            {"class_name": "Activation", "config": {"name": "a1", "activation": "swish"}},
            {"class_name": "Conv2D", "config": {"name": "c2", "filters": 5, "kernel_size": 1}},
            bn("b2"),
            {"class_name": "Activation", "config": {"name": "a2", "activation": "sigmoid"}},
            {"class_name": "Flatten", "config": {"name": "f"}},
            {"class_name": "Dense", "config": {"name": "e", "units": 6}},
            {"class_name": "Activation", "config": {"name": "a3", "activation": "tanh"}}
        ]);
        let topology =
            json!({"class_name": "Sequential", "config": {"name": "m", "layers": layers}});
        let mut weights: Vec<(String, Vec<usize>)> = vec![
            ("c0/kernel".into(), vec![3, 3, 3, 4]),
            ("c0/bias".into(), vec![4]),
            ("d1/depthwise_kernel".into(), vec![3, 3, 4, 1]),
            ("d1/bias".into(), vec![4]),
            ("c2/kernel".into(), vec![1, 1, 4, 5]),
            ("c2/bias".into(), vec![5]),
            ("e/kernel".into(), vec![80, 6]),
            ("e/bias".into(), vec![6]),
        ];
        for (b, c) in [("b0", 4), ("b1", 4), ("b2", 5)] {
            for w in ["gamma", "beta", "moving_mean", "moving_variance"] {
                weights.push((format!("{b}/{w}"), vec![c]));
            }
        }
        let artifacts = crate::format::synthetic::with_topology(&weights, topology, 3).unwrap();
        Model::from_artifacts(artifacts).unwrap()
    }

    #[test]
    fn fused_epilogues_compute_what_the_separate_layers_do() {
        let m = fusable_model();
        let x = crate::verify::random_inputs(&m, 11, 3);
        let fused = m.predict(&x).unwrap();
        let apart = m.predict_unfused(&x).unwrap();
        assert_eq!(fused[0].shape, vec![3, 6]);
        for (a, b) in fused[0].data.iter().zip(&apart[0].data) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        // The chains really formed: conv+bn+relu, depthwise+bn+swish, conv+bn+sigmoid, dense+tanh.
        let slots = m.plan.slot_shapes.len();
        let (mut uses, masks) = (vec![0usize; slots], masks::SlotMasks::new(slots));
        m.plan
            .ops
            .iter()
            .flat_map(|op| &op.inputs)
            .for_each(|&s| uses[s] += 1);
        let chains: Vec<usize> = (0..m.plan.ops.len())
            .map(|i| m.fusable_chain(i, &uses, &masks))
            .collect();
        assert_eq!(chains[0], 2, "{chains:?}");
        assert_eq!(chains[3], 2, "{chains:?}");
        assert_eq!(chains[6], 2, "{chains:?}");
    }
}
