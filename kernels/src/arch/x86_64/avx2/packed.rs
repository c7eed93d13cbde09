//! AVX2 Q80 × Q40 on row-group packed weights (see `api::packed`): each sixteen-row group is two
//! halves of eight rows, one 32-bit lane per row, so neither the block dots nor the per-row FMA
//! chain need a horizontal reduction.
//!
//! Per block and half: the four 32-byte nibble columns are split into low and high nibbles
//! (unsigned bytes `0..=15`) and multiplied against the matching four activation bytes broadcast
//! to every lane with `vpmaddubsw`; each i16 lane sums 16 products (≤ 16·15·128), `vpmaddwd`
//! widens the pairs, and `-8 · Σx` (the unsigned-nibble offset) makes it the exact signed block
//! dot. The eight f16 row scales convert with one `vcvtph2ps`, are multiplied by the block's
//! activation scale, and one FMA per block updates the eight row accumulators, blocks in order:
//! the scalar reference's operations, lane by lane.

use core::arch::x86_64::*;

use super::super::packed_passes::{self, GroupPass, Pass};
use crate::api::packed::{PackedQ40, PACK_ROWS};
use crate::block::BlockQ80;

/// Software prefetch distance in a group's weight stream, in packed blocks (288 bytes each).
const PREFETCH_BLOCKS: usize = 24;
/// Row groups run side by side, each from its own stretch of the weights (see
/// `row_stream::RowTiles`): measured streaming 4096 × 4096, 1 thread 11.5 → 13.7 GB/s, 2
/// threads 24 → 27. Four streamed 3–5 % faster still but ran 10–20 % slower from cache (the
/// eight accumulators and their temporaries overflow the 16 registers).
const SLOTS: usize = 2;

pub(crate) fn matmul_q80_q40_packed(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
    // SAFETY: `avx2::TABLE` is only handed out by `Impl::table` after the CPU check for AVX2,
    // FMA and F16C.
    unsafe { packed_avx2(out, x, w) }
}

/// Activation bytes `4k..4k+4` of `xb`, broadcast to every 32-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn xcol(xb: &BlockQ80, k: usize) -> __m256i {
    let b = &xb.qs[4 * k..4 * k + 4];
    _mm256_set1_epi32(i32::from_le_bytes([
        b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8,
    ]))
}

/// `corr` plus the block dots of rows `8h..8h+8` of packed block `p` against `xb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bdot(corr: __m256i, p: &PackedQ40, h: usize, xb: &BlockQ80) -> __m256i {
    let mask = _mm256_set1_epi8(0x0F);
    let mut s = _mm256_setzero_si256();
    for m in 0..4 {
        // SAFETY: `qs` is 256 bytes, `m < 4` and `h < 2`: bytes `64m + 32h .. +32` are inside.
        let v = unsafe { _mm256_loadu_si256(p.qs.as_ptr().add(64 * m + 32 * h).cast()) };
        let lo = _mm256_and_si256(v, mask);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo, xcol(xb, m)));
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi, xcol(xb, m + 4)));
    }
    _mm256_add_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), corr)
}

/// The AVX2 work on one tile: two 8-row halves per group.
struct Groups;

impl GroupPass for Groups {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run<const S: usize>(out: &mut [f32], pass: &Pass<'_>, gs: [usize; S]) {
        let (xs, dx, corr) = (pass.xs, pass.dx, pass.corr);
        let ws = pass.streams(gs);
        let mut acc: [[__m256; 2]; S] = core::array::from_fn(|k| {
            if pass.continues() {
                let o = &out[gs[k] * PACK_ROWS..][..PACK_ROWS];
                // SAFETY: `o` is 16 floats.
                unsafe {
                    [
                        _mm256_loadu_ps(o.as_ptr()),
                        _mm256_loadu_ps(o.as_ptr().add(8)),
                    ]
                }
            } else {
                [_mm256_setzero_ps(); 2]
            }
        });
        for (j, xb) in xs.iter().enumerate() {
            packed_passes::prefetch_ahead(&ws, j, PREFETCH_BLOCKS);
            let c = _mm256_set1_epi32(corr[j]);
            let sx = _mm256_set1_ps(dx[j]);
            for (wk, ak) in ws.iter().zip(&mut acc) {
                let p = &wk[j];
                for (h, a) in ak.iter_mut().enumerate() {
                    let dot = bdot(c, p, h, xb);
                    // SAFETY: `d` is 16 f16 values; `h < 2` selects 8 of them (16 bytes).
                    let dw =
                        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.d.as_ptr().add(8 * h).cast()) });
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, sx), *a);
                }
            }
        }
        for (&g, ak) in gs.iter().zip(&acc) {
            let o = &mut out[g * PACK_ROWS..][..PACK_ROWS];
            // SAFETY: `o` is 16 floats.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), ak[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), ak[1]);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn packed_avx2(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
    // SAFETY: this function's features are the ones `matmul` and `Groups` need.
    unsafe { packed_passes::matmul::<Groups, SLOTS>(out, x, w) }
}
