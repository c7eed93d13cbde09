//! NEON (Advanced SIMD), which every aarch64 CPU has. [`TABLE`] is reachable only through
//! `Impl::Neon.table()`.
//!
//! This module is compiled only where `neon` is a compile-time target feature. Its functions
//! still carry `#[target_feature(enable = "neon")]`, which makes the arithmetic intrinsics safe
//! to call inside them; the table entries are thin wrappers made by `neon_entries!`. Loads
//! and stores through pointers go through the array-typed helpers below, whose types carry
//! the bounds.
//!
//! The contract is the x86 build's arithmetic, not a natural NEON one: an x86 register of
//! 8 floats is modelled as two `float32x4_t` (lanes 0–3 and 4–7), every multiply-add is fused
//! (`vfmaq_f32`), rounding to integer is ties-to-even (`vcvtnq_s32_f32`), and reductions follow
//! the peer's lane order ([`hsum8`]).

/// Safe table entries `name(args)` calling the `#[target_feature(enable = "neon")]` function
/// `imp(args)` of the same module.
macro_rules! neon_entries {
    ($(fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $imp:ident;)*) => {$(
        pub(crate) fn $name($($arg: $ty),*) {
            // SAFETY: this module is compiled only with `target_feature = "neon"` (see
            // `arch/mod.rs`), so every CPU that runs this code has NEON.
            unsafe { $imp($($arg),*) }
        }
    )*};
}

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod packed;
pub(crate) mod quant;
pub(crate) mod rope;

use core::arch::aarch64::*;

use crate::block::QK;
use crate::dispatch::Table;
use crate::math::{self, EXP_POLY};
use crate::scalar;

pub(crate) static TABLE: Table = Table {
    quantize_q80: quant::quantize_q80,
    // Q40 quantisation runs once per weight file, off the per-token path: reference only.
    quantize_q40: scalar::quant::quantize_q40,
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

/// Four floats from an array.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn ld4(a: &[f32; 4]) -> float32x4_t {
    // SAFETY: `a` is 4 readable floats; `vld1q_f32` needs only element alignment.
    unsafe { vld1q_f32(a.as_ptr()) }
}

/// Four floats into an array.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn st4(a: &mut [f32; 4], v: float32x4_t) {
    // SAFETY: `a` is 4 writable floats; `vst1q_f32` needs only element alignment.
    unsafe { vst1q_f32(a.as_mut_ptr(), v) }
}

/// One x86 register of 8 floats: lanes 0–3 and lanes 4–7.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn ld8(a: &[f32; 8]) -> (float32x4_t, float32x4_t) {
    let (lo, hi) = a.split_at(4);
    (ld4(lo.try_into().unwrap()), ld4(hi.try_into().unwrap()))
}

/// Stores 8 floats given as lanes 0–3 and 4–7.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn st8(a: &mut [f32; 8], lo: float32x4_t, hi: float32x4_t) {
    let (l, h) = a.split_at_mut(4);
    st4(l.try_into().unwrap(), lo);
    st4(h.try_into().unwrap(), hi);
}

/// The peer's 8-lane horizontal sum, `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`, of lanes 0–3
/// in `lo` and 4–7 in `hi`.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn hsum8(lo: float32x4_t, hi: float32x4_t) -> f32 {
    // s = [l0+l4, l1+l5, l2+l6, l3+l7]; t = [s0+s2, s1+s3]; t0 + t1.
    let s = vaddq_f32(lo, hi);
    let t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    vget_lane_f32::<0>(t) + vget_lane_f32::<1>(t)
}

/// [`math::dot8`]: element `i` fused into lane `i mod 8`, reduced with [`hsum8`]. The
/// `len mod 8` tail goes into the same lanes one element at a time, as the reference does.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let (ac, at) = a.as_chunks::<8>();
    let (bc, bt) = b.as_chunks::<8>();
    let mut lo = vdupq_n_f32(0.0);
    let mut hi = vdupq_n_f32(0.0);
    for (x, y) in ac.iter().zip(bc) {
        let (x0, x1) = ld8(x);
        let (y0, y1) = ld8(y);
        lo = vfmaq_f32(lo, x0, y0);
        hi = vfmaq_f32(hi, x1, y1);
    }
    if at.is_empty() {
        return hsum8(lo, hi);
    }
    lanes_tail_hsum(lo, hi, at, bt)
}

/// Finishes a [`dot8`] whose last `a.len() < 8` elements did not fill a register.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn lanes_tail_hsum(lo: float32x4_t, hi: float32x4_t, a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    st8(&mut lanes, lo, hi);
    for ((l, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
        *l = math::fma(x, y, *l);
    }
    math::hsum8(&lanes)
}

/// [`math::exp_poly`] on four lanes: the same clamp, `n = rint(x·log2 e)` (ties to even), the
/// same fused polynomial steps and the same `2^n` exponent bits.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn exp_poly(x: float32x4_t) -> float32x4_t {
    // maxps/minps and FMAXNM/FMINNM agree on all non-NaN inputs (signed zeros cannot reach
    // here as a tie: the bounds are ±88), and on a NaN `x` too: maxps returns its second
    // operand, −88, as FMAXNM returns the number (FMAX would return the NaN).
    let x = vminnmq_f32(vmaxnmq_f32(x, vdupq_n_f32(-88.0)), vdupq_n_f32(88.0));
    let y = vmulq_n_f32(x, core::f32::consts::LOG2_E);
    // |y| ≤ 127, so the conversion never saturates.
    let n = vcvtnq_s32_f32(y);
    let f = vsubq_f32(y, vcvtq_f32_s32(n));
    let mut p = vdupq_n_f32(EXP_POLY[0]);
    p = vfmaq_f32(vdupq_n_f32(EXP_POLY[1]), p, f);
    p = vfmaq_f32(vdupq_n_f32(EXP_POLY[2]), p, f);
    p = vfmaq_f32(vdupq_n_f32(EXP_POLY[3]), p, f);
    p = vfmaq_f32(vdupq_n_f32(EXP_POLY[4]), p, f);
    let two_n = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n, vdupq_n_s32(127))));
    vmulq_f32(p, two_n)
}

/// The 32 values of a Q80 block as exact floats, in element order, four per register.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q80_to_f32(qs: &[i8; QK]) -> [float32x4_t; 8] {
    // SAFETY: `qs` is 32 readable bytes; the two loads read bytes 0..16 and 16..32.
    let (a, b) = unsafe { (vld1q_s8(qs.as_ptr()), vld1q_s8(qs.as_ptr().add(16))) };
    let w = [
        vmovl_s8(vget_low_s8(a)),
        vmovl_high_s8(a),
        vmovl_s8(vget_low_s8(b)),
        vmovl_high_s8(b),
    ];
    let mut out = [vdupq_n_f32(0.0); 8];
    for (o, h) in out.chunks_exact_mut(2).zip(w) {
        o[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
        o[1] = vcvtq_f32_s32(vmovl_high_s16(h));
    }
    out
}
