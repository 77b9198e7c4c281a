//! Published TF.js layers models that no one here wrote (nsfwjs 4.3.0 from npm: MobileNetV2 at
//! 224×224 and InceptionV3 at 299×299, Keras 2 exports, uint8-quantized, weight files without
//! an extension, no `format` key), decoded by tools/tfjs-fixtures/published.mjs with real
//! TF.js's predictions, compared on the CPU and the GPU. Both sides dequantize the same codes,
//! so the tolerance is the float32 one (atol 1e-4 / rtol 1e-4), not the quantization one.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use std::path::Path;

/// The float32 tolerance: both sides dequantize the same codes.
const TOL: Tol = tol(1e-4, 1e-4);

fn bundle(dir: &Path, key: &str) -> Vec<Tensor> {
    bundle_tensors(&dir.join("expected.json"), key)
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
        assert_outputs(&format!("{name} (CPU) off TF.js"), &cpu, &want, TOL);
        if let Some(dev) = &dev {
            let got = GpuModel::new(dev, &m).unwrap().predict(&inputs).unwrap();
            assert_outputs(&format!("{name} (GPU) off TF.js"), &got, &want, TOL);
        }
        eprintln!("{name}: matches TF.js on the CPU and the GPU");
    }
}
