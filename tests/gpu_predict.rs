//! Predictions on the GPU (lavapipe in CI) match TF.js and the CPU reference for the fixtures whose
//! layers have GPU kernels so far, and the matmul kernel matches the CPU on shapes that are not
//! multiples of its tile, batch 1 included.

mod common;

use common::*;
use layercake::format::synthetic;
use layercake::model::gpu::GpuModel;
use layercake::model::{read_bundle, Model};
use layercake::tensor::Tensor;

fn close(got: &Tensor, want: &Tensor, atol: f32, rtol: f32) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?} vs {:?}", got.shape, want.shape));
    }
    for (i, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        let err = (a - b).abs();
        if err > atol + rtol * b.abs() || err.is_nan() {
            return Err(format!("element {i}: {a} vs {b}"));
        }
    }
    Ok(())
}

#[test]
fn gpu_predictions_match_tfjs_and_the_cpu() {
    let Some(dev) = gpu() else { return };
    for name in [
        "sharded",
        "quant_uint16",
        "activations",
        "mlp_adam",
        "nested",
    ] {
        let model = Model::load(&fixtures_dir().join(name)).unwrap();
        let gm = GpuModel::new(&dev, &model).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = fixtures_dir().join(name).join("expected.json");
        let inputs: Vec<Tensor> = read_bundle(&expected, "inputs")
            .unwrap()
            .into_iter()
            .map(|n| n.tensor)
            .collect();
        let want = read_bundle(&expected, "outputs").unwrap();
        let got = gm
            .predict(&inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let cpu = model.predict(&inputs).unwrap();
        for (k, g) in got.iter().enumerate() {
            close(g, &want[k].tensor, 1e-5, 1e-4)
                .unwrap_or_else(|e| panic!("{name} output {k} vs TF.js: {e}"));
            close(g, &cpu[k], 1e-5, 1e-4)
                .unwrap_or_else(|e| panic!("{name} output {k} vs CPU: {e}"));
        }
    }
}

#[test]
fn matmul_matches_the_cpu_on_odd_shapes() {
    let Some(dev) = gpu() else { return };
    // Square Dense stacks of widths that are not multiples of the 32-wide tile.
    for (width, batch) in [(1usize, 1usize), (33, 1), (37, 5), (70, 3)] {
        let a = synthetic::mlp((width * width * 4 * 2) as u64, 4).unwrap();
        let model = Model::from_artifacts(a).unwrap();
        let d = model.inputs()[0].shape[1].unwrap();
        let x = Tensor::new(
            vec![batch, d],
            (0..batch * d)
                .map(|i| ((i * 7919) % 97) as f32 / 50.0 - 1.0)
                .collect(),
        )
        .unwrap();
        let cpu = model.predict(std::slice::from_ref(&x)).unwrap();
        let got = GpuModel::new(&dev, &model).unwrap().predict(&[x]).unwrap();
        close(&got[0], &cpu[0], 1e-4, 1e-4)
            .unwrap_or_else(|e| panic!("width {d}, batch {batch}: {e}"));
    }
}

#[test]
fn layers_without_kernels_are_named() {
    let Some(dev) = gpu() else { return };
    let model = Model::load(&fixtures_dir().join("cnn")).unwrap();
    let err = GpuModel::new(&dev, &model).err().unwrap().to_string();
    assert!(err.contains("(Conv2D) has no GPU kernels yet"), "{err}");
}
