//! AVX-512 softmax and SiLU: the exp polynomial on 16 lanes (SiLU then divides exactly, 16
//! lanes at a time); softmax's sum stays in the contract's 8 lanes.
//!
//! The softmax exps are stored 16 at a time and the 8-groups read back in element order into the
//! one 8-lane accumulator, which is exactly the reference's `lanes[i % 8] +=` in element order.
//! That chain of `len / 8` dependent adds and the two vector ports bound a 4096-row together:
//! with 512-bit work in flight a `vaddps ymm` takes 3–3.4 cycles to feed the next one (2
//! without; measured), and each 16-lane group needs 9 uops of exp and 2 adds on those ports.
//! Hence the exps without the underflow mask in the common case (see
//! [`exps_and_sum_checked`]).

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
///
/// Without `ZEROED` the lanes with `rint(y) ≤ −127` are not zeroed: there the reference gives
/// +0 but this gives `p·2^n`, a denormal (for `n ≥ −150`, else +0), and NaN and `−∞` inputs
/// give NaN or +0. One uop fewer a vector, where softmax is bound by the two vector ports;
/// [`Grid::zero_underflow`] repairs the lanes afterwards when any of them occurred.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn exp_poly16_nonpos<const ZEROED: bool>(x: __m512) -> __m512 {
    let y = _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E));
    let f = _mm512_reduce_ps::<0>(y);
    let n = _mm512_sub_ps(y, f);
    if ZEROED {
        let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, _mm512_set1_ps(-126.5));
        _mm512_maskz_scalef_ps(keep, poly16(f), n)
    } else {
        _mm512_scalef_ps(poly16(f), n)
    }
}

/// The reference's degree-4 polynomial in `f` by FMA, on 16 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn poly16(f: __m512) -> __m512 {
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[1]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[2]));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[3]));
    _mm512_fmadd_ps(p, f, _mm512_set1_ps(EXP_POLY[4]))
}

/// The least exp the reference can give from `n = −126`: `p(−0.5)·2^−126` (from
/// `y = −126.5`, which rounds to the even −126), a denormal. Every lane with `n ≤ −127` gives at
/// most `p(0.5)·2^−127`, about 500 denormal steps below it (the steps of `f` are `2^−17` at this
/// magnitude and `p` rises by about `0.49·2^−17` a step, far more than one rounding), so
/// `e ≥ least_kept()` tells the two apart exactly.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn least_kept() -> __m512 {
    _mm512_scalef_ps(poly16(_mm512_set1_ps(-0.5)), _mm512_set1_ps(-126.0))
}

/// MXCSR's sticky denormal-operand flag.
const MXCSR_DE: u32 = 1 << 1;
/// MXCSR's control bits (denormals-are-zero, the six exception masks, rounding, flush-to-zero).
const MXCSR_CONTROL: u32 = 0xffc0;
/// Their power-on value, which Rust code runs under: every exception masked, round to nearest,
/// denormals kept as inputs and as results.
const MXCSR_CONTROL_DEFAULT: u32 = 0x1f80;

/// The MXCSR register.
#[inline]
fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: `stmxcsr` writes the four bytes of `v` and nothing else.
    unsafe {
        core::arch::asm!("stmxcsr [{p}]", p = in(reg) &mut v, options(nostack, preserves_flags));
    }
    v
}

/// The MXCSR register once `acc` has been computed: `acc` is an operand, so every add that
/// went into it is older than the read (the compiler knows nothing of the flags).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn mxcsr_after(acc: __m256) -> u32 {
    let mut v = 0u32;
    // SAFETY: the move copies a register to itself; `stmxcsr` writes the four bytes of `v`.
    unsafe {
        core::arch::asm!(
            "vmovaps {a}, {a}",
            "stmxcsr [{p}]",
            a = in(ymm_reg) acc,
            p = in(reg) &mut v,
            options(nostack, preserves_flags),
        );
    }
    v
}

/// Sets MXCSR's status flags; `v` is a value read from it with only status bits changed.
#[inline]
fn set_mxcsr_flags(v: u32) {
    // SAFETY: `ldmxcsr` reads the four bytes of `v`; only status flags differ from the current
    // register, so rounding, masking and the denormal modes stay the caller's.
    unsafe {
        core::arch::asm!("ldmxcsr [{p}]", p = in(reg) &v, options(nostack, preserves_flags));
    }
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

/// A row's contract part (`0..full8`) as vectors on the 64-byte grid (split loads and stores
/// cost about twice as much): `nbody` aligned vectors from element `h`, a head vector ending at
/// `h` with only the lanes of elements `0..h` enabled, an end vector from `e0 = h + 16·nbody`
/// with only the lanes of `e0..full8` enabled. Lane `l` of every vector holds an element
/// `≡ h + l (mod 8)`, so the 8-lane sum is kept rotated by `h`; masked-off lanes add `+0`,
/// which changes nothing (every exp is `≥ +0`).
struct Grid {
    p: *mut f32,
    h: usize,
    nbody: usize,
    head_mask: __mmask16,
    end_mask: __mmask16,
}

impl Grid {
    /// The grid of `x[..full8]`, for `96 ≤ full8 ≤ x.len()`.
    fn new(x: &mut [f32], full8: usize) -> Grid {
        let p = x.as_mut_ptr();
        let h = (p.align_offset(64)).min(16) % 16;
        let nbody = (full8 - h) / 16;
        let e0 = h + 16 * nbody;
        Grid {
            p,
            h,
            nbody,
            head_mask: !(((1u32 << (16 - h)) - 1) as __mmask16),
            end_mask: ((1u32 << (full8 - e0)) - 1) as __mmask16,
        }
    }

    /// The head vector's address, `16 − h` elements before the row. Only its enabled lanes
    /// (elements `0..h`) may be read or written, by masked loads and stores, which neither
    /// touch nor fault on masked-off lanes.
    fn head(&self) -> *mut f32 {
        self.p.wrapping_add(self.h).wrapping_sub(16)
    }

    /// The end vector's address (element `e0`); only its enabled lanes may be accessed.
    fn end(&self) -> *mut f32 {
        self.p.wrapping_add(self.h + 16 * self.nbody)
    }

    /// Body vector `j < nbody`: 64-byte aligned, inside the row.
    fn body(&self, j: usize) -> *mut f32 {
        self.p.wrapping_add(self.h + 16 * j)
    }

    /// The maximum of the contract part, in the reference's order-free sense: a NaN element is
    /// never greater than the running maximum, so it is skipped, unless it is the first, which
    /// then stays (`vmaxps` returns its second operand when either is NaN).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    fn max(&self, first: f32) -> f32 {
        let init = _mm512_set1_ps(first);
        let mut m = [init; 8];
        // The head and end go in as values, not as the chains' starts: a NaN there must be
        // skipped like any other (masked-off lanes hold `first`, which changes nothing).
        // SAFETY: masked head and end (see `head`, `end`).
        unsafe {
            m[0] = _mm512_max_ps(
                _mm512_mask_loadu_ps(init, self.head_mask, self.head()),
                m[0],
            );
            m[1] = _mm512_max_ps(_mm512_mask_loadu_ps(init, self.end_mask, self.end()), m[1]);
        }
        // Eight chains: `vmaxps` has a latency of four cycles and a throughput of two a cycle.
        let mut j = 0;
        while j + 8 <= self.nbody {
            for (k, mk) in m.iter_mut().enumerate() {
                // SAFETY: body vector `j + k < nbody`.
                *mk = _mm512_max_ps(unsafe { _mm512_load_ps(self.body(j + k)) }, *mk);
            }
            j += 8;
        }
        while j < self.nbody {
            // SAFETY: body vector `j < nbody`.
            m[j % 8] = _mm512_max_ps(unsafe { _mm512_load_ps(self.body(j)) }, m[j % 8]);
            j += 1;
        }
        let m = _mm512_max_ps(
            _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])),
            _mm512_max_ps(_mm512_max_ps(m[4], m[5]), _mm512_max_ps(m[6], m[7])),
        );
        // Every chain started from `first`, so either all lanes are NaN or none is.
        if first.is_nan() {
            first
        } else {
            _mm512_reduce_max_ps(m)
        }
    }

    /// Stores `exp(x − max)` over the grid (the reference's, when `ZEROED`; else the
    /// unzeroed [`exp_poly16_nonpos`]) and returns the rotated 8-lane sum of them in element
    /// order.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    fn exps_and_sum<const ZEROED: bool>(&self, max: f32) -> __m256 {
        let vmax = _mm512_set1_ps(max);
        let exp = |v: __m512| exp_poly16_nonpos::<ZEROED>(_mm512_sub_ps(v, vmax));
        let (head, end) = (self.head(), self.end());
        // SAFETY: masked head (see `head`).
        let mut acc = unsafe {
            let e = _mm512_maskz_mov_ps(
                self.head_mask,
                exp(_mm512_maskz_loadu_ps(self.head_mask, head)),
            );
            _mm512_mask_storeu_ps(head, self.head_mask, e);
            add_halves(_mm256_setzero_ps(), e)
        };
        // Body: the sum takes each group back from memory `LAG` vectors behind the exps, which
        // keeps the extracts off the busy vector ports.
        let mut j = 0;
        while j + UNROLL <= self.nbody {
            // The adds first: older than the exps they compete with for the two vector ports,
            // they go first once ready, and the chain is the bound.
            if j >= LAG {
                acc = self.sum_body(acc, j - LAG, j - LAG + UNROLL);
            }
            // SAFETY: body vectors `j..j + UNROLL`.
            unsafe {
                let e: [__m512; UNROLL] =
                    core::array::from_fn(|k| exp(_mm512_load_ps(self.body(j + k))));
                for (k, &ek) in e.iter().enumerate() {
                    _mm512_store_ps(self.body(j + k), ek);
                }
            }
            j += UNROLL;
        }
        let summed = j.saturating_sub(LAG);
        while j < self.nbody {
            // SAFETY: body vector `j`.
            unsafe { _mm512_store_ps(self.body(j), exp(_mm512_load_ps(self.body(j)))) };
            j += 1;
        }
        acc = self.sum_body(acc, summed, self.nbody);
        // SAFETY: masked end (see `end`).
        unsafe {
            let e = _mm512_maskz_mov_ps(
                self.end_mask,
                exp(_mm512_maskz_loadu_ps(self.end_mask, end)),
            );
            _mm512_mask_storeu_ps(end, self.end_mask, e);
            add_halves(acc, e)
        }
    }

    /// `acc` plus body vectors `from..to` in element order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    fn sum_body(&self, mut acc: __m256, from: usize, to: usize) -> __m256 {
        for j in from..to {
            // SAFETY: body vector `j < nbody`.
            unsafe {
                acc = _mm256_add_ps(acc, _mm256_load_ps(self.body(j)));
                acc = _mm256_add_ps(acc, _mm256_load_ps(self.body(j).add(8)));
            }
        }
        acc
    }

    /// Turns the stored unzeroed exps of [`exp_poly16_nonpos`] into the reference's (every lane
    /// below [`least_kept`], NaN included, to +0) and returns their rotated sum again.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    fn zero_underflow(&self) -> __m256 {
        let least = least_kept();
        let fix = |e: __m512| _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(e, least), e);
        let (head, end) = (self.head(), self.end());
        // SAFETY: masked head and end, body vectors `j < nbody`.
        unsafe {
            let e = fix(_mm512_maskz_loadu_ps(self.head_mask, head));
            _mm512_mask_storeu_ps(head, self.head_mask, e);
            let mut acc = add_halves(_mm256_setzero_ps(), e);
            for j in 0..self.nbody {
                let e = fix(_mm512_load_ps(self.body(j)));
                _mm512_store_ps(self.body(j), e);
                acc = add_halves(acc, e);
            }
            let e = fix(_mm512_maskz_loadu_ps(self.end_mask, end));
            _mm512_mask_storeu_ps(end, self.end_mask, e);
            add_halves(acc, e)
        }
    }

    /// Every element of the grid times `s`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    fn scale(&self, s: f32) {
        let vs = _mm512_set1_ps(s);
        let (head, end) = (self.head(), self.end());
        // SAFETY: masked head and end, body vectors `j < nbody`.
        unsafe {
            let v = _mm512_maskz_loadu_ps(self.head_mask, head);
            _mm512_mask_storeu_ps(head, self.head_mask, _mm512_mul_ps(v, vs));
            for j in 0..self.nbody {
                _mm512_store_ps(
                    self.body(j),
                    _mm512_mul_ps(_mm512_load_ps(self.body(j)), vs),
                );
            }
            let v = _mm512_maskz_loadu_ps(self.end_mask, end);
            _mm512_mask_storeu_ps(end, self.end_mask, _mm512_mul_ps(v, vs));
        }
    }

    /// The contract's sum from the rotated accumulator: lane `k` is lane `(k − h) mod 8` here.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    fn unrotated_sum(&self, acc: __m256) -> f32 {
        let back = _mm256_and_si256(
            _mm256_sub_epi32(
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                _mm256_set1_epi32(self.h as i32),
            ),
            _mm256_set1_epi32(7),
        );
        hsum8(_mm256_permutevar8x32_ps(acc, back))
    }
}

/// The exps and their sum with a finite maximum: the unzeroed exps (one uop a vector fewer),
/// repaired afterwards only when a lane needed it. Such a lane is a nonzero denormal, which
/// raises MXCSR's denormal-operand flag when the sum adds it, or a NaN from a NaN or `−∞`
/// element, which reaches the sum. Lanes that gave +0 are already right. A caller (through the
/// C ABI) that changed MXCSR's controls gets the zeroed exps instead: with denormals read as
/// zero the flag would not be raised, and an unmasked underflow would trap on the unzeroed
/// lanes. The caller's flag is put back if it was set.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
fn exps_and_sum_checked(g: &Grid, max: f32) -> __m256 {
    let before = mxcsr();
    if before & MXCSR_CONTROL != MXCSR_CONTROL_DEFAULT {
        return g.exps_and_sum::<true>(max);
    }
    if before & MXCSR_DE != 0 {
        set_mxcsr_flags(before & !MXCSR_DE);
    }
    let acc = g.exps_and_sum::<false>(max);
    let after = mxcsr_after(acc);
    if before & MXCSR_DE != 0 {
        set_mxcsr_flags(after | MXCSR_DE);
    }
    let nan = _mm256_cmp_ps_mask::<_CMP_UNORD_Q>(acc, acc) != 0;
    if after & MXCSR_DE != 0 || nan {
        g.zero_underflow()
    } else {
        acc
    }
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
    let g = Grid::new(x, full8);
    // The maximum of non-NaN floats does not depend on the order, and the sign of a zero
    // maximum cannot change any `exp(x − max)`.
    let mut max = g.max(x[0]);
    for &v in &x[full8..] {
        if v > max {
            max = v;
        }
    }
    // With a finite maximum every non-NaN `x − max` is `≤ 0` or `−∞`.
    let acc = if max.is_finite() {
        exps_and_sum_checked(&g, max)
    } else {
        g.exps_and_sum::<true>(max)
    };
    let mut sum = g.unrotated_sum(acc);
    for v in &mut x[full8..] {
        *v = expf(*v - max);
        sum += *v;
    }
    if sum == 0.0 {
        sum = 0.000001;
    }
    let s = 1.0 / sum;
    g.scale(s);
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
        _mm512_div_ps(v, _mm512_add_ps(one, exp_poly16_nonpos::<true>(t)))
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
