//! AVX2 RMS normalisation: the sum of squares in 8 FMA lanes, then the scaling passes.

use core::arch::x86_64::*;

use super::super::head_to_align;
use super::activation::{hsum8, q80_8, q80_scale};
use crate::block::{BlockQ80, QK};

/// A mask whose first `n` (< 8) lanes are all ones, for `maskload` of a row's tail.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn tail_mask(n: usize) -> __m256i {
    debug_assert!(n < 8);
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
}

/// `dot8(a, b)`: element `i` into lane `i mod 8`, reduced with `hsum8`. The tail goes in as a
/// zero-padded vector: `fma(0, 0, l) = l` because a lane that starts at +0 is never −0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let full = n - n % 8;
    let mut acc = _mm256_setzero_ps();
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    while i < full {
        // SAFETY: `i + 8 <= n`, inside both slices.
        acc =
            unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), _mm256_loadu_ps(bp.add(i)), acc) };
        i += 8;
    }
    if full < n {
        let m = tail_mask(n - full);
        // SAFETY: the mask enables only lanes `full..n`, inside both slices; masked-off lanes
        // are not read.
        acc = unsafe {
            _mm256_fmadd_ps(
                _mm256_maskload_ps(ap.add(full), m),
                _mm256_maskload_ps(bp.add(full), m),
                acc,
            )
        };
    }
    hsum8(acc)
}

/// The IEEE square root, VEX-encoded: `libm`'s `sqrtss` is the legacy SSE form, which after
/// 256-bit code costs a state transition (measured: about 150 ns a call on the development
/// machine, a fifth of a 4096-long `inv_rms`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sqrt_vex(x: f32) -> f32 {
    _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x)))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn inv_rms_impl(out: &mut [f32], x: &[f32], eps: f32) {
    let group = (x.len() / out.len().max(1)).max(1);
    for (o, g) in out.iter_mut().zip(x.chunks_exact(group)) {
        let mut sum = dot8(g, g);
        sum /= g.len() as f32;
        sum += eps;
        *o = 1.0 / sqrt_vex(sum);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rms_norm_impl(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) {
    let h = head_to_align(out.as_ptr(), 32, out.len().min(x.len()).min(w.len()));
    let ((oh, out), (xh, x), (wh, w)) = (out.split_at_mut(h), x.split_at(h), w.split_at(h));
    for ((o, &v), &wv) in oh.iter_mut().zip(xh).zip(wh) {
        *o = (v * inv) * wv;
    }
    let vi = _mm256_set1_ps(inv);
    let mut os = out.chunks_exact_mut(8);
    let mut xs = x.chunks_exact(8);
    let mut ws = w.chunks_exact(8);
    for ((o, xv), wv) in (&mut os).zip(&mut xs).zip(&mut ws) {
        // SAFETY: all three chunks have exactly 8 floats.
        unsafe {
            let r = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_loadu_ps(xv.as_ptr()), vi),
                _mm256_loadu_ps(wv.as_ptr()),
            );
            _mm256_storeu_ps(o.as_mut_ptr(), r);
        }
    }
    let rest = os
        .into_remainder()
        .iter_mut()
        .zip(xs.remainder())
        .zip(ws.remainder());
    for ((o, &v), &wv) in rest {
        *o = (v * inv) * wv;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rms_norm_q80_impl(out: &mut [f32], x: &[BlockQ80], w: &[f32], inv: f32) {
    for ((os, b), ws) in out.chunks_exact_mut(QK).zip(x).zip(w.chunks_exact(QK)) {
        let s = _mm256_set1_ps(inv * q80_scale(b));
        for j in (0..QK).step_by(8) {
            let (o, wv) = (&mut os[j..j + 8], &ws[j..j + 8]);
            // SAFETY: `o` and `wv` have exactly 8 floats.
            unsafe {
                let r = _mm256_mul_ps(_mm256_loadu_ps(wv.as_ptr()), _mm256_mul_ps(s, q80_8(b, j)));
                _mm256_storeu_ps(o.as_mut_ptr(), r);
            }
        }
    }
}

// SAFETY (all wrappers below): reached only through the AVX2 and AVX-512 tables, which
// `Impl::table` hands out after checking that the CPU has AVX2, FMA and F16C.

pub(crate) fn inv_rms(out: &mut [f32], x: &[f32], eps: f32) {
    // SAFETY: see above.
    unsafe { inv_rms_impl(out, x, eps) }
}

pub(crate) fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) {
    // SAFETY: see above.
    unsafe { rms_norm_impl(out, x, w, inv) }
}

pub(crate) fn rms_norm_q80(out: &mut [f32], x: &[BlockQ80], w: &[f32], inv: f32) {
    // SAFETY: see above.
    unsafe { rms_norm_q80_impl(out, x, w, inv) }
}
