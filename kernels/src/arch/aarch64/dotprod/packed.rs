//! Q80×Q40 on packed weights with `sdot` by element: the NEON packed loop
//! (`neon::packed`) with each column's four activation bytes taken straight from the
//! activation register (`sdot vd.4s, vn.16b, vm.4b[m]`), through `asm!` because `vdotq_s32`
//! is not stable.

use core::arch::aarch64::*;

use crate::api::packed::PackedQ40;
use crate::arch::aarch64::neon::packed::{column, matmul_q80_q40_packed_with, PackedDot};
use crate::block::BlockQ80;

/// `sdot` by element: lane `i` accumulates the dot of its four nibble bytes with the 4-byte
/// element `M` of the activations (exact).
struct SdotLane;

/// `acc += lo · x0[M] + hi · x1[M]` per 4-byte lane.
#[inline(always)]
fn sdot2<const M: usize>(
    acc: int32x4_t,
    lo: int8x16_t,
    hi: int8x16_t,
    x0: int8x16_t,
    x1: int8x16_t,
) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` only reads and writes the named vector registers; it assembles only
    // inside a `dotprod` function, which `#[inline(always)]` guarantees, and those entry points
    // run after `has_dotprod()`.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {lo:v}.16b, {x0:v}.4b[{m}]",
            "sdot {acc:v}.4s, {hi:v}.16b, {x1:v}.4b[{m}]",
            acc = inout(vreg) acc,
            lo = in(vreg) lo,
            hi = in(vreg) hi,
            x0 = in(vreg) x0,
            x1 = in(vreg) x1,
            m = const M,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

impl PackedDot for SdotLane {
    #[inline(always)]
    fn dots(p: &PackedQ40, x0: int8x16_t, x1: int8x16_t) -> [int32x4_t; 4] {
        // A loop, not `array::from_fn`: a closure is a function of its own, which an
        // unoptimised build would not inline into the `dotprod` entry point (and `sdot` would
        // not assemble there).
        // SAFETY: NEON is a compile-time target feature of every build of this module.
        let mut out = [unsafe { vdupq_n_s32(0) }; 4];
        for (q, acc) in out.iter_mut().enumerate() {
            let (lo, hi) = column(p, 0, q);
            *acc = sdot2::<0>(*acc, lo, hi, x0, x1);
            let (lo, hi) = column(p, 1, q);
            *acc = sdot2::<1>(*acc, lo, hi, x0, x1);
            let (lo, hi) = column(p, 2, q);
            *acc = sdot2::<2>(*acc, lo, hi, x0, x1);
            let (lo, hi) = column(p, 3, q);
            *acc = sdot2::<3>(*acc, lo, hi, x0, x1);
        }
        out
    }
}

#[target_feature(enable = "neon,dotprod")]
fn matmul_q80_q40_packed_dp(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
    matmul_q80_q40_packed_with::<SdotLane>(out, x, w);
}

pub(crate) fn matmul_q80_q40_packed(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
    // SAFETY: this table entry is handed out only after `has_dotprod()` confirmed the CPU
    // (or the build) has the dot-product extension.
    unsafe { matmul_q80_q40_packed_dp(out, x, w) }
}
