//! NEON Q80 quantisation and Q80/Q40 dequantisation (`scalar/quant.rs`).

use core::arch::aarch64::*;

use super::{q80_to_f32, st4};
use crate::block::{f16_to_f32, f32_to_f16, BlockQ40, BlockQ80, QK};
use crate::scalar::quant::q80_scale;

neon_entries! {
    fn quantize_q80(x: &[f32], out: &mut [BlockQ80]) => quantize_q80_neon;
    fn dequantize_q80(x: &[BlockQ80], out: &mut [f32]) => dequantize_q80_neon;
    fn dequantize_q40(x: &[BlockQ40], out: &mut [f32]) => dequantize_q40_neon;
}

/// Q80 blocks of 32 floats. `amax` is a plain maximum of magnitudes (for non-NaN input every
/// reduction order gives the same value), `q = rint(x·id)` ties-to-even, low byte kept.
#[target_feature(enable = "neon")]
fn quantize_q80_neon(x: &[f32], out: &mut [BlockQ80]) {
    let (chunks, _) = x.as_chunks::<QK>();
    for (b, xs) in out.iter_mut().zip(chunks) {
        let (v, _) = xs.as_chunks::<4>();
        let v: [float32x4_t; 8] = core::array::from_fn(|i| super::ld4(&v[i]));
        let mut m = vabsq_f32(v[0]);
        for &r in &v[1..] {
            m = vmaxq_f32(m, vabsq_f32(r));
        }
        let (d, id) = q80_scale(vmaxvq_f32(m));
        b.d = f32_to_f16(d);
        // cvtps2dq gives 0x8000_0000 (low byte 0) where the product reaches 2^31 (an infinite
        // `id` from a denormal `d`); FCVTNS saturates to 0x7fff_ffff instead, so those lanes
        // are cleared. Below −2^31 and for NaN both low bytes are already 0.
        let limit = vdupq_n_f32(2_147_483_648.0);
        let q: [int32x4_t; 8] = core::array::from_fn(|i| {
            let p = vmulq_n_f32(v[i], id);
            vbicq_s32(
                vcvtnq_s32_f32(p),
                vreinterpretq_s32_u32(vcgeq_f32(p, limit)),
            )
        });
        // Truncating narrows keep the low byte, as the reference's `as i8`.
        let h: [int16x8_t; 4] =
            core::array::from_fn(|i| vmovn_high_s32(vmovn_s32(q[2 * i]), q[2 * i + 1]));
        let lo = vmovn_high_s16(vmovn_s16(h[0]), h[1]);
        let hi = vmovn_high_s16(vmovn_s16(h[2]), h[3]);
        // SAFETY: `b.qs` is 32 writable bytes; the stores write bytes 0..16 and 16..32.
        unsafe {
            vst1q_s8(b.qs.as_mut_ptr(), lo);
            vst1q_s8(b.qs.as_mut_ptr().add(16), hi);
        }
    }
}

/// `q · d` per element.
#[target_feature(enable = "neon")]
fn dequantize_q80_neon(x: &[BlockQ80], out: &mut [f32]) {
    let (chunks, _) = out.as_chunks_mut::<QK>();
    for (b, ys) in x.iter().zip(chunks) {
        let d = f16_to_f32(b.d);
        let q = q80_to_f32(&b.qs);
        let (ys, _) = ys.as_chunks_mut::<4>();
        for (y, v) in ys.iter_mut().zip(q) {
            st4(y, vmulq_n_f32(v, d));
        }
    }
}

/// `(nibble − 8) · d`; low nibbles are elements 0..16, high nibbles 16..32.
#[target_feature(enable = "neon")]
fn dequantize_q40_neon(x: &[BlockQ40], out: &mut [f32]) {
    let (chunks, _) = out.as_chunks_mut::<QK>();
    for (b, ys) in x.iter().zip(chunks) {
        let d = f16_to_f32(b.d);
        let (lo, hi) = q40_nibbles(&b.qs);
        let w = [
            vmovl_s8(vget_low_s8(lo)),
            vmovl_high_s8(lo),
            vmovl_s8(vget_low_s8(hi)),
            vmovl_high_s8(hi),
        ];
        let (ys, _) = ys.as_chunks_mut::<4>();
        for (y2, h) in ys.chunks_exact_mut(2).zip(w) {
            let a = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
            let c = vcvtq_f32_s32(vmovl_high_s16(h));
            st4(&mut y2[0], vmulq_n_f32(a, d));
            st4(&mut y2[1], vmulq_n_f32(c, d));
        }
    }
}

/// The signed values (−8..=7) of a Q40 block: elements 0..16 and 16..32.
#[target_feature(enable = "neon")]
#[inline]
pub(in crate::arch::aarch64) fn q40_nibbles(qs: &[u8; QK / 2]) -> (int8x16_t, int8x16_t) {
    // SAFETY: `qs` is 16 readable bytes.
    let w = unsafe { vld1q_u8(qs.as_ptr()) };
    let eight = vdupq_n_s8(8);
    let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(w, vdupq_n_u8(0x0F))), eight);
    let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(w)), eight);
    (lo, hi)
}
