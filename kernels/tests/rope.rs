//! RoPE: every implementation against the scalar reference bit for bit, on node slices from
//! `RopeSlice::for_node` with caches from `airllm_kernels::rope::fill_*`, for every thread
//! split; the rounding rule of each variant by hand; error paths. Test names carry the
//! implementation (`avx2::llama`, …).

mod common;

use common::handle;

use airllm_kernels::math::fma;
use airllm_kernels::rope::{fill_falcon_cache, fill_llama_cache, RopeScaling};
use airllm_kernels::{Impl, KernelError, Kernels, RopeSlice};
use common::{bits, each_thread, f32_vec};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(128)
}

/// A model shape sliced over `n_nodes`, one node of it, a position and q-or-k.
#[derive(Clone, Debug)]
struct Case {
    slice: RopeSlice,
    pos: usize,
    is_q: bool,
    scaled: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1usize), Just(2), Just(4)],
        1usize..=2,
        1usize..=4,
        prop_oneof![
            Just(2usize),
            Just(6),
            Just(8),
            Just(16),
            Just(18),
            Just(32),
            Just(64)
        ],
        1usize..24,
        prop_oneof![Just(10000.0f32), Just(500000.0f32)],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(
            |(n_nodes, kv_per_node, kv_mul, hd, seq_len, theta, is_q, scaled)| {
                let n_kv = kv_per_node * n_nodes;
                let (q_dim, kv_dim) = (n_kv * kv_mul * hd, n_kv * hd);
                (0..n_nodes, 0..seq_len).prop_map(move |(node, pos)| Case {
                    slice: RopeSlice::for_node(
                        q_dim, kv_dim, n_kv, n_nodes, seq_len, hd, theta, node,
                    ),
                    pos,
                    is_q,
                    scaled,
                })
            },
        )
}

fn dim0(c: &Case) -> usize {
    if c.is_q {
        c.slice.q_dim0
    } else {
        c.slice.kv_dim0
    }
}

const LLAMA3: RopeScaling = RopeScaling {
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    orig_max_seq_len: 8192,
};

fn check_llama(imp: Impl, c: &Case, x: &[f32], n_threads: usize) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let s = &c.slice;
    let mut cache = vec![0.0f32; s.seq_len * s.slice_dim];
    let scaling = c.scaled.then_some(&LLAMA3);
    fill_llama_cache(&mut cache[..], s, scaling, 1, 0).unwrap();
    let mut want = x.to_vec();
    Kernels::scalar()
        .rope_llama(&mut want[..], &cache, c.is_q, c.pos, s, 1, 0)
        .unwrap();
    let mut got = x.to_vec();
    each_thread(n_threads, |n, t| {
        k.rope_llama(&mut got[..], &cache, c.is_q, c.pos, s, n, t)
            .unwrap()
    });
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} llama {:?} threads {}",
        imp,
        c,
        n_threads
    );
    Ok(())
}

fn check_falcon(imp: Impl, c: &Case, x: &[f32], n_threads: usize) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let s = &c.slice;
    let mut cache = vec![0.0f32; s.seq_len * s.head_dim];
    fill_falcon_cache(&mut cache[..], s, 1, 0).unwrap();
    let mut want = x.to_vec();
    Kernels::scalar()
        .rope_falcon(&mut want[..], &cache, c.is_q, c.pos, s, 1, 0)
        .unwrap();
    let mut got = x.to_vec();
    each_thread(n_threads, |n, t| {
        k.rope_falcon(&mut got[..], &cache, c.is_q, c.pos, s, n, t)
            .unwrap()
    });
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} falcon {:?} threads {}",
        imp,
        c,
        n_threads
    );
    Ok(())
}

/// A case with its input vector.
fn case_x() -> impl Strategy<Value = (Case, Vec<f32>)> {
    case().prop_flat_map(|c| {
        let n = dim0(&c);
        (Just(c), f32_vec(n))
    })
}

macro_rules! impl_tests {
    ($m:ident, $imp:expr) => {
        mod $m {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn llama((c, x) in case_x(), n_threads in 1usize..=9) {
                    check_llama($imp, &c, &x, n_threads)?;
                }

                #[test]
                fn falcon((c, x) in case_x(), n_threads in 1usize..=9) {
                    check_falcon($imp, &c, &x, n_threads)?;
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl_tests!(avx2, Impl::Avx2);
#[cfg(target_arch = "x86_64")]
impl_tests!(avx512, Impl::Avx512);
#[cfg(target_arch = "x86_64")]
impl_tests!(avx512vnni, Impl::Avx512Vnni);
#[cfg(target_arch = "aarch64")]
impl_tests!(neon, Impl::Neon);
#[cfg(target_arch = "aarch64")]
impl_tests!(neon_dotprod, Impl::NeonDotprod);

/// A one-pair, one-position slice whose cache the test writes itself.
fn tiny_slice(head_dim: usize) -> RopeSlice {
    RopeSlice::for_node(head_dim, head_dim, 1, 1, 1, head_dim, 10000.0, 0)
}

/// Values where the fused and unfused forms of `a·b ± c·d` differ in the last bit, to pin
/// down which one each variant uses: llama rounds every product (the peer's `vaddsubps`),
/// falcon fuses one product into each output.
#[test]
fn rounding_rule_by_hand() {
    let (v0, v1) = (1.0f32 + f32::EPSILON, 1.0f32 - f32::EPSILON / 2.0);
    let (c, s) = (1.0f32 + 3.0 * f32::EPSILON, 1.0f32 + f32::EPSILON);
    let unfused = [v0 * c - v1 * s, v0 * s + v1 * c];
    let fused = [fma(v0, c, -(v1 * s)), fma(v0, s, v1 * c)];
    assert_ne!(
        bits(&unfused),
        bits(&fused),
        "the inputs must tell the two forms apart"
    );
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        let mut x = [v0, v1];
        k.rope_llama(&mut x[..], &[c, s], false, 0, &tiny_slice(2), 1, 0)
            .unwrap();
        assert_eq!(bits(&x), bits(&unfused), "{imp} llama");
        let mut x = [v0, v1];
        k.rope_falcon(&mut x[..], &[c, s], false, 0, &tiny_slice(2), 1, 0)
            .unwrap();
        assert_eq!(bits(&x), bits(&fused), "{imp} falcon");
        // Position 0: cos = 1, sin = 0, the identity (from the real caches).
        let sl = RopeSlice::for_node(16, 8, 1, 1, 2, 8, 10000.0, 0);
        let mut cache = vec![0.0f32; 2 * sl.slice_dim];
        fill_llama_cache(&mut cache[..], &sl, None, 1, 0).unwrap();
        let q: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let mut x = q.clone();
        k.rope_llama(&mut x[..], &cache, true, 0, &sl, 1, 0)
            .unwrap();
        assert_eq!(x, q, "{imp}");
        let mut fc = vec![0.0f32; 2 * 8];
        fill_falcon_cache(&mut fc[..], &sl, 1, 0).unwrap();
        let mut x = q.clone();
        k.rope_falcon(&mut x[..], &fc, true, 0, &sl, 1, 0).unwrap();
        assert_eq!(x, q, "{imp}");
    }
}

#[test]
fn error_paths() {
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        let sl = RopeSlice::for_node(16, 8, 1, 1, 2, 8, 10000.0, 0);
        let cache = vec![0.0f32; 2 * sl.slice_dim];
        let mut x = [0.0f32; 16];
        // pos past seq_len
        assert!(matches!(
            k.rope_llama(&mut x[..], &cache, true, 2, &sl, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            k.rope_falcon(&mut x[..], &cache, true, 2, &sl, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        // x of the wrong length (k has kv_dim0 = 8)
        assert!(matches!(
            k.rope_llama(&mut x[..], &cache, false, 0, &sl, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        // cache too short for the row
        assert!(matches!(
            k.rope_llama(&mut x[..], &cache[..30], true, 1, &sl, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        // odd head_dim for falcon
        let odd = RopeSlice { head_dim: 3, ..sl };
        assert!(matches!(
            k.rope_falcon(&mut x[..], &cache, true, 0, &odd, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            k.rope_llama(&mut x[..], &cache, true, 0, &sl, 3, 3),
            Err(KernelError::BadThreadSplit { .. })
        ));
        assert_eq!(x, [0.0; 16]);
    }
}
