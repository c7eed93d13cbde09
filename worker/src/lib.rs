//! # airllm-worker
//!
//! A distributed-llama compatible LLM node in Rust: reads the peer's `.m` model and `.t`
//! tokenizer files through memory maps, builds the peer's per-node op graph as plain data, and
//! runs it on `airllm-kernels` with a persistent thread pool.
//!
//! One-way flow: the CLI (and later the network) at the edge; [`graph`] as plain data in the
//! middle; `exec` and the kernels at the bottom.

pub mod exec;
pub mod float_type;
pub mod graph;
pub mod infer;
pub mod model;
pub mod net;
pub mod sample;
pub mod tokenizer;
pub mod weights;
