//! AVX-512 softmax: the exp polynomial on 16 lanes, the sum still in the contract's 8 lanes.
//!
//! The exps are stored 16 at a time and the 8-groups read back in element order into the one
//! 8-lane accumulator, which is exactly the reference's `lanes[i % 8] +=` in element order.

use core::arch::x86_64::*;

use crate::arch::x86_64::avx2::activation::{hsum8, softmax_row};
use crate::math::{expf, EXP_POLY};

/// `exp_poly` on 16 lanes for `x = v − max ≤ 0`, bit for bit, in fewer vector uops than the
/// AVX2 steps (the 512-bit code is bound by the two vector ports):
///
/// - `n = rint(y)` comes from adding `M = 1.5·2^23`: the sum is an integer of one binade, so
///   it rounds `y` to nearest even exactly as `cvtps2dq` does (`M` is even, so ties keep
///   their parity), and `t − M` is exact.
/// - `p · 2^n` is one `vscalefps`: the exact product rounded once, as the reference's
///   multiplication by the exactly encoded `2^n` (for `n ≥ −126`).
/// - The reference clamps `x` at −88 and there `n = −127` gives `2^n` encoded as +0, so every
///   lane with `rint(y) ≤ −127` yields +0: the lanes with `y < −126.5` are zeroed by the
///   masked `vscalefps`, which also covers `x < −88` without the clamp (garbage in those
///   lanes, including from a `y` too large for `M`, never reaches the result).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn exp_poly16_nonpos(x: __m512) -> __m512 {
    const M: f32 = 12_582_912.0;
    let y = _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E));
    let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, _mm512_set1_ps(-126.5));
    let n = _mm512_sub_ps(_mm512_add_ps(y, _mm512_set1_ps(M)), _mm512_set1_ps(M));
    let f = _mm512_sub_ps(y, n);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[1]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[2]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[3]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[4]));
    _mm512_maskz_scalef_ps(keep, p, n)
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
    // The 8-lane sum takes each group back from memory one block behind the exps: the adds
    // then need no `vextractf64x4` on the busy vector ports, and the compiler cannot fold
    // the loads into extracts of the registers just stored.
    let sum_groups = |acc: &mut __m256, from: usize, to: usize| {
        let mut j = from;
        while j < to {
            // SAFETY: `j + 8 <= to <= full <= len`; these elements were written above.
            *acc = _mm256_add_ps(*acc, unsafe { _mm256_loadu_ps(p.add(j)) });
            j += 8;
        }
    };
    let mut i = 0;
    while i + 64 <= full {
        // SAFETY: `i + 64 <= full <= len`.
        unsafe {
            let e = [0, 16, 32, 48]
                .map(|k| exp_poly16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(p.add(i + k)), vmax)));
            for (k, &ek) in e.iter().enumerate() {
                _mm512_storeu_ps(p.add(i + 16 * k), ek);
            }
        }
        if i > 0 {
            sum_groups(&mut acc, i - 64, i);
        }
        i += 64;
    }
    let summed = i.saturating_sub(64);
    while i < full {
        // SAFETY: `i + 16 <= full <= len`.
        unsafe {
            let e = exp_poly16_nonpos(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), vmax));
            _mm512_storeu_ps(p.add(i), e);
        }
        i += 16;
    }
    sum_groups(&mut acc, summed, full);
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
