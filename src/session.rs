//! The mission's flow on one object: a model rebuilt from its topology, its weights uploaded
//! once from the files into GPU buffers (one buffer per weight), predictions that read those
//! buffers, and checks and saves that read the same buffers back.
//!
//! ```no_run
//! # fn main() -> layercake::Result<()> {
//! let dev = layercake::gpu::Device::open()?;
//! let session = layercake::Session::load(&dev, std::path::Path::new("model/"))?;
//! let x = layercake::verify::random_inputs(session.model(), 7, 2);
//! let y = session.predict(&x)?;
//! let changed = session.weights_read_back_differently()?; // names, empty when intact
//! session.save(std::path::Path::new("saved/"), Default::default())?;
//! # let _ = (y, changed); Ok(()) }
//! ```

use crate::check::weight_hashes;
use crate::error::Result;
use crate::format::{SaveOptions, SaveReport};
use crate::gpu::residency::{GpuWeights, UploadOptions};
use crate::gpu::Device;
use crate::model::gpu::{GpuModel, ParamBytes};
use crate::model::Model;
use crate::tensor::Tensor;
use std::path::Path;
use std::sync::Arc;

/// A model resident on one GPU: predictions, checks and saves on the same buffers.
pub struct Session {
    // Field order: the executor (which holds clones of the weight buffers) drops first.
    gpu: GpuModel<'static>,
    weights: GpuWeights,
    model: Arc<Model>,
}

impl Session {
    /// Load `path` (model.json, a directory holding one, or a .safetensors file) onto `dev`.
    pub fn load(dev: &Device, path: &Path) -> Result<Session> {
        Session::open(dev, Model::load(path)?)
    }

    /// Upload `model`'s weights from its files (one buffer per weight) and bind its layers'
    /// parameters to them; only values derived from weights (folded BatchNormalization,
    /// re-laid kernels) are uploaded besides, see [`Session::param_bytes`].
    pub fn open(dev: &Device, model: Model) -> Result<Session> {
        let weights = dev.upload(
            &model.artifacts,
            &UploadOptions::dedicated(),
            &mut |_, _| {},
        )?;
        let model = Arc::new(model);
        let gpu = GpuModel::shared(dev, Arc::clone(&model), &weights)?;
        Ok(Session {
            gpu,
            weights,
            model,
        })
    }

    /// The model (topology, layers, the artifacts it was read from).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The resident weights.
    pub fn weights(&self) -> &GpuWeights {
        &self.weights
    }

    /// How many parameter bytes the predictions read from the resident weights, and how many
    /// were derived from them and uploaded besides.
    pub fn param_bytes(&self) -> ParamBytes {
        self.gpu.param_bytes
    }

    /// Predict on the GPU (inputs in the order of [`Model::inputs`], any batch size).
    pub fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.gpu.predict(inputs)
    }

    /// The weights whose bytes read back from the GPU differ from the files' (empty when the
    /// device holds exactly what was loaded).
    pub fn weights_read_back_differently(&self) -> Result<Vec<String>> {
        let reader = self.weights.reader(64 << 20)?;
        Ok(weight_hashes(&self.model.artifacts, &reader)?
            .into_iter()
            .filter(|h| !h.ok())
            .map(|h| h.name)
            .collect())
    }

    /// Save the model with the weights read back from the very buffers the predictions read.
    pub fn save(&self, dst: &Path, opts: SaveOptions) -> Result<SaveReport> {
        let reader = self.weights.reader(256 << 20)?;
        crate::format::save(dst, &self.model.artifacts.spec, &reader, opts)
    }
}
