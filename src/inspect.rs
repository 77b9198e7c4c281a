//! A summary of a model's artifacts: format, style, layers and weights.

use crate::format::{Artifacts, Container};
use crate::shape;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write;

/// One layer of the topology (nested models' layers follow their model, one level deeper).
#[derive(Clone, Debug)]
pub struct LayerRow {
    /// Keras class name.
    pub class: String,
    /// Layer name.
    pub name: String,
    /// Nesting depth (0 for the top model's layers).
    pub depth: usize,
    /// Parameters stored under this layer's name (for a nested model: all of its layers').
    pub params: u64,
}

/// A summary of loaded artifacts.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The JSON document behind the summary (also what `inspect --json` prints).
    pub json: Value,
    /// Layers, in topology order.
    pub layers: Vec<LayerRow>,
}

/// Summarize `a`.
pub fn summarize(a: &Artifacts) -> Summary {
    let spec = &a.spec;
    let mut layers = Vec::new();
    if let Some(t) = spec.topology() {
        walk_model(t, 0, &mut layers, &params_by_prefix(a));
    }
    let weights: Vec<Value> = spec
        .weights
        .iter()
        .map(|w| {
            json!({
                "name": w.name,
                "shape": w.shape,
                "dtype": w.dtype.as_str(),
                "quantization": w.quantization.as_ref().map(|q| q.dtype.as_str()),
                "group": w.group,
                "bytes": w.stored_len(),
            })
        })
        .collect();
    let (model, optimizer): (Vec<_>, Vec<_>) = spec.weights.iter().partition(|w| !w.is_optimizer());
    let count = |ws: &[&crate::WeightSpec]| ws.iter().map(|w| w.numel() as u64).sum::<u64>();
    let json = json!({
        "path": a.origin.display().to_string(),
        "container": match a.container { Container::Tfjs => "tfjs", Container::Safetensors => "safetensors" },
        "format": spec.string_field("format"),
        "generatedBy": spec.string_field("generatedBy"),
        "convertedBy": spec.string_field("convertedBy"),
        "style": spec.layout.style.to_string(),
        "layers": layers.iter().map(|l| json!({"class": l.class, "name": l.name, "depth": l.depth, "params": l.params})).collect::<Vec<_>>(),
        "weights": weights,
        "totals": {
            "weights": spec.weights.len(),
            "model_params": count(&model),
            "optimizer_values": count(&optimizer),
            "stored_bytes": spec.stored_bytes(),
        },
        "trainingConfig": spec.fields.get("trainingConfig").is_some(),
        "userDefinedMetadata": spec.fields.get("userDefinedMetadata").is_some(),
    });
    Summary { json, layers }
}

/// Parameter counts by layer-name prefix: every path prefix of every non-optimizer weight name
/// (`a` and `a/b` for `a/b/kernel`), so a layer's count is one lookup.
fn params_by_prefix(a: &Artifacts) -> HashMap<&str, u64> {
    let mut by = HashMap::new();
    for w in a.spec.weights.iter().filter(|w| !w.is_optimizer()) {
        for (i, _) in w.name.match_indices('/') {
            *by.entry(&w.name[..i]).or_insert(0) += w.numel() as u64;
        }
    }
    by
}

fn walk_model(model: &Value, depth: usize, out: &mut Vec<LayerRow>, by: &HashMap<&str, u64>) {
    let model = model.get("model_config").unwrap_or(model);
    let config = model.get("config");
    let list = match config {
        Some(Value::Array(list)) => Some(list),
        Some(c) => c.get("layers").and_then(Value::as_array),
        None => None,
    };
    for layer in list.into_iter().flatten() {
        let class = layer
            .get("class_name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let name = layer
            .pointer("/config/name")
            .or_else(|| layer.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let at = out.len();
        out.push(LayerRow {
            class: class.clone(),
            name: name.clone(),
            depth,
            params: 0,
        });
        if matches!(class.as_str(), "Sequential" | "Model" | "Functional") {
            walk_model(layer, depth + 1, out, by);
            out[at].params = out[at + 1..]
                .iter()
                .filter(|l| l.depth == depth + 1)
                .map(|l| l.params)
                .sum();
        } else {
            out[at].params = by.get(name.as_str()).copied().unwrap_or(0);
        }
    }
}

impl Summary {
    /// Add the rebuilt graph: every layer call with its inferred output shape, or why the graph
    /// could not be rebuilt (an unsupported layer, a missing weight, …).
    pub fn add_graph(&mut self, graph: std::result::Result<Vec<(String, String, String)>, String>) {
        match graph {
            Ok(calls) => {
                self.json["graph"] = calls
                    .iter()
                    .map(|(c, n, s)| json!({"class": c, "name": n, "output_shape": s}))
                    .collect();
            }
            Err(e) => self.json["graph_error"] = json!(e),
        }
    }

    /// A readable report.
    pub fn render(&self) -> String {
        let j = &self.json;
        let mut s = String::new();
        let field = |k: &str| j[k].as_str().unwrap_or("-").to_string();
        let _ = writeln!(s, "model      {}", field("path"));
        let _ = writeln!(
            s,
            "container  {} ({}), style {}",
            field("container"),
            field("format"),
            field("style")
        );
        let _ = writeln!(
            s,
            "generated  {}{}",
            field("generatedBy"),
            j["convertedBy"]
                .as_str()
                .map(|c| format!(", converted by {c}"))
                .unwrap_or_default()
        );
        let _ = writeln!(s, "\nlayers ({}):", self.layers.len());
        let _ = writeln!(s, "  {:<40} {:<24} {:>12}", "name", "class", "params");
        for l in &self.layers {
            let name = format!("{}{}", "  ".repeat(l.depth), l.name);
            let _ = writeln!(s, "  {name:<40} {:<24} {:>12}", l.class, l.params);
        }
        if let Some(calls) = j["graph"].as_array() {
            let _ = writeln!(
                s,
                "\ngraph ({} layer calls, output shapes inferred):",
                calls.len()
            );
            for c in calls {
                let _ = writeln!(
                    s,
                    "  {:<40} {:<24} {}",
                    c["name"].as_str().unwrap_or(""),
                    c["class"].as_str().unwrap_or(""),
                    c["output_shape"].as_str().unwrap_or("")
                );
            }
        }
        if let Some(e) = j["graph_error"].as_str() {
            let _ = writeln!(s, "\ngraph not rebuilt: {e}");
        }
        let weights = j["weights"].as_array().cloned().unwrap_or_default();
        let _ = writeln!(s, "\nweights ({}):", weights.len());
        let _ = writeln!(
            s,
            "  {:<52} {:<18} {:<8} {:<8} {:<10} {:>10}",
            "name", "shape", "dtype", "quant", "group", "bytes"
        );
        for w in &weights {
            let dims: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<52} {:<18} {:<8} {:<8} {:<10} {:>10}",
                w["name"].as_str().unwrap_or(""),
                shape::show(&dims),
                w["dtype"].as_str().unwrap_or(""),
                w["quantization"].as_str().unwrap_or("-"),
                w["group"].as_str().unwrap_or("-"),
                w["bytes"],
            );
        }
        let t = &j["totals"];
        let _ = writeln!(
            s,
            "\ntotals     {} weights, {} model parameters, {} optimizer values, {} bytes stored",
            t["weights"], t["model_params"], t["optimizer_values"], t["stored_bytes"]
        );
        s
    }
}
