//! AVX-512 Q80 × Q40 on row-group packed weights (see `api::packed`): one 32-bit lane per row
//! of a sixteen-row group, so the block dots and the per-row FMA chain need no horizontal
//! reduction and no shuffles.
//!
//! Per block: the four 64-byte nibble columns are split into low and high nibbles (unsigned
//! bytes `0..=15`, elements `4m..4m+4` and `16+4m..16+4m+4` of every row) and multiplied
//! against the matching four activation bytes broadcast to all lanes (`vpdpbusd`, or
//! `vpmaddubsw` + `vpmaddwd` without VNNI). The sum starts from `-8 · Σx`, the unsigned-nibble
//! offset, so it is the exact signed block dot (at most `32 · 15 · 128` in magnitude); the
//! sixteen f16 row scales convert with one `vcvtph2ps`, are multiplied by the block's
//! activation scale, and one FMA per block updates the sixteen row accumulators, blocks in
//! order — the scalar reference's operations, lane by lane.

use core::arch::x86_64::*;

use super::super::packed_passes::{self, GroupPass, Pass};
use crate::api::packed::{PackedQ40, PACK_ROWS};
use crate::block::BlockQ80;

/// Software prefetch distance in a group's weight stream, in packed blocks (288 bytes each).
/// With four streams side by side a short distance pays: against 48 blocks (two sets of 6
/// interleaved rounds, medians, streaming) 4096 × 128 went 22.2–23.3 → 26.1–26.6 GB/s on 2
/// threads and 13.8 → 14.6–14.7 on 1, 1024 × 4096 on 2 threads 27.7–28.4 → 29.1–29.8, and
/// 4096 × 4096 stayed level or gained (1 thread 14.6–14.9 → 14.9–15.1, 2 threads 27.8–28.9 →
/// 29.5–29.9); 3 to 6 blocks measured alike, 2 fell back. (The AVX2 kernel's two streams
/// measured the other way: 4 and 2 blocks were slower than its 24.)
const PREFETCH_BLOCKS: usize = 4;
/// Row groups run side by side, each from its own stretch of the weights (see
/// `row_stream::RowTiles`): measured streaming 4096 × 4096, 1 thread 13.9 → 15.5 GB/s, 2
/// threads 25 → 29.5; 2 slots gained half of that, 8 less than 4.
const SLOTS: usize = 4;

/// Generates the packed kernel for one feature set; `$bdot(init, p, xq)` is `init` plus the
/// sixteen rows' unsigned-nibble block dots of packed block `p` against activation bytes `xq`.
macro_rules! packed_kernel {
    ($feat:literal, $entry:ident, $tf:ident, $groups:ident, $bdot:ident) => {
        /// The work on one tile: one 16-lane accumulator per group.
        struct $groups;

        impl GroupPass for $groups {
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn run<const S: usize>(out: &mut [f32], pass: &Pass<'_>, gs: [usize; S]) {
                let (xs, dx, corr) = (pass.xs, pass.dx, pass.corr);
                let ws = pass.streams(gs);
                let mut acc: [__m512; S] = core::array::from_fn(|k| {
                    if pass.continues() {
                        let o = &out[gs[k] * PACK_ROWS..][..PACK_ROWS];
                        // SAFETY: `o` is 16 floats.
                        unsafe { _mm512_loadu_ps(o.as_ptr()) }
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                for (j, xb) in xs.iter().enumerate() {
                    packed_passes::prefetch_ahead(&ws, j, PREFETCH_BLOCKS);
                    let c = _mm512_set1_epi32(corr[j]);
                    let sx = _mm512_set1_ps(dx[j]);
                    for (wk, a) in ws.iter().zip(&mut acc) {
                        let p = &wk[j];
                        let dot = $bdot(c, p, xb);
                        // SAFETY: `d` is 16 f16 values (32 bytes).
                        let dw =
                            _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.d.as_ptr().cast()) });
                        *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, sx), *a);
                    }
                }
                for (&g, a) in gs.iter().zip(&acc) {
                    let o = &mut out[g * PACK_ROWS..][..PACK_ROWS];
                    // SAFETY: `o` is 16 floats.
                    unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
                }
            }
        }

        pub(crate) fn $entry(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
            // SAFETY: this entry is only in the AVX-512 table for its feature set, which
            // `Impl::table` hands out after the CPU check for exactly these features.
            unsafe { $tf(out, x, w) }
        }

        #[target_feature(enable = $feat)]
        fn $tf(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
            // SAFETY: this function's features (which include AVX2, FMA and F16C) are the ones
            // `matmul` and the group pass need.
            unsafe { packed_passes::matmul::<$groups, SLOTS>(out, x, w) }
        }
    };
}

/// Column `m` of a packed block split into `[low nibbles, high nibbles]` as unsigned bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn columns(p: &PackedQ40, m: usize) -> (__m512i, __m512i) {
    // SAFETY: `qs` is 256 bytes and `m < 4`, so bytes `64m..64m+64` are inside it.
    let v = unsafe { _mm512_loadu_si512(p.qs.as_ptr().add(64 * m).cast()) };
    let mask = _mm512_set1_epi8(0x0F);
    (
        _mm512_and_si512(v, mask),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
    )
}

/// Activation bytes `4k..4k+4` of `xb`, broadcast to every 32-bit lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn xcol(xb: &BlockQ80, k: usize) -> __m512i {
    let b = &xb.qs[4 * k..4 * k + 4];
    _mm512_set1_epi32(i32::from_le_bytes([
        b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8,
    ]))
}

/// Block dots with `vpmaddubsw` + `vpmaddwd`: each i16 lane sums 2 products per step and 16
/// over the block (≤ 16·15·128), then pairs are widened to i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn bdot_bw(init: __m512i, p: &PackedQ40, xb: &BlockQ80) -> __m512i {
    let mut s = _mm512_setzero_si512();
    for m in 0..4 {
        let (lo, hi) = columns(p, m);
        s = _mm512_add_epi16(s, _mm512_maddubs_epi16(lo, xcol(xb, m)));
        s = _mm512_add_epi16(s, _mm512_maddubs_epi16(hi, xcol(xb, m + 4)));
    }
    _mm512_add_epi32(_mm512_madd_epi16(s, _mm512_set1_epi16(1)), init)
}

/// Block dots with `vpdpbusd`, low and high nibbles in two chains for a shorter latency path.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn bdot_vnni(init: __m512i, p: &PackedQ40, xb: &BlockQ80) -> __m512i {
    let (mut a, mut b) = (init, _mm512_setzero_si512());
    for m in 0..4 {
        let (lo, hi) = columns(p, m);
        a = _mm512_dpbusd_epi32(a, lo, xcol(xb, m));
        b = _mm512_dpbusd_epi32(b, hi, xcol(xb, m + 4));
    }
    _mm512_add_epi32(a, b)
}

packed_kernel!(
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c",
    matmul_q80_q40_packed,
    packed_bw,
    GroupsBw,
    bdot_bw
);

packed_kernel!(
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    matmul_q80_q40_packed_vnni,
    packed_vnni,
    GroupsVnni,
    bdot_vnni
);
