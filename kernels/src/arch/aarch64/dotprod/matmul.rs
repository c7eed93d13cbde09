//! Q80×Q40 matmuls with `sdot`: the NEON row loops with the integer block dot done by two
//! `sdot` instructions (`vdotq_s32` is not stable, hence `asm!`).

use core::arch::aarch64::*;

use crate::arch::aarch64::neon::matmul::{
    matmul_q80_q40_batch_with, matmul_q80_q40_with, BlockDot,
};
use crate::arch::aarch64::neon::quant::q40_nibbles;
use crate::block::{BlockQ40, BlockQ80};

/// `sdot`: each `i32` lane accumulates the dot of its four `i8` lanes (exact).
struct Sdot;

impl BlockDot for Sdot {
    #[inline(always)]
    fn partial(w: &BlockQ40, x: &BlockQ80) -> int32x4_t {
        // SAFETY: NEON is a compile-time target feature of every build of this module; `x.qs`
        // is 32 readable bytes, read as bytes 0..16 and 16..32. `sdot` only reads and writes
        // the named vector registers; it assembles only inside a `dotprod` function, which
        // `#[inline(always)]` guarantees, and those entry points run after `has_dotprod()`.
        unsafe {
            let (lo, hi) = q40_nibbles(&w.qs);
            let (x0, x1) = (vld1q_s8(x.qs.as_ptr()), vld1q_s8(x.qs.as_ptr().add(16)));
            let mut acc = vdupq_n_s32(0);
            core::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                "sdot {acc:v}.4s, {c:v}.16b, {d:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) lo,
                b = in(vreg) x0,
                c = in(vreg) hi,
                d = in(vreg) x1,
                options(pure, nomem, nostack, preserves_flags),
            );
            acc
        }
    }
}

#[target_feature(enable = "neon,dotprod")]
fn matmul_q80_q40_dp(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
    matmul_q80_q40_with::<Sdot>(out, x, w);
}

#[target_feature(enable = "neon,dotprod")]
fn matmul_q80_q40_batch_dp(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
    matmul_q80_q40_batch_with::<Sdot>(out, x, w, b);
}

pub(crate) fn matmul_q80_q40(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
    // SAFETY: this table entry is handed out only after `has_dotprod()` confirmed the CPU
    // (or the build) has the dot-product extension.
    unsafe { matmul_q80_q40_dp(out, x, w) }
}

pub(crate) fn matmul_q80_q40_batch(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
    // SAFETY: as for `matmul_q80_q40`.
    unsafe { matmul_q80_q40_batch_dp(out, x, w, b) }
}
