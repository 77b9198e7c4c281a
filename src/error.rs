//! The one error type of layercake. Every variant names where the problem is: the file, the
//! weight, the layer, so a user can act on the message alone.

use std::path::{Path, PathBuf};

/// Result with layercake's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading, checking, running or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON document that does not parse, or parses to the wrong structure.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file holding the JSON.
        path: PathBuf,
        /// What serde_json or the structural check said.
        message: String,
    },

    /// The model artifacts contradict themselves or the spec (manifest, shards, metadata).
    #[error("{path}: {message}")]
    Format {
        /// The file where the problem was found.
        path: PathBuf,
        /// What is wrong, with the weight and byte offsets involved.
        message: String,
    },

    /// A weight whose declaration is valid JSON but not something layercake can use.
    #[error("{path}: weight '{weight}': {message}")]
    Weight {
        /// The file declaring the weight (model.json or the safetensors file).
        path: PathBuf,
        /// The weight's manifest name.
        weight: String,
        /// What is wrong with it.
        message: String,
    },

    /// A manifest path that would leave the model's directory (`..`, absolute, a link outside).
    #[error("{path}: weight file path '{entry}' is not allowed: {reason}")]
    UnsafePath {
        /// The model.json naming the path.
        path: PathBuf,
        /// The path as written in the manifest.
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// An HDF5 object (group, dataset or attribute) of a Keras `.keras` / `.h5` file that cannot
    /// be read safely or has no meaning for the model.
    #[error("{path}: HDF5 object '{object}': {message}")]
    Hdf5 {
        /// The HDF5 file (for a `.keras` archive: the archive joined with its member's name).
        path: PathBuf,
        /// The object's path inside the HDF5 file (`/` for the file itself).
        object: String,
        /// What is wrong with it.
        message: String,
    },

    /// The caller asked for something that cannot be done (bad option, bad destination).
    #[error("{0}")]
    Usage(String),

    /// A model that cannot be rebuilt or run: unsupported layer, bad config, missing or misshapen
    /// weight, wrong input. The message names the layer.
    #[error("{0}")]
    Model(String),

    /// A GPU adapter or device problem.
    #[error("GPU: {0}")]
    Gpu(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error found in `path`.
    pub fn format(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A problem with the weight `weight` declared in `path`.
    pub fn weight(path: impl AsRef<Path>, weight: &str, message: impl Into<String>) -> Self {
        Error::Weight {
            path: path.as_ref().to_path_buf(),
            weight: weight.to_string(),
            message: message.into(),
        }
    }

    /// A problem with the HDF5 object `object` of the HDF5 file `path`.
    pub fn hdf5(path: impl AsRef<Path>, object: &str, message: impl std::fmt::Display) -> Self {
        Error::Hdf5 {
            path: path.as_ref().to_path_buf(),
            object: object.to_string(),
            message: message.to_string(),
        }
    }

    /// A JSON error in `path`.
    pub fn json(path: impl AsRef<Path>, message: impl std::fmt::Display) -> Self {
        Error::Json {
            path: path.as_ref().to_path_buf(),
            message: message.to_string(),
        }
    }
}
