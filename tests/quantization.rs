//! layercake's quantizer and dequantizer against the real tools, byte for byte: the Python
//! converter's writer made the quantized fixtures from `unquantized.bin`, and TF.js decoded them
//! into `dequantized.bin` (both in manifest order; see tools/tfjs-fixtures/gen.mjs).

mod common;

use common::*;
use layercake::format::quant;
use layercake::{Encoding, QuantDType};

const CASES: [&str; 3] = ["quant_uint8", "quant_uint16", "quant_float16"];

fn concat_logical(a: &layercake::Artifacts) -> Vec<u8> {
    (0..a.spec.weights.len())
        .flat_map(|i| a.logical(i).into_owned())
        .collect()
}

#[test]
fn dequantization_equals_tfjs_bit_for_bit() {
    for name in CASES {
        let a = open_fixture(name);
        let golden = std::fs::read(fixtures_dir().join(name).join("dequantized.bin")).unwrap();
        let ours = concat_logical(&a);
        assert_eq!(ours.len(), golden.len(), "{name}");
        let diff = ours
            .chunks(4)
            .zip(golden.chunks(4))
            .position(|(x, y)| x != y);
        assert_eq!(
            diff, None,
            "{name}: first differing float at index {diff:?}"
        );
        assert!(
            a.spec.weights.iter().any(|w| w.quantization.is_some()),
            "{name} has quantized weights"
        );
    }
}

#[test]
fn quantization_equals_the_converter_bit_for_bit() {
    for name in CASES {
        let a = open_fixture(name);
        let source = std::fs::read(fixtures_dir().join(name).join("unquantized.bin")).unwrap();
        let mut at = 0;
        for (i, w) in a.spec.weights.iter().enumerate() {
            let n = w.numel() * 4;
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(&source[at..at + n]);
            at += n;
            let Some(q) = &w.quantization else { continue };
            let (bytes, params) = quant::quantize(q.dtype, &values);
            assert_eq!(
                &bytes[..],
                &*a.store.stored(i),
                "{name}/{}: quantized bytes",
                w.name
            );
            if let Some(p) = params {
                assert_eq!(
                    (Some(p.min), Some(p.scale)),
                    (q.min, q.scale),
                    "{name}/{}: min/scale",
                    w.name
                );
            }
            // Re-quantizing the decoded values with the manifest's own parameters gives the file's bytes.
            let enc = w.encoding();
            assert_eq!(
                quant::encode(enc, w.dtype, &a.logical(i)),
                &*a.store.stored(i),
                "{name}/{}",
                w.name
            );
            if q.dtype != QuantDType::Float16 {
                assert!(matches!(enc, Encoding::Affine { .. }));
            }
        }
        assert_eq!(
            at,
            source.len(),
            "{name}: unquantized.bin covers every weight"
        );
    }
}
