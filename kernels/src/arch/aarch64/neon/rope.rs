//! neon implementations of the `scalar/rope.rs` family.
//!
//! Not vectorised yet: these entries run the scalar reference.

pub(crate) use crate::scalar::rope::{rope_falcon, rope_llama};
