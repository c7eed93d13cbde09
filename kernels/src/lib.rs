//! # airllm-kernels
//!
//! The Q40/Q80 block formats and every kernel an LLM node needs, with one scalar reference
//! and hand-vectorised AVX2, AVX-512 and NEON implementations that give the **same bits**.
//!
//! `#![no_std]`, no allocation. With the default `std` feature the implementation is chosen at
//! run time ([`current`], cached after the first call); without it, from the compile-time
//! target features. [`Kernels::new`] gives any available [`Impl`]; [`force`] changes the
//! global choice; [`available`] lists what runs here.
//!
//! ## Threads
//! Every kernel takes `(n_threads, thread_index)` and computes only its share, split as
//! distributed-llama splits work ([`split`]: `len / n` items each, the first `len % n` threads
//! one more). The unit split is documented per kernel (rows, blocks, heads, elements). Outputs
//! are [`Out`] buffers, so one buffer can be shared by a pool of threads (see [`Out::shared`]).
//!
//! ## The numerical contract
//! The scalar reference reproduces distributed-llama's x86-64 (AVX2/AVX-512) build at commit
//! 8d624a7; every vector implementation reproduces the scalar reference bit for bit, for every
//! thread split and batch size, for finite inputs. The rules:
//!
//! - **f16** scales: f32 → f16 rounds to nearest even (F16C); f16 → f32 is exact.
//! - **Q80 quantisation**: `amax` = max |x| of the block; `d = amax / 127` in f32;
//!   `id = d ≠ 0 ? 1/d : 0` from the *unrounded* `d`; `q = rint(x · id)` (ties to even), kept as
//!   its low byte; the stored scale is `f16(d)`.
//! - **Q40 quantisation**: `max` = the first element of largest magnitude, with its sign;
//!   `d = max / −8`; `id = d ≠ 0 ? 1/d : 0`; nibble = `min((u8)(i8)trunc(x·id + 8.5), 15)`.
//! - **Q80 × Q40 matmul** (row-major, batched, and the 16-row packed layout alike): per output
//!   row, `acc = fma(float(Σ wq·xq), f32(dW)·f32(dX), acc)`
//!   over blocks in order from 0 (the integer block dot is exact; the scale product is rounded
//!   to f32 before the FMA).
//! - **F32 dot products** (F32 matmul rows, attention scores, the RMS sum of squares): 8 FMA
//!   lanes, element `i` into lane `i mod 8`, reduced as `((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7))`.
//! - **Inverse RMS**: `1 / sqrtf(dot8(x,x) / len + eps)`. **RMS norm**: `(x·inv)·w`; for Q80
//!   input `w·((inv·d)·q)`.
//! - **exp**: on full groups of 8 counted from the start of the row, the peer's polynomial
//!   ([`math::exp_poly`]); on the last `len mod 8` elements, [`math::expf`].
//! - **Softmax**: max; `e = exp(x − max)`, the group exps summed in 8 lanes and reduced as
//!   above, the tail exps added one at a time after; a zero sum becomes 1e-6; every element
//!   times `1/sum`.
//! - **SiLU**: `x / (1 + exp(0 − x))` with the exp rule above; **GELU**: the tanh form.
//! - **Attention**: `score_t = dot8(q, K_t) / sqrtf(head_dim)`, softmax over `t = 0..=pos`,
//!   then `y = fma(a_t, V_t, y)` for `t` in order from zero.
//! - **RoPE**: llama pairs `x0' = x0·c − x1·s`, `x1' = x0·s + x1·c` (each product rounded);
//!   falcon halves `x0' = fma(x0, c, −(x1·s))`, `x1' = fma(x0, s, x1·c)`; caches from
//!   [`math::powf`], [`math::cosf`], [`math::sinf`].
//! - **Merge-add**: F32 `y + x`; Q80 `fma(d, q, y)`. **Mul**, **scale**: one rounding each.
//! - **MoE gate**: top-k by value (ties: lower index), optional normalisation by the in-order
//!   sum of the chosen values.
//!
//! NaN and infinite inputs never cause undefined behaviour, but their results are outside the
//! contract.

#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod api;
mod arch;
pub mod block;
mod dispatch;
mod error;
pub mod math;
mod out;
pub mod rope;
mod scalar;
mod split;

pub use api::{
    pack_q40_rows, packed_q40_len, unpack_q40_rows, AttentionShape, PackedQ40, RopeSlice, PACK_ROWS,
};
pub use block::{BlockQ40, BlockQ80, QK};
pub use dispatch::{available, best, current, force, reset, Impl, Kernels};
pub use error::KernelError;
pub use out::Out;
pub use split::split;
