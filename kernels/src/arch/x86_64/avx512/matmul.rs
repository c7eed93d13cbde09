//! avx512 implementations of the `scalar/matmul.rs` family.
//!
//! Not vectorised yet: these entries run the scalar reference.

pub(crate) use crate::scalar::matmul::{
    matmul_f32, matmul_f32_batch, matmul_q80_q40, matmul_q80_q40_batch,
};
