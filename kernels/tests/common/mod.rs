//! Shared generators and checks for the bit-for-bit tests.
#![allow(dead_code)]

use airllm_kernels::{available, BlockQ40, BlockQ80, Impl, KernelError, Kernels};
use proptest::prelude::*;

/// Every implementation that runs here except the reference, which the tests compare against.
pub fn vector_impls() -> Vec<Kernels> {
    available()
        .filter(|i| *i != Impl::Scalar)
        .map(|i| Kernels::new(i).unwrap())
        .collect()
}

/// One f32 from the mix the contract must survive: ordinary values, zeros of both signs,
/// denormals, large and tiny magnitudes.
pub fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => (1u32..0x007f_ffff).prop_map(f32::from_bits),
        1 => (1u32..0x007f_ffff).prop_map(|m| -f32::from_bits(m)),
        1 => -1.0e30f32..1.0e30,
        1 => -1.0e-30f32..1.0e-30,
    ]
}

/// A vector of `len` values: either drawn element by element from [`any_f32`], or all equal.
pub fn f32_vec(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        4 => proptest::collection::vec(any_f32(), len),
        1 => any_f32().prop_map(move |v| vec![v; len]),
    ]
}

/// Moderate values (|x| ≤ 8) for kernels whose outputs must stay finite (softmax, matmul sums).
pub fn moderate_vec(len: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-8.0f32..8.0, len)
}

/// A finite f16 scale's bits (no inf/NaN exponents).
pub fn f16_scale() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => 0u16..0x7c00, // positive finite, denormals included
        2 => (0u16..0x7c00).prop_map(|b| b | 0x8000),
        1 => Just(0u16),
    ]
}

/// `n` random Q40 blocks.
pub fn q40_blocks(n: usize) -> impl Strategy<Value = Vec<BlockQ40>> {
    proptest::collection::vec(
        (f16_scale(), proptest::array::uniform16(any::<u8>()))
            .prop_map(|(d, qs)| BlockQ40 { d, qs }),
        n,
    )
}

/// `n` random Q80 blocks (values in the full i8 range, −128 included).
pub fn q80_blocks(n: usize) -> impl Strategy<Value = Vec<BlockQ80>> {
    proptest::collection::vec(
        (f16_scale(), proptest::array::uniform32(any::<i8>()))
            .prop_map(|(d, qs)| BlockQ80 { d, qs }),
        n,
    )
}

/// Bit patterns of a float slice, for exact comparison (distinguishes −0 and +0).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs `f(n_threads, thread_index)` for every thread index of an `n_threads` split, in order:
/// the union of all thread shares must equal a one-thread call.
pub fn each_thread(n_threads: usize, mut f: impl FnMut(usize, usize)) {
    for t in 0..n_threads {
        f(n_threads, t);
    }
}

/// The handle for `imp`, or `None` where this CPU cannot run it (after checking that it is
/// refused as unsupported, and saying so in the log).
pub fn handle(imp: Impl) -> Option<Kernels> {
    match Kernels::new(imp) {
        Ok(k) => Some(k),
        Err(e) => {
            assert_eq!(e, KernelError::Unsupported(imp));
            eprintln!("{imp}: not available on this CPU, skipped");
            None
        }
    }
}

/// A copy of a slice in a buffer where it starts `offset % 16` elements past a 64-byte
/// boundary: the vector paths align their stores to the output, so where the data sits
/// decides how a row splits into head, body and tail.
pub struct Placed {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Placed {
    pub fn new(x: &[f32], offset: usize) -> Placed {
        let mut buf = vec![0.0f32; x.len() + 32];
        let start = offset % 16 + buf.as_ptr().align_offset(64).min(16) % 16;
        buf[start..start + x.len()].copy_from_slice(x);
        Placed {
            buf,
            start,
            len: x.len(),
        }
    }

    pub fn get(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }

    pub fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}
