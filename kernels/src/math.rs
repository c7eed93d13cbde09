//! Scalar arithmetic the numerical contract is written in: fused multiply-add, the 8-lane
//! horizontal sum, the exp polynomial of the peer's x86 build, and our own `expf`, `powf`,
//! `cosf`, `sinf` (the same bits on every platform: those of glibc's x86-64 FMA build).

#[path = "libm_glibc/mod.rs"]
mod glibc;

/// `a * b + c` with one rounding.
#[inline]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    // libm picks hardware FMA with `cpuid`, which Miri cannot run; std's is the same operation.
    #[cfg(all(miri, feature = "std"))]
    return a.mul_add(b, c);
    #[cfg(not(all(miri, feature = "std")))]
    libm::fmaf(a, b, c)
}

/// The peer's `horizontalSum_avx2`: `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`.
#[inline]
pub fn hsum8(l: &[f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Dot product in 8 FMA lanes (element `i` goes to lane `i % 8`), reduced with [`hsum8`].
/// This is the contract for F32 matmul rows, attention scores and the RMS sum of squares.
#[inline]
pub fn dot8(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0.0f32; 8];
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        lanes[i % 8] = fma(x, y, lanes[i % 8]);
    }
    hsum8(&lanes)
}

/// `max(a, b)` with the x86 `maxps` rule: `a > b ? a : b`.
#[inline]
pub fn max_ps(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `min(a, b)` with the x86 `minps` rule: `a < b ? a : b`.
#[inline]
pub fn min_ps(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// Round to nearest, ties to even (`rint` under the default rounding mode).
#[inline]
pub fn rint(x: f32) -> f32 {
    libm::rintf(x)
}

/// `cvtps2dq` under the default rounding mode: round to nearest even; NaN and out-of-range
/// values give `i32::MIN` (the "integer indefinite" value).
#[inline]
pub fn cvt_round_i32(x: f32) -> i32 {
    let r = rint(x);
    if (-2147483648.0..2147483648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// Coefficients of the peer's exp polynomial (§6.12 of the spec), highest degree first.
pub const EXP_POLY: [f32; 5] = [
    0.009618129107628477_f64 as f32,
    0.05550410866482158_f64 as f32,
    0.2402265069591007_f64 as f32,
    // The peer's literal, which happens to be ln 2 rounded to f64.
    core::f64::consts::LN_2 as f32,
    1.0,
];

/// The exp approximation the peer's AVX2 build applies to full groups of 8 elements:
/// clamp to [−88, 88], `n = rint(x·log2 e)`, `f = x·log2 e − n`, a degree-4 polynomial in `f`
/// by FMA, times `2^n` built from exponent bits.
#[inline]
pub fn exp_poly(x: f32) -> f32 {
    let x = min_ps(max_ps(x, -88.0), 88.0);
    let y = x * core::f32::consts::LOG2_E;
    let n = cvt_round_i32(y);
    let f = y - n as f32;
    let mut p = EXP_POLY[0];
    p = fma(p, f, EXP_POLY[1]);
    p = fma(p, f, EXP_POLY[2]);
    p = fma(p, f, EXP_POLY[3]);
    p = fma(p, f, EXP_POLY[4]);
    let two_n = f32::from_bits((n.wrapping_add(127) as u32).wrapping_shl(23));
    p * two_n
}

/// `e^x` in f32, used for the `len % 8` tail elements of softmax and SiLU.
///
/// Gives the bits of glibc's `expf` on x86-64 (its FMA build), on every target.
#[inline]
pub fn expf(x: f32) -> f32 {
    glibc::expf(x)
}

/// `x^y` in f32, used for RoPE frequencies.
///
/// Gives the bits of glibc's `powf` on x86-64 (its FMA build), on every target.
#[inline]
pub fn powf(x: f32, y: f32) -> f32 {
    glibc::powf(x, y)
}

/// `cos x` in f32 (`x` in radians), used for the RoPE cache.
///
/// Gives the bits of glibc's `cosf` on x86-64 (its FMA build), on every target.
#[inline]
pub fn cosf(x: f32) -> f32 {
    glibc::cosf(x)
}

/// `sin x` in f32 (`x` in radians), used for the RoPE cache.
///
/// Gives the bits of glibc's `sinf` on x86-64 (its FMA build), on every target.
#[inline]
pub fn sinf(x: f32) -> f32 {
    glibc::sinf(x)
}

/// `tanh x` in f32, used by GELU (which the peer never runs; no bit contract with glibc).
#[inline]
pub fn tanhf(x: f32) -> f32 {
    libm::tanhf(x)
}

/// Square root, correctly rounded (IEEE), as `sqrtss`.
#[inline]
pub fn sqrtf(x: f32) -> f32 {
    // libm uses `sqrtss` through inline assembly, which Miri cannot run; std's is the same.
    #[cfg(all(miri, feature = "std"))]
    return x.sqrt();
    #[cfg(not(all(miri, feature = "std")))]
    libm::sqrtf(x)
}
