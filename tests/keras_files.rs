//! Keras files loaded directly: every Keras 3 fixture's `model.keras` (saved by Keras 3.15 next
//! to the converter's model.json, tools/keras3-fixtures/gen.py) gives the converter's weights
//! under the converter's names and Keras's own predictions; an unzipped directory and a
//! deflated archive read the same; damaged archives get one error naming the file and the
//! object.

mod common;

use common::*;
use layercake::model::gpu::GpuModel;
use layercake::model::{read_bundle, Model};
use layercake::tensor::Tensor;
use layercake::Artifacts;
use std::io::Write;
use std::path::{Path, PathBuf};

fn keras_fixtures() -> Vec<PathBuf> {
    let root = fixtures_dir().join("keras3");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.keras").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 20, "model.keras fixtures missing: {dirs:?}");
    dirs
}

fn golden(dir: &Path) -> (Vec<Tensor>, Vec<Tensor>) {
    let bundle = |key| {
        read_bundle(&dir.join("expected.json"), key)
            .unwrap()
            .into_iter()
            .map(|n| n.tensor)
            .collect()
    };
    (bundle("inputs"), bundle("outputs"))
}

/// The same weights by name: shape, dtype and decoded bytes (the converter's order is its own).
fn assert_same_by_name(keras: &Artifacts, tfjs: &Artifacts, what: &str) {
    let mut a: Vec<&str> = keras.spec.weights.iter().map(|w| w.name.as_str()).collect();
    let mut b: Vec<&str> = tfjs.spec.weights.iter().map(|w| w.name.as_str()).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "{what}: weight names");
    for (i, w) in keras.spec.weights.iter().enumerate() {
        let j = tfjs.find(&w.name).unwrap();
        let v = &tfjs.spec.weights[j];
        assert_eq!(
            (&w.shape, w.dtype),
            (&v.shape, v.dtype),
            "{what}: {}",
            w.name
        );
        assert!(
            keras.logical(i) == tfjs.logical(j),
            "{what}: {} bytes",
            w.name
        );
    }
}

fn assert_close(what: &str, got: &[Tensor], want: &[Tensor]) {
    assert_outputs(&format!("{what} vs Keras"), got, want, tol(1e-4, 1e-4));
}

#[test]
fn every_keras3_fixture_loads_from_its_keras_file_like_its_converted_model() {
    for dir in keras_fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let keras =
            layercake::open(&dir.join("model.keras")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tfjs = layercake::open(&dir).unwrap();
        assert_same_by_name(&keras, &tfjs, &name);
        let (inputs, want) = golden(&dir);
        let from_keras = Model::from_artifacts(keras).unwrap_or_else(|e| panic!("{name}: {e}"));
        let from_json = Model::from_artifacts(tfjs).unwrap();
        let got = from_keras
            .predict(&inputs)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(&format!("{name} from .keras"), &got, &want);
        let same = from_json.predict(&inputs).unwrap();
        assert_outputs(
            &format!("{name}: .keras and model.json predict alike, bit for bit"),
            &got,
            &same,
            tol(0.0, 0.0),
        );
    }
}

#[test]
fn keras_file_weights_go_to_the_gpu_in_place_and_predict_there() {
    let Some(dev) = gpu() else { return };
    for name in ["conv_bn", "embed_lstm", "fitted", "app_mobilenet_v2"] {
        let dir = fixtures_dir().join("keras3").join(name);
        let keras = layercake::open(&dir.join("model.keras")).unwrap();
        let size = std::fs::metadata(dir.join("model.keras")).unwrap().len() as usize;
        assert_eq!(
            keras.store.buffer(0).map(<[u8]>::len),
            Some(size),
            "{name}: the archive's map"
        );
        for (i, w) in keras.spec.weights.iter().enumerate() {
            if w.dtype == layercake::DType::Float32 {
                let runs: Vec<_> = keras.store.source_ranges(i, 0, w.stored_len()).collect();
                assert!(
                    runs.iter().all(|r| r.0 == 0),
                    "{name}: {} read in place",
                    w.name
                );
            }
        }
        let m = Model::from_artifacts(keras).unwrap();
        let g = GpuModel::new(&dev, &m).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (inputs, want) = golden(&dir);
        assert_close(
            &format!("{name} .keras on the GPU"),
            &g.predict(&inputs).unwrap(),
            &want,
        );
    }
}

/// The members of `archive`, as (name, bytes).
fn members(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(archive).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut v).unwrap();
            (f.name().to_string(), v)
        })
        .collect()
}

fn write_zip(path: &Path, members: &[(String, Vec<u8>)], method: zip::CompressionMethod) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::FileOptions::default().compression_method(method);
    for (name, bytes) in members {
        w.start_file(name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn unzipped_and_deflated_keras_files_read_the_same() {
    let dir = fixtures_dir().join("keras3/nested");
    let want = layercake::open(&dir.join("model.keras")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let files = members(&dir.join("model.keras"));
    let unzipped = tmp.path().join("unzipped");
    std::fs::create_dir(&unzipped).unwrap();
    for (name, bytes) in &files {
        std::fs::write(unzipped.join(name), bytes).unwrap();
    }
    let deflated = tmp.path().join("deflated.keras");
    write_zip(&deflated, &files, zip::CompressionMethod::Deflated);
    for path in [unzipped, deflated] {
        let got = layercake::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_same_values(&want, &got, &path.display().to_string());
    }
    // A .keras source saved as safetensors and as TF.js keeps its weights and topology.
    for dst in [tmp.path().join("m.safetensors"), tmp.path().join("tfjs")] {
        layercake::format::save(&dst, &want.spec, &want, Default::default()).unwrap();
        let got = layercake::open(&dst).unwrap();
        assert_same_values(&want, &got, &dst.display().to_string());
        assert_eq!(
            got.spec.topology(),
            want.spec.topology(),
            "{}",
            dst.display()
        );
    }
}

/// `layercake inspect PATH` fails with exit 2 and a one-line message containing `needles`.
fn assert_refused(path: &Path, needles: &[&str]) {
    let err = layercake::open(path)
        .err()
        .unwrap_or_else(|| panic!("{} loaded", path.display()))
        .to_string();
    for n in needles {
        assert!(err.contains(n), "{}: '{err}' lacks '{n}'", path.display());
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn damaged_keras_files_are_refused_naming_the_file_and_object() {
    let src = fixtures_dir().join("keras3/conv_bn/model.keras");
    let bytes = std::fs::read(&src).unwrap();
    let files = members(&src);
    let tmp = tempfile::tempdir().unwrap();
    let at = |n: &str| tmp.path().join(n);
    // Cut short: the zip's central directory is gone.
    std::fs::write(at("short.keras"), &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&at("short.keras"), &["short.keras", "zip"]);
    // No config.json.
    let no_config: Vec<_> = files
        .iter()
        .filter(|(n, _)| n != "config.json")
        .cloned()
        .collect();
    write_zip(
        &at("noconfig.keras"),
        &no_config,
        zip::CompressionMethod::Stored,
    );
    assert_refused(&at("noconfig.keras"), &["noconfig.keras", "config.json"]);
    // The weights file cut in half inside a well-formed archive.
    let cut: Vec<_> = files
        .iter()
        .map(|(n, b)| match n.as_str() {
            "model.weights.h5" => (n.clone(), b[..b.len() / 2].to_vec()),
            _ => (n.clone(), b.clone()),
        })
        .collect();
    write_zip(&at("cut.keras"), &cut, zip::CompressionMethod::Stored);
    assert_refused(&at("cut.keras"), &["cut.keras", "model.weights.h5"]);
    // Not HDF5 at all.
    let garbage: Vec<_> = files
        .iter()
        .map(|(n, b)| match n.as_str() {
            "model.weights.h5" => (n.clone(), vec![7u8; b.len()]),
            _ => (n.clone(), b.clone()),
        })
        .collect();
    write_zip(
        &at("garbage.keras"),
        &garbage,
        zip::CompressionMethod::Stored,
    );
    assert_refused(
        &at("garbage.keras"),
        &["garbage.keras/model.weights.h5", "HDF5"],
    );
    // A config that is not JSON.
    let bad_json: Vec<_> = files
        .iter()
        .map(|(n, b)| match n.as_str() {
            "config.json" => (n.clone(), b"{\"class_name\": ".to_vec()),
            _ => (n.clone(), b.clone()),
        })
        .collect();
    write_zip(&at("json.keras"), &bad_json, zip::CompressionMethod::Stored);
    assert_refused(&at("json.keras"), &["json.keras/config.json"]);
    // An .h5 that is not a whole model.
    std::fs::write(
        at("plain.h5"),
        &files
            .iter()
            .find(|(n, _)| n == "model.weights.h5")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_refused(&at("plain.h5"), &["plain.h5", "model_config"]);
}

#[test]
fn legacy_h5_models_from_tf_keras_load_like_their_converted_models() {
    let root = fixtures_dir().join("keras2_h5");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "keras2_h5 fixtures missing: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let h5 = layercake::open(&dir.join("model.h5")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tfjs = layercake::open(&dir.join("model.json")).unwrap();
        assert_same_by_name(&h5, &tfjs, &name);
        let (inputs, want) = golden(&dir);
        let m = Model::from_artifacts(h5).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = m.predict(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_close(&format!("{name} from .h5"), &got, &want);
    }
}

/// Every Keras 3 fixture written as `.keras` by layercake: from the converter's model.json (its
/// config has lost its `module` keys, which the writer restores) on the CPU path, and from
/// model.keras through the GPU (weights read back from the device buffers) for a few. Read back
/// by layercake with the same weights; loaded by Keras 3's own `load_model`, which must predict
/// Keras's recorded outputs and keep a fitted model's optimizer state.
#[test]
fn keras_files_layercake_writes_load_in_keras_and_predict_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = gpu();
    let mut pairs: Vec<std::ffi::OsString> = Vec::new();
    for dir in keras_fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let src = layercake::open(&dir).unwrap();
        let dst = tmp.path().join(format!("{name}.keras"));
        layercake::format::save(&dst, &src.spec, &src, Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = layercake::open(&dst).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_by_name(&back, &src, &format!("{name} re-read"));
        pairs.extend([dst.into_os_string(), dir.clone().into_os_string()]);
        if name == "fitted" {
            pairs.extend(["--optimizer".into(), "10".into()]);
        }
    }
    if let Some(dev) = &dev {
        for name in ["conv_bn", "fitted", "transformer"] {
            let dir = fixtures_dir().join("keras3").join(name);
            let session = layercake::Session::load(dev, &dir.join("model.keras")).unwrap();
            let dst = tmp.path().join(format!("{name}-gpu.keras"));
            session
                .save(&dst, Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = layercake::open(&dst).unwrap();
            let src = layercake::open(&dir.join("model.keras")).unwrap();
            assert_same_by_name(&back, &src, &format!("{name} through the GPU"));
            assert_eq!(
                back.spec.topology(),
                src.spec.topology(),
                "{name}: config.json kept as Keras wrote it"
            );
        }
    }
    let Some(tools) = keras_tools() else { return };
    let out = std::process::Command::new("python3")
        .arg(tools.join("check_load.py"))
        .args(&pairs)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Keras refused or mispredicted:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        keras_fixtures().len(),
        "{stdout}"
    );
}

#[test]
fn keras_output_needs_keras3_weight_paths() {
    let src = open_fixture("mlp_adam");
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("m.keras");
    let err = layercake::format::save(&dst, &src.spec, &src, Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("Keras 3 h5 path"), "{err}");
    assert!(!dst.exists(), "nothing written");
}

/// HDF5 objects a hostile `.keras` could hold, written by h5py: an external link, a virtual
/// dataset, external raw storage, a soft link cycle and a chunked dataset declaring 4 TiB in a
/// few kilobytes. Each is refused with the file and the object named, nothing allocated.
#[test]
fn hostile_hdf5_objects_are_refused() {
    if keras_tools().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    python_script(
        r#"
import h5py, numpy as np
def weights(name, build):
    with h5py.File(name, "w") as f:
        g = f.create_group("layers/dense/vars")
        g["1"] = np.zeros(3, "f4")
        build(f, g)
weights("external_link.h5", lambda f, g: g.__setitem__("0", h5py.ExternalLink("other.h5", "/x")))
def virtual(f, g):
    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
    layout[:] = h5py.VirtualSource("other.h5", "x", shape=(4,))
    g.create_virtual_dataset("0", layout)
weights("virtual.h5", virtual)
weights("external_storage.h5", lambda f, g: g.create_dataset("0", shape=(4,), dtype="f4", external=[("raw.bin", 0, 16)]))
weights("bomb.h5", lambda f, g: g.create_dataset("0", shape=(1 << 40,), dtype="f4", chunks=(1 << 16,)))
"#,
        tmp.path(),
    );
    let config = members(&fixtures_dir().join("keras3/dense/model.keras"));
    for (file, needle) in [
        ("external_link.h5", "layers/dense/vars/0"),
        ("virtual.h5", "layers/dense/vars/0"),
        ("external_storage.h5", "layers/dense/vars/0"),
        ("bomb.h5", "layers/dense/vars/0"),
    ] {
        let h5 = std::fs::read(tmp.path().join(file)).unwrap();
        let mut files: Vec<_> = config
            .iter()
            .filter(|(n, _)| n != "model.weights.h5")
            .cloned()
            .collect();
        files.push(("model.weights.h5".into(), h5));
        let path = tmp.path().join(file.replace(".h5", ".keras"));
        write_zip(&path, &files, zip::CompressionMethod::Stored);
        assert_refused(&path, &["model.weights.h5", needle]);
    }
}

/// A legacy `.h5` whose variables Keras 2.0.x saved under a renamed scope (`conv2d_1/kernel:0`
/// in the group `conv2d`, made by tools/keras2-fixtures/gen_h5.py from a tf_keras save): tf_keras
/// binds it by group and position; layercake binds it by its group and predicts tf_keras's
/// outputs on the CPU and the GPU.
#[test]
fn legacy_h5_with_renamed_variable_scopes_binds_by_layer_group() {
    let dir = fixtures_dir().join("keras2_h5_renamed/renamed_scopes");
    let m = Model::load(&dir.join("model.h5")).unwrap_or_else(|e| panic!("{e}"));
    let (inputs, want) = golden(&dir);
    let got = m.predict(&inputs).unwrap();
    assert_close("renamed scopes (CPU)", &got, &want);
    if let Some(dev) = gpu() {
        let g = layercake::model::gpu::GpuModel::new(&dev, &m).unwrap();
        assert_close("renamed scopes (GPU)", &g.predict(&inputs).unwrap(), &want);
    }
    let names: Vec<&str> = m
        .artifacts
        .spec
        .weights
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert!(names.contains(&"conv2d/kernel"), "{names:?}");
}
