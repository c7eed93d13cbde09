//! Synthetic inputs: a small deterministic generator, random Q40 weights and Q80/F32
//! activations, and pools of weight copies for the streaming regime.

use airllm_kernels::block::f32_to_f16;
use airllm_kernels::{
    pack_q40_rows, packed_q40_len, BlockQ40, BlockQ80, KernelError, Kernels, PackedQ40, QK,
};

use crate::{Regime, STREAM_POOL_BYTES};

/// SplitMix64: fast, deterministic, good enough to keep branch predictors and compressors
/// from seeing patterns in benchmark data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[lo, hi)`.
    pub fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        // 24 random bits give every representable step of [0, 1) at f32 precision.
        let u = (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// `len` floats uniform in `[lo, hi)`.
pub fn f32_vec(len: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.f32_in(lo, hi)).collect()
}

/// `rows × (n/32)` random Q40 blocks: uniform nibbles and scales typical of trained weights
/// (|d| between 0.001 and 0.02).
pub fn q40_matrix(rows: usize, n: usize, seed: u64) -> Vec<BlockQ40> {
    let mut rng = Rng::new(seed);
    (0..rows * (n / QK))
        .map(|_| {
            let mut qs = [0u8; QK / 2];
            let a = rng.next_u64().to_le_bytes();
            let b = rng.next_u64().to_le_bytes();
            qs[..8].copy_from_slice(&a);
            qs[8..].copy_from_slice(&b);
            let d = rng.f32_in(0.001, 0.02) * if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
            BlockQ40 {
                d: f32_to_f16(d),
                qs,
            }
        })
        .collect()
}

/// The `d × n` row-major weights `w` in the packed layout of
/// [`Kernels::matmul_q80_q40_packed`] (`d/16 · n/32` [`PackedQ40`]s). Fails unless `n` is a
/// multiple of 32, `d` of [`airllm_kernels::PACK_ROWS`] and `w` holds `d · n/32` blocks.
pub fn pack_q40(w: &[BlockQ40], n: usize, d: usize) -> Result<Vec<PackedQ40>, KernelError> {
    let mut out = vec![PackedQ40::default(); packed_q40_len(n, d)?];
    pack_q40_rows(w, n, d, &mut out)?;
    Ok(out)
}

/// `len` random activations in `[-1, 1)` quantised to Q80 by the reference implementation
/// (`len` a multiple of 32).
pub fn q80_vec(len: usize, seed: u64) -> Vec<BlockQ80> {
    let x = f32_vec(len, seed, -1.0, 1.0);
    let mut out = vec![BlockQ80::default(); len / QK];
    Kernels::scalar()
        .quantize_q80(&mut out[..], &x, 1, 0)
        .expect("quantize_q80 on a multiple of 32 floats");
    out
}

/// One or more back-to-back copies of the same data: copy 0 serves the cache regime, and a
/// rotation over all of them the stream regime.
pub struct Copies<T> {
    data: Vec<T>,
    len: usize,
    copies: usize,
}

impl<T: Copy> Copies<T> {
    /// Copies of `base` for `regime`: just `base` for [`Regime::Cache`]; for
    /// [`Regime::Stream`] enough copies (at least 2) to total [`STREAM_POOL_BYTES`]. The pool
    /// is one allocation, freed when the value is dropped.
    pub fn new(base: Vec<T>, regime: Regime) -> Copies<T> {
        let len = base.len();
        let bytes = (len * size_of::<T>()).max(1);
        let copies = match regime {
            Regime::Cache => 1,
            Regime::Stream => STREAM_POOL_BYTES.div_ceil(bytes).max(2),
        };
        let mut data = base;
        data.reserve_exact(len * (copies - 1));
        for _ in 1..copies {
            data.extend_from_within(0..len);
        }
        Copies { data, len, copies }
    }

    /// Copy `i % copies`.
    #[inline]
    pub fn get(&self, i: usize) -> &[T] {
        let c = i % self.copies;
        &self.data[c * self.len..(c + 1) * self.len]
    }

    /// How many copies the pool holds.
    pub fn copies(&self) -> usize {
        self.copies
    }

    /// Bytes of one copy.
    pub fn bytes_per_copy(&self) -> usize {
        self.len * size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_pool_covers_the_minimum_and_copies_are_equal() {
        let base = q40_matrix(64, 4096, 1);
        let pool = Copies::new(base.clone(), Regime::Stream);
        assert!(pool.copies() * pool.bytes_per_copy() >= STREAM_POOL_BYTES);
        assert_eq!(pool.get(0), &base[..]);
        assert_eq!(pool.get(pool.copies() - 1), &base[..]);
        assert_eq!(pool.get(pool.copies()), &base[..]);
        let cache = Copies::new(base.clone(), Regime::Cache);
        assert_eq!(cache.copies(), 1);
        assert_eq!(cache.get(5), &base[..]);
    }

    #[test]
    fn packed_weights_give_the_row_major_bits() {
        let (n, d) = (128, 48);
        let w = q40_matrix(d, n, 9);
        let p = pack_q40(&w, n, d).unwrap();
        let x = q80_vec(n, 10);
        let k = Kernels::scalar();
        let mut a = vec![0f32; d];
        let mut b = vec![0f32; d];
        k.matmul_q80_q40(&mut a[..], &x, &w, n, d, 1, 0).unwrap();
        k.matmul_q80_q40_packed(&mut b[..], &x, &p, n, d, 1, 0)
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert!(pack_q40(&w[..w.len() - n / QK], n, d - 1).is_err());
    }

    #[test]
    fn generator_is_deterministic_and_in_range() {
        let a = f32_vec(1000, 7, -2.0, 3.0);
        assert_eq!(a, f32_vec(1000, 7, -2.0, 3.0));
        assert!(a.iter().all(|v| (-2.0..3.0).contains(v)));
        assert_ne!(a, f32_vec(1000, 8, -2.0, 3.0));
    }
}
