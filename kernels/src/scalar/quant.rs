//! Reference quantisers and dequantisers (spec §1.4, the peer's x86 AVX2 build).

use crate::block::{f16_to_f32, f32_to_f16, BlockQ40, BlockQ80, QK};
use crate::math::cvt_round_i32;

/// Largest |x| of a Q80 block, reduced like the peer's AVX2 code: 8 lanes of `maxps` over
/// `j % 8`, then lanes 4..8 against 0..4, 2..4 against 0..2, 1 against 0. For finite input this
/// is simply the largest magnitude.
#[inline]
pub(crate) fn q80_amax(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (j, v) in x.iter().enumerate() {
        lanes[j % 8] = crate::math::max_ps(lanes[j % 8], v.abs());
    }
    let m = crate::math::max_ps;
    let m4 = [
        m(lanes[4], lanes[0]),
        m(lanes[5], lanes[1]),
        m(lanes[6], lanes[2]),
        m(lanes[7], lanes[3]),
    ];
    let m2 = [m(m4[0], m4[2]), m(m4[1], m4[3])];
    m(m2[0], m2[1])
}

/// Scale and reciprocal of a Q80 block: `d = amax / 127`, `id = d != 0 ? 1/d : 0` from the
/// unrounded `d`.
#[inline]
pub(crate) fn q80_scale(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    (d, id)
}

/// One Q80 value: `rint(x * id)`, converted like `cvtps2dq`, low byte kept.
#[inline]
pub(crate) fn q80_value(x: f32, id: f32) -> i8 {
    cvt_round_i32(x * id) as i8
}

pub(crate) fn quantize_q80(x: &[f32], out: &mut [BlockQ80]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, id) = q80_scale(q80_amax(xs));
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = q80_value(v, id);
        }
    }
}

pub(crate) fn quantize_q40(x: &[f32], out: &mut [BlockQ40]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        // The element of largest magnitude, keeping its sign; the first one wins a tie.
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in xs {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f32_to_f16(d);
        for j in 0..QK / 2 {
            let lo = q40_nibble(xs[j] * id);
            let hi = q40_nibble(xs[j + QK / 2] * id);
            b.qs[j] = lo | (hi << 4);
        }
    }
}

/// `(uint8_t)(int8_t)(v + 8.5)` clamped to 15, as the peer writes it.
#[inline]
fn q40_nibble(v: f32) -> u8 {
    let t = (v + 8.5) as i32 as i8 as u8;
    t.min(15)
}

pub(crate) fn dequantize_q80(x: &[BlockQ80], out: &mut [f32]) {
    for (b, ys) in x.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for (y, &q) in ys.iter_mut().zip(&b.qs) {
            *y = q as f32 * d;
        }
    }
}

pub(crate) fn dequantize_q40(x: &[BlockQ40], out: &mut [f32]) {
    for (b, ys) in x.iter().zip(out.chunks_exact_mut(QK)) {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            ys[j] = ((b.qs[j] & 0x0F) as i32 - 8) as f32 * d;
            ys[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}
