//! `layercake verify`: passes on every fixture (GPU and CPU), and catches targeted corruptions
//! of real TF.js fixtures with the right check failing and a detail naming the weight, file or
//! output; the sample embedded by `convert --with-sample` survives a round trip through TF.js.

mod common;

use common::*;
use layercake::format::synthetic;
use layercake::gpu::residency::{UploadOptions, WeightScan};
use layercake::verify::{verify, Report, Status, VerifyOptions};
use layercake::{save, SaveOptions, Target};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn options(gpu: Option<layercake::gpu::Device>, expect: Option<PathBuf>) -> VerifyOptions {
    VerifyOptions {
        expect,
        gpu,
        seed: 7,
        ..Default::default()
    }
}

fn status(r: &Report, check: &str) -> (Status, String) {
    let c = r
        .checks
        .iter()
        .find(|c| c.name == check)
        .unwrap_or_else(|| panic!("no check {check} in {}", r.render()));
    (c.status, c.detail.clone())
}

/// Both devices: the CPU, and the GPU when there is one.
fn devices() -> Vec<Option<layercake::gpu::Device>> {
    let mut d = vec![None];
    if let Some(g) = gpu() {
        d.push(Some(g));
    }
    d
}

fn expected(name: &str) -> Option<PathBuf> {
    Some(fixtures_dir().join(name).join("expected.json"))
}

#[test]
fn verify_passes_on_every_fixture_on_gpu_and_cpu() {
    for dev in devices() {
        for name in fixtures().iter() {
            let r = verify(
                &fixtures_dir().join(name),
                &options(dev.clone(), expected(name)),
            )
            .unwrap();
            assert!(r.passed(), "{name}:\n{}", r.render());
            assert_eq!(status(&r, "predictions: golden").0, Status::Pass, "{name}");
            let copy = status(&r, "weights: device copy").0;
            assert_eq!(
                copy == Status::Pass,
                dev.is_some(),
                "{name}: {}",
                r.render()
            );
        }
    }
}

/// The golden check failed on an output out of tolerance.
fn assert_golden_fails(r: &Report) {
    let (s, detail) = status(r, "predictions: golden");
    assert_eq!(s, Status::Fail, "{}", r.render());
    assert!(detail.contains("OUT OF TOLERANCE"), "{detail}");
}

/// Run the CLI.
fn layercake(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(args)
        .output()
        .unwrap()
}

/// Run the CLI; it must succeed.
fn layercake_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = layercake(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Byte offset of weight `name` in a single-file TF.js model, and its length.
fn weight_range(dir: &Path, name: &str) -> (usize, usize) {
    let a = layercake::open(dir).unwrap();
    let mut at = 0;
    for w in &a.spec.weights {
        if w.name == name {
            return (at, w.stored_len());
        }
        at += w.stored_len();
    }
    panic!("no weight {name}");
}

/// A kernel of the cnn fixture (downloads style, one weight file).
fn cnn_kernel() -> String {
    let a = open_fixture("cnn");
    let w = a
        .spec
        .weights
        .iter()
        .find(|w| w.name.ends_with("kernel") && w.shape.len() == 4);
    w.unwrap().name.clone()
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

#[test]
fn a_nan_in_a_weight_fails_the_finite_check_naming_it() {
    let tmp = copy_fixture("cnn");
    let kernel = cnn_kernel();
    let (at, _) = weight_range(tmp.path(), &kernel);
    patch(
        &tmp.path().join("model.weights.bin"),
        at + 8,
        &f32::NAN.to_le_bytes(),
    );
    for dev in devices() {
        let on = if dev.is_some() { "GPU" } else { "CPU" };
        let r = verify(tmp.path(), &options(dev, expected("cnn"))).unwrap();
        assert!(!r.passed());
        let (s, detail) = status(&r, "weights: finite");
        assert_eq!(s, Status::Fail, "{on}: {}", r.render());
        assert!(
            detail.contains(&format!("{kernel}: 1 NaN/Inf")),
            "{on}: {detail}"
        );
    }
}

#[test]
fn a_zeroed_tensor_is_flagged_and_breaks_the_golden_check() {
    let tmp = copy_fixture("cnn");
    let kernel = cnn_kernel();
    let (at, len) = weight_range(tmp.path(), &kernel);
    patch(&tmp.path().join("model.weights.bin"), at, &vec![0u8; len]);
    for dev in devices() {
        let r = verify(tmp.path(), &options(dev, expected("cnn"))).unwrap();
        let (s, detail) = status(&r, "weights: non-zero");
        assert_eq!(s, Status::Warn, "{}", r.render());
        assert!(detail.contains(&kernel), "{detail}");
        assert_golden_fails(&r);
    }
}

#[test]
fn flipped_bytes_fail_the_recorded_hashes_naming_the_file_or_tensor() {
    let a = open_fixture("cnn");
    let kernel = cnn_kernel();
    let out = tempfile::tempdir().unwrap();
    let hashed = SaveOptions {
        hashes: true,
        ..Default::default()
    };
    // TF.js: one hash per weight file.
    let dir = out.path().join("tfjs");
    save(&dir, &a.spec, &a, hashed).unwrap();
    assert!(verify(&dir, &options(None, None)).unwrap().passed());
    let (at, _) = weight_range(&dir, &kernel);
    let file = dir.join("model.weights.bin");
    let old = std::fs::read(&file).unwrap()[at + 5];
    patch(&file, at + 5, &[old ^ 0x5a]);
    let r = verify(&dir, &options(None, None)).unwrap();
    let (s, detail) = status(&r, "artifacts");
    assert_eq!(s, Status::Fail, "{}", r.render());
    assert!(detail.contains("model.weights.bin"), "{detail}");
    // safetensors: one hash per tensor, so the damaged tensor is named.
    let st = out.path().join("m.safetensors");
    save(
        &st,
        &a.spec,
        &a,
        SaveOptions {
            target: Some(Target::Safetensors),
            ..hashed
        },
    )
    .unwrap();
    assert!(verify(&st, &options(None, None)).unwrap().passed());
    let b = layercake::open(&st).unwrap();
    let i = b.find(&kernel).unwrap();
    let bytes = std::fs::read(&st).unwrap();
    let stored = b.store.stored(i).into_owned();
    let pos = bytes
        .windows(stored.len())
        .position(|w| w == stored.as_slice())
        .unwrap();
    patch(&st, pos + 3, &[stored[3] ^ 0x5a]);
    let r = verify(&st, &options(None, None)).unwrap();
    let (s, detail) = status(&r, "artifacts");
    assert_eq!(s, Status::Fail, "{}", r.render());
    assert!(detail.contains(&kernel), "{detail}");
}

#[test]
fn a_truncated_shard_fails_the_artifacts_check_naming_it() {
    let tmp = copy_fixture("sharded");
    let shard = tmp.path().join("group1-shard3of9.bin");
    let len = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let r = verify(tmp.path(), &options(None, expected("sharded"))).unwrap();
    let (s, detail) = status(&r, "artifacts");
    assert_eq!(s, Status::Fail);
    assert!(detail.contains("group1-shard3of9.bin"), "{detail}");
    assert_eq!(status(&r, "predictions: golden").0, Status::Skip);
    // The CLI: exit 1 (a check failed), not 2 (unreadable).
    let out = layercake(&[
        "verify".as_ref(),
        tmp.path().as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let missing = layercake(&["verify".as_ref(), "/nonexistent/model.json".as_ref()]);
    assert_eq!(missing.status.code(), Some(2));
}

fn edit_model_json(dir: &Path, f: impl FnOnce(&mut Value)) {
    let path = dir.join("model.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn swapped_same_shaped_weights_fail_the_golden_check() {
    let tmp = copy_fixture("mlp_adam");
    let a = layercake::open(tmp.path()).unwrap();
    // Two model weights of one shape (e.g. a layer's gamma and beta, or two biases).
    let ws: Vec<_> = a
        .spec
        .weights
        .iter()
        .filter(|w| !w.is_optimizer())
        .collect();
    let (x, y) = ws
        .iter()
        .enumerate()
        .find_map(|(i, x)| {
            ws[i + 1..]
                .iter()
                .find(|y| y.shape == x.shape)
                .map(|y| (x.name.clone(), y.name.clone()))
        })
        .expect("two weights of one shape");
    edit_model_json(tmp.path(), |v| {
        for w in v["weightsManifest"][0]["weights"].as_array_mut().unwrap() {
            let n = w["name"].as_str().unwrap().to_string();
            if n == x {
                w["name"] = y.clone().into();
            } else if n == y {
                w["name"] = x.clone().into();
            }
        }
    });
    for dev in devices() {
        let r = verify(tmp.path(), &options(dev, expected("mlp_adam"))).unwrap();
        assert_golden_fails(&r);
    }
}

#[test]
fn a_changed_activation_fails_the_golden_check() {
    let tmp = copy_fixture("cnn");
    edit_model_json(tmp.path(), |v| {
        let layers = v["modelTopology"]["config"]["layers"]
            .as_array_mut()
            .unwrap();
        let l = layers
            .iter_mut()
            .find(|l| l["config"]["activation"] == "relu")
            .expect("a relu layer");
        l["config"]["activation"] = "tanh".into();
    });
    let r = verify(tmp.path(), &options(gpu(), expected("cnn"))).unwrap();
    assert_eq!(
        status(&r, "predictions: golden").0,
        Status::Fail,
        "{}",
        r.render()
    );
    assert_eq!(status(&r, "reconstruction").0, Status::Pass);
}

#[test]
fn the_embedded_sample_catches_changed_weights_without_expect() {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("m");
    let src = fixtures_dir().join("cnn");
    layercake_ok(&[
        "convert".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
        "--with-sample".as_ref(),
    ]);
    let r = verify(&dst, &options(gpu(), None)).unwrap();
    let (s, detail) = status(&r, "predictions: golden");
    assert_eq!(s, Status::Pass, "{}", r.render());
    assert!(detail.contains("embedded sample"), "{detail}");
    // Bounded: the sample is a small part of model.json.
    let json = std::fs::read(dst.join("model.json")).unwrap();
    assert!(json.len() < 64 * 1024, "model.json is {} bytes", json.len());
    let kernel = cnn_kernel();
    let (at, _) = weight_range(&dst, &kernel);
    patch(&dst.join("model.weights.bin"), at, &3.5f32.to_le_bytes());
    let r = verify(&dst, &options(None, None)).unwrap();
    assert_eq!(
        status(&r, "predictions: golden").0,
        Status::Fail,
        "{}",
        r.render()
    );
}

#[test]
fn the_sample_survives_a_round_trip_through_tfjs() {
    let Some(tools) = tfjs_tools() else { return };
    // TF.js re-saves as model.json + weights.bin. From a node-style model (weights.bin) the file
    // comes back byte-identical, so the recorded hash still matches; from a downloads-style one
    // (model.weights.bin) the record names a file that is gone: reported stale, not failed.
    for (name, hashes) in [("merge_reshape", Status::Pass), ("cnn", Status::Warn)] {
        let tmp = tempfile::tempdir().unwrap();
        let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
        let src = fixtures_dir().join(name);
        let flags = ["--with-sample", "--with-hashes", "--device", "cpu"];
        let mut args = vec!["convert".as_ref(), src.as_os_str(), ours.as_os_str()];
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        layercake_ok(&args);
        let resave = std::process::Command::new("node")
            .arg(tools.join("resave.mjs"))
            .args([ours.as_os_str(), theirs.as_os_str()])
            .output()
            .unwrap();
        assert!(
            resave.status.success(),
            "{}",
            String::from_utf8_lossy(&resave.stderr)
        );
        let r = verify(&theirs, &options(gpu(), None)).unwrap();
        assert!(r.passed(), "{name}: {}", r.render());
        let (s, detail) = status(&r, "predictions: golden");
        assert_eq!(s, Status::Pass, "{name}: {detail}");
        assert!(detail.contains("embedded sample"), "{detail}");
        let (s, detail) = status(&r, "artifacts");
        assert_eq!(s, hashes, "{name}: {detail}");
    }
}

#[test]
fn gpu_scan_counts_match_the_host() {
    let Some(dev) = gpu() else { return };
    // Sizes around the kernel's 4096 words per workgroup, and one spanning many workgroups.
    let shapes = vec![vec![1], vec![4095], vec![4097], vec![300, 301], vec![7, 0]];
    let a = synthetic::from_shapes(&shapes, 11).unwrap();
    let gw = dev
        .upload(&a, &UploadOptions::default(), &mut |_, _| {})
        .unwrap();
    let scans = gw.scan().unwrap();
    for (i, s) in scans.iter().enumerate() {
        let host = WeightScan::of(&bytemuck::pod_collect_to_vec::<u8, f32>(&a.logical(i)));
        assert_eq!(s.unwrap(), host, "weight {i} {:?}", shapes[i]);
    }
}

#[test]
fn the_demo_runs_the_whole_job_on_each_device() {
    let mut devices = vec!["cpu"];
    if gpu().is_some() {
        devices.push("gpu");
    }
    for device in devices {
        // The bundled Keras MobileNetV2, then (--big) a model made on the spot: each checked
        // after loading and again after saving from the device and reloading.
        let args = ["demo", "--device", device, "--big", "8MiB"];
        let text = layercake_ok(&args.map(std::ffi::OsStr::new));
        assert_eq!(
            text.matches("  all checks passed").count(),
            4,
            "{device}: {text}"
        );
        assert!(text.contains("vs Keras's predictions"), "{text}");
        assert!(text.contains("predictions: golden        pass"), "{text}");
        assert_eq!(text.matches("recorded hashes match").count(), 2, "{text}");
        assert_eq!(
            text.matches("this machine reads the files").count(),
            2,
            "{text}"
        );
        assert!(text.contains("16 Dense(362, tanh) layers"), "{text}");
        assert!(!text.contains("error:"), "{device}: no error lines: {text}");
    }
}
