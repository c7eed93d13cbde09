//! AVX-512 F/BW/VL (and VNNI) Q80 × Q40 matmuls; the F32 matmuls reuse AVX2.
//!
//! The F32 contract puts element `i` into lane `i mod 8` of one accumulator per output, so a
//! 16-lane register cannot hold a single row's sum; the F32 matmuls stream at memory speed with
//! AVX2 and are shared from there.
//!
//! Q80 × Q40, single vector: eight rows × four blocks per step. Each row's 72 bytes of weights
//! are read by three loads placed so that every block's 16 nibble bytes start on a dword, and
//! one `vpermt2d` gathers the four blocks' nibbles into one register; the nibbles are used as
//! unsigned bytes `0..=15` against the signed activations (`vpdpbusd`, or `vpmaddubsw` +
//! `vpmaddwd` without VNNI), leaving four partial sums per block. A shuffle tree sums the
//! partials of four rows into one register laid out `[block k: rows 0..4]`, `8 · Σx` is
//! subtracted (the unsigned-nibble offset), and the f16 scales of the same rows come out of
//! the loaded weights by dword permutes in the same layout, widened to f32 by bit moves (exact,
//! with the activation scale pre-multiplied by 2^112; this relies on the default MXCSR, no
//! denormals-are-zero, as every kernel here does). One FMA per block then updates the
//! eight row accumulators, blocks in order. All integer sums stay far inside their types (at
//! most `32 · 15 · 128` per block), so the block dots are exact.
//!
//! Batch: activations transposed to one 32-bit lane per batch vector, sixteen per register,
//! once per pass of `BCHUNK` blocks for a sub-tile of up to 256 rows; each unpacked weight
//! block is broadcast four bytes at a time against the vectors, eight rows sharing every
//! activation load, and the block dots come out lane-per-vector with no reduction. The row
//! accumulators stay row-major on the stack across passes and are written to the batch-major
//! output once per sub-tile.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

pub(crate) use super::super::avx2::matmul::{matmul_f32, matmul_f32_batch};

use super::super::avx2;
use super::super::row_stream::RowTiles;
use crate::block::{BlockQ40, BlockQ80};
use crate::scalar::matmul::block_dot;
use avx2::matmul::{nibbles, prefetch_blocks, BatchX, BCHUNK, MAX_BATCH};
use avx2::quant::f16_value;

/// Blocks of `x` prepared per pass (a multiple of 4; stack: 64 bytes per block, 32 KiB).
/// Whole rows in one pass up to 16384 columns: a row split over passes is read as strided
/// pieces, measured 11008 × 4096 streaming at 256 blocks (two passes) 25.5 GB/s on 2 threads,
/// 12.7 on 1, against 29.5 and 15.3 in one pass of 512.
const CHUNK: usize = 512;
/// Groups of four blocks per pass.
const GROUPS: usize = CHUNK / 4;
/// Bytes of one row's four-block group.
const GROUP_BYTES: usize = 4 * core::mem::size_of::<BlockQ40>();
/// Software prefetch distance in each row's weight stream, bytes (with the spread row slots,
/// 576 streamed 2–4 % faster than 1152 on 1 and 2 threads, and 2304 5 % slower).
const PREFETCH: usize = 576;
/// How far ahead in its row each row's next lines are also requested into L1, bytes (four
/// groups). The stream prefetch stops at L2, so without this every group's loads waited for
/// their L2 → L1 fills: measured 1 thread streaming 4096×4096 12.8 → 13.5 GB/s, 4096×128
/// 12.5 → 13.4, 2 threads 4096×128 23.1 → 24.6 (interleaved A/B runs; 144 and 432 gained less).
const PREFETCH_L1: usize = 288;
/// `2^112`: rebases an f16 whose bits were shifted into f32 position (see the scale path).
const TWO_POW_112: f32 = 5.192_297e33;
const _: () = assert!(TWO_POW_112 == (1u128 << 112) as f32);
// One 16-lane `vcvtph2ps` converts a batch pass's weight scales of one row.
const _: () = assert!(BCHUNK == 16);

/// Rows ahead whose weights the batched kernel prefetches.
const BATCH_PREFETCH_ROWS: usize = 4;

/// Accumulator registers of the batched kernel's row sub-tile (stack: 16 KiB): 256 rows of up
/// to 16 vectors or 128 rows of up to 32.
const BATCH_ACC: usize = 256;
/// Rows that share each activation load in the batched kernel (measured: 8 beats 4 and 6; the
/// 16 accumulators of two `vpdpbusd` chains per row and the 8 activation vectors fill the 32
/// registers).
const BATCH_R: usize = 8;

/// The batched kernel's row function's working memory: `BATCH_R` rows' unpacked weight nibbles
/// and f32 weight scales for one pass (`BCHUNK` blocks).
struct RowsBuf {
    unpacked: [[[i32; 8]; BCHUNK]; BATCH_R],
    dws: [[f32; BCHUNK]; BATCH_R],
}

/// Vector groups of 16 in the largest batch.
const G16: usize = MAX_BATCH / 16;

type BatchX16 = BatchX<__m512i, { BCHUNK * G16 * 8 }, { BCHUNK * G16 }>;

/// One pass's activations, per group of four blocks `k = 0..4`: `lo`/`hi` hold
/// `[block k: qs[0..16]]` / `[block k: qs[16..32]]`, `sx` and `cx` hold
/// `[block k: f32(dX)·2^112 ×4]` and `[block k: 8·Σx ×4]`.
///
/// Left uninitialised past the pass's groups: zeroing the 32 KiB was most of a call's fixed
/// cost (one thread, 4096 columns, 8 rows from L1: 1.22 µs zeroed, 0.90 µs not; the plain
/// `[MaybeUninit::uninit(); N]` form still compiled to a memset of one array, the `const`
/// form to nothing).
struct Prep {
    lo: [MaybeUninit<__m512i>; GROUPS],
    hi: [MaybeUninit<__m512i>; GROUPS],
    sx: [MaybeUninit<__m512>; GROUPS],
    cx: [MaybeUninit<__m512i>; GROUPS],
    /// Groups `0..filled` hold the current pass.
    filled: usize,
}

impl Prep {
    fn new() -> Prep {
        Prep {
            lo: [const { MaybeUninit::uninit() }; GROUPS],
            hi: [const { MaybeUninit::uninit() }; GROUPS],
            sx: [const { MaybeUninit::uninit() }; GROUPS],
            cx: [const { MaybeUninit::uninit() }; GROUPS],
            filled: 0,
        }
    }

    /// Group `g` of one of the arrays (`field`), read where it is used: an accessor returning
    /// the whole group (copied or by reference) or one checking `g` made the compiler keep the
    /// vectors in registers across the group or reload them worse, 5–15 % slower per row.
    ///
    /// # Safety
    /// `g < self.filled` (`prepare` wrote groups `0..filled` of every array for this pass).
    #[inline(always)]
    unsafe fn get<T: Copy>(&self, g: usize, field: fn(&Prep) -> &[MaybeUninit<T>; GROUPS]) -> T {
        debug_assert!(g < self.filled);
        // SAFETY: the caller's contract.
        unsafe { field(self)[g].assume_init() }
    }
}

/// `[a b c d]` per 128-bit lane: the sums of the four 32-bit partials of `a`..`d` in each lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn reduce4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m512i {
    let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd))
}

/// The upper 256 bits of a float vector (AVX-512F only, no DQ).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn high256(v: __m512) -> __m256 {
    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
}

/// Fills `p` for the `groups` full four-block groups of `x`, all in registers (this runs
/// once per call and thread, so it is most of a small matmul's fixed cost).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn prepare(p: &mut Prep, x: &[BlockQ80], groups: usize) {
    const _: () = assert!(core::mem::size_of::<BlockQ80>() == 34);
    // The four scales of a group are the 16-bit words 0, 17, 34 and 51 of its 136 bytes
    // (words 32.. from the second load), each taken four times: `[block k: dX ×4]`.
    let d_idx = _mm512_set_epi16(
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 51, 51, 51, 34, 34, 34, 34, 17, 17, 17,
        17, 0, 0, 0, 0,
    );
    let ones8 = _mm512_set1_epi8(1);
    let ones16 = _mm512_set1_epi16(1);
    let pow = _mm512_set1_ps(TWO_POW_112);
    for g in 0..groups {
        let xs = &x[4 * g..4 * g + 4];
        let base = xs.as_ptr().cast::<u8>();
        // SAFETY: the group is 4 blocks of 34 bytes; the loads read bytes 0..128 of it and
        // `qs` is 32 bytes.
        let (lo, hi, sx) = unsafe {
            let half = |k: usize, o: usize| _mm_loadu_si128(xs[k].qs.as_ptr().add(o).cast());
            let quad = |o: usize| {
                let v = _mm512_castsi128_si512(half(0, o));
                let v = _mm512_inserti32x4::<1>(v, half(1, o));
                let v = _mm512_inserti32x4::<2>(v, half(2, o));
                _mm512_inserti32x4::<3>(v, half(3, o))
            };
            let d = _mm512_permutex2var_epi16(
                _mm512_loadu_si512(base.cast()),
                d_idx,
                _mm512_loadu_si512(base.add(64).cast()),
            );
            // Exact: |dX| ≤ 65504 keeps `dX · 2^112` below f32::MAX.
            let sx = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(d)), pow);
            (quad(0), quad(16), sx)
        };
        // `8 · Σx` per block: pair sums of `lo` and `hi` (each at most 2 · 128 in size, so
        // their sum fits 16 bits), 4-byte sums, then the four lanes of each block added.
        let s16 = _mm512_add_epi16(
            _mm512_maddubs_epi16(ones8, lo),
            _mm512_maddubs_epi16(ones8, hi),
        );
        let s = _mm512_madd_epi16(s16, ones16);
        let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<0b10_11_00_01>(s));
        p.lo[g].write(lo);
        p.hi[g].write(hi);
        p.sx[g].write(sx);
        p.cx[g].write(_mm512_slli_epi32::<3>(s));
    }
    p.filled = groups;
}

/// Fills `bx` for blocks `c0..c0+cn` of the `b` vectors of `x` (`nb` blocks each), sixteen
/// vectors per group (see `avx2::matmul::BatchX`), by gathering each 4-byte column of a block
/// across the vectors. `corr` holds `-8 · Σx`, the start of each block's dot chain. Lanes past
/// the last vector repeat it; their results are never stored.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn prepare_batch16(bx: &mut BatchX16, x: &[BlockQ80], nb: usize, b: usize, c0: usize, cn: usize) {
    let groups = b.div_ceil(16);
    assert!(b >= 1 && groups <= G16 && cn <= BCHUNK && c0 + cn <= nb && x.len() >= b * nb);
    assert!(b * nb * core::mem::size_of::<BlockQ80>() <= i32::MAX as usize);
    let stride = (nb * core::mem::size_of::<BlockQ80>()) as i32;
    let ones8 = _mm512_set1_epi8(1);
    let ones16 = _mm512_set1_epi16(1);
    for g in 0..groups {
        let offs: [i32; 16] = core::array::from_fn(|l| (g * 16 + l).min(b - 1) as i32 * stride);
        // SAFETY: `offs` is 16 i32.
        let idx = unsafe { _mm512_loadu_si512(offs.as_ptr().cast()) };
        for j in 0..cn {
            let base = x[c0 + j..].as_ptr().cast::<u8>();
            let sv = j * G16 + g;
            let mut s16 = _mm512_setzero_si512();
            for k in 0..8 {
                // SAFETY: every offset in `idx` is the start of a vector inside `x` (asserted),
                // so bytes `2 + 4k .. 6 + 4k ≤ 34` of block `c0 + j` of each vector are read.
                let col = unsafe { _mm512_i32gather_epi32::<1>(idx, base.add(2 + 4 * k).cast()) };
                bx.xt[sv * 8 + k] = col;
                s16 = _mm512_add_epi16(s16, _mm512_maddubs_epi16(ones8, col));
            }
            bx.corr[sv] = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_slli_epi32::<3>(_mm512_madd_epi16(s16, ones16)),
            );
            // SAFETY: as above, bytes 0..4 (the scale and two values) of each block.
            let d = unsafe { _mm512_i32gather_epi32::<1>(idx, base.cast()) };
            bx.dx[sv] = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)));
        }
    }
}

/// `fma(block_dot, dW·dX, acc)` for one row and block, with the hardware FMA.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn step_one(acc: f32, wb: &BlockQ40, xb: &BlockQ80) -> f32 {
    let s = f16_value(wb.d) * f16_value(xb.d);
    let r = _mm_fmadd_ss(
        _mm_set_ss(block_dot(wb, xb) as f32),
        _mm_set_ss(s),
        _mm_set_ss(acc),
    );
    _mm_cvtss_f32(r)
}

/// Generates the single-vector and batched Q80 × Q40 kernels for one feature set; `$dot`
/// computes `[block k: 4 partial sums]` of unsigned nibbles against activations, and
/// `$bdot` the lane-per-vector block dot of a broadcast weight block.
macro_rules! q80_q40_kernels {
    ($feat:literal, $single:ident, $single_tf:ident, $batch:ident, $batch_tf:ident,
     $rows_tf:ident, $dot:ident, $bdot:ident) => {
        pub(crate) fn $single(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
            // SAFETY: this entry is only in the AVX-512 table for its feature set, which
            // `Impl::table` hands out after the CPU check for exactly these features.
            unsafe { $single_tf(out, x, w) }
        }

        #[target_feature(enable = $feat)]
        fn $single_tf(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
            let nb = x.len();
            let rows = out.len();
            if nb == 0 || rows == 0 {
                out.fill(0.0);
                return;
            }
            assert!(w.len() >= rows * nb, "weights shorter than rows × blocks");
            let mut p = Prep::new();
            // Nibbles: from a load at byte 2 of the group, dwords 0..4 and 9..13 are blocks 0
            // and 2; from one at byte 20, the same dwords are blocks 1 and 3.
            let nib_idx =
                _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 9, 10, 11, 12, 25, 26, 27, 28);
            // Scales: block k's f16 is in dword 0, 4, 9, 13 of the group (low, high, low, high
            // half). Rows a / b go to dwords 4k / 4k+1, rows c / d to 4k+2 / 4k+3.
            let sc_ab = _mm512_setr_epi32(0, 16, 0, 0, 4, 20, 0, 0, 9, 25, 0, 0, 13, 29, 0, 0);
            let sc_cd = _mm512_setr_epi32(0, 0, 0, 16, 0, 0, 4, 20, 0, 0, 9, 25, 0, 0, 13, 29);
            let sc_shift =
                _mm512_setr_epi32(16, 16, 16, 16, 0, 0, 0, 0, 16, 16, 16, 16, 0, 0, 0, 0);
            // [rows 0..4 | rows 4..8] of block 0 and 1, then of blocks 2 and 3.
            let blk01 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
            let blk23 =
                _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
            let mut c0 = 0;
            while c0 < nb {
                let cn = CHUNK.min(nb - c0);
                let ng = cn / 4;
                prepare(&mut p, &x[c0..c0 + cn], ng);
                let tiles = RowTiles::<8>::new(rows).with_streams(w, nb, c0, cn, PREFETCH);
                for (rowi, live, mut ahead) in tiles {
                    let rowp: [*const u8; 8] =
                        core::array::from_fn(|i| w[rowi[i] * nb + c0..].as_ptr().cast::<u8>());
                    let mut acc = if c0 == 0 {
                        _mm256_setzero_ps()
                    } else {
                        let a: [f32; 8] = core::array::from_fn(|i| out[rowi[i]]);
                        // SAFETY: `a` is 8 floats.
                        unsafe { _mm256_loadu_ps(a.as_ptr()) }
                    };
                    // Each row's prefetch runs `PREFETCH` bytes ahead in its row slot's
                    // stream (see `row_stream`), into L2 (measured 5–10 % faster streaming than
                    // into L1 here; the AVX2 kernel, slower per block, prefers L1), and a second
                    // one `PREFETCH_L1` bytes ahead (in the row, then the slot's next row, which
                    // follows it in memory) brings its lines on into L1.
                    for g in 0..ng {
                        let off = g * GROUP_BYTES;
                        let pf = ahead.offset();
                        ahead.advance(GROUP_BYTES);
                        // SAFETY: each row has `cn ≥ 4g + 4` blocks from `c0`, so bytes
                        // `off..off + 72` of every row pointer are inside `w`: the loads read
                        // `off+2..off+66`, `off+20..off+72` (masked) and `off..off+64`.
                        // Prefetches never fault.
                        let (lx, ly, lz) = unsafe {
                            for &r in &rowp {
                                let a = r.wrapping_add(pf);
                                _mm_prefetch::<_MM_HINT_T1>(a.cast());
                                _mm_prefetch::<_MM_HINT_T1>(a.wrapping_add(64).cast());
                                let near = r.wrapping_add(off + PREFETCH_L1);
                                _mm_prefetch::<_MM_HINT_T0>(near.cast());
                                _mm_prefetch::<_MM_HINT_T0>(near.wrapping_add(64).cast());
                            }
                            let lx: [__m512i; 8] = core::array::from_fn(|i| {
                                _mm512_loadu_si512(rowp[i].add(off + 2).cast())
                            });
                            // Dwords 0..13 of a load at byte 20 end at byte 72, the group's end;
                            // the masked-off rest is not read.
                            let ly: [__m512i; 8] = core::array::from_fn(|i| {
                                _mm512_maskz_loadu_epi32(0x1FFF, rowp[i].add(off + 20).cast())
                            });
                            let lz: [__m512i; 8] = core::array::from_fn(|i| {
                                _mm512_loadu_si512(rowp[i].add(off).cast())
                            });
                            (lx, ly, lz)
                        };
                        let d: [__m512i; 8] = core::array::from_fn(|i| {
                            let n = _mm512_permutex2var_epi32(lx[i], nib_idx, ly[i]);
                            // SAFETY (`p`'s accessors, here and below): `g < ng`, the groups
                            // `prepare` filled for this pass.
                            unsafe { $dot(n, p.get(g, |p| &p.lo), p.get(g, |p| &p.hi)) }
                        });
                        // SAFETY: as above.
                        let (cx, sx) = unsafe { (p.get(g, |p| &p.cx), p.get(g, |p| &p.sx)) };
                        let t0 = _mm512_sub_epi32(reduce4(d[0], d[1], d[2], d[3]), cx);
                        let t1 = _mm512_sub_epi32(reduce4(d[4], d[5], d[6], d[7]), cx);
                        let scale = |a: &[__m512i]| {
                            let raw = _mm512_mask_blend_epi32(
                                0xCCCC,
                                _mm512_permutex2var_epi32(a[0], sc_ab, a[1]),
                                _mm512_permutex2var_epi32(a[2], sc_cd, a[3]),
                            );
                            // The f16 in the high half; `(h & 0x7FFF) << 13` with h's sign is
                            // the f32 of `h · 2^-112` exactly (normal or not), and `sx` holds
                            // `dX · 2^112`, so the product is `f32(dW) · f32(dX)`, rounded once.
                            let v = _mm512_sllv_epi32(raw, sc_shift);
                            let mag = _mm512_srli_epi32::<3>(_mm512_and_si512(
                                v,
                                _mm512_set1_epi32(0x7FFF_0000),
                            ));
                            let bits = _mm512_ternarylogic_epi32::<0xF8>(
                                mag,
                                v,
                                _mm512_set1_epi32(i32::MIN),
                            );
                            _mm512_mul_ps(_mm512_castsi512_ps(bits), sx)
                        };
                        let (s0, s1) = (scale(&lz[..4]), scale(&lz[4..]));
                        let (f0, f1) = (_mm512_cvtepi32_ps(t0), _mm512_cvtepi32_ps(t1));
                        let fa = _mm512_permutex2var_ps(f0, blk01, f1);
                        let fb = _mm512_permutex2var_ps(f0, blk23, f1);
                        let sa = _mm512_permutex2var_ps(s0, blk01, s1);
                        let sb = _mm512_permutex2var_ps(s0, blk23, s1);
                        acc = _mm256_fmadd_ps(
                            _mm512_castps512_ps256(fa),
                            _mm512_castps512_ps256(sa),
                            acc,
                        );
                        acc = _mm256_fmadd_ps(high256(fa), high256(sa), acc);
                        acc = _mm256_fmadd_ps(
                            _mm512_castps512_ps256(fb),
                            _mm512_castps512_ps256(sb),
                            acc,
                        );
                        acc = _mm256_fmadd_ps(high256(fb), high256(sb), acc);
                    }
                    let mut a = [0.0f32; 8];
                    // SAFETY: `a` is 8 floats.
                    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), acc) };
                    // Blocks past the last full group (only in the final pass).
                    for j in 4 * ng..cn {
                        let xb = &x[c0 + j];
                        for (ai, &r) in a.iter_mut().zip(&rowi).take(live) {
                            *ai = step_one(*ai, &w[r * nb + c0 + j], xb);
                        }
                    }
                    for (&ai, &r) in a.iter().zip(&rowi).take(live) {
                        out[r] = ai;
                    }
                }
                c0 += cn;
            }
        }

        pub(crate) fn $batch(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
            // SAFETY: this entry is only in the AVX-512 table for its feature set, which
            // `Impl::table` hands out after the CPU check for exactly these features.
            unsafe { $batch_tf(out, x, w, b) }
        }

        #[target_feature(enable = $feat)]
        fn $batch_tf(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
            if b == 0 {
                return;
            }
            let rows = out.len() / b;
            let nb = x.len() / b;
            if b > MAX_BATCH {
                // The API hands out groups of at most MAX_BATCH; larger callers are split here.
                for (o, xs) in out
                    .chunks_mut(MAX_BATCH * rows)
                    .zip(x.chunks(MAX_BATCH * nb))
                {
                    $batch_tf(o, xs, w, xs.len() / nb.max(1));
                }
                return;
            }
            if nb == 0 {
                out.fill(0.0);
                return;
            }
            assert!(w.len() >= rows * nb, "weights shorter than rows × blocks");
            let groups = b.div_ceil(16);
            let zero = _mm512_setzero_si512();
            let mut bx = BatchX16 {
                xt: [zero; BCHUNK * G16 * 8],
                dx: [zero; BCHUNK * G16],
                corr: [zero; BCHUNK * G16],
            };
            // Row-major accumulators (`groups` registers per row) for a sub-tile of rows, so a
            // pass resumes each row with whole-register loads; the batch-major `out` is written
            // once per sub-tile.
            let mut acc = [_mm512_setzero_ps(); BATCH_ACC];
            // The unpacked weights and their scales of the rows in flight, reused by every
            // call of the row function (zeroing them per call cost as much as unpacking).
            let mut rows_buf = RowsBuf {
                unpacked: [[[0i32; 8]; BCHUNK]; BATCH_R],
                dws: [[0.0f32; BCHUNK]; BATCH_R],
            };
            let tile_rows = BATCH_ACC / groups;
            let mut t0 = 0;
            while t0 < rows {
                let tr = tile_rows.min(rows - t0);
                let wt = &w[t0 * nb..(t0 + tr) * nb];
                acc[..tr * groups].fill(_mm512_setzero_ps());
                let mut c0 = 0;
                while c0 < nb {
                    let cn = BCHUNK.min(nb - c0);
                    prepare_batch16(&mut bx, x, nb, b, c0, cn);
                    let mut r = 0;
                    while r + BATCH_R <= tr {
                        $rows_tf::<BATCH_R>(
                            &mut acc,
                            &mut rows_buf,
                            &bx,
                            wt,
                            nb,
                            r,
                            c0,
                            cn,
                            groups,
                        );
                        r += BATCH_R;
                    }
                    while r < tr {
                        $rows_tf::<1>(&mut acc, &mut rows_buf, &bx, wt, nb, r, c0, cn, groups);
                        r += 1;
                    }
                    c0 += cn;
                }
                for r in 0..tr {
                    for g in 0..groups {
                        let mut t = [0.0f32; 16];
                        // SAFETY: `t` is 16 floats.
                        unsafe { _mm512_storeu_ps(t.as_mut_ptr(), acc[r * groups + g]) };
                        for (l, v) in t.iter().enumerate().take(b - g * 16) {
                            out[(g * 16 + l) * rows + t0 + r] = *v;
                        }
                    }
                }
                t0 += tr;
            }
        }

        /// Blocks `c0..c0+cn` of rows `r..r+R` of `w` against the prepared batch, into the
        /// row-major accumulators `acc[row · groups + g]`. `R` rows share each activation load.
        #[allow(clippy::too_many_arguments)]
        #[inline]
        #[target_feature(enable = $feat)]
        fn $rows_tf<const R: usize>(
            acc: &mut [__m512; BATCH_ACC],
            buf: &mut RowsBuf,
            bx: &BatchX16,
            w: &[BlockQ40],
            nb: usize,
            r: usize,
            c0: usize,
            cn: usize,
            groups: usize,
        ) {
            let wrows: [&[BlockQ40]; R] =
                core::array::from_fn(|i| &w[(r + i) * nb + c0..(r + i) * nb + c0 + cn]);
            // A pass reads only `cn` blocks per row, too short for the hardware prefetchers:
            // each row asks for its segment of the next pass into L2, spread over this pass
            // (measured 7 % faster than asking for the whole next pass at its start), and for
            // the rows a little ahead in this pass into L1.
            for i in 0..R {
                if let Some(ahead) = w.get((r + i + BATCH_PREFETCH_ROWS) * nb + c0..) {
                    prefetch_blocks::<_MM_HINT_T0>(ahead, cn);
                }
                if c0 + cn < nb {
                    let next = &w[(r + i) * nb + c0 + cn..];
                    prefetch_blocks::<_MM_HINT_T1>(next, BCHUNK.min(nb - c0 - cn));
                }
            }
            // Unpacked first, so the block loop broadcasts 4-byte groups straight from memory
            // instead of shuffling them out of a register.
            let RowsBuf { unpacked, dws } = buf;
            for (u, wrow) in unpacked.iter_mut().zip(&wrows) {
                for (ub, wb) in u.iter_mut().zip(wrow.iter()) {
                    // SAFETY: `qs` is 16 bytes, `ub` 32.
                    unsafe { _mm256_storeu_si256(ub.as_mut_ptr().cast(), nibbles(wb.qs.as_ptr())) };
                }
            }
            // The rows' weight scales as f32, converted once for all groups.
            // Gathered rather than copied to a small array one by one: a 32-byte load of 16
            // separate 2-byte stores cannot be forwarded and waits for them to reach the cache.
            let block_offsets = _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(core::mem::size_of::<BlockQ40>() as i32),
            );
            for (dw, wrow) in dws.iter_mut().zip(&wrows) {
                let live = ((1u32 << cn) - 1) as __mmask16;
                // SAFETY: lane `j < cn` reads bytes `18j .. 18j + 4` of `wrow` (the scale and the
                // first two nibble bytes of block `j`), inside it; masked-off lanes read nothing.
                let d = unsafe {
                    _mm512_mask_i32gather_epi32::<1>(
                        _mm512_setzero_si512(),
                        live,
                        block_offsets,
                        wrow.as_ptr().cast(),
                    )
                };
                // SAFETY: `dw` is 16 floats.
                unsafe {
                    _mm512_storeu_ps(dw.as_mut_ptr(), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)))
                };
            }
            for g in 0..groups {
                let mut a: [__m512; R] = core::array::from_fn(|i| acc[(r + i) * groups + g]);
                for j in 0..cn {
                    let sv = j * G16 + g;
                    let xt = &bx.xt[sv * 8..sv * 8 + 8];
                    // Each chain starts from `-8 · Σx`, the unsigned-nibble offset.
                    let dots =
                        $bdot::<R>(bx.corr[sv], core::array::from_fn(|i| &unpacked[i][j]), xt);
                    for (i, &dot) in dots.iter().enumerate() {
                        let dw = _mm512_set1_ps(dws[i][j]);
                        let sc = _mm512_mul_ps(dw, _mm512_castsi512_ps(bx.dx[sv]));
                        a[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, a[i]);
                    }
                }
                for i in 0..R {
                    acc[(r + i) * groups + g] = a[i];
                }
            }
        }
    };
}

/// `[block k: 4 partials]` with `vpmaddubsw` (pairs, ≤ 2·15·128) + `vpmaddwd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn dot_bw(n: __m512i, xlo: __m512i, xhi: __m512i) -> __m512i {
    let m = _mm512_set1_epi8(0x0F);
    let lo = _mm512_and_si512(n, m);
    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(n), m);
    let s = _mm512_add_epi16(_mm512_maddubs_epi16(lo, xlo), _mm512_maddubs_epi16(hi, xhi));
    _mm512_madd_epi16(s, _mm512_set1_epi16(1))
}

/// `[block k: 4 partials]` with two `vpdpbusd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot_vnni(n: __m512i, xlo: __m512i, xhi: __m512i) -> __m512i {
    let m = _mm512_set1_epi8(0x0F);
    let lo = _mm512_and_si512(n, m);
    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(n), m);
    _mm512_dpbusd_epi32(
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo),
        hi,
        xhi,
    )
}

/// For each of `R` rows, `init` plus the lane-per-vector unsigned-nibble block dot of the
/// broadcast weight bytes `wq[i]` against `xt`: each i16 lane sums 2 products per step, 16 over
/// the block (≤ 16·15·128), then pairs are widened to i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn bdot_bw<const R: usize>(init: __m512i, wq: [&[i32; 8]; R], xt: &[__m512i]) -> [__m512i; R] {
    let mut s = [_mm512_setzero_si512(); R];
    for (k, &xk) in xt.iter().enumerate().take(8) {
        for i in 0..R {
            s[i] = _mm512_add_epi16(s[i], _mm512_maddubs_epi16(_mm512_set1_epi32(wq[i][k]), xk));
        }
    }
    s.map(|v| _mm512_add_epi32(_mm512_madd_epi16(v, _mm512_set1_epi16(1)), init))
}

/// For each of `R` rows, `init` plus the lane-per-vector unsigned-nibble block dot with
/// `vpdpbusd`, two chains per row.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn bdot_vnni<const R: usize>(init: __m512i, wq: [&[i32; 8]; R], xt: &[__m512i]) -> [__m512i; R] {
    // Two chains of four per row (even and odd groups), so that many independent `vpdpbusd`
    // are ready at once whatever order the compiler emits them in; integer sums are exact in
    // any order.
    let mut s = [init; R];
    let mut t = [_mm512_setzero_si512(); R];
    for k in (0..8).step_by(2) {
        for i in 0..R {
            s[i] = _mm512_dpbusd_epi32(s[i], _mm512_set1_epi32(wq[i][k]), xt[k]);
            t[i] = _mm512_dpbusd_epi32(t[i], _mm512_set1_epi32(wq[i][k + 1]), xt[k + 1]);
        }
    }
    core::array::from_fn(|i| _mm512_add_epi32(s[i], t[i]))
}

q80_q40_kernels!(
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c",
    matmul_q80_q40,
    q80_q40_bw,
    matmul_q80_q40_batch,
    q80_q40_batch_bw,
    q80_q40_rows_bw,
    dot_bw,
    bdot_bw
);

q80_q40_kernels!(
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    matmul_q80_q40_vnni,
    q80_q40_vnni,
    matmul_q80_q40_batch_vnni,
    q80_q40_batch_vnni,
    q80_q40_rows_vnni,
    dot_vnni,
    bdot_vnni
);
