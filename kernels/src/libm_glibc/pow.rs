//! `x^y` as `2^(y·log2 x)`, both halves in `f64`: log2 from a 16-entry table and a degree-5
//! polynomial, exp2 from the table of [`super::exp`].

use super::exp::exp2_to_f32;
use super::fma;

/// log2 of the number of subintervals the log2 table splits `[OFF, 2·OFF)` into.
const LOG2_TABLE_BITS: u32 = 4;

/// Bits of 0x1.66p-1 ≈ 0.7: mantissas are normalised into `[OFF, 2·OFF)` so that `log2` of the
/// reduced argument stays small on both sides of 1.
const OFF: u32 = 0x3f33_0000;

/// `(1/c, log2 c)` for a `c` near the centre of each subinterval.
const LOG2_TABLE: [(f64, f64); 16] = {
    const fn e(invc: u64, logc: u64) -> (f64, f64) {
        (f64::from_bits(invc), f64::from_bits(logc))
    }
    [
        e(0x3ff661ec79f8f3be, 0xbfdefec65b963019), // 0x1.661ec79f8f3bep+0, -0x1.efec65b963019p-2
        e(0x3ff571ed4aaf883d, 0xbfdb0b6832d4fca4), // 0x1.571ed4aaf883dp+0, -0x1.b0b6832d4fca4p-2
        e(0x3ff49539f0f010b0, 0xbfd7418b0a1fb77b), // 0x1.49539f0f010bp+0, -0x1.7418b0a1fb77bp-2
        e(0x3ff3c995b0b80385, 0xbfd39de91a6dcf7b), // 0x1.3c995b0b80385p+0, -0x1.39de91a6dcf7bp-2
        e(0x3ff30d190c8864a5, 0xbfd01d9bf3f2b631), // 0x1.30d190c8864a5p+0, -0x1.01d9bf3f2b631p-2
        e(0x3ff25e227b0b8ea0, 0xbfc97c1d1b3b7af0), // 0x1.25e227b0b8eap+0, -0x1.97c1d1b3b7afp-3
        e(0x3ff1bb4a4a1a343f, 0xbfc2f9e393af3c9f), // 0x1.1bb4a4a1a343fp+0, -0x1.2f9e393af3c9fp-3
        e(0x3ff12358f08ae5ba, 0xbfb960cbbf788d5c), // 0x1.12358f08ae5bap+0, -0x1.960cbbf788d5cp-4
        e(0x3ff0953f419900a7, 0xbfaa6f9db6475fce), // 0x1.0953f419900a7p+0, -0x1.a6f9db6475fcep-5
        e(0x3ff0000000000000, 0x0000000000000000), // 1, 0
        e(0x3fee608cfd9a47ac, 0x3fb338ca9f24f53d), // 0x1.e608cfd9a47acp-1, 0x1.338ca9f24f53dp-4
        e(0x3feca4b31f026aa0, 0x3fc476a9543891ba), // 0x1.ca4b31f026aap-1, 0x1.476a9543891bap-3
        e(0x3feb2036576afce6, 0x3fce840b4ac4e4d2), // 0x1.b2036576afce6p-1, 0x1.e840b4ac4e4d2p-3
        e(0x3fe9c2d163a1aa2d, 0x3fd40645f0c6651c), // 0x1.9c2d163a1aa2dp-1, 0x1.40645f0c6651cp-2
        e(0x3fe886e6037841ed, 0x3fd88e9c2c1b9ff8), // 0x1.886e6037841edp-1, 0x1.88e9c2c1b9ff8p-2
        e(0x3fe767dcf5534862, 0x3fdce0a44eb17bcc), // 0x1.767dcf5534862p-1, 0x1.ce0a44eb17bccp-2
    ]
};

/// `log1p(r)/ln 2 ≈ A0·r⁵ + A1·r⁴ + A2·r³ + A3·r² + A4·r`
/// (0x1.27616c9496e0bp-2, −0x1.71969a075c67ap-2, 0x1.ec70a6ca7baddp-2, −0x1.7154748bef6c8p-1,
/// 0x1.71547652ab82bp0).
const LOG2_POLY: [f64; 5] = [
    f64::from_bits(0x3fd27616c9496e0b),
    f64::from_bits(0xbfd71969a075c67a),
    f64::from_bits(0x3fdec70a6ca7badd),
    f64::from_bits(0xbfe7154748bef6c8),
    f64::from_bits(0x3ff71547652ab82b),
];

/// Added to the scale's bits (shifted left by 47) to negate the result of a negative base
/// raised to an odd integer.
const SIGN_BIAS: u64 = 1 << 16;

/// Above this `y·log2 x` the result is infinite (0x1.fffffffd1d571p+6).
const OVERFLOW_BOUND: f64 = f64::from_bits(0x405fffffffd1d571);

/// `log2` of the positive finite float with bits `ix`; a normalised subnormal may arrive with
/// a "negative" biased exponent (the subtraction wrapped), which the arithmetic shift below
/// turns back into the right power of two.
#[inline(always)]
fn log2(ix: u32) -> f64 {
    // x = 2^k · z with z in [OFF, 2·OFF), exactly.
    let tmp = ix.wrapping_sub(OFF);
    let i = ((tmp >> (23 - LOG2_TABLE_BITS)) % (1 << LOG2_TABLE_BITS)) as usize;
    let top = tmp & 0xff80_0000;
    let z = f64::from(f32::from_bits(ix.wrapping_sub(top)));
    let k = (top as i32) >> 23;
    let (invc, logc) = LOG2_TABLE[i];
    // log2 x = log1p(z/c − 1)/ln2 + log2 c + k.
    let r = fma(z, invc, -1.0);
    let y0 = logc + f64::from(k);
    let [a0, a1, a2, a3, a4] = LOG2_POLY;
    let r2 = r * r;
    let y = fma(a0, r, a1);
    let p = fma(a2, r, a3);
    let r4 = r2 * r2;
    let q = fma(a4, r, y0);
    let q = fma(p, r2, q);
    fma(y, r4, q)
}

/// Whether `bits` is ±0, ±∞ or NaN.
#[inline(always)]
fn zero_inf_nan(bits: u32) -> bool {
    (bits << 1).wrapping_sub(1) >= (0x7f80_0000u32 << 1) - 1
}

/// What a nonzero finite `y` is: not an integer, an odd integer or an even integer.
#[derive(PartialEq, Eq)]
enum Parity {
    NotInt,
    Odd,
    Even,
}

fn parity(iy: u32) -> Parity {
    let e = (iy >> 23) & 0xff;
    if e < 0x7f {
        return Parity::NotInt;
    }
    if e > 0x7f + 23 {
        return Parity::Even;
    }
    let unit = 1u32 << (0x7f + 23 - e);
    if iy & (unit - 1) != 0 {
        Parity::NotInt
    } else if iy & unit != 0 {
        Parity::Odd
    } else {
        Parity::Even
    }
}

/// A signalling NaN (quiet bit clear). glibc returns `x + y` for these where a quiet NaN
/// gives 1.
#[inline(always)]
fn is_signaling(bits: u32) -> bool {
    ((bits ^ 0x0040_0000) & 0x7fff_ffff) > 0x7fc0_0000
}

/// The special inputs: `x` zero, subnormal, negative, infinite or NaN, or `y` zero, infinite or
/// NaN. Returns the result, or the bits of `|x|` (subnormals normalised) and the sign bias to
/// carry on with.
#[cold]
fn special(x: f32, y: f32) -> Result<(u32, u64), f32> {
    let mut ix = x.to_bits();
    let iy = y.to_bits();
    let mut sign_bias = 0;
    if zero_inf_nan(iy) {
        if iy << 1 == 0 {
            return Err(if is_signaling(ix) { x + y } else { 1.0 });
        }
        if ix == 0x3f80_0000 {
            return Err(if is_signaling(iy) { x + y } else { 1.0 });
        }
        if ix << 1 > 0x7f80_0000 << 1 || iy << 1 > 0x7f80_0000 << 1 {
            return Err(x + y);
        }
        if ix << 1 == 0x3f80_0000 << 1 {
            return Err(1.0);
        }
        // |x| < 1 with y = +∞, or |x| > 1 with y = −∞.
        if (ix << 1 < 0x3f80_0000 << 1) == (iy & 0x8000_0000 == 0) {
            return Err(0.0);
        }
        return Err(y * y);
    }
    if zero_inf_nan(ix) {
        let mut x2 = x * x;
        if ix & 0x8000_0000 != 0 && parity(iy) == Parity::Odd {
            x2 = -x2;
        }
        return Err(if iy & 0x8000_0000 != 0 { 1.0 / x2 } else { x2 });
    }
    // x and y are nonzero and finite.
    if ix & 0x8000_0000 != 0 {
        match parity(iy) {
            // A negative base to a non-integer power; glibc's NaN payload is not reproduced.
            Parity::NotInt => return Err(f32::NAN),
            Parity::Odd => sign_bias = SIGN_BIAS,
            Parity::Even => {}
        }
        ix &= 0x7fff_ffff;
    }
    if ix < 0x0080_0000 {
        // Subnormal: scale into the normal range and take 23 off the exponent, which may
        // wrap below zero (see `log2`).
        ix = (x * 8_388_608.0).to_bits() & 0x7fff_ffff;
        ix = ix.wrapping_sub(23 << 23);
    }
    Ok((ix, sign_bias))
}

/// `x^y` for `f32` with glibc's bits (ulp error ≤ 0.82).
pub fn powf(x: f32, y: f32) -> f32 {
    let ix = x.to_bits();
    let (ix, sign_bias) =
        if ix.wrapping_sub(0x0080_0000) >= 0x7f80_0000 - 0x0080_0000 || zero_inf_nan(y.to_bits()) {
            match special(x, y) {
                Ok(v) => v,
                Err(result) => return result,
            }
        } else {
            (ix, 0)
        };
    // Cannot overflow: |y| < 2^128 and |log2 x| < 150.
    let ylogx = f64::from(y) * log2(ix);
    // |y·log2 x| ≥ 126 (compared on the top bits, as glibc does).
    if ((ylogx.to_bits() >> 47) & 0xffff) >= 126.0f64.to_bits() >> 47 {
        let negative = sign_bias != 0;
        if ylogx > OVERFLOW_BOUND {
            return if negative {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            };
        }
        if ylogx <= -150.0 {
            return if negative { -0.0 } else { 0.0 };
        }
        if ylogx < -149.0 {
            // Between 2^-150 and 2^-149: rounds to the smallest subnormal.
            let tiny = f32::from_bits(1);
            return if negative { -tiny } else { tiny };
        }
        // Otherwise (including the results just below f32::MAX that may round up to ∞ in
        // round-to-nearest) the general path gives the rounded result.
    }
    exp2_to_f32(ylogx, sign_bias)
}
