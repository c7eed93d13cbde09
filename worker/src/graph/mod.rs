//! The op graph as plain data: distributed-llama's `NnNetConfig` / `NnNodeConfig` (spec §4,
//! §5.3) and the builder that makes them for an LLM, node by node, exactly as the peer's
//! `buildLlmNet` does (same buffers in the same order, same ops, same config bytes).
//!
//! Nothing here allocates tensors or runs anything; the executor (`exec`) interprets these
//! configs, and the network layer serialises them.

mod llm;
mod params;
mod types;

use std::fmt;

pub use llm::{build_llm_net, ColSlice, LlmNet, RowSlice, N_BATCHES};
pub use params::{
    rope_type_code, rope_type_from_code, MultiHeadAttConfig, OpParams, RopeConfig, RopeSliceConfig,
};
pub use types::{
    NamedSize, NetConfig, NodeConfig, OpCode, OpConfig, PointerConfig, PointerSource, PointerType,
    SegmentConfig, Size3D, SyncConfig, SyncType,
};

use crate::float_type::FloatType;

/// Why a graph could not be built or parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphError {
    /// A size whose byte count cannot be computed (unknown type, partial block, overflow).
    BadSize {
        /// Element type.
        float_type: FloatType,
        /// Planes.
        z: u32,
        /// Rows.
        y: u32,
        /// Elements per row.
        x: u32,
    },
    /// An enum field with a value the peer does not define.
    BadCode {
        /// Which field.
        what: &'static str,
        /// The value found.
        code: u32,
    },
    /// An op config of the wrong length for its op code.
    BadConfigSize {
        /// The op.
        op: OpCode,
        /// Bytes the struct has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// Stored derived values that disagree with the shape.
    Inconsistent(&'static str),
    /// The model cannot be split over this many nodes, or a dimension breaks a rule of spec §7.
    Unsplittable(String),
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::BadSize {
                float_type,
                z,
                y,
                x,
            } => write!(f, "invalid size {float_type} ({z}×{y}×{x})"),
            GraphError::BadCode { what, code } => write!(f, "unknown {what} code {code}"),
            GraphError::BadConfigSize { op, expected, got } => {
                write!(f, "{op} config has {got} bytes, expected {expected}")
            }
            GraphError::Inconsistent(what) => write!(f, "inconsistent {what}"),
            GraphError::Unsplittable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for GraphError {}
