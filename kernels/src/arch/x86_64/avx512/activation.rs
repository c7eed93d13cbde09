//! AVX-512 softmax: the exp polynomial on 16 lanes, the sum still in the contract's 8 lanes.
//!
//! A 16-float register holds two consecutive 8-groups; its two halves are
//! added into the one 8-lane accumulator lower half first, which is exactly the reference's
//! `lanes[i % 8] +=` in element order.

use core::arch::x86_64::*;

use crate::arch::x86_64::avx2::activation::{hsum8, softmax_row};
use crate::math::{expf, EXP_POLY};

/// `exp_poly` on 16 lanes for `x = v − max ≤ 0`: with finite inputs (the contract's domain)
/// the upper clamp `min(x, 88)` never changes `x`, so it is left out; the other steps are
/// those of `avx2::activation::exp_poly8`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn exp_poly16_nonpos(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-88.0));
    let y = _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E));
    let n = _mm512_cvtps_epi32(y);
    let f = _mm512_sub_ps(y, _mm512_cvtepi32_ps(n));
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[1]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[2]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[3]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[4]));
    let two_n = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
    _mm512_mul_ps(p, _mm512_castsi512_ps(two_n))
}

/// Elements 0..8 of `v`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn lower(v: __m512) -> __m256 {
    _mm512_castps512_ps256(v)
}

/// Elements 8..16 of `v` (`vextractf64x4` is AVX-512F; the f32x8 form would need DQ).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn upper(v: __m512) -> __m256 {
    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn softmax_impl(x: &mut [f32]) {
    let len = x.len();
    let full = len - len % 16;
    // Short rows (and rows whose 8-group tail the 16-lane loop cannot end on) gain nothing.
    if full < 64 || len % 16 >= 8 {
        softmax_row(x);
        return;
    }
    let p = x.as_mut_ptr();
    // The maximum of finite floats does not depend on the order, and the sign of a zero
    // maximum cannot change any `exp(x − max)`.
    let mut max = x[0];
    {
        let mut m = [_mm512_set1_ps(max); 4];
        let mut i = 0;
        while i + 64 <= full {
            for (k, mk) in m.iter_mut().enumerate() {
                // SAFETY: `i + 16 * k + 16 <= full <= len`.
                *mk = _mm512_max_ps(*mk, unsafe { _mm512_loadu_ps(p.add(i + 16 * k)) });
            }
            i += 64;
        }
        while i < full {
            // SAFETY: `i + 16 <= full`.
            m[0] = _mm512_max_ps(m[0], unsafe { _mm512_loadu_ps(p.add(i)) });
            i += 16;
        }
        let m = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
        max = max.max(_mm512_reduce_max_ps(m));
    }
    for &v in &x[full..] {
        if v > max {
            max = v;
        }
    }
    let vmax = _mm512_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 64 <= full {
        // SAFETY: `i + 64 <= full <= len`.
        unsafe {
            let e = [0, 16, 32, 48]
                .map(|k| exp_poly16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(p.add(i + k)), vmax)));
            for (k, &ek) in e.iter().enumerate() {
                _mm512_storeu_ps(p.add(i + 16 * k), ek);
                acc = _mm256_add_ps(acc, lower(ek));
                acc = _mm256_add_ps(acc, upper(ek));
            }
        }
        i += 64;
    }
    while i < full {
        // SAFETY: `i + 16 <= full <= len`.
        unsafe {
            let e = exp_poly16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), vmax));
            _mm512_storeu_ps(p.add(i), e);
            acc = _mm256_add_ps(acc, lower(e));
            acc = _mm256_add_ps(acc, upper(e));
        }
        i += 16;
    }
    // `len % 16 < 8`: the 8-lane part of the row ends at `full`, the rest is the scalar tail.
    let mut sum = hsum8(acc);
    for v in &mut x[full..] {
        *v = expf(*v - max);
        sum += *v;
    }
    if sum == 0.0 {
        sum = 0.000001;
    }
    let s = 1.0 / sum;
    let vs = _mm512_set1_ps(s);
    let mut i = 0;
    while i < full {
        // SAFETY: `i + 16 <= full <= len`.
        unsafe { _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), vs)) };
        i += 16;
    }
    for v in &mut x[full..] {
        *v *= s;
    }
}

pub(crate) fn softmax(x: &mut [f32]) {
    // SAFETY: reached only through the AVX-512 tables, which `Impl::table` hands out after
    // checking that the CPU has AVX-512 F/BW/VL, AVX2, FMA and F16C.
    unsafe { softmax_impl(x) }
}
