//! AVX-512 softmax and SiLU: the exp polynomial on 16 lanes (SiLU then divides exactly, 16
//! lanes at a time); softmax's sum stays in the contract's 8 lanes.
//!
//! The softmax exps are stored 16 at a time and the 8-groups read back in element order into the one
//! 8-lane accumulator, which is exactly the reference's `lanes[i % 8] +=` in element order.
//! That chain of `len / 8` dependent adds is what bounds a 4096-row: with 512-bit work in
//! flight a `vaddps ymm` takes about 3–4 cycles to feed the next one (about 2 without), so
//! the exps (about 5 cycles a vector of port time) are hidden behind it.

use core::arch::x86_64::*;

use crate::arch::x86_64::avx2::activation::{hsum8, softmax_row};
use crate::math::{expf, EXP_POLY};

/// `exp_poly` on 16 lanes for `x ≤ 88` (softmax's `v − max ≤ 0`, SiLU's clamped `−v`), bit
/// for bit, in fewer vector uops than the AVX2 steps (the 512-bit code is bound by the two
/// vector ports):
///
/// - `f = y − rint(y)` is one `vreduceps` (round to nearest even, as `cvtps2dq` does; the
///   difference is exact), and `n = y − f` is exact too.
/// - `p · 2^n` is one `vscalefps`: the exact product rounded once, as the reference's
///   multiplication by the exactly encoded `2^n` (for `n ≥ −126`).
/// - The reference clamps `x` at −88 and there `n = −127` gives `2^n` encoded as +0, so every
///   lane with `rint(y) ≤ −127` yields +0: the lanes with `y < −126.5` are zeroed by the
///   masked `vscalefps`, which also covers `x < −88` without the clamp (garbage in those
///   lanes, including from an infinite or NaN `y`, never reaches the result).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn exp_poly16_nonpos(x: __m512) -> __m512 {
    let y = _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E));
    let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, _mm512_set1_ps(-126.5));
    let f = _mm512_reduce_ps::<0>(y);
    let n = _mm512_sub_ps(y, f);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[1]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[2]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[3]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[4]));
    _mm512_maskz_scalef_ps(keep, p, n)
}

/// Body vectors whose exps are computed per step.
const UNROLL: usize = 2;
/// Body vectors the sum trails the exps by (measured best of 1–8 on the development machine).
const LAG: usize = 4;

/// `acc += lo(e); acc += hi(e)`: one 16-lane group of exps into the 8-lane sum, in order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn add_halves(acc: __m256, e: __m512) -> __m256 {
    let acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
    _mm256_add_ps(acc, _mm512_extractf32x8_ps::<1>(e))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn softmax_impl(x: &mut [f32]) {
    let len = x.len();
    // The contract's 8-lane part ends at `full8`; the rest is the scalar `expf` tail.
    let full8 = len - len % 8;
    if full8 < 96 {
        softmax_row(x);
        return;
    }
    let p = x.as_mut_ptr();
    // The vectors are placed on the 64-byte grid (split loads and stores cost about twice
    // as much): the body is `nbody` aligned vectors from element `h`, the head the `h`
    // elements before it, the end the `< 16` elements from `e0` to `full8`. A vector lane `l`
    // holds an element `≡ h + l (mod 8)` throughout, so the 8-lane sum is kept rotated by
    // `h` and turned back once at the end; masked-off lanes add `+0`, which changes nothing
    // (every exp is `≥ +0`).
    let h = (p.align_offset(64)).min(16) % 16;
    let nbody = (full8 - h) / 16;
    let e0 = h + 16 * nbody;
    let head_mask: __mmask16 = !(((1u32 << (16 - h)) - 1) as __mmask16);
    let end_mask: __mmask16 = ((1u32 << (full8 - e0)) - 1) as __mmask16;
    // SAFETY (pointer arithmetic below): the head vector starts `16 − h` elements before the
    // slice and enables only the lanes of elements `0..h`; the end vector enables only
    // elements `e0..full8`; masked-off lanes are neither read nor written (no fault either).
    let head = p.wrapping_add(h).wrapping_sub(16);
    let end = p.wrapping_add(e0);

    // The maximum of finite floats does not depend on the order, and the sign of a zero
    // maximum cannot change any `exp(x − max)`.
    let mut max = x[0];
    {
        let init = _mm512_set1_ps(max);
        // SAFETY: see above.
        let mut m = unsafe {
            [
                _mm512_mask_loadu_ps(init, head_mask, head),
                _mm512_mask_loadu_ps(init, end_mask, end),
                init,
                init,
                init,
                init,
                init,
                init,
            ]
        };
        // Eight chains: `vmaxps` has a latency of four cycles and a throughput of two a cycle.
        let mut j = 0;
        while j + 8 <= nbody {
            for (k, mk) in m.iter_mut().enumerate() {
                // SAFETY: `h + 16 (j + k) + 16 <= e0 <= len`, 64-byte aligned.
                *mk = _mm512_max_ps(*mk, unsafe { _mm512_load_ps(p.add(h + 16 * (j + k))) });
            }
            j += 8;
        }
        while j < nbody {
            // SAFETY: as above.
            m[j % 8] = _mm512_max_ps(m[j % 8], unsafe { _mm512_load_ps(p.add(h + 16 * j)) });
            j += 1;
        }
        let m = _mm512_max_ps(
            _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])),
            _mm512_max_ps(_mm512_max_ps(m[4], m[5]), _mm512_max_ps(m[6], m[7])),
        );
        max = max.max(_mm512_reduce_max_ps(m));
    }
    for &v in &x[full8..] {
        if v > max {
            max = v;
        }
    }
    let vmax = _mm512_set1_ps(max);
    // SAFETY: see above.
    let mut acc = unsafe {
        let e = _mm512_maskz_mov_ps(
            head_mask,
            exp_poly16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(head_mask, head), vmax)),
        );
        _mm512_mask_storeu_ps(head, head_mask, e);
        add_halves(_mm256_setzero_ps(), e)
    };
    // Body: the sum takes each group back from memory `LAG` vectors behind the exps, which
    // keeps the extracts off the busy vector ports.
    let body = |j: usize| p.wrapping_add(h + 16 * j);
    let sum_back = |acc: &mut __m256, from: usize, to: usize| {
        for j in from..to {
            // SAFETY: vector `j < nbody` of the body, written above.
            unsafe {
                *acc = _mm256_add_ps(*acc, _mm256_load_ps(body(j)));
                *acc = _mm256_add_ps(*acc, _mm256_load_ps(body(j).add(8)));
            }
        }
    };
    let mut j = 0;
    while j + UNROLL <= nbody {
        // The adds first: older than the exps they compete with for the two vector ports,
        // they go first once ready, and the chain is the bound.
        if j >= LAG {
            sum_back(&mut acc, j - LAG, j - LAG + UNROLL);
        }
        // SAFETY: body vectors `j..j + UNROLL`, aligned and inside the slice.
        unsafe {
            let e: [__m512; UNROLL] = core::array::from_fn(|k| {
                exp_poly16_nonpos(_mm512_sub_ps(_mm512_load_ps(body(j + k)), vmax))
            });
            for (k, &ek) in e.iter().enumerate() {
                _mm512_store_ps(body(j + k), ek);
            }
        }
        j += UNROLL;
    }
    let summed = j.saturating_sub(LAG);
    while j < nbody {
        // SAFETY: body vector `j`.
        unsafe {
            let e = exp_poly16_nonpos(_mm512_sub_ps(_mm512_load_ps(body(j)), vmax));
            _mm512_store_ps(body(j), e);
        }
        j += 1;
    }
    sum_back(&mut acc, summed, nbody);
    // SAFETY: see above.
    let acc = unsafe {
        let e = _mm512_maskz_mov_ps(
            end_mask,
            exp_poly16_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(end_mask, end), vmax)),
        );
        _mm512_mask_storeu_ps(end, end_mask, e);
        add_halves(acc, e)
    };
    // Lane `k` of the contract's sum is lane `(k − h) mod 8` here.
    let back = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let back = _mm256_and_si256(
        _mm256_sub_epi32(back, _mm256_set1_epi32(h as i32)),
        _mm256_set1_epi32(7),
    );
    let mut sum = hsum8(_mm256_permutevar8x32_ps(acc, back));
    for v in &mut x[full8..] {
        *v = expf(*v - max);
        sum += *v;
    }
    if sum == 0.0 {
        sum = 0.000001;
    }
    let s = 1.0 / sum;
    let vs = _mm512_set1_ps(s);
    // SAFETY: see above; the body vectors are aligned and inside the slice.
    unsafe {
        _mm512_mask_storeu_ps(
            head,
            head_mask,
            _mm512_mul_ps(_mm512_maskz_loadu_ps(head_mask, head), vs),
        );
        for j in 0..nbody {
            _mm512_store_ps(body(j), _mm512_mul_ps(_mm512_load_ps(body(j)), vs));
        }
        _mm512_mask_storeu_ps(
            end,
            end_mask,
            _mm512_mul_ps(_mm512_maskz_loadu_ps(end_mask, end), vs),
        );
    }
    for v in &mut x[full8..] {
        *v *= s;
    }
}

/// `x / (1 + exp_poly(0 − x))` for the first `n_poly` elements (16 lanes, the last group
/// masked), `expf` after, as the reference. The reference clamps `0 − x` to `[−88, 88]`
/// before the polynomial; the upper clamp is `min(88, t)` here (a NaN `t` stays NaN and is
/// zeroed like the lower side by [`exp_poly16_nonpos`], as the reference's clamp sends it to
/// −88 and so to +0).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn silu_impl(x: &mut [f32], n_poly: usize) {
    let n_poly = n_poly.min(x.len());
    let p = x.as_mut_ptr();
    let one = _mm512_set1_ps(1.0);
    let hi = _mm512_set1_ps(88.0);
    let silu16 = |v: __m512| {
        let t = _mm512_min_ps(hi, _mm512_sub_ps(_mm512_setzero_ps(), v));
        _mm512_div_ps(v, _mm512_add_ps(one, exp_poly16_nonpos(t)))
    };
    let mut i = 0;
    while i + 16 <= n_poly {
        // SAFETY: `i + 16 <= n_poly <= len`.
        unsafe { _mm512_storeu_ps(p.add(i), silu16(_mm512_loadu_ps(p.add(i)))) };
        i += 16;
    }
    if i < n_poly {
        let m = ((1u32 << (n_poly - i)) - 1) as __mmask16;
        // SAFETY: the mask enables only elements `i..n_poly`, inside the slice; masked-off
        // lanes are neither read nor written.
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), m, silu16(v));
        }
    }
    for v in &mut x[n_poly..] {
        *v = *v / (1.0 + expf(-*v));
    }
}

pub(crate) fn silu(x: &mut [f32], n_poly: usize) {
    // SAFETY: reached only through the AVX-512 tables, which `Impl::table` hands out after
    // checking that the CPU has AVX-512 F/BW/VL/DQ, AVX2, FMA and F16C.
    unsafe { silu_impl(x, n_poly) }
}

pub(crate) fn softmax(x: &mut [f32]) {
    // SAFETY: reached only through the AVX-512 tables, which `Impl::table` hands out after
    // checking that the CPU has AVX-512 F/BW/VL/DQ, AVX2, FMA and F16C.
    unsafe { softmax_impl(x) }
}
