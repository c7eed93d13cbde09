//! AVX2 + FMA + F16C implementations of the `scalar/quant.rs` family.
//!
//! Q80 quantisation keeps the reference's exact steps: the absolute maximum in 8 `maxps` lanes
//! reduced in the same order, `d = amax / 127` and `id = 1 / d` in scalar f32, `cvtps2dq`
//! (round to nearest even under the default MXCSR) and the low byte of each result, and the
//! F16C conversion of `d` with round-to-nearest-even.

use core::arch::x86_64::*;

use crate::block::{BlockQ80, QK};

/// F32 → Q40 stays the scalar reference: it is the model writer's encoder, run once per
/// weight file and never on the per-token path, so it gains nothing from vectorising.
pub(crate) use crate::scalar::quant::quantize_q40;

use crate::block::BlockQ40;

/// binary16 bits of `v`, rounded to nearest even (F16C immediate 0), as `block::f32_to_f16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16_bits(v: f32) -> u16 {
    _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v))) as u16
}

/// f32 value of binary16 bits (exact), as `block::f16_to_f32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16_value(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

pub(crate) fn quantize_q80(x: &[f32], out: &mut [BlockQ80]) {
    // SAFETY: `avx2::TABLE` (and the AVX-512 tables built on it) are only handed out by
    // `Impl::table` after the CPU check for AVX2, FMA and F16C.
    unsafe { quantize_q80_avx2(x, out) }
}

/// Per-lane `max(|v0|, |v1|, |v2|, |v3|)` of one block; the reference's first step
/// `max(0, |v0|)` is `|v0|` for every `|v0|` (NaN included, `maxps` returns its second operand).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lane_amax(p: *const f32) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    // SAFETY: callers pass a pointer to 32 readable floats.
    unsafe {
        let mut m = _mm256_andnot_ps(sign, _mm256_loadu_ps(p));
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8))));
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(16))));
        _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(24))))
    }
}

/// The 32 Q80 bytes of the block at `p` for the reciprocal scale `idv`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q80_bytes(p: *const f32, idv: __m256) -> __m256i {
    let low_byte = _mm256_set1_epi32(0xFF);
    // `packus` works per 128-bit lane; this puts the four dword groups back in element order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    // The low byte of each `cvtps2dq` result, as the reference keeps it (no saturation):
    // masked to 0..=255, both unsigned packs are exact.
    let q = |k: usize| {
        // SAFETY: callers pass a pointer to 32 readable floats; `k < 4`.
        let v = unsafe { _mm256_loadu_ps(p.add(8 * k)) };
        _mm256_and_si256(_mm256_cvtps_epi32(_mm256_mul_ps(v, idv)), low_byte)
    };
    let lo = _mm256_packus_epi32(q(0), q(1));
    let hi = _mm256_packus_epi32(q(2), q(3));
    _mm256_permutevar8x32_epi32(_mm256_packus_epi16(lo, hi), order)
}

/// Reduces the lane maxima of 8 blocks given in the order `[0, 4, 1, 5, 2, 6, 3, 7]` to one
/// vector of the 8 blocks' amax in block order. Each block sees exactly the reference's
/// operand order: `max(hi, lo)` of its halves, then `max(l0, l2)`/`max(l1, l3)`, then
/// `max(l0, l1)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn amax8x8(m: &[__m256; 8]) -> __m256 {
    let halves = |a: __m256, b: __m256| {
        _mm256_max_ps(
            _mm256_permute2f128_ps::<0x31>(a, b),
            _mm256_permute2f128_ps::<0x20>(a, b),
        )
    };
    let (r0, r1, r2, r3) = (
        halves(m[0], m[1]),
        halves(m[2], m[3]),
        halves(m[4], m[5]),
        halves(m[6], m[7]),
    );
    let pairs = |a: __m256, b: __m256| {
        _mm256_max_ps(
            _mm256_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm256_shuffle_ps::<0b11_10_11_10>(a, b),
        )
    };
    let (s0, s1) = (pairs(r0, r1), pairs(r2, r3));
    _mm256_max_ps(
        _mm256_shuffle_ps::<0b10_00_10_00>(s0, s1),
        _mm256_shuffle_ps::<0b11_01_11_01>(s0, s1),
    )
}

#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q80_avx2(x: &[f32], out: &mut [BlockQ80]) {
    let n = out.len().min(x.len() / QK);
    let (out, rest) = out[..n].split_at_mut(n - n % 8);
    // Eight blocks at a time so that the scale divisions, reciprocals and f16 conversions run
    // as vectors (exact IEEE operations per lane, the same as the scalar ones) and overlap.
    for (g, bs) in out.chunks_exact_mut(8).enumerate() {
        // SAFETY: `(g + 1) * 8` blocks of 32 floats lie inside `x` (`n <= x.len() / QK`).
        let p = unsafe { x.as_ptr().add(g * 8 * QK) };
        let m = [0, 4, 1, 5, 2, 6, 3, 7].map(|k| {
            // SAFETY: `k < 8`, one of this group's blocks.
            lane_amax(unsafe { p.add(k * QK) })
        });
        let d = _mm256_div_ps(amax8x8(&m), _mm256_set1_ps(127.0));
        let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(d, _mm256_setzero_ps());
        let id = _mm256_and_ps(nonzero, _mm256_div_ps(_mm256_set1_ps(1.0), d));
        let mut ids = [0.0f32; 8];
        let mut ds = [0u16; 8];
        // SAFETY: both arrays are 16 (resp. 32) bytes; unaligned stores.
        unsafe {
            _mm256_storeu_ps(ids.as_mut_ptr(), id);
            _mm_storeu_si128(
                ds.as_mut_ptr().cast(),
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d),
            );
        }
        for (k, b) in bs.iter_mut().enumerate() {
            b.d = ds[k];
            // SAFETY: block `k < 8` of this group; `qs` is 32 bytes, unaligned store.
            unsafe {
                let bytes = q80_bytes(p.add(k * QK), _mm256_set1_ps(ids[k]));
                _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), bytes);
            }
        }
    }
    let done = out.len() * QK;
    for (b, xs) in rest.iter_mut().zip(x[done..].chunks_exact(QK)) {
        let p = xs.as_ptr();
        let v = lane_amax(p);
        let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_bits(d);
        let bytes = q80_bytes(p, _mm256_set1_ps(id));
        // SAFETY: `qs` is 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), bytes) };
    }
}

pub(crate) fn dequantize_q80(x: &[BlockQ80], out: &mut [f32]) {
    // SAFETY: reachable only through tables handed out after the AVX2/FMA/F16C CPU check.
    unsafe { dequantize_q80_avx2(x, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dequantize_q80_avx2(x: &[BlockQ80], out: &mut [f32]) {
    for (b, ys) in x.iter().zip(out.chunks_exact_mut(QK)) {
        let d = _mm256_set1_ps(f16_value(b.d));
        let q = b.qs.as_ptr();
        let y = ys.as_mut_ptr();
        for k in 0..4 {
            // SAFETY: `k * 8 + 8 <= 32` bytes of `qs` are read and as many floats of `ys`
            // written.
            unsafe {
                let i = _mm_loadl_epi64(q.add(8 * k).cast());
                let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(i));
                _mm256_storeu_ps(y.add(8 * k), _mm256_mul_ps(f, d));
            }
        }
    }
}

pub(crate) fn dequantize_q40(x: &[BlockQ40], out: &mut [f32]) {
    // SAFETY: reachable only through tables handed out after the AVX2/FMA/F16C CPU check.
    unsafe { dequantize_q40_avx2(x, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dequantize_q40_avx2(x: &[BlockQ40], out: &mut [f32]) {
    let mask = _mm_set1_epi8(0x0F);
    let eight = _mm_set1_epi8(8);
    for (b, ys) in x.iter().zip(out.chunks_exact_mut(QK)) {
        let d = _mm256_set1_ps(f16_value(b.d));
        // SAFETY: `qs` is 16 bytes.
        let raw = unsafe { _mm_loadu_si128(b.qs.as_ptr().cast()) };
        let lo = _mm_sub_epi8(_mm_and_si128(raw, mask), eight);
        let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(raw), mask), eight);
        let y = ys.as_mut_ptr();
        for (k, half) in [
            lo,
            _mm_unpackhi_epi64(lo, lo),
            hi,
            _mm_unpackhi_epi64(hi, hi),
        ]
        .into_iter()
        .enumerate()
        {
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(half));
            // SAFETY: `ys` holds 32 floats; `k * 8 + 8 <= 32`.
            unsafe { _mm256_storeu_ps(y.add(8 * k), _mm256_mul_ps(f, d)) };
        }
    }
}
