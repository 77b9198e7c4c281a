//! Quantization exactly as the TF.js tools do it.
//!
//! Decoding follows tfjs-core `io.decodeWeights`: `q * scale + min` in double precision, stored
//! as float32 (int32 targets use `Math.round`, i.e. round half up); float16 is a full IEEE
//! half→single conversion. Encoding follows the Python converter's `quantization.quantize_weights`
//! under numpy 2 (float64 arithmetic, round half to even, the zero point "nudged" when the range
//! covers zero). Both are checked byte for byte against the real tools on the fixtures.

use crate::dtype::{DType, Encoding, QuantDType};
use half::{bf16, f16};

/// Decode `src` (stored with `enc`) into little-endian `dtype` elements in `dst`.
///
/// `dst.len()` must be `n * dtype.size()` and `src.len()` `n * enc.size()`; callers validate
/// sizes when they parse the manifest.
pub fn decode(enc: Encoding, dtype: DType, src: &[u8], dst: &mut [u8]) {
    match enc {
        Encoding::Plain(_) => dst.copy_from_slice(src),
        Encoding::Affine {
            storage,
            min,
            scale,
        } => decode_affine(storage, min, scale, dtype, src, dst),
        Encoding::Float16 => map_f32(src, dst, |b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
        Encoding::BFloat16 => map_f32(src, dst, |b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
    }
}

fn map_f32(src: &[u8], dst: &mut [u8], f: impl Fn(&[u8]) -> f32) {
    for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(4)) {
        d.copy_from_slice(&f(s).to_le_bytes());
    }
}

fn affine_values(storage: QuantDType, src: &[u8]) -> Box<dyn Iterator<Item = f64> + '_> {
    match storage {
        QuantDType::Uint16 => Box::new(
            src.chunks_exact(2)
                .map(|b| f64::from(u16::from_le_bytes([b[0], b[1]]))),
        ),
        _ => Box::new(src.iter().map(|&b| f64::from(b))),
    }
}

fn decode_affine(
    storage: QuantDType,
    min: f64,
    scale: f64,
    dtype: DType,
    src: &[u8],
    dst: &mut [u8],
) {
    let values = affine_values(storage, src);
    match dtype {
        DType::Int32 => {
            for (q, d) in values.zip(dst.chunks_exact_mut(4)) {
                // JavaScript's Math.round: round half towards +infinity.
                let v = (q * scale + min + 0.5).floor() as i32;
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            for (q, d) in values.zip(dst.chunks_exact_mut(4)) {
                d.copy_from_slice(&((q * scale + min) as f32).to_le_bytes());
            }
        }
    }
}

/// The decoded bits of every code of `enc` (256 entries for uint8, 65536 for uint16/float16),
/// computed with [`decode`] itself: a GPU gather through this table equals the CPU decoding
/// bit for bit. `None` for encodings that are not quantized.
pub fn lookup_table(enc: Encoding, dtype: DType) -> Option<Vec<u32>> {
    let codes: Vec<u8> = match enc {
        Encoding::Affine {
            storage: QuantDType::Uint8,
            ..
        } => (0..=255u8).collect(),
        Encoding::Affine { .. } | Encoding::Float16 | Encoding::BFloat16 => {
            (0..=u16::MAX).flat_map(u16::to_le_bytes).collect()
        }
        Encoding::Plain(_) => return None,
    };
    let mut out = vec![0u8; codes.len() / enc.size() * 4];
    decode(enc, dtype, &codes, &mut out);
    Some(bytemuck::pod_collect_to_vec(&out))
}

/// Parameters chosen by [`quantize`] for an affine encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    /// The (possibly nudged) minimum.
    pub min: f64,
    /// The step.
    pub scale: f64,
}

/// Quantize float32 `values` the way the converter does, returning the stored bytes and, for
/// uint8/uint16, the `min`/`scale` it chose.
pub fn quantize(storage: QuantDType, values: &[f32]) -> (Vec<u8>, Option<AffineParams>) {
    match storage {
        QuantDType::Float16 => {
            let bytes = values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect();
            (bytes, None)
        }
        QuantDType::Uint8 | QuantDType::Uint16 => {
            let params = affine_params(storage, values);
            (encode_affine(storage, params, values), Some(params))
        }
    }
}

/// The converter's affine parameters for `values` (range nudged to hold zero exactly).
pub fn affine_params(storage: QuantDType, values: &[f32]) -> AffineParams {
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if values.is_empty() || lo == hi {
        // The converter writes zeros with scale 1.0 and min = the single value.
        let min = if values.is_empty() { 0.0 } else { lo };
        return AffineParams { min, scale: 1.0 };
    }
    let qmax = quant_max(storage);
    let scale = (hi - lo) / qmax;
    if lo <= 0.0 && 0.0 <= hi {
        let zero_point = ((0.0 - lo) / scale).round_ties_even();
        AffineParams {
            min: -zero_point * scale,
            scale,
        }
    } else {
        AffineParams { min: lo, scale }
    }
}

fn quant_max(storage: QuantDType) -> f64 {
    match storage {
        QuantDType::Uint16 => 65535.0,
        _ => 255.0,
    }
}

/// Encode float32 `values` with fixed affine parameters (the converter's formula; used to
/// re-quantize with a manifest's own `min`/`scale`).
pub fn encode_affine(storage: QuantDType, p: AffineParams, values: &[f32]) -> Vec<u8> {
    let max = quant_max(storage) * p.scale + p.min;
    let q = values.iter().map(|&v| {
        // max/min rather than clamp: never panics on NaN parameters from hostile input.
        (((v as f64).max(p.min).min(max) - p.min) / p.scale)
            .round_ties_even()
            .max(0.0)
            .min(quant_max(storage))
    });
    match storage {
        QuantDType::Uint16 => q.flat_map(|x| (x as u16).to_le_bytes()).collect(),
        _ => q.map(|x| x as u8).collect(),
    }
}

/// Encode little-endian logical `dtype` bytes into `enc`.
pub fn encode(enc: Encoding, dtype: DType, logical: &[u8]) -> Vec<u8> {
    let floats = || -> Vec<f32> {
        logical
            .chunks_exact(4)
            .map(|b| match dtype {
                DType::Int32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
                _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            })
            .collect()
    };
    match enc {
        Encoding::Plain(_) => logical.to_vec(),
        Encoding::Affine {
            storage,
            min,
            scale,
        } => encode_affine(storage, AffineParams { min, scale }, &floats()),
        Encoding::Float16 => quantize(QuantDType::Float16, &floats()).0,
        Encoding::BFloat16 => floats()
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn converter_doc_example() {
        // From tensorflowjs write_weights.py: [0, -0.1, 1.2] → uint8 [20, 0, 255].
        let (bytes, p) = quantize(QuantDType::Uint8, &[0.0, -0.1, 1.2]);
        assert_eq!(bytes, vec![20, 0, 255]);
        let p = p.unwrap();
        assert!((p.min - -0.10196078817).abs() < 1e-9);
        assert!((p.scale - 0.00509803940852).abs() < 1e-12);
    }

    #[test]
    fn constant_tensor_quantizes_to_zeros() {
        let (bytes, p) = quantize(QuantDType::Uint8, &[0.5, 0.5, 0.5]);
        assert_eq!(bytes, vec![0, 0, 0]);
        assert_eq!(
            p,
            Some(AffineParams {
                min: 0.5,
                scale: 1.0
            })
        );
        let mut out = vec![0u8; 12];
        let enc = Encoding::Affine {
            storage: QuantDType::Uint8,
            min: 0.5,
            scale: 1.0,
        };
        decode(enc, DType::Float32, &bytes, &mut out);
        assert_eq!(f32s(&out), vec![0.5; 3]);
    }

    #[test]
    fn int32_targets_round_half_up_like_javascript() {
        let enc = Encoding::Affine {
            storage: QuantDType::Uint8,
            min: -1.5,
            scale: 1.0,
        };
        let mut out = vec![0u8; 8];
        decode(enc, DType::Int32, &[0, 1], &mut out);
        assert_eq!(i32::from_le_bytes(out[0..4].try_into().unwrap()), -1);
        assert_eq!(i32::from_le_bytes(out[4..8].try_into().unwrap()), 0);
    }

    #[test]
    fn float16_decodes_specials_exactly() {
        let halfs = [0x0001u16, 0x7c00, 0xfc00, 0x3c00, 0x8000];
        let src: Vec<u8> = halfs.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut out = vec![0u8; 20];
        decode(Encoding::Float16, DType::Float32, &src, &mut out);
        let v = f32s(&out);
        assert_eq!(v[0], 2f32.powi(-24));
        assert_eq!(v[1], f32::INFINITY);
        assert_eq!(v[2], f32::NEG_INFINITY);
        assert_eq!(v[3], 1.0);
        assert!(v[4] == 0.0 && v[4].is_sign_negative());
    }

    #[test]
    fn requantizing_decoded_values_gives_the_same_bytes() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        for storage in [QuantDType::Uint8, QuantDType::Uint16] {
            let (bytes, p) = quantize(storage, &values);
            let p = p.unwrap();
            let enc = Encoding::Affine {
                storage,
                min: p.min,
                scale: p.scale,
            };
            let mut logical = vec![0u8; values.len() * 4];
            decode(enc, DType::Float32, &bytes, &mut logical);
            assert_eq!(encode(enc, DType::Float32, &logical), bytes, "{storage}");
        }
    }
}
