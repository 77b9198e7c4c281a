//! What Keras's `model.summary()` lists: every input and layer call with its output shape,
//! parameter count and the layers it reads, and the trainable / non-trainable totals.

use super::Model;
use crate::shape::show_opt as show;
use std::collections::HashMap;

/// Weight roles Keras creates as non-trainable variables (BatchNormalization's moving
/// statistics, Normalization's adapted state).
const NON_TRAINABLE: [&str; 5] = [
    "moving_mean",
    "moving_variance",
    "mean",
    "variance",
    "count",
];

/// One row of [`Model::summary_rows`]: a model input or a layer call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Keras class (`InputLayer` for an input).
    pub class: String,
    /// Layer (or input) name.
    pub name: String,
    /// Inferred output shape, `?` for free dimensions (`[?, 16, 16, 16]`).
    pub output_shape: String,
    /// Parameters of the layer's weights, on its first call (0 on later calls of a shared
    /// layer, as Keras counts each layer once).
    pub params: u64,
    /// Of `params`, those Keras trains (not moving statistics, not a frozen layer's).
    pub trainable: u64,
    /// The layers (or inputs) whose outputs this call reads.
    pub connected_to: Vec<String>,
}

/// Parameter totals of [`Model::summary_rows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ParamTotals {
    /// Every parameter.
    pub total: u64,
    /// Trainable ones.
    pub trainable: u64,
}

impl ParamTotals {
    /// Sum over rows.
    pub fn of(rows: &[SummaryRow]) -> ParamTotals {
        ParamTotals {
            total: rows.iter().map(|r| r.params).sum(),
            trainable: rows.iter().map(|r| r.trainable).sum(),
        }
    }
}

impl Model {
    /// The model as Keras's `model.summary()` lists it: inputs, then every layer call in
    /// execution order.
    pub fn summary_rows(&self) -> Vec<SummaryRow> {
        let plan = &self.plan;
        let numel: HashMap<&str, u64> = self
            .artifacts
            .spec
            .weights
            .iter()
            .map(|w| (w.name.as_str(), w.numel() as u64))
            .collect();
        let mut producer: Vec<String> = vec![String::new(); plan.slot_shapes.len()];
        let mut rows = Vec::new();
        for port in &plan.inputs {
            producer[port.slot] = port.name.clone();
            rows.push(SummaryRow {
                class: "InputLayer".into(),
                name: port.name.clone(),
                output_shape: show(&port.shape),
                params: 0,
                trainable: 0,
                connected_to: Vec::new(),
            });
        }
        let mut counted = vec![false; plan.layers.len()];
        for op in &plan.ops {
            let (class, name) = &plan.layer_info[op.layer];
            let (mut params, mut trainable) = (0, 0);
            if !std::mem::replace(&mut counted[op.layer], true) {
                for (weight, role) in &plan.layer_weights[op.layer] {
                    let n = numel.get(weight.as_str()).copied().unwrap_or(0);
                    params += n;
                    if plan.layer_trainable[op.layer] && !NON_TRAINABLE.contains(&role.as_str()) {
                        trainable += n;
                    }
                }
            }
            let mut connected_to: Vec<String> =
                op.inputs.iter().map(|&s| producer[s].clone()).collect();
            connected_to.dedup();
            for &slot in std::iter::once(&op.output).chain(&op.extra) {
                producer[slot] = name.clone();
            }
            rows.push(SummaryRow {
                class: class.clone(),
                name: name.clone(),
                output_shape: show(&plan.slot_shapes[op.output]),
                params,
                trainable,
                connected_to,
            });
        }
        rows
    }
}
