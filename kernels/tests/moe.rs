//! MoE gate and KV-cache writes: hand-checked cases (ties, k, normalisation), a simple
//! independent top-k for random rows, thread splits, error paths. These kernels live in the
//! checked API (no per-implementation code), so every handle must give the same answer; test
//! names carry the implementation.

mod common;

use common::handle;

use airllm_kernels::{Impl, KernelError, Kernels};
use common::{bits, each_thread};
use proptest::prelude::*;

/// Top-k by sorting `(−value, index)`: largest first, lower index first on ties.
fn top_k_by_sort(row: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
    idx[..k].iter().map(|&i| i as u32).collect()
}

fn gate(
    k: &Kernels,
    probs: &[f32],
    n_exp: usize,
    topk: usize,
    norm: bool,
    n_threads: usize,
) -> (Vec<f32>, Vec<u32>) {
    let rows = probs.len() / n_exp;
    let mut w = vec![f32::NAN; rows * topk];
    let mut ix = vec![u32::MAX; rows * topk];
    each_thread(n_threads, |n, t| {
        k.moe_gate(&mut w[..], &mut ix[..], probs, n_exp, topk, norm, n, t)
            .unwrap()
    });
    (w, ix)
}

fn check_hand(imp: Impl) {
    let Some(k) = handle(imp) else { return };
    // Ties: 0.4 at experts 1 and 2 → 1 first; 0.1 at 0 and 3 → 0 first.
    let probs = [0.1f32, 0.4, 0.4, 0.1];
    let (w, ix) = gate(&k, &probs, 4, 2, false, 1);
    assert_eq!(ix, [1, 2]);
    assert_eq!(w, [0.4, 0.4]);
    let (w, ix) = gate(&k, &probs, 4, 3, false, 1);
    assert_eq!(ix, [1, 2, 0]);
    assert_eq!(w, [0.4, 0.4, 0.1]);
    // Normalised: p / (0.4 + 0.4), the sum taken in order.
    let (w, _) = gate(&k, &probs, 4, 2, true, 1);
    assert_eq!(w, [0.4 / (0.4f32 + 0.4), 0.4 / (0.4f32 + 0.4)]);
    assert_eq!(w, [0.5, 0.5]);
    // k = n_experts: every expert, sorted; normalised weights sum to the row's own sum.
    let probs = [0.25f32, 0.5, 0.125, 0.125];
    let (w, ix) = gate(&k, &probs, 4, 4, true, 1);
    assert_eq!(ix, [1, 0, 2, 3]);
    assert_eq!(w, [0.5, 0.25, 0.125, 0.125]);
    // Two rows, each gated on its own, split over 2 threads.
    let probs = [0.0f32, 1.0, 3.0, 2.0, /* row 1 */ 5.0, 5.0, 5.0, 6.0];
    let (w, ix) = gate(&k, &probs, 4, 1, false, 2);
    assert_eq!(ix, [2, 3]);
    assert_eq!(w, [3.0, 6.0]);
}

fn check_kv_write(imp: Impl) {
    let Some(k) = handle(imp) else { return };
    for n_threads in 1..=9 {
        let mut cache: Vec<f32> = (0..4 * 5).map(|i| -(i as f32)).collect();
        let before = cache.clone();
        let row = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        each_thread(n_threads, |n, t| {
            k.kv_write(&mut cache[..], &row, 2, n, t).unwrap()
        });
        assert_eq!(cache[10..15], row, "{imp} threads {n_threads}");
        assert_eq!(cache[..10], before[..10]);
        assert_eq!(cache[15..], before[15..]);
    }
    let mut cache = vec![0.0f32; 20];
    assert!(matches!(
        k.kv_write(&mut cache[..], &[1.0; 5], 4, 1, 0),
        Err(KernelError::BadArgument(_))
    ));
    assert!(matches!(
        k.kv_write(&mut cache[..], &[1.0; 6], 3, 1, 0),
        Err(KernelError::BadArgument(_))
    ));
    assert!(matches!(
        k.kv_write(&mut cache[..], &[1.0; 5], 0, 1, 1),
        Err(KernelError::BadThreadSplit { .. })
    ));
    assert_eq!(cache, vec![0.0; 20]);
}

fn check_errors(imp: Impl) {
    let Some(k) = handle(imp) else { return };
    let probs = [0.5f32; 8];
    let mut w = [0.0f32; 4];
    let mut ix = [0u32; 4];
    let mut run = |n_exp: usize, topk: usize, wl: usize, n: usize, t: usize| {
        k.moe_gate(&mut w[..wl], &mut ix[..wl], &probs, n_exp, topk, true, n, t)
    };
    assert!(matches!(
        run(4, 0, 4, 1, 0),
        Err(KernelError::BadArgument(_))
    ));
    assert!(matches!(
        run(4, 5, 4, 1, 0),
        Err(KernelError::BadArgument(_))
    ));
    assert!(matches!(
        run(3, 1, 4, 1, 0),
        Err(KernelError::NotMultiple { .. })
    ));
    assert!(matches!(
        run(4, 2, 3, 1, 0),
        Err(KernelError::BadSize { .. })
    ));
    assert!(matches!(
        run(4, 2, 4, 1, 1),
        Err(KernelError::BadThreadSplit { .. })
    ));
    assert_eq!(w, [0.0; 4]);
}

/// Rows of probabilities with many ties (values from a small set).
fn probs() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1usize..5, 1usize..12).prop_flat_map(|(rows, n_exp)| {
        (
            Just(n_exp),
            1..=n_exp,
            proptest::collection::vec(
                prop_oneof![(0u8..6).prop_map(|v| v as f32 / 8.0), 0.0f32..1.0],
                rows * n_exp,
            ),
        )
    })
}

fn check_random(
    imp: Impl,
    n_exp: usize,
    topk: usize,
    p: &[f32],
    norm: bool,
    n_threads: usize,
) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let (w, ix) = gate(&k, p, n_exp, topk, norm, n_threads);
    for (r, row) in p.chunks_exact(n_exp).enumerate() {
        let want = top_k_by_sort(row, topk);
        prop_assert_eq!(
            &ix[r * topk..(r + 1) * topk],
            &want[..],
            "{} row {}",
            imp,
            r
        );
        let sum = if norm {
            want.iter().fold(0.0f32, |s, &i| s + row[i as usize])
        } else {
            1.0
        };
        let ws: Vec<f32> = want.iter().map(|&i| row[i as usize] / sum).collect();
        prop_assert_eq!(
            bits(&w[r * topk..(r + 1) * topk]),
            bits(&ws),
            "{} row {}",
            imp,
            r
        );
    }
    Ok(())
}

macro_rules! impl_tests {
    ($m:ident, $imp:expr) => {
        mod $m {
            use super::*;

            #[test]
            fn moe_gate_by_hand() {
                check_hand($imp);
            }

            #[test]
            fn kv_write() {
                check_kv_write($imp);
            }

            #[test]
            fn error_paths() {
                check_errors($imp);
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(128))]

                #[test]
                fn moe_gate_random((n_exp, topk, p) in probs(), norm in any::<bool>(), n_threads in 1usize..=9) {
                    check_random($imp, n_exp, topk, &p, norm, n_threads)?;
                }
            }
        }
    };
}

impl_tests!(scalar, Impl::Scalar);
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
