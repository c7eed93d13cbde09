//! AVX-512 Q80 quantisation, sixteen blocks at a time.
//!
//! The steps are the AVX2 ones on wider registers: the scale division, reciprocal and f16
//! conversion run once per 16 blocks (and one group ahead, so their latency overlaps the
//! previous group's bytes), and the low byte of each `cvtps2dq` result is kept (truncation,
//! the contract's rule). For finite input the block maximum does not depend on the reduction
//! order.

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

/// Per-lane `max(|x_i|, |x_{i+16}|)` of the block at `p` (one `vrangeps`: the larger
/// magnitude with the sign cleared).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn lane_amax(p: *const f32) -> __m512 {
    // SAFETY: callers pass a pointer to 32 readable floats.
    unsafe { _mm512_range_ps::<0b1011>(_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))) }
}

/// Reduces the lane maxima of 16 blocks to one vector of their maxima. Element `4 * l + j` of
/// the result is the maximum of `m[l + 4 * j]`, so callers pass the blocks in the order that
/// makes the result come out in block order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
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

/// The 32 Q80 bytes of the block at `p` for the reciprocal scale `idv`, stored at `q`: the
/// low byte of each rounded product (`vpshufb` gathers them per 128-bit lane, one `vpermt2d`
/// puts the eight dwords in order), three shuffles where `vpmovdb` takes five.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn q80_store(p: *const f32, idv: __m512, q: *mut i8) {
    let low_bytes = _mm512_set4_epi32(-1, -1, -1, 0x0C08_0400);
    let order = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
    // SAFETY: callers pass a pointer to 32 readable floats and one to 32 writable bytes.
    unsafe {
        let lo = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), idv));
        let hi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p.add(16)), idv));
        let b = _mm512_permutex2var_epi32(
            _mm512_shuffle_epi8(lo, low_bytes),
            order,
            _mm512_shuffle_epi8(hi, low_bytes),
        );
        _mm256_storeu_si256(q.cast(), _mm512_castsi512_si256(b));
    }
}

/// One group's scales: the reciprocals `1/d` (0 where `d` is 0) and the f16 bits of `d`.
struct Scales {
    id: [f32; GROUP],
    d: [u16; GROUP],
}

/// The scales of the sixteen blocks at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn group_scales(p: *const f32, sc: &mut Scales) {
    // Input slot `s` holds block `4 * (s % 4) + s / 4`, which `amax16` returns in order.
    const ORDER: [usize; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
    // A loop rather than `array::map`: the closure would not inherit the target features
    // and stays an out-of-line call per block.
    let mut m = [_mm512_setzero_ps(); GROUP];
    for (ms, &k) in m.iter_mut().zip(&ORDER) {
        // SAFETY: `k < 16`; the caller passes 16 blocks of 32 readable floats.
        *ms = lane_amax(unsafe { p.add(k * QK) });
    }
    let d = _mm512_div_ps(amax16(&m), _mm512_set1_ps(127.0));
    let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm512_setzero_ps());
    let id = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0), d);
    // SAFETY: the arrays are 64 and 32 bytes; unaligned stores.
    unsafe {
        _mm512_storeu_ps(sc.id.as_mut_ptr(), id);
        _mm256_storeu_si256(
            sc.d.as_mut_ptr().cast(),
            _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d),
        );
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn quantize_q80_impl(x: &[f32], out: &mut [BlockQ80]) {
    let n = out.len().min(x.len() / QK);
    let (out, rest) = out[..n].split_at_mut(n - n % GROUP);
    let groups = out.len() / GROUP;
    // The scales of the next group are worked out before this group's bytes, so the two
    // dependent divisions of one group overlap the other's quantisation.
    let mut sc = [
        Scales {
            id: [0.0; GROUP],
            d: [0; GROUP],
        },
        Scales {
            id: [0.0; GROUP],
            d: [0; GROUP],
        },
    ];
    if groups > 0 {
        group_scales(x.as_ptr(), &mut sc[0]);
    }
    for (g, bs) in out.chunks_exact_mut(GROUP).enumerate() {
        // SAFETY: `(g + 1) * 16` blocks of 32 floats lie inside `x` (`n <= x.len() / QK`).
        let p = unsafe { x.as_ptr().add(g * GROUP * QK) };
        let (cur, next) = if g % 2 == 0 {
            let (a, b) = sc.split_at_mut(1);
            (&a[0], &mut b[0])
        } else {
            let (a, b) = sc.split_at_mut(1);
            (&b[0], &mut a[0])
        };
        if g + 1 < groups {
            // SAFETY: group `g + 1 < groups` lies inside `x` as well.
            group_scales(unsafe { p.add(GROUP * QK) }, next);
        }
        for (k, b) in bs.iter_mut().enumerate() {
            b.d = cur.d[k];
            // SAFETY: block `k < 16` of this group; `qs` is 32 bytes.
            q80_store(
                unsafe { p.add(k * QK) },
                _mm512_set1_ps(cur.id[k]),
                b.qs.as_mut_ptr(),
            );
        }
    }
    let done = out.len() * QK;
    avx2::quant::quantize_q80(&x[done..], rest);
}
