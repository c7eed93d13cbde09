//! The peer's model (`.m`) file: header, tensor index, memory-mapped reading, writing, and
//! random-model generation.

pub mod header;
