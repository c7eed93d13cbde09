//! NEON Q80×Q40 on row-group packed weights (`scalar/packed.rs`, layout in `api::packed`).
//!
//! Sixteen rows per group, four per register: a packed block's 4-byte nibble columns are
//! 16-byte loads that hold one column of four rows, so every row's block dot builds up in its
//! own lane with no horizontal step. The nibbles are used unsigned (`0..=15`) and `8 · Σx` is
//! subtracted afterwards, which keeps the dot exact; then, per row and block in order,
//! `acc = fma(float(dot), dW·dX, acc)` with the rounded scale product, as the reference does.
//! [`PackedDot`] lets the dotprod build swap in `sdot` (by element) for the widening
//! multiplies.

use core::arch::aarch64::*;

use crate::api::packed::{PackedQ40, PACK_ROWS};
use crate::block::{f16_to_f32, BlockQ80};

/// The unsigned-nibble block dots of one packed block against one activation block.
pub(in crate::arch::aarch64) trait PackedDot {
    /// `[q]`: lane `i` is `Σ nibble · x` of row `4q + i` (nibbles `0..=15`, no offset), given
    /// the activation bytes `0..16` in `x0` and `16..32` in `x1`.
    fn dots(p: &PackedQ40, x0: int8x16_t, x1: int8x16_t) -> [int32x4_t; 4];
}

/// The 16 bytes of column `m`, rows `4q..4q+4`, split into low and high nibbles.
#[inline(always)]
pub(in crate::arch::aarch64) fn column(
    p: &PackedQ40,
    m: usize,
    q: usize,
) -> (int8x16_t, int8x16_t) {
    let bytes: &[u8; 16] = p.qs[64 * m + 16 * q..][..16].try_into().unwrap();
    // SAFETY: NEON is a compile-time target feature of every build of this module; `bytes` is
    // 16 readable bytes.
    unsafe {
        let v = vld1q_u8(bytes.as_ptr());
        (
            vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))),
            vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
        )
    }
}

/// `x`'s 4-byte element `m` in every 32-bit lane.
#[inline(always)]
fn splat4(x: int8x16_t, m: usize) -> int8x16_t {
    // SAFETY: NEON is a compile-time target feature of every build of this module.
    unsafe {
        let w = vreinterpretq_s32_s8(x);
        vreinterpretq_s8_s32(match m {
            0 => vdupq_laneq_s32::<0>(w),
            1 => vdupq_laneq_s32::<1>(w),
            2 => vdupq_laneq_s32::<2>(w),
            _ => vdupq_laneq_s32::<3>(w),
        })
    }
}

/// Widening multiplies into 16-bit sums: a lane collects 8 products of at most `15 · 128`
/// (4 columns, low and high nibbles), 15 360 at most, inside `i16`.
struct Widening;

impl PackedDot for Widening {
    #[inline(always)]
    fn dots(p: &PackedQ40, x0: int8x16_t, x1: int8x16_t) -> [int32x4_t; 4] {
        let xs: [(int8x16_t, int8x16_t); 4] =
            core::array::from_fn(|m| (splat4(x0, m), splat4(x1, m)));
        core::array::from_fn(|q| {
            // SAFETY: NEON is a compile-time target feature of every build of this module.
            unsafe {
                // Rows 4q, 4q+1 (bytes 0..8) and 4q+2, 4q+3 (bytes 8..16).
                let (mut a, mut b) = (vdupq_n_s16(0), vdupq_n_s16(0));
                for (m, &(xl, xh)) in xs.iter().enumerate() {
                    let (lo, hi) = column(p, m, q);
                    a = vmlal_s8(a, vget_low_s8(lo), vget_low_s8(xl));
                    b = vmlal_high_s8(b, lo, xl);
                    a = vmlal_s8(a, vget_low_s8(hi), vget_low_s8(xh));
                    b = vmlal_high_s8(b, hi, xh);
                }
                vpaddq_s32(vpaddlq_s16(a), vpaddlq_s16(b))
            }
        })
    }
}

/// Four f16 scales as f32 (`fcvtl`, exact; Rust has no stable f16 vector intrinsics).
#[inline(always)]
fn scales4(d: &[u16; 4]) -> float32x4_t {
    // SAFETY: NEON is a compile-time target feature of every build of this module; `d` is 4
    // readable `u16`. `fcvtl` only reads and writes the named vector registers.
    unsafe {
        let h = vld1_u16(d.as_ptr());
        let out: float32x4_t;
        core::arch::asm!(
            "fcvtl {o:v}.4s, {i:v}.4h",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
        out
    }
}

/// `out` holds whole groups of [`PACK_ROWS`] rows; `w` holds `out.len() / 16` groups of
/// `x.len()` packed blocks.
#[inline(always)]
pub(in crate::arch::aarch64) fn matmul_q80_q40_packed_with<D: PackedDot>(
    out: &mut [f32],
    x: &[BlockQ80],
    w: &[PackedQ40],
) {
    let nb = x.len();
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, group) in out.chunks_exact_mut(PACK_ROWS).zip(w.chunks_exact(nb)) {
        // SAFETY (whole block): NEON is a compile-time target feature of every build of this
        // module; `xb.qs` is 32 readable bytes, read as bytes 0..16 and 16..32.
        unsafe {
            let mut acc = [vdupq_n_f32(0.0); 4];
            for (p, xb) in group.iter().zip(x) {
                let (x0, x1) = (vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16)));
                // `8 · Σx`, what the unsigned nibbles over-count (|Σx| ≤ 4096).
                let corr = 8 * (i32::from(vaddlvq_s8(x0)) + i32::from(vaddlvq_s8(x1)));
                let corr = vdupq_n_s32(corr);
                let dx = f16_to_f32(xb.d);
                let dots = D::dots(p, x0, x1);
                for (q, a) in acc.iter_mut().enumerate() {
                    let d: &[u16; 4] = p.d[4 * q..4 * q + 4].try_into().unwrap();
                    let s = vmulq_n_f32(scales4(d), dx);
                    let dot = vcvtq_f32_s32(vsubq_s32(dots[q], corr));
                    *a = vfmaq_f32(*a, dot, s);
                }
            }
            for (oq, a) in o.chunks_exact_mut(4).zip(acc) {
                vst1q_f32(oq.as_mut_ptr(), a);
            }
        }
    }
}

pub(crate) fn matmul_q80_q40_packed(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
    matmul_q80_q40_packed_with::<Widening>(out, x, w);
}
