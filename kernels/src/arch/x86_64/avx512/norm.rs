//! AVX-512 RMS norm: `out = (x · inv) · w` sixteen lanes at a time.
//!
//! The element-wise pass is bound by loads and stores, and `out` is often 4 KiB-aliased with
//! `x` or `w` (buffers of whole pages placed one after another), which makes a load that
//! follows a store to the same page offset wait. Four vectors' loads are issued before their
//! stores, so a load is never directly behind a store to the same offset. The sum of squares
//! (`inv_rms`) is one 8-lane FMA chain by contract and stays on the AVX2 code.

use core::arch::x86_64::*;

use super::super::head_to_align;

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn rms_norm_impl(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) {
    let n = out.len().min(x.len()).min(w.len());
    let (op, xp, wp) = (out.as_mut_ptr(), x.as_ptr(), w.as_ptr());
    let vi = _mm512_set1_ps(inv);
    let one = |i: usize, m: __mmask16| {
        // SAFETY: callers enable only elements `i..n`, inside all three slices; masked-off
        // lanes are neither read nor written.
        unsafe {
            let r = _mm512_mul_ps(
                _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xp.add(i)), vi),
                _mm512_maskz_loadu_ps(m, wp.add(i)),
            );
            _mm512_mask_storeu_ps(op.add(i), m, r);
        }
    };
    let tail_mask = |left: usize| ((1u32 << left.min(16)) - 1) as __mmask16;
    // A masked head up to the first 64-byte boundary of `out`: a store that crosses a cache
    // line costs about twice as much, and buffers that come from one allocator usually share
    // their offset, so `x` and `w` are aligned from there on too.
    let mut i = head_to_align(op, 64, n);
    if i > 0 {
        one(0, tail_mask(i));
    }
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`, inside all three slices.
        unsafe {
            let r: [__m512; 4] = core::array::from_fn(|k| {
                let j = i + 16 * k;
                _mm512_mul_ps(
                    _mm512_mul_ps(_mm512_loadu_ps(xp.add(j)), vi),
                    _mm512_loadu_ps(wp.add(j)),
                )
            });
            for (k, v) in r.iter().enumerate() {
                _mm512_storeu_ps(op.add(i + 16 * k), *v);
            }
        }
        i += 64;
    }
    while i < n {
        one(i, tail_mask(n - i));
        i += 16;
    }
}

pub(crate) fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], inv: f32) {
    // SAFETY: reached only through the AVX-512 tables, which `Impl::table` hands out after
    // checking that the CPU has AVX-512 F/BW/VL/DQ, AVX2, FMA and F16C.
    unsafe { rms_norm_impl(out, x, w, inv) }
}
