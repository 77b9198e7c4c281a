//! Element types: the logical dtype a weight has after decoding, and the encoding its bytes use
//! on disk (plain, affine-quantized uint8/uint16, float16, bfloat16).

use std::fmt;

/// A weight's logical element type (TF.js `dtype`, after any dequantization).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE-754 binary32, little-endian.
    Float32,
    /// Two's complement 32-bit, little-endian.
    Int32,
    /// One byte per element, 0 or 1.
    Bool,
}

impl DType {
    /// Parse a TF.js dtype name; `None` for names layercake does not support.
    pub fn parse(name: &str) -> Option<DType> {
        match name {
            "float32" => Some(DType::Float32),
            "int32" => Some(DType::Int32),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }

    /// The TF.js name.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Int32 => "int32",
            DType::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Float32 | DType::Int32 => 4,
            DType::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The storage type of a quantized weight (`quantization.dtype` in a TF.js manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantDType {
    /// Affine 8-bit: `q * scale + min`.
    Uint8,
    /// Affine 16-bit: `q * scale + min`.
    Uint16,
    /// IEEE-754 binary16.
    Float16,
}

impl QuantDType {
    /// Parse a manifest `quantization.dtype`.
    pub fn parse(name: &str) -> Option<QuantDType> {
        match name {
            "uint8" => Some(QuantDType::Uint8),
            "uint16" => Some(QuantDType::Uint16),
            "float16" => Some(QuantDType::Float16),
            _ => None,
        }
    }

    /// The manifest name.
    pub fn as_str(self) -> &'static str {
        match self {
            QuantDType::Uint8 => "uint8",
            QuantDType::Uint16 => "uint16",
            QuantDType::Float16 => "float16",
        }
    }

    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            QuantDType::Uint8 => 1,
            QuantDType::Uint16 | QuantDType::Float16 => 2,
        }
    }
}

impl fmt::Display for QuantDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a weight's elements are laid out in bytes on disk or in a GPU upload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// Plain little-endian elements of the logical dtype.
    Plain(DType),
    /// Affine quantization `q * scale + min` (uint8 or uint16 storage).
    Affine {
        /// uint8 or uint16.
        storage: QuantDType,
        /// Offset added after scaling.
        min: f64,
        /// Step between consecutive quantized values.
        scale: f64,
    },
    /// IEEE binary16 storage of a float32 weight.
    Float16,
    /// bfloat16 storage of a float32 weight (safetensors input only; TF.js has no bfloat16).
    BFloat16,
}

impl Encoding {
    /// Bytes per stored element.
    pub fn size(&self) -> usize {
        match self {
            Encoding::Plain(d) => d.size(),
            Encoding::Affine { storage, .. } => storage.size(),
            Encoding::Float16 | Encoding::BFloat16 => 2,
        }
    }

    /// True when the stored bytes equal the logical bytes.
    pub fn is_plain(&self) -> bool {
        matches!(self, Encoding::Plain(_))
    }
}
