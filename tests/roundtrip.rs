//! Every fixture from real TF.js parses, validates, and round-trips byte-exact: in its own style,
//! across styles, and through safetensors.

mod common;

use common::*;
use layercake::format::{safetensors as st, Style, DEFAULT_SHARD_SIZE};
use layercake::{save, QuantDType, QuantizeChoice, SaveOptions, Target};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file of a saved TF.js model (model.json parsed, weight files as bytes).
fn model_files(dir: &Path) -> (Value, BTreeMap<String, Vec<u8>>) {
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    let mut files = BTreeMap::new();
    for group in json["weightsManifest"].as_array().unwrap() {
        for p in group["paths"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            files.insert(p.to_string(), std::fs::read(dir.join(p)).unwrap());
        }
    }
    (json, files)
}

fn save_as(a: &layercake::Artifacts, dst: &Path, style: Option<Style>) {
    let opts = SaveOptions {
        style,
        ..Default::default()
    };
    save(dst, &a.spec, a, opts).unwrap_or_else(|e| panic!("saving {}: {e}", dst.display()));
}

#[test]
fn fixtures_parse_with_their_styles() {
    let expected = [
        ("mlp_adam", Style::Node),
        ("cnn", Style::Downloads),
        ("sharded", Style::Shards { shard_size: 1000 }),
        ("quant_uint16", Style::Shards { shard_size: 4096 }),
        (
            "quant_uint8",
            Style::Shards {
                shard_size: DEFAULT_SHARD_SIZE,
            },
        ),
    ];
    for name in fixtures() {
        let a = open_fixture(&name);
        assert!(!a.spec.weights.is_empty(), "{name}");
        if let Some((_, style)) = expected.iter().find(|e| e.0 == name) {
            assert_eq!(a.spec.layout.style, *style, "{name}");
        }
    }
    let sharded = open_fixture("sharded");
    assert_eq!(sharded.spec.layout.groups.len(), 2);
    let straddling = (0..sharded.spec.weights.len())
        .filter(|&i| sharded.store.pieces(i).count() > 1)
        .count();
    assert!(
        straddling >= 2,
        "the sharded fixture must have weights straddling shard files"
    );
    let widest = (0..sharded.spec.weights.len())
        .map(|i| sharded.store.pieces(i).count())
        .max()
        .unwrap();
    assert!(widest >= 3, "one weight must span three or more shards");
}

#[test]
fn own_style_round_trip_is_byte_exact() {
    for name in fixtures() {
        let a = open_fixture(&name);
        let out = tempfile::tempdir().unwrap();
        let dst = out.path().join(&name);
        save_as(&a, &dst, None);
        let (json0, files0) = model_files(&fixtures_dir().join(&name));
        let (json1, files1) = model_files(&dst);
        assert_eq!(json0, json1, "{name}: model.json values differ");
        assert_eq!(files0, files1, "{name}: weight files differ");
    }
}

#[test]
fn cross_style_and_safetensors_round_trips_keep_every_byte() {
    let styles = [
        Style::Node,
        Style::Downloads,
        Style::Shards { shard_size: 777 },
        Style::Shards {
            shard_size: DEFAULT_SHARD_SIZE,
        },
    ];
    for name in fixtures() {
        let original = open_fixture(&name);
        let out = tempfile::tempdir().unwrap();
        for style in styles {
            let dst = out.path().join(style.to_string().replace(':', "_"));
            save_as(&original, &dst, Some(style));
            let again = layercake::open(&dst).unwrap();
            let same_style = match (again.spec.layout.style, style) {
                // A group that fits in one shard reads back with the default size: same files.
                (Style::Shards { .. }, Style::Shards { .. }) => true,
                (a, b) => a == b,
            };
            assert!(
                same_style,
                "{name} → {style}: read back as {}",
                again.spec.layout.style
            );
            assert_same_weights(&original, &again, &format!("{name} → {style}"));
            let (j0, _) = model_files(&fixtures_dir().join(&name));
            let (j1, _) = model_files(&dst);
            for key in [
                "modelTopology",
                "format",
                "generatedBy",
                "convertedBy",
                "trainingConfig",
                "userDefinedMetadata",
            ] {
                assert_eq!(j0.get(key), j1.get(key), "{name} → {style}: {key}");
            }
        }
        // tfjs → safetensors (quantized codes kept) → tfjs in the source's own style gives the
        // same files.
        let st_path = out.path().join("model.safetensors");
        let keep = SaveOptions {
            keep_codes: true,
            ..Default::default()
        };
        save(&st_path, &original.spec, &original, keep).unwrap();
        let from_st = layercake::open(&st_path).unwrap();
        assert_same_weights(&original, &from_st, &format!("{name} → safetensors"));
        let back = out.path().join("back");
        save_as(&from_st, &back, None);
        assert_eq!(
            model_files(&fixtures_dir().join(&name)),
            model_files(&back),
            "{name}: tfjs → safetensors → tfjs"
        );
    }
}

#[test]
fn optimizer_state_and_training_config_are_carried() {
    let a = open_fixture("mlp_adam");
    let opt: Vec<_> = a.spec.weights.iter().filter(|w| w.is_optimizer()).collect();
    assert_eq!(opt[0].name, "iter");
    assert_eq!(opt[0].dtype, layercake::DType::Int32);
    assert!(
        opt.len() > 2
            && opt.iter().any(|w| w.name.ends_with("/m"))
            && opt.iter().any(|w| w.name.ends_with("/v"))
    );
    assert!(a.spec.fields["trainingConfig"]["optimizer_config"]["class_name"] == "Adam");
    let iter = i32::from_le_bytes(
        a.logical(a.find("iter").unwrap())
            .as_ref()
            .try_into()
            .unwrap(),
    );
    assert_eq!(iter, 12, "3 epochs × 4 batches of Adam steps");
    let out = tempfile::tempdir().unwrap();
    let st_path = out.path().join("m.safetensors");
    save(&st_path, &a.spec, &a, SaveOptions::default()).unwrap();
    let b = layercake::open(&st_path).unwrap();
    assert_eq!(
        a.spec.fields["trainingConfig"],
        b.spec.fields["trainingConfig"]
    );
    assert_eq!(
        a.spec.fields["userDefinedMetadata"],
        b.spec.fields["userDefinedMetadata"]
    );
    let names = |x: &layercake::Artifacts| {
        x.spec
            .weights
            .iter()
            .filter(|w| w.is_optimizer())
            .map(|w| w.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b), "optimizer weights keep their order");
}

#[test]
fn stock_safetensors_reader_reads_every_tensor() {
    for name in [
        "cnn",
        "quant_uint8",
        "quant_uint16",
        "quant_float16",
        "mlp_adam",
    ] {
        let a = open_fixture(name);
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("m.safetensors");
        save(&path, &a.spec, &a, SaveOptions::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.len(), a.spec.weights.len());
        for (i, w) in a.spec.weights.iter().enumerate() {
            let t = file.tensor(&w.name).unwrap();
            assert_eq!(t.shape(), w.shape.as_slice());
            // The default holds what the model computes with: the logical values for uint8 /
            // uint16 codes; float16 stays F16 (exact), everything else as stored.
            let expected = match w.encoding() {
                layercake::Encoding::Affine { .. } => a.logical(i),
                _ => a.store.stored(i),
            };
            assert_eq!(t.data(), &*expected, "{name}/{}", w.name);
            assert!(
                !matches!(t.dtype(), safetensors::Dtype::U8 | safetensors::Dtype::U16),
                "{name}/{}: integer codes written by default",
                w.name
            );
        }
        // The file reloads with the same logical values.
        let b = layercake::open(&path).unwrap();
        assert_same_values(&a, &b, &format!("{name} → safetensors"));
    }
}

#[test]
fn quantized_codes_are_kept_in_safetensors_only_on_request() {
    let a = open_fixture("quant_uint8");
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("m.safetensors");
    let keep = SaveOptions {
        keep_codes: true,
        ..Default::default()
    };
    save(&path, &a.spec, &a, keep).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (i, w) in a.spec.weights.iter().enumerate() {
        let t = file.tensor(&w.name).unwrap();
        assert_eq!(t.data(), &*a.store.stored(i), "{}", w.name);
    }
    assert_same_weights(&a, &layercake::open(&path).unwrap(), "codes kept");
    // Asking to quantize into safetensors without the flag is refused, naming the file.
    let q = SaveOptions {
        quantize: layercake::QuantizeChoice::To(layercake::QuantDType::Uint8),
        ..Default::default()
    };
    let bad = out.path().join("q.safetensors");
    let err = save(&bad, &a.spec, &a, q).unwrap_err().to_string();
    assert!(
        err.contains("q.safetensors") && err.contains("--keep-codes"),
        "{err}"
    );
    assert!(!bad.exists());
}

#[test]
fn python_safetensors_reads_our_file() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import safetensors.numpy"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            !tools_required(),
            "LAYERCAKE_REQUIRE_TOOLS=1 but python3 cannot import safetensors.numpy"
        );
        eprintln!("skipped: python3 safetensors package not installed");
        return;
    }
    for name in ["cnn", "quant_uint8", "quant_uint16"] {
        python_reads(name);
    }
}

/// Python's `safetensors.numpy` reads `name` saved as safetensors as float32 tensors with the
/// model's logical values.
fn python_reads(name: &str) {
    let a = open_fixture(name);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("m.safetensors");
    save(&path, &a.spec, &a, SaveOptions::default()).unwrap();
    let script = "import sys, json\nfrom safetensors.numpy import load_file\nt = load_file(sys.argv[1])\nprint(json.dumps({k: [list(v.shape), str(v.dtype), float(v.astype('float64').sum())] for k, v in t.items()}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: BTreeMap<String, (Vec<usize>, String, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    for (i, w) in a.spec.weights.iter().enumerate() {
        let (shape, dtype, sum) = &seen[&w.name];
        assert_eq!(shape, &w.shape);
        assert_eq!(dtype, "float32", "{name}/{}", w.name);
        let ours: f64 = bytemuck::pod_collect_to_vec::<u8, f32>(&a.logical(i))
            .iter()
            .map(|&x| x as f64)
            .sum();
        assert!((ours - sum).abs() < 1e-9, "{}: {ours} vs {sum}", w.name);
    }
}

#[test]
fn plain_safetensors_pairs_with_a_separate_topology() {
    let a = open_fixture("conv_misc");
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("weights.safetensors");
    // A plain file as another tool would write it: f32 tensors, no layercake metadata.
    let tensors: Vec<(String, Vec<u8>, Vec<usize>)> = a
        .spec
        .weights
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.clone(), a.logical(i).into_owned(), w.shape.clone()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let topology = fixtures_dir().join("conv_misc/model.json");
    let b = st::read(&path, Some(&topology)).unwrap();
    assert_eq!(b.spec.topology(), a.spec.topology());
    let dst = out.path().join("tfjs");
    save(
        &dst,
        &b.spec,
        &b,
        SaveOptions {
            target: Some(Target::Tfjs),
            ..Default::default()
        },
    )
    .unwrap();
    let c = layercake::open(&dst).unwrap();
    for (i, w) in a.spec.weights.iter().enumerate() {
        let j = c.find(&w.name).unwrap();
        assert_eq!(a.logical(i), c.logical(j), "{}", w.name);
    }
    // Without a topology the weights still load, but TF.js output is refused with a reason.
    let bare = st::read(&path, None).unwrap();
    let err = save(
        &out.path().join("x"),
        &bare.spec,
        &bare,
        SaveOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no topology"), "{err}");
}

#[test]
fn quantize_on_save_follows_the_converter() {
    let a = open_fixture("cnn");
    let out = tempfile::tempdir().unwrap();
    for q in [QuantDType::Uint8, QuantDType::Uint16, QuantDType::Float16] {
        let dst = out.path().join(q.as_str());
        save(
            &dst,
            &a.spec,
            &a,
            SaveOptions {
                quantize: QuantizeChoice::To(q),
                ..Default::default()
            },
        )
        .unwrap();
        let b = layercake::open(&dst).unwrap();
        for (i, w) in b.spec.weights.iter().enumerate() {
            let qz = w
                .quantization
                .as_ref()
                .unwrap_or_else(|| panic!("{} not quantized", w.name));
            assert_eq!(qz.dtype, q);
            let step = qz.scale.unwrap_or(0.0);
            let x = bytemuck::pod_collect_to_vec::<u8, f32>(&a.logical(i));
            let y = bytemuck::pod_collect_to_vec::<u8, f32>(&b.logical(i));
            for (u, v) in x.iter().zip(&y) {
                let tol = if q == QuantDType::Float16 {
                    u.abs() as f64 * 1e-3 + 1e-7
                } else {
                    step / 2.0 * 1.0001 + 1e-7
                };
                assert!(((u - v).abs() as f64) <= tol, "{} {q}: {u} vs {v}", w.name);
            }
        }
        // Saving it again keeps the quantized bytes; `none` writes float32 again.
        let again = out.path().join(format!("{}-again", q.as_str()));
        save_as(&b, &again, None);
        assert_eq!(model_files(&dst), model_files(&again));
        let plain = out.path().join(format!("{}-plain", q.as_str()));
        save(
            &plain,
            &b.spec,
            &b,
            SaveOptions {
                quantize: QuantizeChoice::None,
                ..Default::default()
            },
        )
        .unwrap();
        let c = layercake::open(&plain).unwrap();
        assert!(c.spec.weights.iter().all(|w| w.quantization.is_none()));
        assert_same_weights(&b, &c, "dequantized copy");
    }
}

#[test]
fn saving_twice_gives_identical_files() {
    let a = open_fixture("merge_reshape");
    let out = tempfile::tempdir().unwrap();
    let (x, y) = (
        out.path().join("x.safetensors"),
        out.path().join("y.safetensors"),
    );
    save(&x, &a.spec, &a, SaveOptions::default()).unwrap();
    save(&y, &a.spec, &a, SaveOptions::default()).unwrap();
    assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
}

#[test]
fn saving_over_the_loaded_model_is_safe() {
    let dir = copy_fixture("sharded");
    let a = layercake::open(dir.path()).unwrap();
    // `a` maps the shard files; replacing the directory must not disturb them.
    save_as(&a, dir.path(), Some(Style::Node));
    let b = layercake::open(dir.path()).unwrap();
    assert_same_weights(&a, &b, "saved over itself");
    assert!(
        dir.path().join("expected.json").is_file(),
        "files beside the model are kept"
    );
    assert!(
        !dir.path().join("group1-shard1of9.bin").exists(),
        "the old model's files are gone"
    );
}
