//! avx2 implementations of the `scalar/norm.rs` family.
//!
//! Not vectorised yet: these entries run the scalar reference.

pub(crate) use crate::scalar::norm::{inv_rms, rms_norm, rms_norm_q80};
