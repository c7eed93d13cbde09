//! AVX2 multi-head attention. The heads that share a KV head are done together, so each key
//! and value row is read once per query group, and positions are walked in blocks across all
//! groups so the cache is read in address order. Scores: 4 heads × 2 positions per pass, each
//! in 8 FMA lanes, the eight `hsum8`s done at once by three shuffle-and-add steps that keep
//! `hsum8`'s order. Value sums: `y = fma(a_t, V_t, y)` in `t` order per element, 4 heads × 16
//! columns in registers.

use core::arch::x86_64::*;

use super::activation::softmax_row;
use super::norm::sqrt_vex;
use super::norm::tail_mask;
use crate::scalar::attention::AttHeads;

/// Positions per score pass.
const TS: usize = 2;
/// Heads per pass (heads sharing one KV head).
const HB: usize = 4;
/// Positions per value-sum block.
const TV: usize = 8;
/// Columns per value-sum pass (2 registers).
const CV: usize = 16;

/// Eight `hsum8`s at once: lane `4·(i mod 2) + i/2` of the result is `hsum8(a[i])`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn reduce8(a: [__m256; 8]) -> __m256 {
    // (l0+l4, l1+l5, l2+l6, l3+l7) per input.
    let s = |x: __m256, y: __m256| {
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(x, y),
            _mm256_permute2f128_ps::<0x31>(x, y),
        )
    };
    let (s0, s1, s2, s3) = (s(a[0], a[1]), s(a[2], a[3]), s(a[4], a[5]), s(a[6], a[7]));
    // (l0+l4)+(l2+l6) and (l1+l5)+(l3+l7).
    let v = |x: __m256, y: __m256| {
        _mm256_add_ps(
            _mm256_shuffle_ps::<0x44>(x, y),
            _mm256_shuffle_ps::<0xEE>(x, y),
        )
    };
    let (v0, v1) = (v(s0, s1), v(s2, s3));
    _mm256_add_ps(
        _mm256_shuffle_ps::<0x88>(v0, v1),
        _mm256_shuffle_ps::<0xDD>(v0, v1),
    )
}

/// Raw dots `q_h · K_p` (4 heads × 2 positions) in lane `4p + h`, 8 FMA lanes each with the
/// tail zero-padded (`fma(0, 0, l) = l`, as a lane that starts at +0 is never −0).
///
/// # Safety
/// Every `q[h]` and `k[p]` must be valid for reads of `hd` floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_4x2(q: [*const f32; HB], k: [*const f32; TS], hd: usize) -> __m256 {
    let full = hd - hd % 8;
    let mut acc = [_mm256_setzero_ps(); 2 * HB];
    let mut j = 0;
    while j < full {
        // SAFETY: `j + 8 <= hd`, inside every row (caller's contract).
        unsafe {
            let k0 = _mm256_loadu_ps(k[0].add(j));
            let k1 = _mm256_loadu_ps(k[1].add(j));
            for h in 0..HB {
                let qv = _mm256_loadu_ps(q[h].add(j));
                acc[2 * h] = _mm256_fmadd_ps(qv, k0, acc[2 * h]);
                acc[2 * h + 1] = _mm256_fmadd_ps(qv, k1, acc[2 * h + 1]);
            }
        }
        j += 8;
    }
    if full < hd {
        let m = tail_mask(hd - full);
        // SAFETY: the mask enables only lanes `full..hd`; masked-off lanes are not read.
        unsafe {
            let k0 = _mm256_maskload_ps(k[0].add(full), m);
            let k1 = _mm256_maskload_ps(k[1].add(full), m);
            for h in 0..HB {
                let qv = _mm256_maskload_ps(q[h].add(full), m);
                acc[2 * h] = _mm256_fmadd_ps(qv, k0, acc[2 * h]);
                acc[2 * h + 1] = _mm256_fmadd_ps(qv, k1, acc[2 * h + 1]);
            }
        }
    }
    reduce8(acc)
}

/// Runs of this call's local heads that read the same KV head: `(kv head, first, end)`.
pub(crate) fn groups(
    a: &AttHeads<'_>,
    n_heads: usize,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let (first, kv_mul) = (a.first_head, a.kv_mul);
    let kv_of = move |h: usize| (first + h) / kv_mul;
    let mut h = 0;
    core::iter::from_fn(move || {
        if h >= n_heads {
            return None;
        }
        let kvh = kv_of(h);
        let start = h;
        while h < n_heads && kv_of(h) == kvh {
            h += 1;
        }
        Some((kvh, start, h))
    })
}

/// Checks that every row the kernels read lies inside the slices (the API has checked this
/// already; the raw reads below rely on it whatever the caller). Returns the head count.
pub(crate) fn check_shape(y: &[f32], att: &[f32], att_stride: usize, a: &AttHeads<'_>) -> usize {
    let hd = a.head_dim;
    let n_heads = y.len() / hd;
    let n_t = a.pos + 1;
    assert!(n_heads > 0 && a.kv_mul > 0 && att_stride >= n_t);
    assert!(a.q.len() >= n_heads * hd && att.len() >= (n_heads - 1) * att_stride + n_t);
    let last_kv = (a.first_head + n_heads - 1) / a.kv_mul;
    let rows_end = a.pos * a.kv_dim0 + last_kv * hd + hd;
    assert!(last_kv * hd + hd <= a.kv_dim0);
    assert!(a.k_cache.len() >= rows_end && a.v_cache.len() >= rows_end);
    n_heads
}

#[target_feature(enable = "avx2,fma,f16c")]
fn attention_impl(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) {
    let hd = a.head_dim;
    if hd == 0 || y.is_empty() {
        return;
    }
    let n_heads = check_shape(y, att, att_stride, a);
    let n_t = a.pos + 1;
    let root = _mm256_set1_ps(sqrt_vex(hd as f32));
    let (kp, vp, qp) = (a.k_cache.as_ptr(), a.v_cache.as_ptr(), a.q.as_ptr());

    let mut t0 = 0;
    while t0 < n_t {
        let nt = (n_t - t0).min(TS);
        for (kvh, hs, he) in groups(a, n_heads) {
            // Short blocks repeat the last real position/head; their results are dropped.
            // SAFETY: rows `<= pos` of KV head `kvh` (checked by `check_shape`).
            let k: [*const f32; TS] = core::array::from_fn(|i| unsafe {
                kp.add((t0 + i.min(nt - 1)) * a.kv_dim0 + kvh * hd)
            });
            let mut h0 = hs;
            while h0 < he {
                let nh = (he - h0).min(HB);
                // SAFETY: heads `< n_heads`, inside `q` (checked by `check_shape`).
                let q: [*const f32; HB] =
                    core::array::from_fn(|i| unsafe { qp.add((h0 + i.min(nh - 1)) * hd) });
                // SAFETY: every pointer is valid for `hd` floats (see above).
                let s = _mm256_div_ps(unsafe { scores_4x2(q, k, hd) }, root);
                let mut out = [0.0f32; 8];
                // SAFETY: `out` has 8 floats.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
                for h in 0..nh {
                    for p in 0..nt {
                        att[(h0 + h) * att_stride + t0 + p] = out[4 * p + h];
                    }
                }
                h0 += nh;
            }
        }
        t0 += nt;
    }

    for h in 0..n_heads {
        softmax_row(&mut att[h * att_stride..h * att_stride + n_t]);
    }

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
                    let masks: [__m256i; 2] =
                        core::array::from_fn(|r| lane_mask(nc.saturating_sub(8 * r).min(8)));
                    let mut acc = [[_mm256_setzero_ps(); 2]; HB];
                    for (h, ah) in acc.iter_mut().enumerate().take(nh) {
                        for (r, v) in ah.iter_mut().enumerate() {
                            // SAFETY: masked to columns `< nc` of head `h0 + h < n_heads`.
                            *v = unsafe {
                                _mm256_maskload_ps(yp.add((h0 + h) * hd + c0 + 8 * r), masks[r])
                            };
                        }
                    }
                    for t in t0..t0 + nt {
                        // SAFETY: row `t <= pos` of KV head `kvh`, columns `< nc` (masked).
                        let vrow = unsafe { vp.add(t * a.kv_dim0 + kvh * hd + c0) };
                        let v: [__m256; 2] = core::array::from_fn(|r| unsafe {
                            _mm256_maskload_ps(vrow.add(8 * r), masks[r])
                        });
                        for (h, ah) in acc.iter_mut().enumerate().take(nh) {
                            // SAFETY: `(h0 + h)·stride + t` is inside `att` (`check_shape`).
                            let p = _mm256_set1_ps(unsafe { *ap.add((h0 + h) * att_stride + t) });
                            for (r, yv) in ah.iter_mut().enumerate() {
                                *yv = _mm256_fmadd_ps(p, v[r], *yv);
                            }
                        }
                    }
                    for (h, ah) in acc.iter().enumerate().take(nh) {
                        for (r, v) in ah.iter().enumerate() {
                            // SAFETY: as for the loads of `y` above.
                            unsafe {
                                _mm256_maskstore_ps(
                                    yp.add((h0 + h) * hd + c0 + 8 * r),
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

/// The first `n` (≤ 8) lanes set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lane_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Attention over this call's heads (see `scalar::attention::attention`).
pub(crate) fn attention(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>) {
    // SAFETY: reached only through the AVX2 and AVX-512 tables, which `Impl::table` hands out
    // after checking that the CPU has AVX2, FMA and F16C.
    unsafe { attention_impl(y, att, att_stride, a) }
}
