//! Scalar arithmetic the numerical contract is written in: fused multiply-add, the 8-lane
//! horizontal sum, the exp polynomial of the peer's x86 build, and our own `expf`, `powf`,
//! `cosf`, `sinf` (deterministic on every platform, aiming at glibc's bits on x86-64).

/// `a * b + c` with one rounding.
#[inline]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
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
#[inline]
pub fn expf(x: f32) -> f32 {
    libm::exp(x as f64) as f32
}

/// `x^y` in f32, used for RoPE frequencies.
#[inline]
pub fn powf(x: f32, y: f32) -> f32 {
    libm::pow(x as f64, y as f64) as f32
}

/// `cos x` in f32, used for the RoPE cache.
#[inline]
pub fn cosf(x: f32) -> f32 {
    libm::cos(x as f64) as f32
}

/// `sin x` in f32, used for the RoPE cache.
#[inline]
pub fn sinf(x: f32) -> f32 {
    libm::sin(x as f64) as f32
}

/// `tanh x` in f32, used by GELU (which the peer never runs; no bit contract with glibc).
#[inline]
pub fn tanhf(x: f32) -> f32 {
    libm::tanhf(x)
}

/// Square root, correctly rounded (IEEE), as `sqrtss`.
#[inline]
pub fn sqrtf(x: f32) -> f32 {
    libm::sqrtf(x)
}
