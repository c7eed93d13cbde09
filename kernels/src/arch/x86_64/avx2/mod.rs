//! AVX2 + FMA + F16C. Every function here is `#[target_feature(enable = "avx2,fma,f16c")]`
//! behind a safe wrapper; [`TABLE`] is reachable only through `Impl::Avx2.table()`, which
//! checks the CPU first.

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod packed;
pub(crate) mod quant;
pub(crate) mod rope;

use crate::dispatch::Table;
use crate::scalar;

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
    // GELU is off the per-token path (the peer never uses it) and rests on tanhf: reference only.
    gelu: scalar::activation::gelu,
    mul: activation::mul,
    add: activation::add,
    add_q80: activation::add_q80,
    scale: activation::scale,
};
