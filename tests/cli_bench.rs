//! `layercake bench` runs end to end and reports every row the issue asks for.

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bench_reports_load_save_and_limits() {
    let json: Value = serde_json::from_str(&bench(&[
        "--size",
        "2MiB",
        "--tensors",
        "10",
        "--repeat",
        "2",
        "--device",
        "cpu",
        "--json",
    ]))
    .unwrap();
    let names: Vec<&str> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "load",
        "save (no fsync)",
        "save (fsync)",
        "limit: read into fresh memory",
        "limit: read into a reused buffer",
        "limit: write (no fsync)",
        "limit: write (fsync)",
        "limit: memcpy",
    ] {
        assert!(names.contains(&want), "missing {want}: {names:?}");
    }
    for r in json["rows"].as_array().unwrap() {
        assert!(r["gbps"]["median"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert_eq!(json["tensors"], 10);
    assert!(json["weight_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(json["ratios"].as_array().unwrap().len(), 4);
}

#[test]
fn bench_sweeps_tensor_counts() {
    let text = bench(&[
        "--sweep", "--size", "1MiB", "--repeat", "1", "--device", "cpu", "--json",
    ]);
    let counts: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["tensors"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts, vec![10, 100, 1_000, 10_000, 100_000]);
}
