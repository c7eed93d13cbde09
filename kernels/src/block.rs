//! The Q40 and Q80 block formats, byte-compatible with distributed-llama's `NnBlockQ40` /
//! `NnBlockQ80` and ggml's `block_q4_0` / `block_q8_0`.

use half::f16;

/// Elements per quantisation block (both formats).
pub const QK: usize = 32;

/// 32 weights in 18 bytes: an f16 scale and 16 bytes of nibbles.
///
/// `qs[j] & 0x0F` is element `j`, `qs[j] >> 4` is element `j + 16` (j < 16); the value of a
/// nibble `q` is `(q - 8) * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockQ40 {
    /// Scale, IEEE binary16 bits.
    pub d: u16,
    /// Packed nibbles, low half = elements 0..16, high half = elements 16..32.
    pub qs: [u8; QK / 2],
}

/// 32 activations in 34 bytes: an f16 scale and 32 signed bytes; value `j` is `qs[j] * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockQ80 {
    /// Scale, IEEE binary16 bits.
    pub d: u16,
    /// Quantised values.
    pub qs: [i8; QK],
}

impl Default for BlockQ80 {
    fn default() -> Self {
        BlockQ80 { d: 0, qs: [0; QK] }
    }
}

const _: () = assert!(core::mem::size_of::<BlockQ40>() == 18);
const _: () = assert!(core::mem::align_of::<BlockQ40>() == 2);
const _: () = assert!(core::mem::size_of::<BlockQ80>() == 34);
const _: () = assert!(core::mem::align_of::<BlockQ80>() == 2);

impl BlockQ40 {
    /// The scale as f32 (exact).
    #[inline]
    pub fn scale(&self) -> f32 {
        f16_to_f32(self.d)
    }

    /// Element `i` (0..32) as the signed nibble value in `-8..=7`, before scaling.
    #[inline]
    pub fn nibble(&self, i: usize) -> i8 {
        let byte = self.qs[i % 16];
        let q = if i < 16 { byte & 0x0F } else { byte >> 4 };
        q as i8 - 8
    }
}

impl BlockQ80 {
    /// The scale as f32 (exact).
    #[inline]
    pub fn scale(&self) -> f32 {
        f16_to_f32(self.d)
    }
}

/// binary16 bits → f32; exact, as F16C's `vcvtph2ps`.
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    // Miri cannot run F16C, which `half` uses when the target has it; the const versions are
    // the same conversion in software.
    #[cfg(miri)]
    return f16::from_bits(bits).to_f32_const();
    #[cfg(not(miri))]
    f16::from_bits(bits).to_f32()
}

/// f32 → binary16 bits, round to nearest even, as F16C's `vcvtps2ph` with
/// `_MM_FROUND_TO_NEAREST_INT`.
#[inline]
pub fn f32_to_f16(v: f32) -> u16 {
    #[cfg(miri)]
    return f16::from_f32_const(v).to_bits();
    #[cfg(not(miri))]
    f16::from_f32(v).to_bits()
}

/// Bytes used by `n` elements of Q40 (`n` a multiple of 32).
pub const fn q40_bytes(n: usize) -> usize {
    n / QK * core::mem::size_of::<BlockQ40>()
}

/// Bytes used by `n` elements of Q80 (`n` a multiple of 32).
pub const fn q80_bytes(n: usize) -> usize {
    n / QK * core::mem::size_of::<BlockQ80>()
}
