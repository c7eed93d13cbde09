//! neon implementations of the `scalar/activation.rs` family.
//!
//! Not vectorised yet: these entries run the scalar reference.

pub(crate) use crate::scalar::activation::{add, add_q80, mul, scale, silu, softmax};
