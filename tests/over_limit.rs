//! Dense kernels and activations above the adapter's limits predict exactly what the CPU does,
//! or are refused by name: few rows × many columns (the product needs more workgroups than one
//! dispatch dimension holds), many rows × few columns (summed over resident row chunks, the last
//! one partial), a row longer than the binding (column blocks), activations above the binding
//! between them, and weights in converter-style shards whose boundaries fall inside chunks.
//!
//! The edges are reached cheaply by lowering a device's limits (the planner reads
//! `Device::limits`; the real adapter has more room), and once at full size: the issue's
//! `Dense(9,000,000)` on a 4-wide input, then `Dense(3)`, in 4 MiB shards, on lavapipe's 128 MiB.

mod common;

use common::*;
use layercake::format::{synthetic, Style};
use layercake::gpu::Device;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use layercake::{save, SaveOptions, Session};
use std::path::Path;

/// GPU against the CPU on the same weights: float32 sums in another order.
const TOL: Tol = tol(1e-5, 1e-4);

/// `input → Dense(wide, relu) → Dense(out, activation)`, saved in `shard`-byte shards to `dir`.
fn wide_then_narrow(dir: &Path, input: usize, wide: usize, out: usize, act: &str, shard: u64) {
    let topology = serde_json::json!({"class_name": "Sequential", "config": {"name": "wide", "layers": [
        {"class_name": "Dense", "config": {"name": "wide", "units": wide, "activation": "relu",
         "use_bias": true, "batch_input_shape": [null, input]}},
        {"class_name": "Dense", "config": {"name": "narrow", "units": out, "activation": act,
         "use_bias": true}}]}});
    let named = [
        ("wide/kernel".to_string(), vec![input, wide]),
        ("wide/bias".to_string(), vec![wide]),
        ("narrow/kernel".to_string(), vec![wide, out]),
        ("narrow/bias".to_string(), vec![out]),
    ];
    let a = synthetic::with_topology(&named, topology, 7).unwrap();
    let opts = SaveOptions {
        style: Some(Style::Shards { shard_size: shard }),
        ..Default::default()
    };
    save(dir, &a.spec, &a, opts).unwrap();
}

fn inputs(batch: usize, width: usize) -> Vec<Tensor> {
    let data = (0..batch * width)
        .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
        .collect();
    vec![Tensor::new(vec![batch, width], data).unwrap()]
}

/// `dev` planning as if it bound at most `binding` bytes and dispatched at most `groups`
/// workgroups per dimension.
fn limited(dev: &Device, binding: u64, groups: u32) -> Device {
    let mut d = dev.clone();
    d.limits.max_storage_buffer_binding_size = binding;
    d.limits.max_buffer_size = binding;
    d.limits.max_compute_workgroups_per_dimension = groups;
    d
}

/// The model in `dir` on `dev`, resident (`Session`) and with copied parameters (`GpuModel`),
/// against the CPU; a refusal must name what exceeds a limit.
fn check(what: &str, dev: &Device, dir: &Path, x: &[Tensor]) {
    let model = Model::load(dir).unwrap();
    let cpu = model.predict(x).unwrap();
    let copied = GpuModel::new(dev, &model).and_then(|g| g.predict(x));
    let resident = Session::load(dev, dir).and_then(|s| s.predict(x));
    for (path, got) in [("copied", copied), ("resident", resident)] {
        match got {
            Ok(got) => {
                let err = assert_outputs(&format!("{what} ({path})"), &got, &cpu, TOL);
                eprintln!("{what} ({path}): max error {err:.2e}");
            }
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("limit") || text.contains("exceed"),
                    "{what} ({path}): refused without naming the limit: {text}"
                );
                eprintln!("{what} ({path}): refused: {text}");
            }
        }
    }
}

#[test]
fn wide_and_tall_dense_kernels_above_lowered_limits_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // 64 KiB bindings (16,384 floats), 8 workgroups per dimension.
    let small = limited(&dev, 64 << 10, 8);
    let cases: [(&str, usize, usize, usize, usize, u64); 5] = [
        // name, input width, wide units, out units, batch, shard bytes
        ("few rows, many columns", 3, 10_000, 3, 1, 50_000),
        ("a row longer than the binding", 2, 20_000, 3, 1, 30_000),
        (
            "many rows, few columns, last chunk partial",
            4,
            7_000,
            5,
            2,
            40_000,
        ),
        ("activations above the binding", 3, 9_000, 3, 2, 50_000),
        ("softmax over a wide row", 5, 5_000, 4, 3, 45_000),
    ];
    for (i, (what, input, wide, out, batch, shard)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("m{i}"));
        let act = if i == 4 { "softmax" } else { "linear" };
        wide_then_narrow(&dir, input, wide, out, act, shard);
        check(what, &small, &dir, &inputs(batch, input));
    }
}

#[test]
fn products_wider_than_one_dispatch_dimension_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Real binding limit, 4 workgroups per dimension: even small products need the 2D grid.
    let few = limited(&dev, dev.limits.max_storage_buffer_binding_size, 4);
    wide_then_narrow(tmp.path(), 6, 3_000, 7, "linear", 1 << 22);
    check(
        "4 workgroups per dimension",
        &few,
        tmp.path(),
        &inputs(3, 6),
    );
}

#[test]
fn a_product_longer_than_lavapipes_loop_budget_matches_the_cpu() {
    // 70,000 inputs: one invocation looping once per input would pass llvmpipe's 65,535-iteration
    // cap, which ends the loops silently (the sum came back short, the other columns zero).
    let Some(dev) = gpu() else { return };
    let tmp = tempfile::tempdir().unwrap();
    wide_then_narrow(tmp.path(), 70_000, 8, 3, "softmax", 1 << 22);
    check("70,000 inputs", &dev, tmp.path(), &inputs(2, 70_000));
}

#[test]
fn the_issue_dense_of_nine_million_units_matches_the_cpu() {
    let Some(dev) = gpu() else { return };
    let Some(limit) = exceedable_limit(&dev) else {
        return;
    };
    let wide = 9_000_000;
    assert!(
        wide * 4 * 4 > limit,
        "the kernel must exceed the {limit}-byte binding"
    );
    let tmp = tempfile::tempdir().unwrap();
    wide_then_narrow(tmp.path(), 4, wide, 3, "linear", 4 << 20);
    check(
        "Dense(9,000,000) → Dense(3)",
        &dev,
        tmp.path(),
        &inputs(2, 4),
    );
}
