//! Rebuild the layer graph from `modelTopology`: Sequential (list and dict forms), Functional
//! (`Model` / `Functional`, Keras 2 node lists and Keras 3 `{args, kwargs}` call records), nested
//! models (inlined; called twice they reuse their layers), shared layers, several inputs and
//! outputs. The result is a flat plan of layer calls over numbered tensor slots.

use crate::error::{Error, Result};
use crate::layers::{self, Layer, LayerCtx, Shape, WeightSource};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

/// One layer call: `slots[output] = layers[layer](slots[inputs])`.
#[derive(Clone, Debug)]
pub struct Op {
    /// Index into [`Plan::layers`].
    pub layer: usize,
    /// Input slots.
    pub inputs: Vec<usize>,
    /// Output slot (the first output).
    pub output: usize,
    /// Slots of the other outputs (recurrent states, an unmerged Bidirectional's second half).
    pub extra: Vec<usize>,
    /// Keras 3 passed this call an explicit `mask=` (computed when the model was built): the
    /// layer reads its input's build-time mask (see `masks`).
    pub explicit_mask: bool,
    /// A Keras 3 MultiHeadAttention: running it clears the masks of the tensors it reads.
    pub clears_input_masks: bool,
}

/// A model input or output.
#[derive(Clone, Debug)]
pub struct Port {
    /// Name (the input layer's name, or the output layer's).
    pub name: String,
    /// Shape, batch first; `None` for free dimensions.
    pub shape: Shape,
    /// Slot holding it.
    pub slot: usize,
    /// Declared dtype (`float32`, `int32`).
    pub dtype: String,
}

/// The rebuilt model: built layers and the calls that connect them.
pub struct Plan {
    /// Built layers (a shared layer appears once).
    pub layers: Vec<Box<dyn Layer>>,
    /// `(class, name)` of each layer.
    pub layer_info: Vec<(String, String)>,
    /// Calls in execution order.
    pub ops: Vec<Op>,
    /// Model inputs.
    pub inputs: Vec<Port>,
    /// Model outputs.
    pub outputs: Vec<Port>,
    /// Inferred shape of every slot.
    pub slot_shapes: Vec<Shape>,
    /// Weight names the layers took.
    pub taken: HashSet<String>,
    /// Per layer (as [`Plan::layers`]): the weights it took, each with its role (`kernel`,
    /// `moving_mean`, …).
    pub layer_weights: Vec<Vec<(String, String)>>,
    /// Per layer: its config's `trainable` flag (true when absent).
    pub layer_trainable: Vec<bool>,
}

const MODEL_CLASSES: [&str; 4] = ["Sequential", "Model", "Functional", "LayersModel"];

struct Builder<'a> {
    weights: &'a dyn WeightSource,
    keras3: bool,
    keras_version: (u32, u32),
    /// Keras 3 only: each layer's h5 path (`layers/dense_1`), the scope of its weights.
    h5: HashMap<String, String>,
    taken: RefCell<Vec<(String, String)>>,
    layer_weights: Vec<Vec<(String, String)>>,
    layer_trainable: Vec<bool>,
    layers: Vec<Box<dyn Layer>>,
    info: Vec<(String, String)>,
    by_name: HashMap<String, usize>,
    slots: Vec<Shape>,
    ops: Vec<Op>,
}

fn class_of(entry: &Value) -> &str {
    entry
        .get("class_name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn name_of(entry: &Value) -> &str {
    entry
        .pointer("/config/name")
        .or_else(|| entry.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The model object inside a converter envelope (`{keras_version, model_config}`).
fn unwrap(topology: &Value) -> &Value {
    topology.get("model_config").unwrap_or(topology)
}

fn sequential_layers(model: &Value) -> Result<&Vec<Value>> {
    match model.get("config") {
        Some(Value::Array(list)) => Ok(list),
        Some(c) => c
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Model(format!("model '{}': no 'layers' list", name_of(model)))),
        None => Err(Error::Model("a model without 'config'".into())),
    }
}

/// Shape and dtype declared by an InputLayer or a first layer (`batch_input_shape`,
/// `batch_shape`, `input_shape`, or Embedding's `input_length`).
fn declared_input(entry: &Value) -> Option<(Shape, String)> {
    let config = entry.get("config")?;
    let dims = |v: &Value| -> Option<Shape> {
        v.as_array()?
            .iter()
            .map(|d| {
                if d.is_null() {
                    Some(None)
                } else {
                    d.as_u64().map(|u| Some(u as usize))
                }
            })
            .collect()
    };
    let shape = if let Some(s) = config
        .get("batch_input_shape")
        .or_else(|| config.get("batch_shape"))
        .and_then(dims)
    {
        s
    } else if let Some(s) = config.get("input_shape").and_then(dims) {
        [None].into_iter().chain(s).collect()
    } else if let Some(n) = config.get("input_length").and_then(Value::as_u64) {
        vec![None, Some(n as usize)]
    } else {
        return None;
    };
    let dtype = match config.get("dtype") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(p)) => p
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("float32")
            .to_string(),
        _ if class_of(entry) == "Embedding" => "int32".into(),
        _ => "float32".into(),
    };
    Some((shape, dtype))
}

/// A tensor reference `(layer, node_index, tensor_index)`.
type Ref = (String, usize, usize);

/// Numbers passed positionally in a Keras 3 call: `(argument position, value)`.
type Constants = Vec<(usize, f64)>;

/// One inbound node: the tensors it reads (positional arguments first, then keyword arguments
/// in the order of the `kwargs` object), the numbers among its arguments, and its `kwargs`.
struct CallRecord {
    refs: Vec<Ref>,
    constants: Constants,
    kwargs: Value,
    /// Keras 3's `mask=` tensor: the mask Keras computed for this call when it built the model
    /// (by operation nodes such as NotEqual and LogicalOr), which layercake's own mask
    /// propagation recomputes (the op's build-time mask, see `model::masks`).
    mask: Option<Ref>,
}

/// The operations Keras 3 writes to compute masks (`compute_mask` of Embedding, the merges,
/// Concatenate): a `mask=` argument made by them is the implicit mask, not a user's tensor.
const MASK_OPERATIONS: &[&str] = &[
    "NotEqual",
    "LogicalOr",
    "LogicalAnd",
    "ExpandDims",
    "ZerosLike",
    "OnesLike",
    "Concatenate",
    "Any",
    "All",
    "Cast",
    "BroadcastTo",
];

fn holds_tensor(v: &Value) -> bool {
    let mut refs = Vec::new();
    collect_keras_tensors(v, &mut refs);
    !refs.is_empty()
}

fn parse_ref(v: &Value) -> Option<Ref> {
    let a = v.as_array()?;
    Some((
        a.first()?.as_str()?.to_string(),
        a.get(1)?.as_u64()? as usize,
        a.get(2).and_then(Value::as_u64).unwrap_or(0) as usize,
    ))
}

/// The input references of one inbound node, in either dialect, and (Keras 3) the numbers
/// passed positionally beside them (`x + 3.0` is serialized as `Add` called on `[x, 3.0]`).
fn node_refs(node: &Value) -> Result<CallRecord> {
    match node {
        Value::Array(items) => Ok(CallRecord {
            refs: items
                .iter()
                .map(|i| {
                    parse_ref(i).ok_or_else(|| {
                        Error::Model(format!(
                            "inbound node entry {i} is not [layer, node, tensor, kwargs]"
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            constants: Vec::new(),
            kwargs: Value::Null,
            mask: None,
        }),
        Value::Object(call) => {
            let mut refs = Vec::new();
            let mut constants = Vec::new();
            let args = call.get("args").and_then(Value::as_array);
            for (position, arg) in args.into_iter().flatten().enumerate() {
                match arg {
                    Value::Number(n) => constants.push((position, n.as_f64().unwrap_or(f64::NAN))),
                    Value::Null => {}
                    Value::Array(_) | Value::Object(_) => collect_keras_tensors(arg, &mut refs),
                    other => {
                        return Err(Error::Model(format!(
                            "call argument {position} ({other}) is neither a tensor nor a number"
                        )))
                    }
                }
            }
            let mut kwargs = call.get("kwargs").cloned().unwrap_or(Value::Null);
            let mut mask = Vec::new();
            if let Value::Object(map) = &mut kwargs {
                if let Some(m) = map.remove("mask") {
                    collect_keras_tensors(&m, &mut mask);
                }
                map.values()
                    .for_each(|v| collect_keras_tensors(v, &mut refs));
            }
            Ok(CallRecord {
                refs,
                constants,
                kwargs,
                mask: mask.into_iter().next(),
            })
        }
        other => Err(Error::Model(format!(
            "inbound node {other} is neither a list nor a call record"
        ))),
    }
}

fn collect_keras_tensors(v: &Value, out: &mut Vec<Ref>) {
    match v {
        Value::Object(o)
            if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") =>
        {
            if let Some(r) = o
                .get("config")
                .and_then(|c| c.get("keras_history"))
                .and_then(parse_ref)
            {
                out.push(r);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_keras_tensors(i, out)),
        _ => {}
    }
}

/// `input_layers` / `output_layers`: a list of triples, or a single triple (Keras 3).
fn port_refs(v: Option<&Value>) -> Result<Vec<Ref>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if let Some(r) = parse_ref(v).filter(|_| {
        v.as_array()
            .is_some_and(|a| a.first().is_some_and(Value::is_string))
    }) {
        return Ok(vec![r]);
    }
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| {
                parse_ref(i).ok_or_else(|| {
                    Error::Model(format!("model port {i} is not [layer, node, tensor]"))
                })
            })
            .collect(),
        Value::Object(map) => map
            .values()
            .map(|i| {
                parse_ref(i).ok_or_else(|| {
                    Error::Model(format!("model port {i} is not [layer, node, tensor]"))
                })
            })
            .collect(),
        other => Err(Error::Model(format!("model ports {other} are not a list"))),
    }
}

impl<'a> Builder<'a> {
    fn slot(&mut self, shape: Shape) -> usize {
        self.slots.push(shape);
        self.slots.len() - 1
    }

    /// Call the layer described by `entry` on `inputs`; returns its output slots.
    fn apply(
        &mut self,
        entry: &Value,
        inputs: &[usize],
        call: (&[(usize, f64)], &Value),
    ) -> Result<Vec<usize>> {
        let (constants, kwargs) = call;
        let tensor_kwargs = holds_tensor(kwargs);
        let class = class_of(entry);
        if MODEL_CLASSES.contains(&class) {
            return self.call_model(entry, inputs);
        }
        let name = name_of(entry).to_string();
        let shapes: Vec<Shape> = inputs.iter().map(|&s| self.slots[s].clone()).collect();
        let index = match self.by_name.get(&name) {
            Some(_) if !constants.is_empty() || tensor_kwargs => {
                return Err(Error::Model(format!(
                    "layer '{name}' ({class}): a second call with constant operands {constants:?} or tensor keyword arguments {kwargs} is not supported"
                )))
            }
            Some(&i) => i,
            None => {
                let build = layers::builder(class, &name)?;
                let null = Value::Null;
                let read = Cell::new(false);
                let before = self.taken.borrow().len();
                let ctx = LayerCtx {
                    class,
                    name: &name,
                    config: entry.get("config").unwrap_or(&null),
                    inputs: &shapes,
                    weights: self.weights,
                    taken: &self.taken,
                    keras3: self.keras3,
                    keras_version: self.keras_version,
                    h5: self.h5.get(&name).map(String::as_str),
                    constants,
                    kwargs,
                    call_read: &read,
                };
                let layer = build(&ctx)?;
                if (!constants.is_empty() || tensor_kwargs) && !read.get() {
                    return Err(Error::Model(format!(
                        "layer '{name}' ({class}): called with the constant operand(s) {constants:?} (argument position, value) or tensor keyword arguments {kwargs}, which this class does not take"
                    )));
                }
                self.layers.push(layer);
                self.layer_weights
                    .push(self.taken.borrow()[before..].to_vec());
                let trainable = entry.pointer("/config/trainable").and_then(Value::as_bool);
                self.layer_trainable.push(trainable.unwrap_or(true));
                self.info.push((class.to_string(), name.clone()));
                self.by_name.insert(name.clone(), self.layers.len() - 1);
                self.layers.len() - 1
            }
        };
        let failed = |e: Error| Error::Model(format!("layer '{name}' ({class}): {e}"));
        let shape = self.layers[index].output_shape(&shapes).map_err(failed)?;
        let extra_shapes = self.layers[index]
            .extra_output_shapes(&shapes)
            .map_err(failed)?;
        let output = self.slot(shape);
        let extra: Vec<usize> = extra_shapes.into_iter().map(|s| self.slot(s)).collect();
        self.ops.push(Op {
            layer: index,
            inputs: inputs.to_vec(),
            output,
            extra: extra.clone(),
            explicit_mask: false,
            clears_input_masks: self.keras3 && class == "MultiHeadAttention",
        });
        Ok([output].into_iter().chain(extra).collect())
    }

    fn call_model(&mut self, model: &Value, inputs: &[usize]) -> Result<Vec<usize>> {
        let model = unwrap(model);
        match class_of(model) {
            "Sequential" => self.call_sequential(model, inputs),
            _ => self.call_functional(model, inputs),
        }
    }

    fn call_sequential(&mut self, model: &Value, inputs: &[usize]) -> Result<Vec<usize>> {
        let [mut x] = inputs else {
            return Err(Error::Model(format!(
                "Sequential '{}' called with {} inputs",
                name_of(model),
                inputs.len()
            )));
        };
        for layer in sequential_layers(model)? {
            if class_of(layer) != "InputLayer" {
                let out = self.apply(layer, &[x], (&[], &Value::Null))?;
                x = *out.first().ok_or_else(|| {
                    Error::Model(format!("layer '{}' has no output", name_of(layer)))
                })?;
            }
        }
        Ok(vec![x])
    }

    fn call_functional(&mut self, model: &Value, inputs: &[usize]) -> Result<Vec<usize>> {
        let name = name_of(model).to_string();
        let config = model
            .get("config")
            .ok_or_else(|| Error::Model(format!("model '{name}' has no config")))?;
        let entries = config
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Model(format!("model '{name}' has no 'layers' list")))?;
        let input_refs = port_refs(config.get("input_layers"))?;
        if input_refs.len() != inputs.len() {
            return Err(Error::Model(format!(
                "model '{name}' takes {} inputs, called with {}",
                input_refs.len(),
                inputs.len()
            )));
        }
        let mut produced: HashMap<Ref, usize> =
            input_refs.into_iter().zip(inputs.iter().copied()).collect();
        let mut pending: Vec<(usize, usize)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if class_of(e) == "InputLayer" {
                continue;
            }
            let nodes = e
                .get("inbound_nodes")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            pending.extend((0..nodes).map(|k| (i, k)));
        }
        if self.keras3 {
            // Keras 3 writes the mask computations of its merge layers (NotEqual, LogicalOr,
            // ExpandDims, ...) as operation nodes no output depends on: they are not built.
            let live = live_nodes(entries, &port_refs(config.get("output_layers"))?);
            pending.retain(|node| live.contains(node));
        }
        let mut known: HashSet<String> = entries.iter().map(|e| name_of(e).to_string()).collect();
        known.extend(produced.keys().map(|r| r.0.clone()));
        while !pending.is_empty() {
            let before = pending.len();
            let mut still = Vec::new();
            for (i, k) in pending {
                let entry = &entries[i];
                let node = &entry["inbound_nodes"][k];
                let CallRecord {
                    refs,
                    constants,
                    kwargs,
                    mask,
                } = node_refs(node)
                    .map_err(|e| Error::Model(format!("layer '{}': {e}", name_of(entry))))?;
                if let Some(r) = refs.iter().find(|r| !known.contains(&r.0)) {
                    return Err(Error::Model(format!("layer '{}' takes its input from '{}', which is not a layer of model '{name}'", name_of(entry), r.0)));
                }
                if let Some((source, ..)) = &mask {
                    let class = entries
                        .iter()
                        .find(|e| name_of(e) == source)
                        .map_or("?", |e| class_of(e));
                    if !MASK_OPERATIONS.contains(&class) {
                        return Err(Error::Model(format!(
                            "layer '{}': an explicit mask= tensor from '{source}' ({class}) is not supported (only the masks Keras computes itself)",
                            name_of(entry)
                        )));
                    }
                }
                let Some(slots) = refs
                    .iter()
                    .map(|r| produced.get(r).copied())
                    .collect::<Option<Vec<_>>>()
                else {
                    still.push((i, k));
                    continue;
                };
                let ops_before = self.ops.len();
                let outs = self.apply(entry, &slots, (&constants, &kwargs))?;
                if mask.is_some() && self.ops.len() == ops_before + 1 {
                    self.ops[ops_before].explicit_mask = true;
                }
                // Keras 2 / TF.js give a nested model its own node 0 (its internal input
                // node), so external calls start at 1; Keras 3 models have no such node.
                let offset = usize::from(MODEL_CLASSES.contains(&class_of(entry)) && !self.keras3);
                for (t, s) in outs.into_iter().enumerate() {
                    produced.insert((name_of(entry).to_string(), k + offset, t), s);
                }
            }
            pending = still;
            if pending.len() == before {
                let (i, k) = pending[0];
                return Err(Error::Model(format!(
                    "model '{name}': the inputs of layer '{}' (call {k}) are never produced (a cycle or a reference to a missing node)",
                    name_of(&entries[i])
                )));
            }
        }
        port_refs(config.get("output_layers"))?
            .into_iter()
            .map(|r| {
                produced.get(&r).copied().ok_or_else(|| {
                    Error::Model(format!(
                        "model '{name}': output [{}, {}, {}] is never produced",
                        r.0, r.1, r.2
                    ))
                })
            })
            .collect()
    }
}

/// The `(entry, call)` pairs the outputs `outputs` depend on (Keras 3 numbering: a nested
/// model's calls start at 0), walking the inbound nodes back from them.
fn live_nodes(entries: &[Value], outputs: &[Ref]) -> HashSet<(usize, usize)> {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (name_of(e), i))
        .collect();
    let mut live = HashSet::new();
    let mut todo: Vec<Ref> = outputs.to_vec();
    while let Some((name, node, _)) = todo.pop() {
        let Some(&i) = index.get(name.as_str()) else {
            continue;
        };
        if !live.insert((i, node)) {
            continue;
        }
        if let Some(n) = entries[i].get("inbound_nodes").and_then(|v| v.get(node)) {
            if let Ok(call) = node_refs(n) {
                todo.extend(call.refs);
            }
        }
    }
    live
}

/// The model's declared inputs: `(name, shape, dtype)`.
fn model_inputs(model: &Value) -> Result<Vec<(String, Shape, String)>> {
    if class_of(model) == "Sequential" {
        let layers = sequential_layers(model)?;
        let first = layers
            .first()
            .ok_or_else(|| Error::Model("Sequential model has no layers".into()))?;
        if MODEL_CLASSES.contains(&class_of(first)) {
            // A nested model first (Teachable Machine: Sequential → Sequential → functional
            // Model holding the InputLayer): its inputs are the outer model's, as in TF.js.
            let mut inner = model_inputs(unwrap(first))?;
            if inner.len() != 1 {
                return Err(Error::Model(format!(
                    "layer '{}': a Sequential model's first layer must take one input, it takes {}",
                    name_of(first),
                    inner.len()
                )));
            }
            return Ok(vec![inner.remove(0)]);
        }
        let (shape, dtype) = declared_input(first).ok_or_else(|| {
            Error::Model(format!(
                "layer '{}': the first layer declares no input shape",
                name_of(first)
            ))
        })?;
        let name = if class_of(first) == "InputLayer" {
            name_of(first).to_string()
        } else {
            format!("{}_input", name_of(first))
        };
        return Ok(vec![(name, shape, dtype)]);
    }
    let config = model
        .get("config")
        .ok_or_else(|| Error::Model("model has no config".into()))?;
    let entries = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Model("model has no layers".into()))?;
    port_refs(config.get("input_layers"))?
        .into_iter()
        .map(|r| {
            let entry = entries.iter().find(|e| name_of(e) == r.0).ok_or_else(|| {
                Error::Model(format!("input layer '{}' is not in the model", r.0))
            })?;
            let (shape, dtype) = declared_input(entry)
                .ok_or_else(|| Error::Model(format!("input layer '{}' declares no shape", r.0)))?;
            Ok((r.0, shape, dtype))
        })
        .collect()
}

/// Output names: the output layers' names (Sequential: the last layer's).
fn output_names(model: &Value, n: usize) -> Vec<String> {
    if class_of(model) == "Sequential" {
        let last = sequential_layers(model)
            .ok()
            .and_then(|l| l.last())
            .map(name_of)
            .unwrap_or("output");
        return vec![last.to_string()];
    }
    let refs =
        port_refs(model.get("config").and_then(|c| c.get("output_layers"))).unwrap_or_default();
    (0..n)
        .map(|i| refs.get(i).map_or(format!("output_{i}"), |r| r.0.clone()))
        .collect()
}

/// Keras's `to_snake_case` of a class name, as Keras 3's saver names layers (`Conv2D` →
/// `conv2d`, `SimpleRNN` → `simple_rnn`, `BatchNormalization` → `batch_normalization`).
pub fn snake_case(class: &str) -> String {
    let c: Vec<char> = class
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::new();
    for (i, &ch) in c.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| c[p]);
        let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        // "(.)([A-Z][a-z]+)" → "\1_\2", then "([a-z])([A-Z])" → "\1_\2".
        let split =
            ch.is_ascii_uppercase() && prev.is_some_and(|p| next_lower || p.is_ascii_lowercase());
        if split {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The h5 path of every layer of a Keras 3 model (`layers/<snake class>[_<n>]`, numbered by
/// position among the container's layers of that class; nested models recurse into
/// `<path>/layers/…`), by layer name.
fn h5_paths(model: &Value, prefix: &str, out: &mut HashMap<String, String>) {
    let model = unwrap(model);
    let Some(entries) = model
        .get("config")
        .and_then(|c| c.get("layers"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let mut used: HashMap<String, usize> = HashMap::new();
    for e in entries {
        let snake = snake_case(class_of(e));
        let n = used
            .entry(snake.clone())
            .and_modify(|n| *n += 1)
            .or_insert(0);
        let own = if *n == 0 {
            snake
        } else {
            format!("{snake}_{n}")
        };
        let path = if prefix.is_empty() {
            format!("layers/{own}")
        } else {
            format!("{prefix}/layers/{own}")
        };
        if MODEL_CLASSES.contains(&class_of(e)) {
            h5_paths(e, &path, out);
        }
        out.insert(name_of(e).to_string(), path);
    }
}

/// `"3.15.1"` → (3, 15); a part that is not a number counts 0 (`"tfjs-layers 4.22.0"` → (0, 0)).
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Rebuild `topology` with weights from `weights`.
pub fn build(topology: &Value, weights: &dyn WeightSource) -> Result<Plan> {
    let model = unwrap(topology);
    if !MODEL_CLASSES.contains(&class_of(model)) {
        return Err(Error::Model(format!(
            "modelTopology class '{}' is not Sequential, Model or Functional",
            class_of(model)
        )));
    }
    let keras_version = topology
        .get("keras_version")
        .and_then(Value::as_str)
        .map_or((0, 0), major_minor);
    let keras3 = keras_version.0 == 3;
    let mut h5 = HashMap::new();
    if keras3 {
        h5_paths(model, "", &mut h5);
    }
    let mut b = Builder {
        weights,
        keras3,
        keras_version,
        h5,
        taken: RefCell::default(),
        layer_weights: Vec::new(),
        layer_trainable: Vec::new(),
        layers: Vec::new(),
        info: Vec::new(),
        by_name: HashMap::new(),
        slots: Vec::new(),
        ops: Vec::new(),
    };
    let declared = model_inputs(model)?;
    let mut inputs = Vec::new();
    for (name, shape, dtype) in declared {
        let slot = b.slot(shape.clone());
        inputs.push(Port {
            name,
            shape,
            slot,
            dtype,
        });
    }
    let slots: Vec<usize> = inputs.iter().map(|p| p.slot).collect();
    let outs = b.call_model(model, &slots)?;
    let names = output_names(model, outs.len());
    let outputs = outs
        .iter()
        .zip(names)
        .map(|(&slot, name)| Port {
            name,
            shape: b.slots[slot].clone(),
            slot,
            dtype: "float32".into(),
        })
        .collect();
    Ok(Plan {
        layers: b.layers,
        layer_info: b.info,
        ops: b.ops,
        inputs,
        outputs,
        slot_shapes: b.slots,
        taken: b.taken.into_inner().into_iter().map(|(n, _)| n).collect(),
        layer_weights: b.layer_weights,
        layer_trainable: b.layer_trainable,
    })
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_matches_keras() {
        for (class, snake) in [
            ("Dense", "dense"),
            ("Conv2D", "conv2d"),
            ("Conv2DTranspose", "conv2d_transpose"),
            ("SimpleRNN", "simple_rnn"),
            ("LSTM", "lstm"),
            ("BatchNormalization", "batch_normalization"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("ReLU", "re_lu"),
            ("PReLU", "p_re_lu"),
            ("TimeDistributed", "time_distributed"),
        ] {
            assert_eq!(snake_case(class), snake, "{class}");
        }
    }
}
