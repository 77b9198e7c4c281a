//! Inference timings on the architectures of the targets (shared by `cargo bench --bench
//! predict` and `layercake bench --predict`; `tools/tfjs-fixtures/bench-predict.mjs` times TF.js
//! on the same architectures and prints the ratios):
//! - an MLP 784-1024-1024-10 (relu, relu, softmax), batch 32;
//! - a CNN of three 3×3 `same` relu convolutions (16, 32 and 64 filters; strides 1, 2, 2) on
//!   batch 8 of 64×64×3;
//! - an LSTM of 128 units over 200 steps of 32 features, batch 8 (throughput in steps per second);
//! - one Dense layer computing an n×n by n×n product (the GPU matmul's GFLOP/s; n = 1024 by
//!   default, `layercake bench --predict --matmul N`).

use super::Stat;
use crate::error::Result;
use crate::format::synthetic;
use crate::gpu::Device;
use crate::layers::GpuForm;
use crate::model::gpu::GpuModel;
use crate::model::Model;
use crate::tensor::Tensor;
use serde_json::{json, Value};
use std::time::Instant;

/// One benchmark case: a model with synthetic weights and its input.
pub struct Case {
    /// Short name (`mlp`, `cnn`, `lstm`, `matmul1024`).
    pub name: String,
    /// The model.
    pub model: Model,
    /// Its input batch.
    pub input: Tensor,
    /// Floating-point operations per predict (multiply-adds counted as two).
    pub flops: f64,
    /// Time steps per predict (sequence models; 0 otherwise).
    pub steps: usize,
}

/// One measured row of [`run`].
#[derive(Clone, Debug)]
pub struct Timing {
    /// The case's name (a built-in case, or the model's file stem).
    pub case: String,
    /// The batch size.
    pub batch: usize,
    /// `cpu` or `gpu`.
    pub backend: &'static str,
    /// Seconds per predict.
    pub secs: Stat,
    /// GFLOP/s at the median.
    pub gflops: f64,
    /// Sequence steps per second at the median (sequence models).
    pub steps_per_s: Option<f64>,
}

fn sequential(
    name: &str,
    input: &[usize],
    layers: Vec<Value>,
    weights: &[(String, Vec<usize>)],
) -> Result<Model> {
    let shape: Vec<Value> = std::iter::once(Value::Null)
        .chain(input.iter().map(|&d| json!(d)))
        .collect();
    let mut all = vec![
        json!({"class_name": "InputLayer", "config": {"name": "x", "batch_input_shape": shape}}),
    ];
    all.extend(layers);
    let topology = json!({"class_name": "Sequential", "config": {"name": name, "layers": all}});
    Model::from_artifacts(synthetic::with_topology(weights, topology, 5)?)
}

fn input(shape: Vec<usize>) -> Result<Tensor> {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0)
        .collect();
    Tensor::new(shape, data)
}

/// MLP 784-1024-1024-10, batch 32.
pub fn mlp() -> Result<Case> {
    let dims = [784, 1024, 1024, 10];
    let (mut layers, mut weights, mut flops) = (Vec::new(), Vec::new(), 0.0);
    for i in 0..3 {
        let name = format!("d{i}");
        let act = if i == 2 { "softmax" } else { "relu" };
        layers.push(json!({"class_name": "Dense", "config": {"name": name, "units": dims[i + 1], "activation": act}}));
        weights.push((format!("{name}/kernel"), vec![dims[i], dims[i + 1]]));
        weights.push((format!("{name}/bias"), vec![dims[i + 1]]));
        flops += 2.0 * 32.0 * (dims[i] * dims[i + 1]) as f64;
    }
    Ok(Case {
        name: "mlp".into(),
        model: sequential("mlp", &[784], layers, &weights)?,
        input: input(vec![32, 784])?,
        flops,
        steps: 0,
    })
}

/// Three 3×3 convolutions on batch 8 of 64×64×3.
pub fn cnn() -> Result<Case> {
    let specs = [(3, 16, 1), (16, 32, 2), (32, 64, 2)];
    let (mut layers, mut weights, mut flops, mut side) = (Vec::new(), Vec::new(), 0.0, 64);
    for (i, &(cin, f, s)) in specs.iter().enumerate() {
        let name = format!("c{i}");
        layers.push(json!({"class_name": "Conv2D", "config": {"name": name, "filters": f, "kernel_size": 3, "strides": s, "padding": "same", "activation": "relu"}}));
        weights.push((format!("{name}/kernel"), vec![3, 3, cin, f]));
        weights.push((format!("{name}/bias"), vec![f]));
        side /= s;
        flops += 2.0 * (8 * side * side * 9 * cin * f) as f64;
    }
    Ok(Case {
        name: "cnn".into(),
        model: sequential("cnn", &[64, 64, 3], layers, &weights)?,
        input: input(vec![8, 64, 64, 3])?,
        flops,
        steps: 0,
    })
}

/// LSTM(128) over 200 steps of 32 features, batch 8, last output only.
pub fn lstm() -> Result<Case> {
    let (batch, steps, features, units) = (8, 200, 32, 128);
    let layers = vec![
        json!({"class_name": "LSTM", "config": {"name": "lstm", "units": units, "activation": "tanh", "recurrent_activation": "sigmoid"}}),
    ];
    let weights = [
        ("lstm/kernel".into(), vec![features, 4 * units]),
        ("lstm/recurrent_kernel".into(), vec![units, 4 * units]),
        ("lstm/bias".into(), vec![4 * units]),
    ];
    Ok(Case {
        name: "lstm".into(),
        model: sequential("lstm", &[steps, features], layers, &weights)?,
        input: input(vec![batch, steps, features])?,
        flops: 2.0 * (batch * steps * (features + units) * 4 * units) as f64,
        steps,
    })
}

/// One Dense layer: an n×n by n×n matrix product (plus bias).
pub fn matmul(n: usize) -> Result<Case> {
    let layers = vec![json!({"class_name": "Dense", "config": {"name": "d", "units": n}})];
    let weights = [("d/kernel".into(), vec![n, n]), ("d/bias".into(), vec![n])];
    Ok(Case {
        name: format!("matmul{n}"),
        model: sequential("matmul", &[n], layers, &weights)?,
        input: input(vec![n, n])?,
        flops: 2.0 * (n * n * n) as f64,
        steps: 0,
    })
}

fn time(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<Stat> {
    f()?; // warm-up: pipelines compiled, buffers and caches filled
    let mut samples = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    Ok(Stat::of(&samples))
}

fn timing(case: &Case, backend: &'static str, secs: Stat) -> Timing {
    Timing {
        case: case.name.to_string(),
        batch: case.input.shape[0],
        backend,
        secs,
        gflops: case.flops / secs.median.max(1e-12) / 1e9,
        steps_per_s: (case.steps > 0).then(|| case.steps as f64 / secs.median.max(1e-12)),
    }
}

/// Time every case on the CPU backend and, with `dev`, on the GPU (`repeat` predicts each after a
/// warm-up; the `matmul_n`³ product is timed on the GPU only, with `gpu_repeat`).
pub fn run(
    dev: Option<&Device>,
    repeat: usize,
    gpu_repeat: usize,
    matmul_n: usize,
) -> Result<Vec<Timing>> {
    let cases = [mlp()?, cnn()?, lstm()?, matmul(matmul_n)?];
    let mut rows = Vec::new();
    for case in &cases[..3] {
        let x = std::slice::from_ref(&case.input);
        let secs = time(repeat, || case.model.predict(x).map(drop))?;
        rows.push(timing(case, "cpu", secs));
    }
    if let Some(dev) = dev {
        for case in &cases {
            let gm = GpuModel::new(dev, &case.model)?;
            let x = std::slice::from_ref(&case.input);
            let secs = time(gpu_repeat, || gm.predict(x).map(drop))?;
            rows.push(timing(case, "gpu", secs));
        }
    }
    Ok(rows)
}

/// Floating-point operations of one predict on `inputs`, multiply-adds counted as two: the
/// products (Dense and EinsumDense, convolutions, depthwise and separable convolutions,
/// recurrent layers), which dominate every model measured here; element-wise work, pooling and
/// attention scores are not counted, so GFLOP/s is a lower bound.
pub fn model_flops(model: &Model, inputs: &[Tensor]) -> Result<f64> {
    let shapes = model.concrete_shapes(inputs)?;
    let plan = &model.plan;
    let mut total = 0.0;
    for op in &plan.ops {
        let numel = |s: usize| shapes[s].iter().product::<usize>() as f64;
        let (input, output) = (op.inputs.first().copied().unwrap_or(op.output), op.output);
        if let Some(form) = plan.layers[op.layer].gpu() {
            total += form_flops(&form, shapes[input].as_slice(), numel(input), numel(output));
        }
    }
    Ok(total)
}

/// [`model_flops`] of one layer's form, given its first input's shape and element counts.
fn form_flops(form: &GpuForm<'_>, input: &[usize], numel_in: f64, numel_out: f64) -> f64 {
    let steps = || input.iter().take(2).product::<usize>() as f64; // batch × time
    match form {
        GpuForm::Permuted { inner, .. }
        | GpuForm::MergeTime(inner)
        | GpuForm::ThenRow { inner, .. } => form_flops(inner, input, numel_in, numel_out),
        GpuForm::MatMul { kernel, .. } => 2.0 * numel_in * kernel.shape[1] as f64,
        GpuForm::GatherMatMul { kernel, .. } => 2.0 * numel_out * kernel.shape[0] as f64,
        GpuForm::Depthwise {
            depthwise,
            pointwise,
            ..
        } => {
            let r = depthwise.rank();
            let window: usize = depthwise.shape[..r - 2].iter().product();
            let mid = (depthwise.shape[r - 2] * depthwise.shape[r - 1]) as f64;
            match pointwise {
                Some(p) => {
                    let f = p.shape[p.rank() - 1] as f64;
                    let rows = numel_out / f;
                    2.0 * rows * mid * (window as f64 + f)
                }
                None => 2.0 * numel_out * window as f64,
            }
        }
        GpuForm::Recurrent(r) => recurrent_flops(r, steps()),
        GpuForm::Stack(cells) => cells.iter().map(|r| recurrent_flops(r, steps())).sum(),
        GpuForm::Bidirectional(b) => {
            recurrent_flops(&b.forward, steps()) + recurrent_flops(&b.backward, steps())
        }
        _ => 0.0,
    }
}

fn recurrent_flops(r: &crate::layers::Recurrent, rows: f64) -> f64 {
    let (f, g, u) = (r.kernel.shape[0], r.cell.gates(), r.units());
    2.0 * rows * ((f + u) * g * u) as f64
}

/// Time `model` at each batch size on the CPU backend and, with `dev`, on the GPU (its weights
/// uploaded once and bound in place, as a [`crate::Session`] does): `repeat` predicts each after
/// a warm-up, inputs drawn from the model's input domain ([`crate::verify::random_inputs`]).
pub fn run_model(
    model: Model,
    name: &str,
    (cpu, dev): (bool, Option<&Device>),
    batches: &[usize],
    repeat: usize,
) -> Result<Vec<Timing>> {
    match dev {
        Some(d) => {
            let session = crate::Session::open(d, model)?;
            measure(
                session.model(),
                Some(&session),
                (name, cpu),
                batches,
                repeat,
            )
        }
        None => measure(&model, None, (name, cpu), batches, repeat),
    }
}

/// [`run_model`] once the model is loaded (and, for the GPU, its session open).
fn measure(
    model: &Model,
    session: Option<&crate::Session>,
    (name, cpu): (&str, bool),
    batches: &[usize],
    repeat: usize,
) -> Result<Vec<Timing>> {
    let mut rows = Vec::new();
    for &batch in batches {
        let inputs = crate::verify::random_inputs(model, 7, batch.max(1));
        let flops = model_flops(model, &inputs)?;
        let row = |backend, secs: Stat| Timing {
            case: name.to_string(),
            batch,
            backend,
            secs,
            gflops: flops / secs.median.max(1e-12) / 1e9,
            steps_per_s: None,
        };
        if cpu {
            let secs = time(repeat, || model.predict(&inputs).map(drop))?;
            rows.push(row("cpu", secs));
        }
        if let Some(s) = session {
            let secs = time(repeat, || s.predict(&inputs).map(drop))?;
            rows.push(row("gpu", secs));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_have_the_documented_shapes_and_work() {
        let c = cnn().unwrap();
        assert_eq!(
            c.flops,
            2.0 * 8.0 * (4096.0 * 27.0 * 16.0 + 1024.0 * 144.0 * 32.0 + 256.0 * 288.0 * 64.0)
        );
        let out = c.model.predict(std::slice::from_ref(&c.input)).unwrap();
        assert_eq!(out[0].shape, vec![8, 16, 16, 64]);
        let m = mlp().unwrap();
        let out = m.model.predict(std::slice::from_ref(&m.input)).unwrap();
        assert_eq!(out[0].shape, vec![32, 10]);
        let rows: f32 = out[0].data.iter().sum();
        assert!((rows - 32.0).abs() < 1e-3, "softmax rows sum to 1");
        let l = lstm().unwrap();
        let out = l.model.predict(std::slice::from_ref(&l.input)).unwrap();
        assert_eq!((out[0].shape.clone(), l.steps), (vec![8, 128], 200));
    }
}
