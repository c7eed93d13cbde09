//! AVX2 + FMA + F16C implementations of the `scalar/matmul.rs` family.
//!
//! Q80 × Q40 uses the nibbles as unsigned bytes `0..=15` in `vpmaddubsw` against the signed
//! activations and subtracts `8 · Σx` per block afterwards; every partial sum fits its integer
//! type (at most `32 · 15 · 128` per block), so the block dot is exact whatever the summation
//! order, and only the per-row FMA chain over blocks carries the contract's order.
//!
//! - Single vector: eight rows at a time, two per register (one row's 16 nibble bytes in each
//!   128-bit lane), share each activation load; their block dots are reduced together
//!   (`vphaddw`, `vpmaddwd`, `vphaddd`) so one FMA per block updates eight row accumulators.
//!   The rows' f16 scales come in by broadcast loads merged with blends, which keeps all but
//!   two of their uops off the shuffle port (a `vpinsrd` per row would need it). Against four rows a tile with `vpinsrw` scales:
//!   1.07× from cache, 1.04–1.06× streaming on two threads (measured on AVX-512 hardware with
//!   the AVX2 table forced).
//! - Batch: the activations are transposed once per call into "one lane per batch vector"
//!   form, so each unpacked weight block is broadcast four bytes at a time against eight batch
//!   vectors and the block dots come out lane-per-vector with no horizontal reduction.
//! - F32: eight rows (single) or a 2 × 4 tile of rows × vectors (batch) share each load; every
//!   output keeps its own 8-lane accumulator, the tail is blended into lanes `0..n % 8`.

use core::arch::x86_64::*;

use super::super::row_stream::RowTiles;
use super::activation::hsum8;
use super::quant::f16_value;
use crate::block::{BlockQ40, BlockQ80};

/// Blocks of `x` whose scale and correction are prepared per pass (stack: 4 KiB). Whole rows
/// in one pass up to 16384 columns (see the AVX-512 kernel's `CHUNK`).
const CHUNK: usize = 512;

/// Batch blocks transposed per pass: `BCHUNK · 32` vectors × 32 bytes (stack: 16 KiB + scales).
pub(crate) const BCHUNK: usize = 16;

/// Software prefetch distance in each row's weight stream of the single-vector kernel, bytes
/// (into L2, as the AVX-512 kernel).
const PREFETCH: usize = 576;

/// A second prefetch, into L1, this many bytes ahead of the block in use (in the row, then in
/// the slot's next row, which follows it in memory): 5 % faster streaming, 6 % slower from
/// cache.
const PREFETCH_L1: usize = 288;

/// Rows ahead whose weights the batched kernels prefetch.
const BATCH_PREFETCH_ROWS: usize = 4;

/// Largest batch the batched table entry receives (`api::matmul::BATCH_GROUP`).
pub(crate) const MAX_BATCH: usize = 32;

/// A mask whose first `n` (< 8) lanes are all ones.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lanes_below(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// `8 · Σ qs` of a Q80 block: what the unsigned-nibble dot over-counts.
#[inline]
pub(crate) fn q80_correction(b: &BlockQ80) -> i32 {
    8 * b.qs.iter().map(|&q| q as i32).sum::<i32>()
}

/// The 32 nibbles of a Q40 block as unsigned bytes `0..=15` in element order.
///
/// # Safety
/// `qs` must point to 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn nibbles(qs: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes.
    let raw = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(qs.cast())) };
    // The upper 128-bit lane is shifted by 4 so it holds the high nibbles (elements 16..32).
    let shifted = _mm256_srlv_epi64(raw, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

pub(crate) fn matmul_q80_q40(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
    // SAFETY: `avx2::TABLE` (and the AVX-512 tables built on it) are only handed out by
    // `Impl::table` after the CPU check for AVX2, FMA and F16C.
    unsafe { q80_q40_avx2(out, x, w) }
}

/// Rows of a tile of the single-vector kernel.
const TILE: usize = 8;

/// Where tile row `i` sits in the kernel's 8-lane vectors: the reduction leaves the rows in
/// the lane order `0, 2, 4, 6 | 1, 3, 5, 7`, and the scales and accumulators follow it.
const LANE_ROW: [usize; TILE] = [0, 2, 4, 6, 1, 3, 5, 7];

/// Loads the `i32` that starts at byte `off` of `p` (any alignment) into every lane.
///
/// Through `asm!` because LLVM turns blends of `_mm256_set1_epi32` loads into a `vpinsrd`
/// chain, one shuffle-port uop per lane (measured 10 % slower in the single-vector kernel).
///
/// # Safety
/// `p + off` must point to 4 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn splat_i32(p: *const u8, off: usize) -> __m256i {
    let v: __m256i;
    // SAFETY: the caller guarantees 4 readable bytes; `vpbroadcastd` (AVX2, enabled here)
    // needs no alignment, writes only `v` and leaves the flags and stack alone.
    unsafe {
        core::arch::asm!(
            "vpbroadcastd {v}, dword ptr [{p} + {o}]",
            v = lateout(ymm_reg) v,
            p = in(reg) p,
            o = in(reg) off,
            options(pure, readonly, nostack, preserves_flags),
        )
    };
    v
}

/// The f16 scales of block `j` of the tile's rows, as f32 in [`LANE_ROW`] order.
///
/// # Safety
/// Every `base[i]` must point to at least `j + 1` blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_scales(base: &[*const BlockQ40; TILE], j: usize) -> __m256 {
    // Each lane takes the 4 bytes at its row's block start (the f16 scale, then two bytes of
    // nibbles): one broadcast load each, merged by blends, which need no shuffle port.
    // SAFETY: the caller guarantees block `j` of every row, 18 bytes from its start.
    let d: [__m256i; TILE] = core::array::from_fn(|l| unsafe {
        splat_i32(base[LANE_ROW[l]].cast(), j * size_of::<BlockQ40>())
    });
    let lo = _mm256_blend_epi32::<0b0000_1100>(
        _mm256_blend_epi32::<0b0000_0010>(d[0], d[1]),
        _mm256_blend_epi32::<0b0000_1000>(d[2], d[3]),
    );
    let hi = _mm256_blend_epi32::<0b1100_0000>(
        _mm256_blend_epi32::<0b0010_0000>(d[4], d[5]),
        _mm256_blend_epi32::<0b1000_0000>(d[6], d[7]),
    );
    let all = _mm256_blend_epi32::<0b1111_0000>(lo, hi);
    // The low halves of the 32-bit lanes to the first 8 bytes of each 128-bit lane, then the
    // two lanes' first 8 bytes together.
    let take = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, //
        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let halves = _mm256_permute4x64_epi64::<0b1000>(_mm256_shuffle_epi8(all, take));
    _mm256_cvtph_ps(_mm256_castsi256_si128(halves))
}

/// Signed 16-bit partial dots of block `j` of rows `a` (low 128-bit lane) and `b` (high lane)
/// with the activation halves `xl` (elements 0..16 in both lanes) and `xh` (16..32): eight
/// sums of four products per row, each at most `4 · 15 · 128` in magnitude.
///
/// # Safety
/// `a` and `b` must point to at least `j + 1` blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pair_dots(
    a: *const BlockQ40,
    b: *const BlockQ40,
    j: usize,
    xl: __m256i,
    xh: __m256i,
) -> __m256i {
    // SAFETY: the caller guarantees block `j` of both rows; `qs` is 16 bytes.
    let v = unsafe {
        _mm256_loadu2_m128i(
            (*b.add(j)).qs.as_ptr().cast(),
            (*a.add(j)).qs.as_ptr().cast(),
        )
    };
    let m = _mm256_set1_epi8(0x0F);
    let lo = _mm256_and_si256(v, m);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m);
    _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q80_q40_avx2(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
    let nb = x.len();
    let rows = out.len();
    if nb == 0 || rows == 0 {
        out.fill(0.0);
        return;
    }
    assert!(w.len() >= rows * nb, "weights shorter than rows × blocks");
    let mut dx = [0.0f32; CHUNK];
    let mut ncorr = [0i32; CHUNK];
    let ones = _mm256_set1_epi16(1);
    let mut c0 = 0;
    while c0 < nb {
        let cn = CHUNK.min(nb - c0);
        let xs = &x[c0..c0 + cn];
        for ((d, c), xb) in dx.iter_mut().zip(&mut ncorr).zip(xs) {
            *d = f16_value(xb.d);
            *c = -q80_correction(xb);
        }
        // Each row's L2 prefetch runs `PREFETCH` bytes ahead in its row slot's stream (see
        // `row_stream`).
        let tiles = RowTiles::<TILE>::new(rows).with_streams(w, nb, c0, cn, PREFETCH);
        for (rowi, live, mut ahead) in tiles {
            let base: [*const BlockQ40; TILE] =
                core::array::from_fn(|i| w[rowi[i] * nb + c0..].as_ptr());
            let mut acc = if c0 == 0 {
                _mm256_setzero_ps()
            } else {
                let a: [f32; TILE] = core::array::from_fn(|l| out[rowi[LANE_ROW[l]]]);
                // SAFETY: `a` is 8 floats.
                unsafe { _mm256_loadu_ps(a.as_ptr()) }
            };
            // Three blocks (54 bytes) per prefetch step: every line of each row is touched.
            const STEP: usize = 3 * core::mem::size_of::<BlockQ40>();
            for step in (0..cn).step_by(3) {
                let pf = ahead.offset();
                ahead.advance(STEP);
                let near = step * core::mem::size_of::<BlockQ40>() + PREFETCH_L1;
                for &r in &base {
                    // Prefetches never fault.
                    let r = r.cast::<u8>();
                    _mm_prefetch::<_MM_HINT_T1>(r.wrapping_add(pf).cast());
                    _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(near).cast());
                }
                for j in step..cn.min(step + 3) {
                    // SAFETY: `qs` is 32 bytes.
                    let (xl, xh) = unsafe {
                        let q = xs[j].qs.as_ptr();
                        (
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(q.cast())),
                            _mm256_broadcastsi128_si256(_mm_loadu_si128(q.add(16).cast())),
                        )
                    };
                    // SAFETY: row `base[i]` has at least `cn` blocks left in `w` (checked
                    // above) and `j < cn`.
                    let (s, p) = unsafe {
                        let s = tile_scales(&base, j);
                        let p: [__m256i; 4] = core::array::from_fn(|k| {
                            pair_dots(base[2 * k], base[2 * k + 1], j, xl, xh)
                        });
                        (s, p)
                    };
                    // Per 128-bit lane: rows 0, 2 | 1, 3 and 4, 6 | 5, 7, four pair sums each
                    // (at most 15360: still 16 bits), then 32 bits, then one total per row.
                    let h02 = _mm256_madd_epi16(_mm256_hadd_epi16(p[0], p[1]), ones);
                    let h46 = _mm256_madd_epi16(_mm256_hadd_epi16(p[2], p[3]), ones);
                    let dot =
                        _mm256_add_epi32(_mm256_hadd_epi32(h02, h46), _mm256_set1_epi32(ncorr[j]));
                    let s = _mm256_mul_ps(s, _mm256_set1_ps(dx[j]));
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc);
                }
            }
            let mut a = [0.0f32; TILE];
            // SAFETY: `a` is 8 floats.
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), acc) };
            for (l, &ai) in a.iter().enumerate() {
                let i = LANE_ROW[l];
                if i < live {
                    out[rowi[i]] = ai;
                }
            }
        }
        c0 += cn;
    }
}

/// Activations of a batch, one 32-bit lane per vector: `xt[(j · G + g) · 8 + k]` holds bytes
/// `4k..4k+4` of block `j` of vectors `g·L..g·L+L` (`L` lanes, `G` groups), plus each block's
/// f32 scales and `8 · Σx` corrections in the same lane order.
pub(crate) struct BatchX<V: Copy, const N: usize, const M: usize> {
    pub xt: [V; N],
    pub dx: [V; M],
    pub corr: [V; M],
}

pub(crate) fn matmul_q80_q40_batch(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
    // SAFETY: reachable only through tables handed out after the AVX2/FMA/F16C CPU check.
    unsafe { q80_q40_batch_avx2(out, x, w, b) }
}

const G8: usize = MAX_BATCH / 8;

type BatchX8 = BatchX<__m256i, { BCHUNK * G8 * 8 }, { BCHUNK * G8 }>;

#[target_feature(enable = "avx2,fma,f16c")]
fn q80_q40_batch_avx2(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
    if b == 0 {
        return;
    }
    if b > MAX_BATCH {
        // The API hands out groups of at most MAX_BATCH; larger callers are split here.
        let rows = out.len() / b;
        let nb = x.len() / b;
        for (o, xs) in out
            .chunks_mut(MAX_BATCH * rows)
            .zip(x.chunks(MAX_BATCH * nb))
        {
            q80_q40_batch_avx2(o, xs, w, xs.len() / nb.max(1));
        }
        return;
    }
    let rows = out.len() / b;
    let nb = x.len() / b;
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    assert!(w.len() >= rows * nb, "weights shorter than rows × blocks");
    // The accumulators are gathered back from `out` with i32 indices.
    assert!(out.len() <= i32::MAX as usize);
    let groups = b.div_ceil(8);
    let zero = _mm256_setzero_si256();
    let mut bx = BatchX8 {
        xt: [zero; BCHUNK * G8 * 8],
        dx: [zero; BCHUNK * G8],
        corr: [zero; BCHUNK * G8],
    };
    let ones = _mm256_set1_epi16(1);
    let mut c0 = 0;
    while c0 < nb {
        let cn = BCHUNK.min(nb - c0);
        prepare_batch8(&mut bx, x, nb, b, c0, cn);
        for r in 0..rows {
            let wrow = &w[r * nb + c0..r * nb + c0 + cn];
            // A pass reads only `cn` blocks per row, too short for the hardware prefetchers:
            // the row asks for its segment of the next pass into L2 (spread over this pass),
            // and a later row's segment of this pass into L1.
            if let Some(ahead) = w.get((r + BATCH_PREFETCH_ROWS) * nb + c0..) {
                prefetch_blocks::<_MM_HINT_T0>(ahead, cn);
            }
            if c0 + cn < nb {
                prefetch_blocks::<_MM_HINT_T1>(&w[r * nb + c0 + cn..], BCHUNK.min(nb - c0 - cn));
            }
            let mut acc = [_mm256_setzero_ps(); G8];
            if c0 > 0 {
                // Gathered: eight scalar stores into a small array and one 32-byte load of it
                // cannot be store-forwarded and stall until the stores reach the cache.
                let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                for (g, a) in acc.iter_mut().enumerate().take(groups) {
                    let vi = _mm256_min_epi32(
                        _mm256_add_epi32(lane, _mm256_set1_epi32((g * 8) as i32)),
                        _mm256_set1_epi32(b as i32 - 1),
                    );
                    let idx = _mm256_add_epi32(
                        _mm256_mullo_epi32(vi, _mm256_set1_epi32(rows as i32)),
                        _mm256_set1_epi32(r as i32),
                    );
                    // SAFETY: every index is `vi · rows + r` with `vi < b` and `r < rows`, so
                    // inside `out` (`b · rows` floats, which fit in i32, asserted above).
                    *a = unsafe { _mm256_i32gather_ps::<4>(out.as_ptr(), idx) };
                }
            }
            // Unpacked first, so the block loop broadcasts 4-byte groups straight from memory.
            let mut unpacked = [[0i32; 8]; BCHUNK];
            for (u, wb) in unpacked.iter_mut().zip(wrow) {
                // SAFETY: `qs` is 16 bytes, `u` 32.
                unsafe { _mm256_storeu_si256(u.as_mut_ptr().cast(), nibbles(wb.qs.as_ptr())) };
            }
            for (j, wb) in wrow.iter().enumerate() {
                let wq = &unpacked[j];
                let dw = _mm256_set1_ps(f16_value(wb.d));
                for (g, a) in acc.iter_mut().enumerate().take(groups) {
                    let base = (j * G8 + g) * 8;
                    // Each i16 lane sums 2 products per step, 16 over the block: ≤ 16·15·128.
                    let mut s = _mm256_setzero_si256();
                    for (&wk, &xk) in wq.iter().zip(&bx.xt[base..base + 8]) {
                        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(_mm256_set1_epi32(wk), xk));
                    }
                    let dot = _mm256_sub_epi32(_mm256_madd_epi16(s, ones), bx.corr[j * G8 + g]);
                    let sc = _mm256_mul_ps(dw, _mm256_castsi256_ps(bx.dx[j * G8 + g]));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), sc, *a);
                }
            }
            for (g, a) in acc.iter().enumerate().take(groups) {
                let mut t = [0.0f32; 8];
                // SAFETY: `t` is 8 floats.
                unsafe { _mm256_storeu_ps(t.as_mut_ptr(), *a) };
                for (l, v) in t.iter().enumerate() {
                    let vi = g * 8 + l;
                    if vi < b {
                        out[vi * rows + r] = *v;
                    }
                }
            }
        }
        c0 += cn;
    }
}

/// Prefetches the lines of the first `blocks` blocks of `w` with hint `H` (never faults).
#[inline]
pub(crate) fn prefetch_blocks<const H: i32>(w: &[BlockQ40], blocks: usize) {
    let a = w.as_ptr().cast::<u8>();
    for line in 0..(blocks * core::mem::size_of::<BlockQ40>()).div_ceil(64) {
        // SAFETY: prefetches never fault; SSE is part of the x86-64 baseline.
        unsafe { _mm_prefetch::<H>(a.wrapping_add(64 * line).cast()) };
    }
}

/// Fills `bx` for blocks `c0..c0+cn` of the `b` vectors of `x` (`nb` blocks each), eight
/// vectors per group, by gathering each 4-byte column of a block across the vectors. Lanes past
/// the last vector repeat it; their results are never stored.
#[target_feature(enable = "avx2,fma,f16c")]
fn prepare_batch8(bx: &mut BatchX8, x: &[BlockQ80], nb: usize, b: usize, c0: usize, cn: usize) {
    let groups = b.div_ceil(8);
    assert!(b >= 1 && groups <= G8 && cn <= BCHUNK && c0 + cn <= nb && x.len() >= b * nb);
    // The gathers take i32 byte offsets.
    assert!(b * nb * core::mem::size_of::<BlockQ80>() <= i32::MAX as usize);
    let stride = (nb * core::mem::size_of::<BlockQ80>()) as i32;
    let ones8 = _mm256_set1_epi8(1);
    let ones16 = _mm256_set1_epi16(1);
    let low16 = _mm256_set1_epi32(0xFFFF);
    for g in 0..groups {
        let v = |l: usize| (g * 8 + l).min(b - 1) as i32 * stride;
        let idx = _mm256_setr_epi32(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7));
        for j in 0..cn {
            let base = x[c0 + j..].as_ptr().cast::<u8>();
            let sv = j * G8 + g;
            let mut s16 = _mm256_setzero_si256();
            for k in 0..8 {
                // SAFETY: every offset in `idx` is the start of a vector inside `x` (asserted),
                // so bytes `2 + 4k .. 6 + 4k ≤ 34` of block `c0 + j` of each vector are read.
                let col = unsafe { _mm256_i32gather_epi32::<1>(base.add(2 + 4 * k).cast(), idx) };
                bx.xt[sv * 8 + k] = col;
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(ones8, col));
            }
            bx.corr[sv] = _mm256_slli_epi32::<3>(_mm256_madd_epi16(s16, ones16));
            // SAFETY: as above, bytes 0..4 (the scale and two values) of each block.
            let d = unsafe { _mm256_i32gather_epi32::<1>(base.cast(), idx) };
            let d = _mm256_and_si256(d, low16);
            let d = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(d, d));
            bx.dx[sv] = _mm256_castps_si256(_mm256_cvtph_ps(_mm256_castsi256_si128(d)));
        }
    }
}

pub(crate) fn matmul_f32(out: &mut [f32], x: &[f32], w: &[f32]) {
    // SAFETY: reachable only through tables handed out after the AVX2/FMA/F16C CPU check.
    unsafe { f32_avx2(out, x, w) }
}

/// `R` dot products of `x` against rows `w[i]`, each in its own 8-lane accumulator.
///
/// # Safety
/// Every `w[i]` must point to `x.len()` readable floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows<const R: usize>(x: &[f32], w: [*const f32; R]) -> [f32; R] {
    let n = x.len();
    let full = n - n % 8;
    let xp = x.as_ptr();
    let mut acc = [_mm256_setzero_ps(); R];
    let mut i = 0;
    while i < full {
        // SAFETY: `i + 8 <= n`; `x` and every row hold `n` floats.
        unsafe {
            let xv = _mm256_loadu_ps(xp.add(i));
            for r in 0..R {
                acc[r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[r].add(i)), acc[r]);
            }
        }
        i += 8;
    }
    if full < n {
        let m = lanes_below(n - full);
        // SAFETY: only lanes `full..n` are loaded. Lanes past the tail keep their value via the
        // blend (an FMA with zeros would turn a −0 lane into +0).
        unsafe {
            let xv = _mm256_maskload_ps(xp.add(full), m);
            for r in 0..R {
                let t = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[r].add(full), m), acc[r]);
                acc[r] = _mm256_blendv_ps(acc[r], t, _mm256_castsi256_ps(m));
            }
        }
    }
    core::array::from_fn(|r| hsum8(acc[r]))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn f32_avx2(out: &mut [f32], x: &[f32], w: &[f32]) {
    let n = x.len();
    let rows = out.len();
    assert!(w.len() >= rows * n, "weights shorter than rows × n");
    let mut r0 = 0;
    while r0 < rows {
        let live = 8.min(rows - r0);
        let p: [*const f32; 8] = core::array::from_fn(|i| w[(r0 + i.min(live - 1)) * n..].as_ptr());
        // SAFETY: every pointer starts a row of `n` floats inside `w` (checked above).
        let d = unsafe { dot_rows::<8>(x, p) };
        out[r0..r0 + live].copy_from_slice(&d[..live]);
        r0 += 8;
    }
}

pub(crate) fn matmul_f32_batch(out: &mut [f32], x: &[f32], w: &[f32], b: usize) {
    // SAFETY: reachable only through tables handed out after the AVX2/FMA/F16C CPU check.
    unsafe { f32_batch_avx2(out, x, w, b) }
}

/// Rows × vectors of one batched F32 tile.
const FR: usize = 2;
const FV: usize = 4;

#[target_feature(enable = "avx2,fma,f16c")]
fn f32_batch_avx2(out: &mut [f32], x: &[f32], w: &[f32], b: usize) {
    if b == 0 {
        return;
    }
    let rows = out.len() / b;
    let n = x.len() / b;
    assert!(
        w.len() >= rows * n && x.len() >= b * n,
        "inputs shorter than the shape"
    );
    let full = n - n % 8;
    let tail = lanes_below(n % 8);
    let tailf = _mm256_castsi256_ps(tail);
    let mut r0 = 0;
    while r0 < rows {
        let rl = FR.min(rows - r0);
        let wp: [*const f32; FR] = core::array::from_fn(|i| w[(r0 + i.min(rl - 1)) * n..].as_ptr());
        let mut v0 = 0;
        while v0 < b {
            let vl = FV.min(b - v0);
            let xp: [*const f32; FV] =
                core::array::from_fn(|i| x[(v0 + i.min(vl - 1)) * n..].as_ptr());
            let mut acc = [[_mm256_setzero_ps(); FV]; FR];
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 8 <= n`; every pointer starts a row of `n` floats.
                unsafe {
                    let wv: [__m256; FR] = core::array::from_fn(|r| _mm256_loadu_ps(wp[r].add(i)));
                    for v in 0..FV {
                        let xv = _mm256_loadu_ps(xp[v].add(i));
                        for r in 0..FR {
                            acc[r][v] = _mm256_fmadd_ps(xv, wv[r], acc[r][v]);
                        }
                    }
                }
                i += 8;
            }
            if full < n {
                // SAFETY: the mask loads only lanes `full..n`; see `dot_rows` for the blend.
                unsafe {
                    let wv: [__m256; FR] =
                        core::array::from_fn(|r| _mm256_maskload_ps(wp[r].add(full), tail));
                    for v in 0..FV {
                        let xv = _mm256_maskload_ps(xp[v].add(full), tail);
                        for r in 0..FR {
                            let t = _mm256_fmadd_ps(xv, wv[r], acc[r][v]);
                            acc[r][v] = _mm256_blendv_ps(acc[r][v], t, tailf);
                        }
                    }
                }
            }
            for (r, accr) in acc.iter().enumerate().take(rl) {
                for (v, a) in accr.iter().enumerate().take(vl) {
                    out[(v0 + v) * rows + r0 + r] = hsum8(*a);
                }
            }
            v0 += FV;
        }
        r0 += FR;
    }
}
