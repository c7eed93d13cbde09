//! `e^x` as `2^(k/32) · 2^(r/32)`: a 32-entry table of `2^(i/32)` and a cubic in `r`.

use super::{abstop12, fma};

/// log2 of the table size: `2^x` is split into `2^(k/32)` (table) times a small remainder.
const TABLE_BITS: u32 = 5;
const TABLE_LEN: u64 = 1 << TABLE_BITS;

/// `bits(2^(i/32)) − (i << 47)`. Adding `k << 47` to entry `k mod 32` gives the bits of
/// `2^(k/32)` for any `|k| < 150·32`: the integer part of `k/32` lands in the exponent field.
#[rustfmt::skip]
pub(super) const EXP2_TABLE: [u64; 32] = [
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
];

/// `2^r ≈ 1 + C2·r + C1·r² + C0·r³` for `|r| ≤ 1/64`
/// (0x1.c6af84b912394p-5, 0x1.ebfce50fac4f3p-3, 0x1.62e42ff0c52d6p-1).
const EXP2_POLY: [f64; 3] = [
    f64::from_bits(0x3fac6af84b912394),
    f64::from_bits(0x3fcebfce50fac4f3),
    f64::from_bits(0x3fe62e42ff0c52d6),
];

/// [`EXP2_POLY`] with `r` measured in units of 1/32, i.e. coefficient `i` divided by
/// `32^(3−i)` (0x1.c6af84b912394p-20, 0x1.ebfce50fac4f3p-13, 0x1.62e42ff0c52d6p-6).
const EXP2_POLY_SCALED: [f64; 3] = [
    f64::from_bits(0x3ebc6af84b912394),
    f64::from_bits(0x3f2ebfce50fac4f3),
    f64::from_bits(0x3f962e42ff0c52d6),
];

/// `32 / ln 2` (0x1.71547652b82fep+5).
const INV_LN2_32: f64 = f64::from_bits(0x40471547652b82fe);

/// `1.5 · 2^52`: adding it rounds a double of magnitude below `2^51` to an integer held in the
/// low mantissa bits (0x1.8p52).
const SHIFT: f64 = f64::from_bits(0x4338000000000000);

/// [`SHIFT`] / 32: rounds to a multiple of 1/32 instead (0x1.8p47).
const SHIFT_32: f64 = f64::from_bits(0x42e8000000000000);

/// Largest `x` whose `e^x` is finite in f32 (0x1.62e42ep6 ≈ 88.72).
const OVERFLOW_BOUND: f32 = f32::from_bits(0x42b17217);
/// Below this `e^x` rounds to zero (0x1.9fe368p6 ≈ −103.97).
const UNDERFLOW_BOUND: f32 = f32::from_bits(0xc2cff1b4);
/// Below this (and above [`UNDERFLOW_BOUND`]) `e^x` rounds to the smallest subnormal
/// (−0x1.9d1d9ep6 ≈ −103.28).
const MIN_SUBNORMAL_BOUND: f32 = f32::from_bits(0xc2ce8ecf);

/// `2^(k/32)` from the integer `k` held in the low bits of `ki`, plus `bias << 47`.
#[inline(always)]
fn scale(ki: u64, bias: u64) -> f64 {
    let t = EXP2_TABLE[(ki % TABLE_LEN) as usize];
    f64::from_bits(t.wrapping_add(ki.wrapping_add(bias) << (52 - TABLE_BITS)))
}

/// `e^x` for `f32` with glibc's bits (ulp error ≤ 0.502).
pub fn expf(x: f32) -> f32 {
    if abstop12(x) >= abstop12(88.0) {
        // |x| ≥ 88, infinite or NaN.
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if abstop12(x) >= abstop12(f32::INFINITY) {
            return x + x;
        }
        if x > OVERFLOW_BOUND {
            return f32::INFINITY;
        }
        if x < UNDERFLOW_BOUND {
            return 0.0;
        }
        if x < MIN_SUBNORMAL_BOUND {
            return f32::from_bits(1);
        }
    }
    let xd = f64::from(x);
    // x·32/ln2 = k + r with integer k and |r| ≤ 1/2. glibc's FMA build computes x·32/ln2
    // twice inside FMAs, never rounded on its own.
    let shifted = fma(INV_LN2_32, xd, SHIFT);
    let ki = shifted.to_bits();
    let kd = shifted - SHIFT;
    let r = fma(INV_LN2_32, xd, -kd);
    let [c0, c1, c2] = EXP2_POLY_SCALED;
    let z = fma(c0, r, c1);
    let r2 = r * r;
    let y = fma(c2, r, 1.0);
    let y = fma(z, r2, y);
    (y * scale(ki, 0)) as f32
}

/// `2^xd` rounded to f32, with `sign_bias << 47` added to the scale's bits (so `1 << 16`
/// negates the result). Callers keep `xd` within `[−150, 128]`.
#[inline(always)]
pub(super) fn exp2_to_f32(xd: f64, sign_bias: u64) -> f32 {
    // xd = k/32 + r with |r| ≤ 1/64.
    let shifted = xd + SHIFT_32;
    let ki = shifted.to_bits();
    let kd = shifted - SHIFT_32;
    let r = xd - kd;
    let [c0, c1, c2] = EXP2_POLY;
    let z = fma(c0, r, c1);
    let r2 = r * r;
    let y = fma(c2, r, 1.0);
    let y = fma(z, r2, y);
    (y * scale(ki, sign_bias)) as f32
}
