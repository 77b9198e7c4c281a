//! The one flow (`layercake::Session`): weights uploaded once from the files, predictions that
//! read those very buffers, checks and saves that read them back. Proven by corrupting one
//! weight's resident bytes on the device: the prediction changes, the read-back check names the
//! weight, and the save writes the corrupted value.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::{read_bundle, Model};
use layercake::tensor::Tensor;
use layercake::Session;

fn inputs(dir: &std::path::Path) -> Vec<Tensor> {
    read_bundle(&dir.join("expected.json"), "inputs")
        .unwrap()
        .into_iter()
        .map(|n| n.tensor)
        .collect()
}

#[test]
fn predictions_bind_the_resident_weights_instead_of_copies() {
    let Some(dev) = gpu() else { return };
    for name in ["mlp_adam", "cnn", "rnn", "nested", "quant_uint8"] {
        let dir = fixtures_dir().join(name);
        let x = inputs(&dir);
        let session = Session::load(&dev, &dir).unwrap();
        let copied = Model::load(&dir).unwrap();
        let want = GpuModel::new(&dev, &copied).unwrap().predict(&x).unwrap();
        assert_eq!(session.predict(&x).unwrap(), want, "{name}");
        let bytes = session.param_bytes();
        assert!(bytes.resident > 0, "{name}: nothing bound ({bytes:?})");
        assert!(
            session.weights_read_back_differently().unwrap().is_empty(),
            "{name}"
        );
        eprintln!("{name}: {bytes:?}");
    }
}

#[test]
fn a_corrupted_resident_weight_changes_the_prediction_and_is_what_gets_saved() {
    let Some(dev) = gpu() else { return };
    let dir = fixtures_dir().join("mlp_adam");
    let x = inputs(&dir);
    let session = Session::load(&dev, &dir).unwrap();
    let before = session.predict(&x).unwrap();
    // The first Dense kernel's first value, overwritten on the device only.
    let a = &session.model().artifacts;
    let i = (0..a.spec.weights.len())
        .find(|&i| a.spec.weights[i].name.ends_with("kernel"))
        .unwrap();
    let name = a.spec.weights[i].name.clone();
    let chunk = session.weights().weights[i].chunks[0];
    let poisoned = 1234.5f32;
    dev.queue.write_buffer(
        session.weights().buffer(chunk),
        chunk.offset,
        bytemuck::bytes_of(&poisoned),
    );
    let after = session.predict(&x).unwrap();
    assert_ne!(
        after, before,
        "the prediction did not read the resident weight"
    );
    let changed = session.weights_read_back_differently().unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0], name);
    let out = tempfile::tempdir().unwrap();
    session.save(out.path(), Default::default()).unwrap();
    let saved = Model::load(out.path()).unwrap();
    let j = saved.artifacts.find(&name).unwrap();
    let values: Vec<f32> = bytemuck::pod_collect_to_vec(&saved.artifacts.logical(j));
    assert_eq!(
        values[0], poisoned,
        "the save did not read the buffers that predicted"
    );
    // And the saved model predicts (on the CPU) what the corrupted session did on the GPU.
    let cpu = saved.predict(&x).unwrap();
    assert_outputs(
        "saved model vs corrupted session",
        &cpu,
        &after,
        tol(1e-4, 1e-4),
    );
}

#[test]
fn convert_check_predicts_on_the_uploaded_buffers_before_writing() {
    let Some(_dev) = gpu() else { return };
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("checked");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["convert", "--device", "gpu", "--check"])
        .arg(fixtures_dir().join("rnn"))
        .arg(&dst)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("checked: predictions on the uploaded buffers"),
        "{stderr}"
    );
    let saved = Model::load(&dst).unwrap();
    let x = inputs(&fixtures_dir().join("rnn"));
    let original = Model::load(&fixtures_dir().join("rnn")).unwrap();
    assert_eq!(saved.predict(&x).unwrap(), original.predict(&x).unwrap());
}

#[test]
fn a_kernel_above_the_binding_limit_is_read_in_place_as_blocks_of_rows() {
    let Some(dev) = gpu() else { return };
    let Some(limit) = exceedable_limit(&dev) else {
        return;
    };
    let (model, x) = dense_above(limit);
    let want = model.predict(std::slice::from_ref(&x)).unwrap();
    let session = Session::open(&dev, model).unwrap();
    assert!(
        session.weights().weights[0].chunks.len() > 1,
        "the kernel is chunked"
    );
    let bytes = session.param_bytes();
    assert_eq!(bytes.derived, 0, "nothing copied: {bytes:?}");
    let got = session.predict(&[x]).unwrap();
    assert_outputs("chunked kernel", &got, &want, tol(1e-6, 1e-3));
}

#[test]
fn an_embedding_table_above_the_binding_limit_is_read_in_place() {
    let Some(dev) = gpu() else { return };
    let Some(limit) = exceedable_limit(&dev) else {
        return;
    };
    let (model, x) = embedding_above(limit);
    let want = model.predict(std::slice::from_ref(&x)).unwrap();
    let session = Session::open(&dev, model).unwrap();
    assert_eq!(
        session.param_bytes().derived,
        0,
        "{:?}",
        session.param_bytes()
    );
    assert_eq!(session.predict(&[x]).unwrap(), want);
}
