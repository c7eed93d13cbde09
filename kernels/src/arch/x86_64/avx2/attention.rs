//! avx2 implementations of the `scalar/attention.rs` family.
//!
//! Not vectorised yet: these entries run the scalar reference.

pub(crate) use crate::scalar::attention::attention;
