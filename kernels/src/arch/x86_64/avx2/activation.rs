//! AVX2 softmax, SiLU and the element-wise kernels, plus the vector pieces of the numerical
//! contract that attention shares: the 8-lane horizontal sum and the exp polynomial.
//!
//! Every inner function is `#[target_feature(enable = "avx2,fma,f16c")]`; the `pub(crate)`
//! wrappers are only reachable through `avx2::TABLE` (or the AVX-512 tables), which dispatch
//! hands out after checking the CPU.

use core::arch::x86_64::*;

use super::super::head_to_align;
use crate::block::{BlockQ80, QK};
use crate::math::{exp_poly, expf, EXP_POLY};

/// `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`, the order of [`crate::math::hsum8`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum8(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// One rounding `a·b + c` through the FMA unit (what [`crate::math::fma`] computes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fma1(a: f32, b: f32, c: f32) -> f32 {
    _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)))
}

/// [`crate::math::exp_poly`] on 8 lanes: `maxps`/`minps` clamp, `cvtps2dq` rounding (MXCSR is
/// round-to-nearest in Rust code), the FMA chain, and `2^n` from exponent bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn exp_poly8(x: __m256) -> __m256 {
    let x = _mm256_max_ps(x, _mm256_set1_ps(-88.0));
    let x = _mm256_min_ps(x, _mm256_set1_ps(88.0));
    let y = _mm256_mul_ps(x, _mm256_set1_ps(core::f32::consts::LOG2_E));
    let n = _mm256_cvtps_epi32(y);
    let f = _mm256_sub_ps(y, _mm256_cvtepi32_ps(n));
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[1]));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[2]));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[3]));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[4]));
    let two_n = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(two_n))
}

/// [`exp_poly8`] for `x = v − max ≤ 0`: with finite inputs (the contract's domain) the upper
/// clamp `min(x, 88)` never changes `x`, so it is left out.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp_poly8_nonpos(x: __m256) -> __m256 {
    let x = _mm256_max_ps(x, _mm256_set1_ps(-88.0));
    let y = _mm256_mul_ps(x, _mm256_set1_ps(core::f32::consts::LOG2_E));
    let n = _mm256_cvtps_epi32(y);
    let f = _mm256_sub_ps(y, _mm256_cvtepi32_ps(n));
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[1]));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[2]));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[3]));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(EXP_POLY[4]));
    let two_n = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(two_n))
}

/// Largest element of `x` (non-empty) as the reference finds it: a NaN is never greater than
/// the running maximum, so it is skipped unless it is the first element, which then stays
/// (`vmaxps` returns its second operand, the accumulator, when either is NaN). The maximum of
/// the other floats does not depend on the order, and the sign of a zero maximum cannot change
/// any `exp(x − max)`, so four independent accumulators may share the work.
#[target_feature(enable = "avx2,fma,f16c")]
fn row_max(x: &[f32]) -> f32 {
    let mut max = x[0];
    let full = x.len() - x.len() % 8;
    if full >= 8 {
        let p = x.as_ptr();
        let first = _mm256_set1_ps(max);
        let mut m = [first; 4];
        let mut i = 0;
        while i + 32 <= full {
            for (k, mk) in m.iter_mut().enumerate() {
                // SAFETY: `i + 8 * k + 8 <= full <= x.len()`.
                *mk = _mm256_max_ps(unsafe { _mm256_loadu_ps(p.add(i + 8 * k)) }, *mk);
            }
            i += 32;
        }
        while i < full {
            // SAFETY: `i + 8 <= full`.
            m[0] = _mm256_max_ps(unsafe { _mm256_loadu_ps(p.add(i)) }, m[0]);
            i += 8;
        }
        let m = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
        let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        max = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
    }
    for &v in &x[full..] {
        if v > max {
            max = v;
        }
    }
    max
}

/// Softmax of one row in place, the reference's arithmetic (see `scalar::activation`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn softmax_row(x: &mut [f32]) {
    let len = x.len();
    if len == 0 {
        return;
    }
    let full = len - len % 8;
    let max = row_max(x);
    let vmax = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    let p = x.as_mut_ptr();
    let mut i = 0;
    // Four groups' exps are independent of the sum chain; computing them first lets the
    // polynomial work overlap while the adds go into the one accumulator in element order.
    while i + 32 <= full {
        // SAFETY: `i + 32 <= full <= len`.
        unsafe {
            let e = [0, 8, 16, 24]
                .map(|k| exp_poly8_nonpos(_mm256_sub_ps(_mm256_loadu_ps(p.add(i + k)), vmax)));
            for (k, &ek) in e.iter().enumerate() {
                _mm256_storeu_ps(p.add(i + 8 * k), ek);
                acc = _mm256_add_ps(acc, ek);
            }
        }
        i += 32;
    }
    while i < full {
        // SAFETY: `i + 8 <= full <= len`.
        unsafe {
            let e = exp_poly8_nonpos(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), vmax));
            _mm256_storeu_ps(p.add(i), e);
            acc = _mm256_add_ps(acc, e);
        }
        i += 8;
    }
    let mut sum = hsum8(acc);
    for v in &mut x[full..] {
        *v = expf(*v - max);
        sum += *v;
    }
    if sum == 0.0 {
        sum = 0.000001;
    }
    scale_slice(x, 1.0 / sum);
}

/// `x / (1 + exp_poly(0 − x))` on 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn silu8(x: __m256) -> __m256 {
    let e = exp_poly8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn silu_impl(x: &mut [f32], n_poly: usize) {
    let n_poly = n_poly.min(x.len());
    let (head, tail) = x.split_at_mut(n_poly);
    let mut chunks = head.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` has exactly 8 floats.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), silu8(_mm256_loadu_ps(c.as_ptr()))) };
    }
    // The polynomial is element-wise, so the last `n_poly % 8` poly elements may use the
    // scalar form of the same arithmetic.
    for v in chunks.into_remainder() {
        *v = *v / (1.0 + exp_poly(0.0 - *v));
    }
    for v in tail {
        *v = *v / (1.0 + expf(-*v));
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn scale_slice(x: &mut [f32], s: f32) {
    let (head, x) = x.split_at_mut(head_to_align(x.as_ptr(), 32, x.len()));
    for v in head {
        *v *= s;
    }
    let vs = _mm256_set1_ps(s);
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        // SAFETY: `c` has exactly 8 floats.
        unsafe {
            _mm256_storeu_ps(
                c.as_mut_ptr(),
                _mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), vs),
            )
        };
    }
    for v in chunks.into_remainder() {
        *v *= s;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn mul_impl(x: &mut [f32], m: &[f32]) {
    let h = head_to_align(x.as_ptr(), 32, x.len().min(m.len()));
    let ((xh, x), (mh, m)) = (x.split_at_mut(h), m.split_at(h));
    for (v, &b) in xh.iter_mut().zip(mh) {
        *v *= b;
    }
    let mut xs = x.chunks_exact_mut(8);
    let mut ms = m.chunks_exact(8);
    for (c, d) in (&mut xs).zip(&mut ms) {
        // SAFETY: `c` and `d` have exactly 8 floats each.
        unsafe {
            let r = _mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), _mm256_loadu_ps(d.as_ptr()));
            _mm256_storeu_ps(c.as_mut_ptr(), r);
        }
    }
    for (v, &b) in xs.into_remainder().iter_mut().zip(ms.remainder()) {
        *v *= b;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn add_impl(out: &mut [f32], x: &[f32]) {
    let h = head_to_align(out.as_ptr(), 32, out.len().min(x.len()));
    let ((oh, out), (xh, x)) = (out.split_at_mut(h), x.split_at(h));
    for (o, &a) in oh.iter_mut().zip(xh) {
        *o += a;
    }
    let mut os = out.chunks_exact_mut(8);
    let mut xs = x.chunks_exact(8);
    for (c, d) in (&mut os).zip(&mut xs) {
        // SAFETY: `c` and `d` have exactly 8 floats each.
        unsafe {
            let r = _mm256_add_ps(_mm256_loadu_ps(c.as_ptr()), _mm256_loadu_ps(d.as_ptr()));
            _mm256_storeu_ps(c.as_mut_ptr(), r);
        }
    }
    for (o, &a) in os.into_remainder().iter_mut().zip(xs.remainder()) {
        *o += a;
    }
}

/// The f16 scale of a Q80 block as f32 (exact), through F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q80_scale(b: &BlockQ80) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(b.d as i32)))
}

/// Q80 values `j..j+8` of a block as floats (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q80_8(b: &BlockQ80, j: usize) -> __m256 {
    debug_assert!(j + 8 <= QK);
    // SAFETY: `j + 8 <= 32` (the callers step `j` by 8 below 32): 8 bytes inside `qs`.
    let q = unsafe { _mm_loadl_epi64(b.qs.as_ptr().add(j) as *const __m128i) };
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn add_q80_impl(out: &mut [f32], x: &[BlockQ80]) {
    for (os, b) in out.chunks_exact_mut(QK).zip(x) {
        let d = _mm256_set1_ps(q80_scale(b));
        for j in (0..QK).step_by(8) {
            let o = &mut os[j..j + 8];
            // SAFETY: `o` has exactly 8 floats.
            unsafe {
                let r = _mm256_fmadd_ps(d, q80_8(b, j), _mm256_loadu_ps(o.as_ptr()));
                _mm256_storeu_ps(o.as_mut_ptr(), r);
            }
        }
    }
}

// SAFETY (all wrappers below): these functions are reached only through the AVX2 and AVX-512
// tables, which `Impl::table` hands out after checking that the CPU has AVX2, FMA and F16C.

pub(crate) fn softmax(x: &mut [f32]) {
    // SAFETY: see above; AVX2, FMA and F16C are present.
    unsafe { softmax_row(x) }
}

pub(crate) fn silu(x: &mut [f32], n_poly: usize) {
    // SAFETY: see above.
    unsafe { silu_impl(x, n_poly) }
}

pub(crate) fn mul(x: &mut [f32], m: &[f32]) {
    // SAFETY: see above.
    unsafe { mul_impl(x, m) }
}

pub(crate) fn add(out: &mut [f32], x: &[f32]) {
    // SAFETY: see above.
    unsafe { add_impl(out, x) }
}

pub(crate) fn add_q80(out: &mut [f32], x: &[BlockQ80]) {
    // SAFETY: see above.
    unsafe { add_q80_impl(out, x) }
}

pub(crate) fn scale(x: &mut [f32], s: f32) {
    // SAFETY: see above.
    unsafe { scale_slice(x, s) }
}
