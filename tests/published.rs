//! Published TF.js layers models that no one here wrote (nsfwjs 4.3.0 from npm: MobileNetV2 at
//! 224×224 and InceptionV3 at 299×299, Keras 2 exports, uint8-quantized, weight files without
//! an extension, no `format` key), decoded by tools/tfjs-fixtures/published.mjs with real
//! TF.js's predictions, compared on the CPU and the GPU. Both sides dequantize the same codes,
//! so the tolerance is the float32 one (atol 1e-4 / rtol 1e-4), not the quantization one.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::{read_bundle, Model};
use layercake::tensor::Tensor;
use std::path::Path;

fn bundle(dir: &Path, key: &str) -> Vec<Tensor> {
    read_bundle(&dir.join("expected.json"), key)
        .unwrap()
        .into_iter()
        .map(|n| n.tensor)
        .collect()
}

fn worst(got: &[Tensor], want: &[Tensor]) -> f32 {
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| {
            assert_eq!(g.shape, w.shape);
            g.data
                .iter()
                .zip(&w.data)
                .map(|(a, b)| (a - b).abs() - 1e-4 * b.abs())
        })
        .fold(f32::MIN, f32::max)
}

#[test]
fn published_nsfwjs_models_match_tfjs_on_cpu_and_gpu() {
    let Some(tools) = tfjs_tools() else { return };
    let script = std::fs::read(tools.join("published.mjs")).unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/published")
        .join(format!(
            "{:08x}",
            script
                .iter()
                .fold(0u32, |h, &b| h.rotate_left(5) ^ b as u32)
        ));
    if !out.join("inception_v3/expected.json").is_file() {
        node(&tools, "published.mjs", &[out.as_os_str()]);
    }
    let dev = gpu();
    for name in ["mobilenet_v2", "inception_v3"] {
        let dir = out.join(name);
        let m = Model::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (inputs, want) = (bundle(&dir, "inputs"), bundle(&dir, "outputs"));
        let cpu = m.predict(&inputs).unwrap();
        assert!(worst(&cpu, &want) <= 1e-4, "{name} (CPU) off TF.js");
        if let Some(dev) = &dev {
            let got = GpuModel::new(dev, &m).unwrap().predict(&inputs).unwrap();
            assert!(worst(&got, &want) <= 1e-4, "{name} (GPU) off TF.js");
        }
        eprintln!("{name}: matches TF.js on the CPU and the GPU");
    }
}
