//! NEON multi-head attention (`scalar/attention.rs`).

use core::arch::aarch64::*;

use super::{dot8, ld4, st4};
use crate::math::{fma, sqrtf};
use crate::scalar::attention::AttHeads;

neon_entries! {
    fn attention(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) => attention_neon;
}

/// Per head: `score_t = dot8(q, K_t) / sqrtf(head_dim)`, softmax, then `y = fma(a_t, V_t, y)`
/// for `t` in order from a zero `y`.
#[target_feature(enable = "neon")]
fn attention_neon(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) {
    let hd = a.head_dim;
    let root = sqrtf(hd as f32);
    let n_heads = y.len() / hd.max(1);
    for h in 0..n_heads {
        let kvh = (a.first_head + h) / a.kv_mul;
        let q = &a.q[h * hd..(h + 1) * hd];
        let scores = &mut att[h * att_stride..h * att_stride + a.pos + 1];
        for (t, s) in scores.iter_mut().enumerate() {
            let k = &a.k_cache[t * a.kv_dim0 + kvh * hd..][..hd];
            *s = dot8(q, k) / root;
        }
        super::activation::softmax_neon(scores);
        let yh = &mut y[h * hd..(h + 1) * hd];
        yh.fill(0.0);
        let (yc, yt) = yh.as_chunks_mut::<4>();
        for (t, &p) in scores.iter().enumerate() {
            let v = &a.v_cache[t * a.kv_dim0 + kvh * hd..][..hd];
            let (vc, vt) = v.as_chunks::<4>();
            let pv = vdupq_n_f32(p);
            for (o, vv) in yc.iter_mut().zip(vc) {
                st4(o, vfmaq_f32(ld4(o), ld4(vv), pv));
            }
            for (o, &vv) in yt.iter_mut().zip(vt) {
                *o = fma(p, vv, *o);
            }
        }
    }
}
