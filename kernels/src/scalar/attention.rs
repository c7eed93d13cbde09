//! Reference multi-head attention with grouped-query heads (spec §6.8).

use crate::math::{dot8, fma, sqrtf};

/// The heads one call works on, with everything the kernel reads.
///
/// Head `h` (0-based within this call) is local head `first_head + h`; it reads KV head
/// `(first_head + h) / kv_mul`, whose row `t` is `k_cache[t·kv_dim0 + kvh·head_dim ..][..head_dim]`.
#[derive(Clone, Copy)]
pub(crate) struct AttHeads<'a> {
    /// Queries of these heads, `n_heads × head_dim`.
    pub q: &'a [f32],
    /// Key cache rows `0..=pos`, `kv_dim0` floats each (at least `(pos+1)·kv_dim0`).
    pub k_cache: &'a [f32],
    /// Value cache, same layout as `k_cache`.
    pub v_cache: &'a [f32],
    pub head_dim: usize,
    pub kv_dim0: usize,
    pub kv_mul: usize,
    pub first_head: usize,
    pub pos: usize,
}

/// `y` gets `n_heads × head_dim` outputs; `att` is scratch of `n_heads × att_stride` floats,
/// `att_stride ≥ pos + 1`.
///
/// Per head: `score_t = dot8(q, K_t) / sqrtf(head_dim)`, softmax over `t = 0..=pos`, then
/// `y = fma(a_t, V_t, y)` for `t` in order from a zero `y`.
pub(crate) fn attention(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) {
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
        super::activation::softmax(scores);
        let yh = &mut y[h * hd..(h + 1) * hd];
        yh.fill(0.0);
        for (t, &p) in scores.iter().enumerate() {
            let v = &a.v_cache[t * a.kv_dim0 + kvh * hd..][..hd];
            for (o, &vv) in yh.iter_mut().zip(v) {
                *o = fma(p, vv, *o);
            }
        }
    }
}
