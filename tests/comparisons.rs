//! Every comparison path fails on what it exists to catch: an all-NaN output, an Inf, a
//! missing output, an extra output and a shape mismatch, through the tests' shared helper
//! (`common::check_outputs`), verify's golden check, and the Python and Node checkers
//! (`tools/keras3-fixtures/compare.py`, `tools/tfjs-fixtures/compare.mjs`).

mod common;

use common::*;
use layercake::tensor::Tensor;
use layercake::verify::{verify, Status, VerifyOptions};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// The reference: two outputs.
fn want() -> Vec<Tensor> {
    vec![
        t(&[2, 3], &[0.5, -1.0, 2.0, 0.0, 3.25, -0.125]),
        t(&[1], &[7.0]),
    ]
}

/// Wrong outputs, each with what is wrong with it.
fn wrong() -> Vec<(&'static str, Vec<Tensor>)> {
    let w = want();
    let mut nan = w.clone();
    nan[0] = t(&[2, 3], &[f32::NAN; 6]);
    let mut inf = w.clone();
    inf[1] = t(&[1], &[f32::INFINITY]);
    let mut minus_inf = w.clone();
    minus_inf[0] = t(&[2, 3], &[0.5, -1.0, f32::NEG_INFINITY, 0.0, 3.25, -0.125]);
    let mut off = w.clone();
    off[0] = t(&[2, 3], &[0.5, -1.0, 2.0, 0.0, 3.25, -0.2]);
    let mut extra = w.clone();
    extra.push(t(&[1], &[7.0]));
    let mut shape = w.clone();
    shape[0] = t(&[3, 2], &[0.5, -1.0, 2.0, 0.0, 3.25, -0.125]);
    vec![
        ("all-NaN output", nan),
        ("Inf", inf),
        ("-Inf", minus_inf),
        ("out of tolerance", off),
        ("missing output", w[..1].to_vec()),
        ("extra output", extra),
        ("shape mismatch", shape),
    ]
}

const TOL: Tol = tol(1e-5, 1e-4);

#[test]
fn the_shared_helper_fails_on_nan_inf_and_missing_extra_or_reshaped_outputs() {
    assert_eq!(check_outputs(&want(), &want(), TOL), Ok(0.0));
    let mut close = want();
    close[1] = t(&[1], &[7.0005]);
    assert!(check_outputs(&close, &want(), TOL).is_ok());
    for (what, got) in wrong() {
        let r = check_outputs(&got, &want(), TOL);
        assert!(r.is_err(), "{what} passed: {r:?}");
        eprintln!("{what}: {}", r.unwrap_err());
    }
    // NaN in the reference fails too: nothing is within a tolerance of NaN.
    assert!(check_values(&[f32::NAN], &[f32::NAN], TOL).is_err());
    assert!(check_values(&[f32::INFINITY], &[f32::INFINITY], TOL).is_err());
    assert!(check_values(&[1.0, 2.0], &[1.0], TOL).is_err());
}

#[test]
fn verify_max_error_never_passes_nan_or_inf() {
    use layercake::verify::max_error;
    assert!(max_error(&[1.0], &[1.0], 1e-5, 1e-4).1);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (worst, within) = max_error(&[1.0, bad], &[1.0, 1.0], 1e-5, 1e-4);
        assert!(!within && worst.is_infinite(), "{bad}: {worst}");
    }
    assert!(!max_error(&[1.0], &[1.0, 2.0], 1e-5, 1e-4).1);
}

/// An edit of a bundle's `outputs` list.
type Edit = dyn Fn(&mut Vec<Value>);

/// The fixture's expected.json with its outputs edited by `edit`.
fn edited_bundle(dir: &Path, fixture: &str, edit: impl Fn(&mut Vec<Value>)) -> std::path::PathBuf {
    let expected = fixtures_dir().join(fixture).join("expected.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(expected).unwrap()).unwrap();
    edit(v["outputs"].as_array_mut().unwrap());
    let path = dir.join(format!("{fixture}-{}.json", rand_name(&v)));
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    path
}

fn rand_name(v: &Value) -> u64 {
    xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes())
}

#[test]
fn verify_golden_check_fails_on_missing_extra_and_reshaped_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = "mlp_adam";
    let golden = |expect| {
        let opts = VerifyOptions {
            expect: Some(expect),
            ..Default::default()
        };
        let report = verify(&fixtures_dir().join(fixture), &opts).unwrap();
        let c = report
            .checks
            .iter()
            .find(|c| c.name == "predictions: golden")
            .unwrap()
            .clone();
        (c.status, c.detail)
    };
    let same = edited_bundle(tmp.path(), fixture, |_| {});
    assert_eq!(golden(same).0, Status::Pass);
    let cases: [(&str, Box<Edit>); 4] = [
        ("missing output", Box::new(|o| o.truncate(o.len() - 1))),
        ("extra output", Box::new(|o| o.push(o[0].clone()))),
        (
            "shape mismatch",
            Box::new(|o| {
                let n = o[0]["data"].as_array().unwrap().len();
                o[0]["shape"] = json!([n]);
            }),
        ),
        (
            "out of tolerance",
            Box::new(|o| o[0]["data"][0] = json!(o[0]["data"][0].as_f64().unwrap() + 0.5)),
        ),
    ];
    for (what, edit) in cases {
        let (status, detail) = golden(edited_bundle(tmp.path(), fixture, edit));
        assert_eq!(status, Status::Fail, "{what} passed: {detail}");
        eprintln!("{what}: {detail}");
    }
}

/// A tensor bundle JSON of `outputs`, non-finite values written as strings.
fn bundle_file(dir: &Path, name: &str, outputs: &[Tensor]) -> std::path::PathBuf {
    let value = |x: &f32| -> Value {
        if x.is_finite() {
            json!(x)
        } else {
            json!(format!("{x}").replace("inf", "Infinity"))
        }
    };
    let list: Vec<Value> = outputs
        .iter()
        .map(|t| json!({"shape": t.shape, "data": t.data.iter().map(value).collect::<Vec<_>>()}))
        .collect();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json!({ "outputs": list }).to_string()).unwrap();
    path
}

/// Run one external checker over every case; `cmd` builds its command for (got, want).
fn external_checker(name: &str, cmd: impl Fn(&Path, &Path) -> Command) {
    let tmp = tempfile::tempdir().unwrap();
    let want_file = bundle_file(tmp.path(), "want", &want());
    let run = |got: &Path| cmd(got, &want_file).output().unwrap();
    let same = run(&bundle_file(tmp.path(), "same", &want()));
    assert!(
        same.status.success(),
        "{name} rejects equal outputs: {}{}",
        String::from_utf8_lossy(&same.stdout),
        String::from_utf8_lossy(&same.stderr)
    );
    for (i, (what, got)) in wrong().into_iter().enumerate() {
        let out = run(&bundle_file(tmp.path(), &format!("got{i}"), &got));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {what} passed: {text}");
        eprintln!("{name}, {what}: {}", text.trim());
    }
}

#[test]
fn the_python_checker_fails_on_nan_inf_and_missing_extra_or_reshaped_outputs() {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/keras3-fixtures");
    let numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !numpy {
        let reason = "Python with NumPy not installed";
        assert!(!tools_required(), "LAYERCAKE_REQUIRE_TOOLS=1 but {reason}");
        eprintln!("skipped: {reason}");
        return;
    }
    external_checker("compare.py", |got, want| {
        let mut c = Command::new("python3");
        c.arg(tools.join("compare.py")).arg(got).arg(want);
        c
    });
}

#[test]
fn the_node_checker_fails_on_nan_inf_and_missing_extra_or_reshaped_outputs() {
    let Some(tools) = tfjs_tools() else { return };
    external_checker("compare.mjs", |got, want| {
        let mut c = Command::new("node");
        c.arg(tools.join("compare.mjs")).arg(got).arg(want);
        c
    });
}
