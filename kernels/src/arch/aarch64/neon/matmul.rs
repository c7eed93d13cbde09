//! NEON matmuls (`scalar/matmul.rs`).
//!
//! Q80×Q40 works on four weight rows at once, one row per lane: the four exact integer block
//! dots become the lanes of one vector, which is fused into the four row accumulators with the
//! four rounded scale products, block after block in order, exactly the reference's per-row
//! `acc = fma(float(dot), dW·dX, acc)`. The integer dot itself is exact however it is summed,
//! so [`BlockDot`] lets the dotprod build swap in `sdot` and reuse the row loops.

use core::arch::aarch64::*;

use super::quant::q40_nibbles;
use super::{dot8, hsum8, lanes_tail_hsum, ld8};
use crate::block::{f16_to_f32, BlockQ40, BlockQ80};

/// An exact Q40·Q80 block dot product, left as four `i32` partial sums (their total is the
/// dot product).
///
/// The row loops that use it are `#[inline(always)]` rather than `#[target_feature]`, so that
/// the `sdot` of the dotprod build always lands inside its `#[target_feature(enable =
/// "dotprod")]` entry point, even in unoptimised builds.
pub(in crate::arch::aarch64) trait BlockDot {
    /// Partial sums of `Σ (nibble − 8)·q` over one pair of blocks.
    fn partial(w: &BlockQ40, x: &BlockQ80) -> int32x4_t;
}

/// Widening multiplies: every product fits in `i16` (|·| ≤ 8·128), four of them summed too.
struct Widening;

impl BlockDot for Widening {
    #[inline(always)]
    fn partial(w: &BlockQ40, x: &BlockQ80) -> int32x4_t {
        // SAFETY: NEON is a compile-time target feature of every build of this module; `x.qs`
        // is 32 readable bytes, read as bytes 0..16 and 16..32.
        unsafe {
            let (lo, hi) = q40_nibbles(&w.qs);
            let (x0, x1) = (vld1q_s8(x.qs.as_ptr()), vld1q_s8(x.qs.as_ptr().add(16)));
            let p = vmull_s8(vget_low_s8(lo), vget_low_s8(x0));
            let p = vmlal_high_s8(p, lo, x0);
            let p = vmlal_s8(p, vget_low_s8(hi), vget_low_s8(x1));
            let p = vmlal_high_s8(p, hi, x1);
            vpaddlq_s16(p)
        }
    }
}

/// One row: the reference's loop with the block dot from `D`.
#[inline(always)]
fn row<D: BlockDot>(x: &[BlockQ80], w: &[BlockQ40]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, xb) in w.iter().zip(x) {
        let s = f16_to_f32(wb.d) * f16_to_f32(xb.d);
        // SAFETY: NEON is a compile-time target feature of every build of this module.
        let dot = unsafe { vaddvq_s32(D::partial(wb, xb)) };
        acc = crate::math::fma(dot as f32, s, acc);
    }
    acc
}

/// Four rows `w0..w3` (each `x.len()` blocks) in the lanes of one accumulator.
#[inline(always)]
fn rows4<D: BlockDot>(x: &[BlockQ80], w: [&[BlockQ40]; 4]) -> [f32; 4] {
    let mut out = [0.0f32; 4];
    // SAFETY: NEON is a compile-time target feature of every build of this module.
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        for (j, xb) in x.iter().enumerate() {
            let b = [&w[0][j], &w[1][j], &w[2][j], &w[3][j]];
            // No closures here: they would not be inlined into a `dotprod` caller.
            let p = [
                D::partial(b[0], xb),
                D::partial(b[1], xb),
                D::partial(b[2], xb),
                D::partial(b[3], xb),
            ];
            // Lane r = the whole block dot of row r.
            let dots = vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
            let dx = f16_to_f32(xb.d);
            let s = b.map(|wb| f16_to_f32(wb.d) * dx);
            acc = vfmaq_f32(acc, vcvtq_f32_s32(dots), super::ld4(&s));
        }
        super::st4(&mut out, acc);
    }
    out
}

/// `out[r]` = row `r` of `w` (each `x.len()` blocks) times `x`.
#[inline(always)]
pub(in crate::arch::aarch64) fn matmul_q80_q40_with<D: BlockDot>(
    out: &mut [f32],
    x: &[BlockQ80],
    w: &[BlockQ40],
) {
    let nb = x.len();
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let mut rows = w.chunks_exact(nb);
    let (out4, out_tail) = out.as_chunks_mut::<4>();
    for o in out4 {
        let (Some(a), Some(b), Some(c), Some(d)) =
            (rows.next(), rows.next(), rows.next(), rows.next())
        else {
            return;
        };
        *o = rows4::<D>(x, [a, b, c, d]);
    }
    for (o, r) in out_tail.iter_mut().zip(rows) {
        *o = row::<D>(x, r);
    }
}

/// `out` is `b × rows`, `x` is `b × nb`, `w` is `rows × nb`.
#[inline(always)]
pub(in crate::arch::aarch64) fn matmul_q80_q40_batch_with<D: BlockDot>(
    out: &mut [f32],
    x: &[BlockQ80],
    w: &[BlockQ40],
    b: usize,
) {
    let rows = out.len() / b.max(1);
    let nb = x.len() / b.max(1);
    for (o, xb) in out
        .chunks_exact_mut(rows.max(1))
        .zip(x.chunks_exact(nb.max(1)))
        .take(b)
    {
        matmul_q80_q40_with::<D>(o, xb, &w[..rows * nb]);
    }
    if nb == 0 {
        out.fill(0.0);
    }
}

pub(crate) fn matmul_q80_q40(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
    matmul_q80_q40_with::<Widening>(out, x, w);
}

pub(crate) fn matmul_q80_q40_batch(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
    matmul_q80_q40_batch_with::<Widening>(out, x, w, b);
}

neon_entries! {
    fn matmul_f32(out: &mut [f32], x: &[f32], w: &[f32]) => matmul_f32_neon;
    fn matmul_f32_batch(out: &mut [f32], x: &[f32], w: &[f32], b: usize) => matmul_f32_batch_neon;
}

/// `out[r] = dot8(x, w[r])`, four rows at a time sharing the loads of `x`.
#[target_feature(enable = "neon")]
fn matmul_f32_neon(out: &mut [f32], x: &[f32], w: &[f32]) {
    let n = x.len();
    if n == 0 {
        out.fill(0.0);
        return;
    }
    let (xc, xt) = x.as_chunks::<8>();
    let mut rows = w.chunks_exact(n);
    let (out4, out_tail) = out.as_chunks_mut::<4>();
    for o in out4 {
        let (Some(r0), Some(r1), Some(r2), Some(r3)) =
            (rows.next(), rows.next(), rows.next(), rows.next())
        else {
            return;
        };
        let r = [r0, r1, r2, r3].map(|r| r.as_chunks::<8>());
        let mut lo = [vdupq_n_f32(0.0); 4];
        let mut hi = [vdupq_n_f32(0.0); 4];
        for (j, xv) in xc.iter().enumerate() {
            let (x0, x1) = ld8(xv);
            for k in 0..4 {
                let (w0, w1) = ld8(&r[k].0[j]);
                lo[k] = vfmaq_f32(lo[k], x0, w0);
                hi[k] = vfmaq_f32(hi[k], x1, w1);
            }
        }
        for k in 0..4 {
            o[k] = if xt.is_empty() {
                hsum8(lo[k], hi[k])
            } else {
                lanes_tail_hsum(lo[k], hi[k], xt, r[k].1)
            };
        }
    }
    for (o, r) in out_tail.iter_mut().zip(rows) {
        *o = dot8(x, r);
    }
}

#[target_feature(enable = "neon")]
fn matmul_f32_batch_neon(out: &mut [f32], x: &[f32], w: &[f32], b: usize) {
    let rows = out.len() / b.max(1);
    let n = x.len() / b.max(1);
    if n == 0 {
        out.fill(0.0);
        return;
    }
    for (o, xb) in out
        .chunks_exact_mut(rows.max(1))
        .zip(x.chunks_exact(n))
        .take(b)
    {
        matmul_f32_neon(o, xb, &w[..rows * n]);
    }
}
