//! `expf`, `powf`, `sinf` and `cosf` that give the bits of glibc (2.28 and later) on x86-64.
//!
//! glibc's single-precision functions come from Arm's optimized-routines: table lookups and
//! short polynomials evaluated in `f64`, rounded once to `f32` at the end. On x86-64 glibc
//! selects a build compiled for FMA whenever the CPU has FMA and AVX2, and the compiler fused
//! most `a * b + c` expressions of that build into single FMAs. Which ones were fused decides
//! the last bit of the rare results that lie close to a rounding boundary, so every step below
//! uses [`fma`] exactly where that build has an FMA instruction and a plain `f64` operation
//! everywhere else. Plain `f64` `+`, `-`, `*` and integer code are IEEE-exact on every target,
//! so the results are the same bits everywhere.
//!
//! Only the default rounding mode is supported (Rust assumes it anyway), and `errno` is not
//! set; NaN inputs give a NaN whose payload is not part of the contract.

mod exp;
mod pow;
mod sincos;

pub use exp::expf;
pub use pow::powf;
pub use sincos::{cosf, sinf};

/// `a * b + c` with one rounding, on every target (software when the CPU lacks FMA).
#[inline(always)]
fn fma(a: f64, b: f64, c: f64) -> f64 {
    // libm picks hardware FMA with `cpuid`, which Miri cannot run; std's is the same operation.
    #[cfg(all(miri, feature = "std"))]
    return a.mul_add(b, c);
    #[cfg(not(all(miri, feature = "std")))]
    libm::fma(a, b, c)
}

/// Exponent and top mantissa bits of `|x|`: a cheap magnitude class shared by every entry
/// point (the same comparisons as glibc, so range boundaries fall on the same inputs).
#[inline(always)]
fn abstop12(x: f32) -> u32 {
    (x.to_bits() >> 20) & 0x7ff
}
