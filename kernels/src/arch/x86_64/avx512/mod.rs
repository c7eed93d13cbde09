//! AVX-512 F/BW/VL/DQ for the two matmuls, attention, softmax, SiLU and Q80 quantisation; the other
//! kernels are memory-bound or tiny, so they reuse the AVX2 code. [`TABLE_VNNI`] adds
//! `vpdpbusd` for the Q80×Q40 block dots. Both tables are reachable only after the CPU check
//! in `Impl::table`.

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod packed;
pub(crate) mod quant;

use super::avx2;
use crate::dispatch::Table;

pub(crate) static TABLE: Table = Table {
    matmul_q80_q40: matmul::matmul_q80_q40,
    matmul_q80_q40_batch: matmul::matmul_q80_q40_batch,
    matmul_q80_q40_packed: packed::matmul_q80_q40_packed,
    matmul_f32: matmul::matmul_f32,
    matmul_f32_batch: matmul::matmul_f32_batch,
    attention: attention::attention,
    softmax: activation::softmax,
    silu: activation::silu,
    rms_norm: norm::rms_norm,
    quantize_q80: quant::quantize_q80,
    ..avx2::TABLE
};

pub(crate) static TABLE_VNNI: Table = Table {
    matmul_q80_q40: matmul::matmul_q80_q40_vnni,
    matmul_q80_q40_batch: matmul::matmul_q80_q40_batch_vnni,
    matmul_q80_q40_packed: packed::matmul_q80_q40_packed_vnni,
    ..TABLE
};
