//! keras.applications architectures (MobileNet V1/V2/V3, EfficientNetB0, ResNet50 V1/V2,
//! DenseNet121, Xception, NASNetMobile, InceptionV3, ConvNeXtTiny) built by Keras 3 with seeded
//! weights, converted by the real `tensorflowjs_converter` (tools/keras3-fixtures/apps.py) and
//! compared with Keras's own `predict` on the CPU and the GPU; the `model.keras` Keras saved is
//! also loaded directly and must predict exactly as the converted model. Generated where Python has
//! TensorFlow (CI installs it), cached under `target/` by the generator's content; MobileNet and
//! MobileNetV2 are also committed (tests/fixtures/keras3/app_*), so they run everywhere.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::Model;
use layercake::tensor::Tensor;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

const APPS: &[&str] = &[
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "resnet50",
    "resnet50_v2",
    "densenet121",
    "xception",
    "nasnet_mobile",
    "inception_v3",
    "convnext_tiny",
];

/// The generated models' directory, keyed by the generator scripts' contents.
fn generated(tools: &Path) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in ["apps.py", "gen.py"] {
        std::fs::read(tools.join(f)).unwrap().hash(&mut h);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/keras-apps")
        .join(format!("{:016x}", h.finish()));
    let missing: Vec<&str> = APPS
        .iter()
        .copied()
        .filter(|a| !root.join(a).join("expected.json").is_file())
        .collect();
    if !missing.is_empty() {
        let out = Command::new("python3")
            .arg(tools.join("apps.py"))
            .arg(&root)
            .args(&missing)
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apps.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    root
}

fn bundle(dir: &Path, key: &str) -> Vec<Tensor> {
    bundle_tensors(&dir.join("expected.json"), key)
}

/// Within atol 1e-4 / rtol 1e-4 of Keras (deep nets: 50–200 layers of float32 sums).
fn assert_close(what: &str, got: &[Tensor], want: &[Tensor]) {
    assert_outputs(what, got, want, tol(1e-4, 1e-4));
}

#[test]
fn keras_applications_match_keras_on_cpu_and_gpu() {
    let Some(tools) = keras_tools() else { return };
    let root = generated(&tools);
    let dev = gpu();
    for app in APPS {
        let dir = root.join(app);
        let m = Model::load(&dir).unwrap_or_else(|e| panic!("{app}: {e}"));
        let (inputs, want) = (bundle(&dir, "inputs"), bundle(&dir, "outputs"));
        let cpu = m.predict(&inputs).unwrap_or_else(|e| panic!("{app}: {e}"));
        assert_close(&format!("{app} (CPU)"), &cpu, &want);
        let keras =
            Model::load(&dir.join("model.keras")).unwrap_or_else(|e| panic!("{app}.keras: {e}"));
        let direct = keras
            .predict(&inputs)
            .unwrap_or_else(|e| panic!("{app}.keras: {e}"));
        assert_outputs(
            &format!("{app}: model.keras read directly predicts as its model.json"),
            &direct,
            &cpu,
            tol(0.0, 0.0),
        );
        if let Some(dev) = &dev {
            let g = GpuModel::new(dev, &m).unwrap_or_else(|e| panic!("{app}: {e}"));
            let got = g.predict(&inputs).unwrap_or_else(|e| panic!("{app}: {e}"));
            assert_close(&format!("{app} (GPU)"), &got, &want);
        }
        eprintln!("{app}: {} layers, matches Keras", m.summary().len());
    }
}
