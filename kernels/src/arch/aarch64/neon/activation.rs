//! NEON softmax and element-wise kernels (`scalar/activation.rs`).

use core::arch::aarch64::*;

use super::{exp_poly, hsum8, ld4, ld8, q80_to_f32, st4, st8};
use crate::block::{f16_to_f32, BlockQ80, QK};
use crate::math::{self, expf};

neon_entries! {
    fn softmax(x: &mut [f32]) => softmax_neon;
    fn silu(x: &mut [f32], n_poly: usize) => silu_neon;
    fn mul(x: &mut [f32], m: &[f32]) => mul_neon;
    fn add(out: &mut [f32], x: &[f32]) => add_neon;
    fn add_q80(out: &mut [f32], x: &[BlockQ80]) => add_q80_neon;
    fn scale(x: &mut [f32], s: f32) => scale_neon;
}

/// Softmax of one row in place: the polynomial exp on full groups of 8 summed in 8 lanes and
/// reduced with [`hsum8`], `expf` on the tail added in order, a zero sum replaced by 1e-6,
/// every element times `1 / sum`.
#[target_feature(enable = "neon")]
pub(super) fn softmax_neon(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    // For non-NaN input the maximum is one value whatever the order; when it is a zero its sign
    // cannot matter, since x − (±0) differs only for x = ±0, whose exps are both exactly 1.
    // The reference never takes a NaN as a new maximum but keeps a NaN first element: FMAXNM
    // skips NaN operands (FMAX would return them), and a NaN first element skips the search.
    let (c4, t4) = x.as_chunks::<4>();
    let mut max = x[0];
    if let (Some((first, rest)), false) = (c4.split_first(), max.is_nan()) {
        let mut m = ld4(first);
        for v in rest {
            m = vmaxnmq_f32(m, ld4(v));
        }
        // Lane 0 holds at least `x[0]`, a number, so the reduction is one.
        max = vmaxnmvq_f32(m);
    }
    for &v in t4 {
        if v > max {
            max = v;
        }
    }
    let mv = vdupq_n_f32(max);
    let (c8, tail) = x.as_chunks_mut::<8>();
    let mut lo = vdupq_n_f32(0.0);
    let mut hi = vdupq_n_f32(0.0);
    for v in c8.iter_mut() {
        let (a, b) = ld8(v);
        let (ea, eb) = (exp_poly(vsubq_f32(a, mv)), exp_poly(vsubq_f32(b, mv)));
        st8(v, ea, eb);
        lo = vaddq_f32(lo, ea);
        hi = vaddq_f32(hi, eb);
    }
    let mut sum = hsum8(lo, hi);
    for v in tail.iter_mut() {
        *v = expf(*v - max);
        sum += *v;
    }
    if sum == 0.0 {
        sum = 0.000001;
    }
    scale_neon(x, 1.0 / sum);
}

/// `x / (1 + e^(0 − x))` in place; the first `n_poly` elements use the exp polynomial, the rest
/// `expf`. The division is exact (`vdivq_f32`), no reciprocal estimate.
#[target_feature(enable = "neon")]
fn silu_neon(x: &mut [f32], n_poly: usize) {
    let n_poly = n_poly.min(x.len());
    let (head, tail) = x.split_at_mut(n_poly);
    let (hc, ht) = head.as_chunks_mut::<4>();
    let zero = vdupq_n_f32(0.0);
    let one = vdupq_n_f32(1.0);
    for v in hc {
        let a = ld4(v);
        st4(
            v,
            vdivq_f32(a, vaddq_f32(one, exp_poly(vsubq_f32(zero, a)))),
        );
    }
    for v in ht {
        *v = *v / (1.0 + math::exp_poly(0.0 - *v));
    }
    for v in tail {
        *v = *v / (1.0 + expf(-*v));
    }
}

/// `x = x · m`.
#[target_feature(enable = "neon")]
fn mul_neon(x: &mut [f32], m: &[f32]) {
    let (xc, xt) = x.as_chunks_mut::<4>();
    let (mc, mt) = m.as_chunks::<4>();
    for (v, b) in xc.iter_mut().zip(mc) {
        st4(v, vmulq_f32(ld4(v), ld4(b)));
    }
    for (v, &b) in xt.iter_mut().zip(mt) {
        *v *= b;
    }
}

/// `out += x`.
#[target_feature(enable = "neon")]
fn add_neon(out: &mut [f32], x: &[f32]) {
    let (oc, ot) = out.as_chunks_mut::<4>();
    let (xc, xt) = x.as_chunks::<4>();
    for (o, a) in oc.iter_mut().zip(xc) {
        st4(o, vaddq_f32(ld4(o), ld4(a)));
    }
    for (o, &a) in ot.iter_mut().zip(xt) {
        *o += a;
    }
}

/// `out = fma(d, q, out)` per Q80 element.
#[target_feature(enable = "neon")]
fn add_q80_neon(out: &mut [f32], x: &[BlockQ80]) {
    let (oc, _) = out.as_chunks_mut::<QK>();
    for (os, b) in oc.iter_mut().zip(x) {
        let d = vdupq_n_f32(f16_to_f32(b.d));
        let q = q80_to_f32(&b.qs);
        let (os, _) = os.as_chunks_mut::<4>();
        for (o, qv) in os.iter_mut().zip(q) {
            st4(o, vfmaq_f32(ld4(o), qv, d));
        }
    }
}

/// `x = x · s`.
#[target_feature(enable = "neon")]
fn scale_neon(x: &mut [f32], s: f32) {
    let (xc, xt) = x.as_chunks_mut::<4>();
    for v in xc {
        st4(v, vmulq_n_f32(ld4(v), s));
    }
    for v in xt {
        *v *= s;
    }
}
