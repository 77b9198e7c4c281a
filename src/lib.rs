//! layercake loads Keras / TensorFlow.js layer models onto the GPU, proves they were rebuilt
//! correctly, and saves them back.
//!
//! The pieces, in the order data flows (see ARCHITECTURE.md):
//! - [`format`]: TF.js artifacts (model.json + weight files in the node, downloads and converter
//!   styles, quantized weights included) and safetensors, read with full validation and written
//!   atomically ([`format::open`], [`format::save`]);
//! - [`gpu`]: the wgpu device and the WGSL kernels under `shaders/`;
//! - [`inspect`]: a summary of a model's layers and weights.

pub mod atomic;
pub mod bench;
pub mod check;
pub mod cpu;
pub mod dtype;
pub mod error;
pub mod format;
pub mod fuzzing;
pub mod gpu;
pub mod inspect;
pub mod layers;
pub mod model;
pub mod serve;
pub mod session;
pub mod shape;
pub mod storage;
pub mod tensor;
pub mod verify;

pub use dtype::{DType, Encoding, QuantDType};
pub use error::{Error, Result};
pub use format::manifest::WeightSpec;
pub use format::{
    open, save, Artifacts, ModelSpec, QuantizeChoice, SaveOptions, Style, Target, WeightBytes,
};
pub use session::Session;
