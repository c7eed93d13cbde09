//! AVX-512 multi-head attention.
//!
//! The contract fixes each score's arithmetic to 8 FMA lanes and `hsum8`, so a 16-lane register
//! holds two positions' lanes side by side (`[K_t | K_t+1]` against a broadcast `q` chunk).
//! The heads that share a KV head are done together, so every key and value row is read once
//! per query group, and positions are walked in blocks across all groups so the cache rows are
//! read in address order. Sixteen scores (4 heads × 4 positions) are reduced at once by three
//! shuffle-and-add steps that are exactly `hsum8` per score. The value sum keeps
//! `y = fma(a_t, V_t, y)` in `t` order for every element, 4 heads × 64 columns in registers.

use core::arch::x86_64::*;

use super::activation::softmax;
use crate::arch::x86_64::avx2::attention::{check_shape, groups};
use crate::arch::x86_64::avx2::norm::sqrt_vex;
use crate::scalar::attention::AttHeads;

/// Positions per score block (two 2-position registers).
const TS: usize = 4;
/// Heads per block (heads sharing one KV head).
const HB: usize = 4;
/// Positions per value-sum block.
const TV: usize = 8;
/// Columns per value-sum block (4 registers).
const CV: usize = 64;

/// Cache rows ahead of the current block that are prefetched (into L2). This pays where the
/// cache comes from DRAM, as a real model's does (0.84 → 0.91–0.96 of read bandwidth at pos
/// 4095 on the development machine), and costs about 7 % when it sits in L3.
const KV_AHEAD: usize = 4;

/// Prefetches `cols` floats from element `at` of `base` in each of `rows` rows `stride`
/// floats apart. Prefetches never fault, so rows past the end of the cache are harmless.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn prefetch_rows(base: *const f32, at: usize, rows: usize, stride: usize, cols: usize) {
    for r in 0..rows {
        let row = base.wrapping_add(at + r * stride).cast::<i8>();
        for line in 0..(cols * 4).div_ceil(64) {
            _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(64 * line));
        }
    }
}

/// `[lo | hi]` from two unaligned 8-float loads (`vinsertf64x4` is AVX-512F; the f32x8 form
/// would need DQ).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn join(lo: __m256, hi: __m256) -> __m512 {
    let z = _mm512_castps_pd(_mm512_castps256_ps512(lo));
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(z, _mm256_castps_pd(hi)))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn bcast8(v: __m256) -> __m512 {
    _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(v)))
}

/// The 16 raw dot products `q_h · K_t` for 4 heads × 4 positions, as `hsum8` of 8 FMA lanes
/// each, in lane `4·tt + h`.
///
/// # Safety
/// Every `q[h]` and `k[tt]` must be valid for reads of `hd` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn scores_4x4(q: [*const f32; HB], k: [*const f32; TS], hd: usize) -> __m512 {
    let full = hd - hd % 8;
    // acc[2h + p]: low half = position 2p, high half = position 2p + 1, of head h.
    let mut acc = [_mm512_setzero_ps(); 2 * HB];
    let mut j = 0;
    while j < full {
        // SAFETY: `j + 8 <= hd`, inside every row (caller's contract).
        unsafe {
            let k01 = join(_mm256_loadu_ps(k[0].add(j)), _mm256_loadu_ps(k[1].add(j)));
            let k23 = join(_mm256_loadu_ps(k[2].add(j)), _mm256_loadu_ps(k[3].add(j)));
            for h in 0..HB {
                let qb = bcast8(_mm256_loadu_ps(q[h].add(j)));
                acc[2 * h] = _mm512_fmadd_ps(k01, qb, acc[2 * h]);
                acc[2 * h + 1] = _mm512_fmadd_ps(k23, qb, acc[2 * h + 1]);
            }
        }
        j += 8;
    }
    if full < hd {
        // Zero-padded tail: `fma(0, 0, l) = l`, as a lane starting at +0 is never −0.
        let m: __mmask8 = (1u8 << (hd - full)) - 1;
        // SAFETY: the mask enables only lanes `full..hd`; masked-off lanes are not read.
        unsafe {
            let ld = |p: *const f32| _mm256_maskz_loadu_ps(m, p.add(full));
            let k01 = join(ld(k[0]), ld(k[1]));
            let k23 = join(ld(k[2]), ld(k[3]));
            for h in 0..HB {
                let qb = bcast8(ld(q[h]));
                acc[2 * h] = _mm512_fmadd_ps(k01, qb, acc[2 * h]);
                acc[2 * h + 1] = _mm512_fmadd_ps(k23, qb, acc[2 * h + 1]);
            }
        }
    }
    reduce16(acc)
}

/// Sixteen `hsum8`s at once: 8 registers of two 8-lane groups each → one register whose lane
/// `8·(i mod 2) + 4·g + i/2` is `hsum8` of group `g` of input `i`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn reduce16(a: [__m512; 8]) -> __m512 {
    // Step 1: per group, (l0+l4, l1+l5, l2+l6, l3+l7) — 128-bit quarters added.
    let s = |x: __m512, y: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(x, y),
            _mm512_shuffle_f32x4::<0xDD>(x, y),
        )
    };
    let (s0, s1, s2, s3) = (s(a[0], a[1]), s(a[2], a[3]), s(a[4], a[5]), s(a[6], a[7]));
    // Step 2: (l0+l4)+(l2+l6) and (l1+l5)+(l3+l7).
    let v = |x: __m512, y: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(x, y),
            _mm512_shuffle_ps::<0xEE>(x, y),
        )
    };
    let (v0, v1) = (v(s0, s1), v(s2, s3));
    // Step 3: the two halves added.
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(v0, v1),
        _mm512_shuffle_ps::<0xDD>(v0, v1),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn attention_impl(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) {
    let hd = a.head_dim;
    if hd == 0 || y.is_empty() {
        return;
    }
    let n_heads = check_shape(y, att, att_stride, a);
    let n_t = a.pos + 1;
    let root = _mm512_set1_ps(sqrt_vex(hd as f32));
    let (kp, vp, qp) = (a.k_cache.as_ptr(), a.v_cache.as_ptr(), a.q.as_ptr());

    // Scores.
    let mut t0 = 0;
    while t0 < n_t {
        let nt = (n_t - t0).min(TS);
        for (kvh, hs, he) in groups(a, n_heads) {
            // Short blocks repeat the last real position/head; their results are dropped.
            // SAFETY: rows `<= pos` of KV head `kvh`, inside `k_cache` (`check_shape`).
            let k: [*const f32; TS] = core::array::from_fn(|i| unsafe {
                kp.add((t0 + i.min(nt - 1)) * a.kv_dim0 + kvh * hd)
            });
            // A cache row is one 4 KiB page for common shapes, too short for the hardware
            // streamer to ramp up, so the same columns `KV_AHEAD` rows on are fetched here.
            prefetch_rows(
                kp,
                (t0 + KV_AHEAD) * a.kv_dim0 + kvh * hd,
                TS,
                a.kv_dim0,
                hd,
            );
            let mut h0 = hs;
            while h0 < he {
                let nh = (he - h0).min(HB);
                // SAFETY: head `h0 + i.min(nh-1) < n_heads`, so its `hd` floats are in `q`.
                let q: [*const f32; HB] =
                    core::array::from_fn(|i| unsafe { qp.add((h0 + i.min(nh - 1)) * hd) });
                // SAFETY: every pointer is valid for `hd` floats (see above).
                let s = _mm512_div_ps(unsafe { scores_4x4(q, k, hd) }, root);
                let mut out = [0.0f32; 16];
                // SAFETY: `out` has 16 floats.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), s) };
                for h in 0..nh {
                    let row = &mut att[(h0 + h) * att_stride + t0..][..nt];
                    for (tt, o) in row.iter_mut().enumerate() {
                        // Lane of (head h, position tt), see `reduce16` with input 2h + tt/2.
                        *o = out[8 * (tt / 2 % 2) + 4 * (tt % 2) + h];
                    }
                }
                h0 += nh;
            }
        }
        t0 += nt;
    }

    for h in 0..n_heads {
        softmax(&mut att[h * att_stride..h * att_stride + n_t]);
    }

    // Value sums: y is zero, then fma(a_t, V_t, y) for t in order, per element.
    y.fill(0.0);
    let yp = y.as_mut_ptr();
    let ap = att.as_ptr();
    let mut t0 = 0;
    while t0 < n_t {
        let nt = (n_t - t0).min(TV);
        for (kvh, hs, he) in groups(a, n_heads) {
            let mut h0 = hs;
            while h0 < he {
                let nh = (he - h0).min(HB);
                let mut c0 = 0;
                while c0 < hd {
                    let nc = (hd - c0).min(CV);
                    if h0 == hs {
                        let at = (t0 + KV_AHEAD) * a.kv_dim0 + kvh * hd + c0;
                        prefetch_rows(vp, at, TV, a.kv_dim0, nc);
                    }
                    let masks: [__mmask16; 4] = core::array::from_fn(|r| {
                        let left = nc.saturating_sub(16 * r).min(16);
                        ((1u32 << left) - 1) as __mmask16
                    });
                    let mut acc = [[_mm512_setzero_ps(); 4]; HB];
                    for (h, ah) in acc.iter_mut().enumerate().take(nh) {
                        for (r, v) in ah.iter_mut().enumerate() {
                            // SAFETY: the mask enables columns `< nc` of head `h0 + h <
                            // n_heads`, inside `y`.
                            *v = unsafe {
                                _mm512_maskz_loadu_ps(masks[r], yp.add((h0 + h) * hd + c0 + 16 * r))
                            };
                        }
                    }
                    for t in t0..t0 + nt {
                        // SAFETY: row `t <= pos` of KV head `kvh`, columns `< nc` (masked): inside
                        // `v_cache` (`check_shape`).
                        let vrow = unsafe { vp.add(t * a.kv_dim0 + kvh * hd + c0) };
                        let v: [__m512; 4] = core::array::from_fn(|r| unsafe {
                            _mm512_maskz_loadu_ps(masks[r], vrow.add(16 * r))
                        });
                        for (h, ah) in acc.iter_mut().enumerate().take(nh) {
                            // SAFETY: `(h0+h)·stride + t` is inside `att` (`check_shape`).
                            let p = _mm512_set1_ps(unsafe { *ap.add((h0 + h) * att_stride + t) });
                            for (r, yv) in ah.iter_mut().enumerate() {
                                *yv = _mm512_fmadd_ps(p, v[r], *yv);
                            }
                        }
                    }
                    for (h, ah) in acc.iter().enumerate().take(nh) {
                        for (r, v) in ah.iter().enumerate() {
                            // SAFETY: as for the loads of `y` above.
                            unsafe {
                                _mm512_mask_storeu_ps(
                                    yp.add((h0 + h) * hd + c0 + 16 * r),
                                    masks[r],
                                    *v,
                                )
                            };
                        }
                    }
                    c0 += nc;
                }
                h0 += nh;
            }
        }
        t0 += nt;
    }
}

/// Attention over this call's heads (see `scalar::attention::attention`).
pub(crate) fn attention(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) {
    // SAFETY: reached only through the AVX-512 tables, which `Impl::table` hands out after
    // checking that the CPU has AVX-512 F/BW/VL/DQ, AVX2, FMA and F16C.
    unsafe { attention_impl(y, att, att_stride, a) }
}
