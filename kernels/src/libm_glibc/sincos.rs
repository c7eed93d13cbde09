//! `sin x` and `cos x`: reduce to `|r| ≤ π/4` and quadrant `n`, then a sine or cosine
//! polynomial in `f64`.
//!
//! Three ranges, by magnitude: below 0.75 no reduction; below 120 one fused
//! multiply-subtract of a double-precision π/2; above that an exact fixed-point product with a
//! 192-bit table of 4/π.

use super::{abstop12, fma};

/// The polynomials for one pair of quadrants. The cosine coefficients of the second set are
/// negated, which gives the sign flip of quadrants 2 and 3 for free.
struct Poly {
    /// `cos r ≈ c0 + c1·r² + c2·r⁴ + c3·r⁶ + c4·r⁸`.
    c: [f64; 5],
    /// `sin r ≈ r + s1·r³ + s2·r⁵ + s3·r⁷`.
    s: [f64; 3],
}

const C0: u64 = 0x3ff0000000000000; // 1
const C1: u64 = 0xbfdffffffd0c621c; // -0x1.ffffffd0c621cp-2
const C2: u64 = 0x3fa55553e1068f19; // 0x1.55553e1068f19p-5
const C3: u64 = 0xbf56c087e89a359d; // -0x1.6c087e89a359dp-10
const C4: u64 = 0x3ef99343027bf8c3; // 0x1.99343027bf8c3p-16
const S1: u64 = 0xbfc555545995a603; // -0x1.555545995a603p-3
const S2: u64 = 0x3f81107605230bc4; // 0x1.1107605230bc4p-7
const S3: u64 = 0xbf2994eb3774cf24; // -0x1.994eb3774cf24p-13

const SIN_BITS: [u64; 3] = [S1, S2, S3];
const fn poly(cos_sign: u64) -> Poly {
    Poly {
        c: [
            f64::from_bits(C0 ^ cos_sign),
            f64::from_bits(C1 ^ cos_sign),
            f64::from_bits(C2 ^ cos_sign),
            f64::from_bits(C3 ^ cos_sign),
            f64::from_bits(C4 ^ cos_sign),
        ],
        s: [
            f64::from_bits(SIN_BITS[0]),
            f64::from_bits(SIN_BITS[1]),
            f64::from_bits(SIN_BITS[2]),
        ],
    }
}

/// Quadrants 0 and 1, and quadrants 2 and 3 (cosine negated).
const POLYS: [Poly; 2] = [poly(0), poly(1 << 63)];

/// Sign of the sine in quadrants 0..3 as seen after the reduction.
const QUADRANT_SIGN: [f64; 4] = [1.0, -1.0, -1.0, 1.0];

/// `2/π · 2^24` (0x1.45f306dc9c883p+23): the quadrant lands in bits 24 and up of an integer.
const INV_HALF_PI_2_24: f64 = f64::from_bits(0x41645f306dc9c883);
/// `π/2` (0x1.921fb54442d18p0).
const HALF_PI: f64 = f64::from_bits(0x3ff921fb54442d18);
/// `2π · 2^-64` (0x1.921fb54442d18p-62): one unit of the 2.62 fixed-point remainder, in
/// radians.
const PI_2_63: f64 = f64::from_bits(0x3c1921fb54442d18);

/// 4/π to 192 bits. Entry `i` holds bits `8i .. 8i+32` of the fraction, so any 32-bit window
/// at a multiple of 8 bits is one aligned load.
#[rustfmt::skip]
const INV_PIO4: [u32; 24] = [
    0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
    0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd,
    0xf534ddc0, 0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43,
    0x993c4390, 0x3c439041,
];

/// Magnitude classes (see [`abstop12`]).
const TOP_QUARTER_PI: u32 = 0x3f4; // 0.75 ≤ |x|: reduce.
const TOP_2_M12: u32 = 0x398; // |x| < 2^-12: sin x = x, cos x = 1 in f32.
const TOP_120: u32 = 0x42f; // 120 ≤ |x|: the table reduction.
const TOP_INF: u32 = 0x7f8;

/// Sine (`n` even) or cosine (`n` odd) of the reduced `x` (with `x2 = x²`) from `p`.
#[inline(always)]
fn eval(x: f64, x2: f64, p: &Poly, n: u32) -> f32 {
    if n & 1 == 0 {
        let [s1, s2, s3] = p.s;
        let x3 = x * x2;
        let s_hi = fma(x2, s3, s2);
        let x7 = x3 * x2;
        let s = fma(x3, s1, x);
        fma(x7, s_hi, s) as f32
    } else {
        let [c0, c1, c2, c3, c4] = p.c;
        let x4 = x2 * x2;
        let c_hi = fma(x2, c4, c3);
        let c_lo = fma(x2, c1, c0);
        let x6 = x4 * x2;
        let c = fma(x4, c2, c_lo);
        fma(x6, c_hi, c) as f32
    }
}

/// `x − n·π/2` (one rounding) and `n`, for `|x| < 120`.
#[inline(always)]
fn reduce_medium(x: f64) -> (f64, u32) {
    // The truncating conversion is exact enough: rounding happens in the integer domain,
    // which also avoids the bias of truncating negative values.
    let r = (x * INV_HALF_PI_2_24) as i32;
    let n = (r + 0x80_0000) >> 24;
    (fma(-f64::from(n), HALF_PI, x), n as u32)
}

/// `|x| mod π/2` in `[−π/4, π/4]` and the quadrant `0..4` of `|x|`, for the float bits `xi`
/// of a finite `|x| ≥ 2` (sign ignored). The 32×96-bit product with the matching window of
/// 4/π is the remainder in exact 2.62 fixed point.
#[inline(always)]
fn reduce_large(xi: u32) -> (f64, u32) {
    let window = &INV_PIO4[((xi >> 26) & 15) as usize..];
    let shift = (xi >> 23) & 7;
    let m = ((xi & 0x00ff_ffff) | 0x0080_0000) << shift;
    let hi = m.wrapping_mul(window[0]) as u64;
    let mid = u64::from(m) * u64::from(window[4]);
    let lo = u64::from(m) * u64::from(window[8]);
    let mut res = ((lo >> 32) | (hi << 32)).wrapping_add(mid);
    let n = res.wrapping_add(1 << 61) >> 62;
    res = res.wrapping_sub(n << 62);
    ((res as i64) as f64 * PI_2_63, n as u32)
}

/// `sin x` (`cos = false`) or `cos x` (`cos = true`) for `|x| ≥ 0.75`.
#[inline(always)]
fn reduced(x: f32, cos: bool) -> f32 {
    let top = abstop12(x);
    let (r, n, quadrant) = if top < TOP_120 {
        let (r, n) = reduce_medium(f64::from(x));
        (r, n, n)
    } else if top < TOP_INF {
        let xi = x.to_bits();
        let (r, n) = reduce_large(xi);
        (r, n, n.wrapping_add(xi >> 31))
    } else {
        // Infinite or NaN (glibc's NaN payload is not reproduced).
        return f32::NAN;
    };
    let s = QUADRANT_SIGN[(quadrant & 3) as usize];
    let p = &POLYS[((quadrant >> 1) & 1) as usize];
    eval(r * s, r * r, p, n ^ u32::from(cos))
}

/// `sin x` for `f32` with glibc's bits (ulp error ≤ 0.561).
pub fn sinf(x: f32) -> f32 {
    let top = abstop12(x);
    if top >= TOP_QUARTER_PI {
        return reduced(x, false);
    }
    if top < TOP_2_M12 {
        return x;
    }
    let xd = f64::from(x);
    eval(xd, xd * xd, &POLYS[0], 0)
}

/// `cos x` for `f32` with glibc's bits (ulp error ≤ 0.561).
pub fn cosf(x: f32) -> f32 {
    let top = abstop12(x);
    if top >= TOP_QUARTER_PI {
        return reduced(x, true);
    }
    if top < TOP_2_M12 {
        return 1.0;
    }
    let xd = f64::from(x);
    eval(xd, xd * xd, &POLYS[0], 1)
}
