//! Saves under faults: SIGKILL at many points of a save over an existing model leaves the
//! complete old model or the complete new one; a write that fails part way (a file size limit,
//! as a full disk does) is a clear error that leaves the old model intact; saving over the model
//! being read (memory-mapped) is safe.

mod common;

use common::*;
use layercake::format::{synthetic, Style};
use layercake::{save, SaveOptions};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// The decoded bytes of every weight, hashed: what "the same model" means here.
fn fingerprint(dir: &Path) -> Vec<u64> {
    let a = layercake::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (0..a.spec.weights.len())
        .map(|i| xxh3_64(&a.logical(i)))
        .collect()
}

/// A 48 MiB synthetic model in `dir` (node style), big enough that a save takes a while.
fn big_model(dir: &Path) {
    let a = synthetic::mlp(48 << 20, 16).unwrap();
    save(dir, &a.spec, &a, SaveOptions::default()).unwrap();
}

#[test]
fn a_killed_save_leaves_the_old_or_the_new_model() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst, reference) = (
        root.path().join("src"),
        root.path().join("dst"),
        root.path().join("ref"),
    );
    big_model(&src);
    // The new model differs in every weight (float16) and in its files (shards).
    let convert = |to: &Path| -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_layercake"));
        c.arg("convert").arg(&src).arg(to);
        c.args([
            "--quantize",
            "float16",
            "--style",
            "shards",
            "--device",
            "cpu",
        ]);
        c
    };
    assert!(convert(&reference).status().unwrap().success());
    let (old, new) = (fingerprint(&src), fingerprint(&reference));
    assert_ne!(old, new);
    let t = Instant::now();
    assert!(convert(&root.path().join("timing"))
        .status()
        .unwrap()
        .success());
    let full = t.elapsed();
    let leftovers = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".dst.layercake-"))
            .collect()
    };
    let (mut saw_old, mut saw_new, mut mid_save) = (0, 0, 0);
    for k in 0..14u32 {
        std::fs::remove_dir_all(&dst).ok();
        big_model(&dst);
        let before = leftovers();
        let mut child = convert(&dst).spawn().unwrap();
        if k % 2 == 0 {
            // Wait for the writer's temporary sibling: this kill lands while the save writes.
            let deadline = Instant::now() + std::time::Duration::from_secs(30);
            while leftovers() == before && Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            std::thread::sleep(full * k / 40);
        } else {
            std::thread::sleep(full * k / 12);
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        let now = fingerprint(&dst);
        assert!(now == old || now == new, "kill {k}: a mix of old and new");
        if now == old {
            saw_old += 1
        } else {
            saw_new += 1
        }
        if !leftovers().is_subset(&before) {
            mid_save += 1;
        }
    }
    eprintln!(
        "save takes {full:?}: {saw_old} kills left the old model, {saw_new} the new one, {mid_save} landed mid-save"
    );
    assert!(mid_save > 0, "no kill landed while the save was writing");
    // The next save clears what killed writers left beside the model.
    let before = leftovers().len();
    assert!(convert(&dst).status().unwrap().success());
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    eprintln!("{before} temporary siblings left by the kills, none after the next save");
}

#[test]
fn a_failing_write_is_an_error_and_the_old_model_survives() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    big_model(&src);
    big_model(&dst);
    let before = fingerprint(&dst);
    // Writes past 1 MiB fail with EFBIG, as on a full disk (SIGXFSZ ignored so write returns).
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 2048; exec {} convert '{}' '{}' --style shards --device cpu",
        env!("CARGO_BIN_EXE_layercake"),
        src.display(),
        dst.display()
    );
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| !l.starts_with("device:")).count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("too large") || stderr.contains("File too large"),
        "{stderr}"
    );
    assert_eq!(fingerprint(&dst), before);
    let names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
}

#[test]
fn saving_over_the_model_being_read_is_safe() {
    let tmp = copy_fixture("sharded");
    let a = layercake::open(tmp.path()).unwrap();
    // The weights are memory-mapped from the files the save replaces.
    let opts = SaveOptions {
        style: Some(Style::Node),
        ..Default::default()
    };
    save(tmp.path(), &a.spec, &a, opts).unwrap();
    let b = layercake::open(tmp.path()).unwrap();
    assert_same_weights(&a, &b, "saved over itself");
    assert!(tmp.path().join("weights.bin").is_file());
}
