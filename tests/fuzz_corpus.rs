//! Stable-Rust fuzzing in every test run: each cargo-fuzz target's entry point
//! (`layercake::fuzzing`) over its committed corpus (seeded from the TF.js fixtures, plus any
//! crashing inputs saved under `fuzz/corpus/regressions/<target>-*`) and seeded random mutations
//! of it: a fixed number of mutations per target from a seed drawn each run (printed;
//! `LAYERCAKE_FUZZ_SEED` replays one, `LAYERCAKE_FUZZ_MUTATIONS` runs more). Nothing may panic.
//! The libFuzzer targets themselves are compiled by CI (`cargo check` in `fuzz/`).

mod common;

use layercake::fuzzing;
use std::path::{Path, PathBuf};

/// Mutated inputs per target in every test run, and the least a run may be set to.
const MUTATIONS: u64 = 4_000;
const MIN_MUTATIONS: u64 = 1_000;

type Target = fn(&[u8]) -> layercake::Result<()>;

const TARGETS: [(&str, Target); 6] = [
    ("model_json", fuzzing::model_json),
    ("tfjs_model", fuzzing::tfjs_model),
    ("safetensors", fuzzing::safetensors),
    ("serve_upload", fuzzing::serve_upload),
    ("keras", fuzzing::keras),
    ("keras_h5", fuzzing::keras_h5),
];

fn corpus(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(target))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    if let Ok(d) = std::fs::read_dir(root.join("regressions")) {
        files.extend(d.map(|e| e.unwrap().path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{target}-")))
        }));
    }
    files.sort();
    files
}

/// xorshift64*: seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit: flip bits, overwrite with an interesting byte, truncate, insert, duplicate a
/// chunk, or splice a large number into the text.
fn mutate(data: &mut Vec<u8>, rng: &mut Rng) {
    let len = data.len();
    match rng.below(6) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = [0, 0xff, b'"', b'[', b'{', b'-', b'9', b'.'][rng.below(8)];
        }
        2 => data.truncate(rng.below(len + 1)),
        3 => {
            let i = rng.below(len + 1);
            let bytes: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            data.splice(i..i, bytes);
        }
        4 if len > 1 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            let chunk = data[a..b].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        _ => {
            let i = rng.below(len + 1);
            let n = ["4294967296", "-1", "1e308", "18446744073709551615", "0"][rng.below(5)];
            data.splice(i..i, n.bytes());
        }
    }
}

#[test]
fn fuzz_targets_survive_their_corpus_and_mutations() {
    let seed = common::run_seed("LAYERCAKE_FUZZ_SEED");
    let mutations = std::env::var("LAYERCAKE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTATIONS)
        .max(MIN_MUTATIONS);
    for (name, target) in TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
        let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        for (f, s) in files.iter().zip(&seeds) {
            let _ = target(s);
            let _ = f;
        }
        let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        let (mut runs, mut accepted) = (0u64, 0u64);
        while runs < mutations {
            let mut data = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut data, &mut rng);
            }
            accepted += u64::from(target(&data).is_ok());
            runs += 1;
        }
        assert!(runs >= MIN_MUTATIONS, "{name}: only {runs} mutated runs");
        eprintln!(
            "{name}: {} corpus files, {runs} mutated runs ({accepted} accepted)",
            files.len()
        );
    }
}

#[test]
fn serve_upload_seeds_are_accepted_or_refused_as_they_should() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/serve_upload");
    for (file, ok) in [
        ("cnn.bin", true),
        ("mlp_adam.bin", true),
        ("quant_uint8.bin", true),
        ("rnn.bin", true),
        ("evil_filename.bin", true),
        ("cut_off.bin", false),
        ("no_weights.bin", false),
        ("twice.bin", false),
    ] {
        let r = fuzzing::serve_upload(&std::fs::read(dir.join(file)).unwrap());
        assert_eq!(r.is_ok(), ok, "{file}: {r:?}");
    }
}
