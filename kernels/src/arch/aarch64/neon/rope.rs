//! NEON RoPE rotations (`scalar/rope.rs`): llama pairs with every product rounded
//! (`x0·c − x1·s`, `x0·s + x1·c`), falcon halves with one FMA each
//! (`fma(x0, c, −(x1·s))`, `fma(x0, s, x1·c)`).

use core::arch::aarch64::*;

use super::{ld4, st4};
use crate::math::fma;

neon_entries! {
    fn rope_llama(x: &mut [f32], cache: &[f32]) => rope_llama_neon;
    fn rope_falcon(x: &mut [f32], cache: &[f32]) => rope_falcon_neon;
}

/// The falcon rotation: the inner product rounded, then one fused step.
#[target_feature(enable = "neon")]
#[inline]
fn rotate_fused(
    x0: float32x4_t,
    x1: float32x4_t,
    c: float32x4_t,
    s: float32x4_t,
) -> (float32x4_t, float32x4_t) {
    let y0 = vfmaq_f32(vnegq_f32(vmulq_f32(x1, s)), x0, c);
    let y1 = vfmaq_f32(vmulq_f32(x1, c), x0, s);
    (y0, y1)
}

/// Interleaved pairs `(x[2m], x[2m+1])` with `(cos, sin)` = `(cache[2m], cache[2m+1])`;
/// `vld2q` splits four pairs into evens and odds.
#[target_feature(enable = "neon")]
fn rope_llama_neon(x: &mut [f32], cache: &[f32]) {
    let (xc, xt) = x.as_chunks_mut::<8>();
    let (cc, ct) = cache.as_chunks::<8>();
    for (xv, cv) in xc.iter_mut().zip(cc) {
        // SAFETY: `xv` and `cv` are 8 floats each; `vld2q_f32`/`vst2q_f32` access exactly 8.
        unsafe {
            let p = vld2q_f32(xv.as_ptr());
            let k = vld2q_f32(cv.as_ptr());
            let (x0, x1, c, s) = (p.0, p.1, k.0, k.1);
            let y0 = vsubq_f32(vmulq_f32(x0, c), vmulq_f32(x1, s));
            let y1 = vaddq_f32(vmulq_f32(x0, s), vmulq_f32(x1, c));
            vst2q_f32(xv.as_mut_ptr(), float32x4x2_t(y0, y1));
        }
    }
    for (p, cs) in xt.chunks_exact_mut(2).zip(ct.chunks_exact(2)) {
        let (v0, v1) = (p[0], p[1]);
        let (c, s) = (cs[0], cs[1]);
        p[0] = v0 * c - v1 * s;
        p[1] = v0 * s + v1 * c;
    }
}

/// NeoX halves: per head of `cache.len()` floats, `x[j]` pairs with `x[j + h/2]`;
/// `cache[j]` = cos, `cache[j + h/2]` = sin.
#[target_feature(enable = "neon")]
fn rope_falcon_neon(x: &mut [f32], cache: &[f32]) {
    let head_dim = cache.len();
    let half = head_dim / 2;
    let (cos, sin) = cache.split_at(half);
    let (cc, ct) = cos.as_chunks::<4>();
    let (sc, st) = sin[..half].as_chunks::<4>();
    for head in x.chunks_exact_mut(head_dim.max(1)) {
        let (a, b) = head.split_at_mut(half);
        let (ac, at) = a.as_chunks_mut::<4>();
        let (bc, bt) = b[..half].as_chunks_mut::<4>();
        for (((q0, q1), c), s) in ac.iter_mut().zip(bc.iter_mut()).zip(cc).zip(sc) {
            let (y0, y1) = rotate_fused(ld4(q0), ld4(q1), ld4(c), ld4(s));
            st4(q0, y0);
            st4(q1, y1);
        }
        for (((q0, q1), &c), &s) in at.iter_mut().zip(bt.iter_mut()).zip(ct).zip(st) {
            let (v0, v1) = (*q0, *q1);
            *q0 = fma(v0, c, -(v1 * s));
            *q1 = fma(v0, s, v1 * c);
        }
    }
}
