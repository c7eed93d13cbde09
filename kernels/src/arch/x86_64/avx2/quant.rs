//! avx2 implementations of the `scalar/quant.rs` family.
//!
//! Not vectorised yet: these entries run the scalar reference.

pub(crate) use crate::scalar::quant::{dequantize_q40, dequantize_q80, quantize_q40, quantize_q80};
