//! AVX-512 Q80 quantisation, sixteen blocks at a time.
//!
//! The steps are the AVX2 ones on wider registers: the scale division, reciprocal and f16
//! conversion run once per 16 blocks, and `vpmovdb` keeps the low byte of each `cvtps2dq`
//! result (truncation, the contract's rule), so no byte shuffles are needed. For finite input
//! the block maximum does not depend on the reduction order.

use core::arch::x86_64::*;

use crate::arch::x86_64::avx2;
use crate::block::{BlockQ80, QK};

/// Blocks per vector group.
const GROUP: usize = 16;

pub(crate) fn quantize_q80(x: &[f32], out: &mut [BlockQ80]) {
    // SAFETY: reached only through the AVX-512 tables, which `Impl::table` hands out after
    // checking that the CPU has AVX-512 F/BW/VL/DQ, AVX2, FMA and F16C.
    unsafe { quantize_q80_impl(x, out) }
}

/// Per-lane `max(|x_i|, |x_{i+16}|)` of the block at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn lane_amax(p: *const f32) -> __m512 {
    // SAFETY: callers pass a pointer to 32 readable floats.
    unsafe {
        _mm512_max_ps(
            _mm512_abs_ps(_mm512_loadu_ps(p)),
            _mm512_abs_ps(_mm512_loadu_ps(p.add(16))),
        )
    }
}

/// Reduces the lane maxima of 16 blocks to one vector of their maxima. Element `4 * l + j` of
/// the result is the maximum of `m[l + 4 * j]`, so callers pass the blocks in the order that
/// makes the result come out in block order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn amax16(m: &[__m512; 16]) -> __m512 {
    // Two blocks' 8-lane maxima: 128-bit lanes [a0∨a2, a1∨a3, b0∨b2, b1∨b3].
    let l1 = |a: __m512, b: __m512| {
        _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    };
    // Four blocks, one 128-bit lane (4 floats) each.
    let l2 = |a: __m512, b: __m512| {
        _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    };
    // Within each 128-bit lane: two floats of `a`'s block, then two of `b`'s.
    let l3 = |a: __m512, b: __m512| {
        _mm512_max_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
        )
    };
    // Within each 128-bit lane: one float per block.
    let l4 = |a: __m512, b: __m512| {
        _mm512_max_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(a, b),
            _mm512_shuffle_ps::<0b11_01_11_01>(a, b),
        )
    };
    let r = [
        l1(m[0], m[1]),
        l1(m[2], m[3]),
        l1(m[4], m[5]),
        l1(m[6], m[7]),
        l1(m[8], m[9]),
        l1(m[10], m[11]),
        l1(m[12], m[13]),
        l1(m[14], m[15]),
    ];
    let t = [
        l2(r[0], r[1]),
        l2(r[2], r[3]),
        l2(r[4], r[5]),
        l2(r[6], r[7]),
    ];
    l4(l3(t[0], t[1]), l3(t[2], t[3]))
}

/// The 32 Q80 bytes of the block at `p` for the reciprocal scale `idv`, stored at `q`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn q80_store(p: *const f32, idv: __m512, q: *mut i8) {
    // SAFETY: callers pass a pointer to 32 readable floats and one to 32 writable bytes.
    unsafe {
        let lo = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), idv)));
        let hi = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(
            _mm512_loadu_ps(p.add(16)),
            idv,
        )));
        _mm256_storeu_si256(q.cast(), _mm256_set_m128i(hi, lo));
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn quantize_q80_impl(x: &[f32], out: &mut [BlockQ80]) {
    let n = out.len().min(x.len() / QK);
    let (out, rest) = out[..n].split_at_mut(n - n % GROUP);
    // Input slot `s` holds block `4 * (s % 4) + s / 4`, which `amax16` returns in order.
    const ORDER: [usize; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
    for (g, bs) in out.chunks_exact_mut(GROUP).enumerate() {
        // SAFETY: `(g + 1) * 16` blocks of 32 floats lie inside `x` (`n <= x.len() / QK`).
        let p = unsafe { x.as_ptr().add(g * GROUP * QK) };
        // A loop rather than `array::map`: the closure would not inherit the target features
        // and stays an out-of-line call per block.
        let mut m = [_mm512_setzero_ps(); GROUP];
        for (ms, &k) in m.iter_mut().zip(&ORDER) {
            // SAFETY: `k < 16`, one of this group's blocks.
            *ms = lane_amax(unsafe { p.add(k * QK) });
        }
        let d = _mm512_div_ps(amax16(&m), _mm512_set1_ps(127.0));
        let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm512_setzero_ps());
        let id = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0), d);
        let mut ids = [0.0f32; GROUP];
        let mut ds = [0u16; GROUP];
        // SAFETY: the arrays are 64 and 32 bytes; unaligned stores.
        unsafe {
            _mm512_storeu_ps(ids.as_mut_ptr(), id);
            _mm256_storeu_si256(
                ds.as_mut_ptr().cast(),
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d),
            );
        }
        for (k, b) in bs.iter_mut().enumerate() {
            b.d = ds[k];
            // SAFETY: block `k < 16` of this group; `qs` is 32 bytes.
            q80_store(
                unsafe { p.add(k * QK) },
                _mm512_set1_ps(ids[k]),
                b.qs.as_mut_ptr(),
            );
        }
    }
    let done = out.len() * QK;
    avx2::quant::quantize_q80(&x[done..], rest);
}
