//! NEON RMS normalisation (`scalar/norm.rs`).

use core::arch::aarch64::*;

use super::{dot8, ld4, q80_to_f32, st4};
use crate::block::{f16_to_f32, BlockQ80, QK};
use crate::math::sqrtf;

neon_entries! {
    fn inv_rms(out: &mut [f32], x: &[f32], eps: f32) => inv_rms_neon;
    fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) => rms_norm_neon;
    fn rms_norm_q80(out: &mut [f32], x: &[BlockQ80], w: &[f32], inv: f32) => rms_norm_q80_neon;
}

/// `1 / sqrt(dot8(g, g) / len + eps)` for each of the `out.len()` equal column groups `g`.
#[target_feature(enable = "neon")]
fn inv_rms_neon(out: &mut [f32], x: &[f32], eps: f32) {
    let group = x.len() / out.len().max(1);
    for (o, g) in out.iter_mut().zip(x.chunks_exact(group.max(1))) {
        let mut sum = dot8(g, g);
        sum /= g.len() as f32;
        sum += eps;
        *o = 1.0 / sqrtf(sum);
    }
}

/// `out = (x · inv) · w`, two roundings as the reference.
#[target_feature(enable = "neon")]
fn rms_norm_neon(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) {
    let (oc, ot) = out.as_chunks_mut::<4>();
    let (xc, xt) = x.as_chunks::<4>();
    let (wc, wt) = w.as_chunks::<4>();
    for ((o, xv), wv) in oc.iter_mut().zip(xc).zip(wc) {
        st4(o, vmulq_f32(vmulq_n_f32(ld4(xv), inv), ld4(wv)));
    }
    for ((o, &v), &wv) in ot.iter_mut().zip(xt).zip(wt) {
        *o = (v * inv) * wv;
    }
}

/// `out = w · ((inv · d) · q)` per Q80 element.
#[target_feature(enable = "neon")]
fn rms_norm_q80_neon(out: &mut [f32], x: &[BlockQ80], w: &[f32], inv: f32) {
    let (oc, _) = out.as_chunks_mut::<QK>();
    let (wc, _) = w.as_chunks::<QK>();
    for ((os, b), ws) in oc.iter_mut().zip(x).zip(wc) {
        let s = inv * f16_to_f32(b.d);
        let q = q80_to_f32(&b.qs);
        let (os, _) = os.as_chunks_mut::<4>();
        let (ws, _) = ws.as_chunks::<4>();
        for ((o, wv), qv) in os.iter_mut().zip(ws).zip(q) {
            st4(o, vmulq_f32(ld4(wv), vmulq_n_f32(qv, s)));
        }
    }
}
