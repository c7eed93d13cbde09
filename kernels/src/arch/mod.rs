//! Vector implementations, one folder per architecture, each mirroring `scalar/`'s files.
//!
//! As in memchr, x86-64 SIMD is compiled only where SSE2 is a target feature (so soft-float
//! targets such as `x86_64-unknown-none` still build), and NEON only where the target has it.
//! Functions carry `#[target_feature]`; the tables that reach them are handed out only after
//! the CPU check in [`crate::dispatch`].

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) mod x86_64;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub(crate) mod aarch64;
