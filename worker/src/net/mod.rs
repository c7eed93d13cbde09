//! distributed-llama's root↔worker wire protocol (spec §5): the byte codec of every message,
//! with every count and size bounded before anything is allocated.

pub mod codec;
pub mod root;
pub mod tcp;
pub mod worker;

use std::io;

use crate::graph::GraphError;

/// Why a connection was dropped.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The socket failed or closed.
    #[error("network: {0}")]
    Io(#[from] io::Error),
    /// The peer sent bytes that break the protocol or a limit.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A config field that is not a valid graph value.
    #[error("bad config: {0}")]
    Graph(#[from] GraphError),
}

/// Shorthand for a protocol error.
pub(crate) fn protocol(msg: impl Into<String>) -> NetError {
    NetError::Protocol(msg.into())
}
