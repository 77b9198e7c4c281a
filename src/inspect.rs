//! A summary of a model's artifacts: format, style, layers and weights.

use crate::format::{Artifacts, Container};
use crate::model::{ParamTotals, SummaryRow};
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
    /// The rebuilt graph's rows, once [`Summary::add_graph`] has them.
    pub rows: Option<Vec<SummaryRow>>,
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as Keras's summary writes them: 1024-based units, two decimals (`1.61 MB`).
fn memory_size(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", units[u])
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
        "container": match a.container { Container::Tfjs => "tfjs", Container::Safetensors => "safetensors", Container::Keras => "keras" },
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
        "model_name": spec.topology().and_then(model_name),
        "model_class": spec.topology().map(|t| t.get("model_config").unwrap_or(t)).and_then(|m| m.get("class_name")).and_then(Value::as_str),
        "trainingConfig": spec.fields.get("trainingConfig").is_some(),
        "userDefinedMetadata": spec.fields.get("userDefinedMetadata").is_some(),
    });
    Summary {
        json,
        layers,
        rows: None,
    }
}

/// The top model's name (`config.name`, Keras 2 and 3; TF.js's older list configs have none).
fn model_name(topology: &Value) -> Option<&str> {
    let m = topology.get("model_config").unwrap_or(topology);
    m.pointer("/config/name").and_then(Value::as_str)
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
    /// Add the rebuilt graph (every input and layer call with its output shape, parameters and
    /// inputs, as Keras's `model.summary()` lists them), or why it could not be rebuilt (an
    /// unsupported layer, a missing weight, …).
    pub fn add_graph(&mut self, graph: std::result::Result<Vec<SummaryRow>, String>) {
        match graph {
            Ok(rows) => {
                let totals = ParamTotals::of(&rows);
                self.json["graph"] = rows
                    .iter()
                    .map(|r| {
                        json!({"class": r.class, "name": r.name, "output_shape": r.output_shape,
                               "params": r.params, "trainable_params": r.trainable,
                               "connected_to": r.connected_to})
                    })
                    .collect();
                self.json["params"] = json!({
                    "total": totals.total,
                    "trainable": totals.trainable,
                    "non_trainable": totals.total - totals.trainable,
                });
                self.rows = Some(rows);
            }
            Err(e) => self.json["graph_error"] = json!(e),
        }
    }

    /// The Keras-style table of the rebuilt graph and its parameter totals.
    fn render_graph(&self, rows: &[SummaryRow], s: &mut String) {
        let j = &self.json;
        let functional = j["model_class"].as_str() != Some("Sequential");
        let _ = writeln!(
            s,
            "\nModel: \"{}\" ({})",
            j["model_name"].as_str().unwrap_or("?"),
            j["model_class"].as_str().unwrap_or("?")
        );
        let head = format!(
            "  {:<56} {:<22} {:>10}",
            "Layer (type)", "Output Shape", "Param #"
        );
        let _ = writeln!(
            s,
            "{head}{}",
            if functional { "  Connected to" } else { "" }
        );
        for r in rows {
            let layer = format!("{} ({})", r.name, r.class);
            let _ = write!(
                s,
                "  {layer:<56} {:<22} {:>10}",
                r.output_shape,
                thousands(r.params)
            );
            if functional {
                let to = if r.connected_to.is_empty() {
                    "-".into()
                } else {
                    r.connected_to.join(", ")
                };
                let _ = write!(s, "  {to}");
            }
            s.push('\n');
        }
        let t = ParamTotals::of(rows);
        for (what, n) in [
            ("Total", t.total),
            ("Trainable", t.trainable),
            ("Non-trainable", t.total - t.trainable),
        ] {
            let _ = writeln!(
                s,
                " {what} params: {} ({})",
                thousands(n),
                memory_size(n * 4)
            );
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
        match &self.rows {
            Some(rows) => self.render_graph(rows, &mut s),
            None => {
                let _ = writeln!(s, "\nlayers ({}):", self.layers.len());
                let _ = writeln!(s, "  {:<40} {:<24} {:>12}", "name", "class", "params");
                for l in &self.layers {
                    let name = format!("{}{}", "  ".repeat(l.depth), l.name);
                    let _ = writeln!(s, "  {name:<40} {:<24} {:>12}", l.class, l.params);
                }
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
