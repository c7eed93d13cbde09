//! The peer's model (`.m`) file: header, tensor index, memory-mapped reading, writing, and
//! random-model generation.

pub mod file;
pub mod gen;
pub mod header;
pub mod tensors;
pub mod writer;

pub use file::ModelFile;
pub use header::{ArchType, HeaderError, HiddenAct, ModelHeader, RopeType};
pub use tensors::{Split, TensorId, TensorIndex, TensorInfo, TensorKind};

use std::path::PathBuf;
use thiserror::Error;

/// Why a model file could not be read, sliced or written.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Opening, reading, mapping or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The header is invalid.
    #[error("invalid model header: {0}")]
    Header(#[from] HeaderError),
    /// The file is shorter than its header says.
    #[error("missing bytes in weight file: expected {expected} bytes, file has {actual}")]
    MissingBytes {
        /// Header plus all tensors.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// The file is longer than its header says.
    #[error("extra bytes in weight file: expected {expected} bytes, file has {actual}")]
    ExtraBytes {
        /// Header plus all tensors.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A size computed from the header does not fit in 64 bits (or in this machine's `usize`).
    #[error("model sizes overflow")]
    SizeOverflow,
    /// A tensor shape that the encoding cannot hold.
    #[error("bad tensor shape: {0}")]
    Shape(String),
    /// The model has no such tensor.
    #[error("no tensor {0} in this model")]
    NoSuchTensor(TensorId),
    /// A node slice that the split rules do not allow.
    #[error("cannot slice {tensor} for node {node} of {n_nodes}: {why}")]
    Slice {
        /// The tensor.
        tensor: TensorId,
        /// Node asked for.
        node: usize,
        /// Node count.
        n_nodes: usize,
        /// The rule that failed.
        why: String,
    },
    /// Tensors given to a writer out of order, with the wrong length, or too few.
    #[error("model writer: {0}")]
    Writer(String),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
