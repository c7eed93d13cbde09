//! The scalar reference: the numerical contract, one file per kernel family. Every other
//! implementation must produce the same bits as these functions.

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod packed;
pub(crate) mod quant;
pub(crate) mod rope;

use crate::dispatch::Table;

/// The reference table.
pub(crate) static TABLE: Table = Table {
    quantize_q80: quant::quantize_q80,
    quantize_q40: quant::quantize_q40,
    dequantize_q80: quant::dequantize_q80,
    dequantize_q40: quant::dequantize_q40,
    matmul_q80_q40: matmul::matmul_q80_q40,
    matmul_q80_q40_batch: matmul::matmul_q80_q40_batch,
    matmul_q80_q40_packed: packed::matmul_q80_q40_packed,
    matmul_f32: matmul::matmul_f32,
    matmul_f32_batch: matmul::matmul_f32_batch,
    inv_rms: norm::inv_rms,
    rms_norm: norm::rms_norm,
    rms_norm_q80: norm::rms_norm_q80,
    rope_llama: rope::rope_llama,
    rope_falcon: rope::rope_falcon,
    attention: attention::attention,
    softmax: activation::softmax,
    silu: activation::silu,
    gelu: activation::gelu,
    mul: activation::mul,
    add: activation::add,
    add_q80: activation::add_q80,
    scale: activation::scale,
};
