//! Reference RMS normalisation (spec §6.3–§6.4).

use crate::block::{f16_to_f32, BlockQ80, QK};
use crate::math::{dot8, sqrtf};

/// `1 / sqrt(dot8(x, x) / len + eps)` for one column group.
#[inline]
pub(crate) fn inv_rms_group(x: &[f32], eps: f32) -> f32 {
    let mut sum = dot8(x, x);
    sum /= x.len() as f32;
    sum += eps;
    1.0 / sqrtf(sum)
}

pub(crate) fn inv_rms(out: &mut [f32], x: &[f32], eps: f32) {
    let group = x.len() / out.len().max(1);
    for (o, g) in out.iter_mut().zip(x.chunks_exact(group.max(1))) {
        *o = inv_rms_group(g, eps);
    }
}

/// `out = (x · inv) · w`.
pub(crate) fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) {
    for ((o, &v), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = (v * inv) * wv;
    }
}

/// `out = w · ((inv · d) · q)` per Q80 element, the peer's order.
pub(crate) fn rms_norm_q80(out: &mut [f32], x: &[BlockQ80], w: &[f32], inv: f32) {
    for ((os, b), ws) in out.chunks_exact_mut(QK).zip(x).zip(w.chunks_exact(QK)) {
        let s = inv * f16_to_f32(b.d);
        for ((o, &q), &wv) in os.iter_mut().zip(&b.qs).zip(ws) {
            *o = wv * (s * q as f32);
        }
    }
}
