//! RMS normalisation: every implementation against the scalar reference bit for bit, for
//! every thread split; hand-computed inverse RMS values; error paths. Test names carry the
//! implementation (`avx2::inv_rms`, …).

mod common;

use common::handle;

use airllm_kernels::{BlockQ80, Impl, KernelError, Kernels};
use common::{any_f32, bits, each_thread, f32_vec, q80_blocks, Placed};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(192)
}

fn eps() -> impl Strategy<Value = f32> {
    prop_oneof![Just(1e-5f32), Just(1e-6f32), Just(0.0f32), 0.0f32..1.0]
}

fn check_inv_rms(
    imp: Impl,
    groups: usize,
    x: &[f32],
    eps: f32,
    n_threads: usize,
) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = vec![0.0f32; groups];
    Kernels::scalar()
        .inv_rms(&mut want[..], x, eps, 1, 0)
        .unwrap();
    let mut got = vec![0.0f32; groups];
    each_thread(n_threads, |n, t| {
        k.inv_rms(&mut got[..], x, eps, n, t).unwrap()
    });
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} inv_rms groups {} len {}",
        imp,
        groups,
        x.len()
    );
    Ok(())
}

/// `rms_norm` with the output, `x` and `w` placed at the element offsets `at`.
fn check_rms_norm(
    imp: Impl,
    x: &[f32],
    w: &[f32],
    inv: f32,
    n_threads: usize,
    at: (usize, usize, usize),
) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = vec![0.0f32; x.len()];
    Kernels::scalar()
        .rms_norm(&mut want[..], x, w, inv, 1, 0)
        .unwrap();
    let mut got = Placed::new(&vec![0.0f32; x.len()], at.0);
    let (x, w) = (Placed::new(x, at.1), Placed::new(w, at.2));
    each_thread(n_threads, |n, t| {
        k.rms_norm(got.get_mut(), x.get(), w.get(), inv, n, t)
            .unwrap()
    });
    prop_assert_eq!(
        bits(got.get()),
        bits(&want),
        "{} rms_norm len {} at {:?}",
        imp,
        x.get().len(),
        at
    );
    Ok(())
}

fn check_rms_norm_q80(
    imp: Impl,
    x: &[BlockQ80],
    w: &[f32],
    inv: f32,
    n_threads: usize,
) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = vec![0.0f32; w.len()];
    Kernels::scalar()
        .rms_norm_q80(&mut want[..], x, w, inv, 1, 0)
        .unwrap();
    let mut got = vec![0.0f32; w.len()];
    each_thread(n_threads, |n, t| {
        k.rms_norm_q80(&mut got[..], x, w, inv, n, t).unwrap()
    });
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} rms_norm_q80 blocks {}",
        imp,
        x.len()
    );
    Ok(())
}

macro_rules! impl_tests {
    ($m:ident, $imp:expr) => {
        mod $m {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn inv_rms(
                    (groups, x) in (1usize..5, 1usize..300)
                        .prop_flat_map(|(g, len)| (Just(g), f32_vec(g * len))),
                    eps in eps(),
                    n_threads in 1usize..=9,
                ) {
                    check_inv_rms($imp, groups, &x, eps, n_threads)?;
                }

                #[test]
                fn rms_norm(
                    (x, w) in (0usize..300).prop_flat_map(|n| (f32_vec(n), f32_vec(n))),
                    inv in any_f32(),
                    n_threads in 1usize..=9,
                    at in (0usize..16, 0usize..16, 0usize..16),
                ) {
                    check_rms_norm($imp, &x, &w, inv, n_threads, at)?;
                }

                #[test]
                fn rms_norm_q80(
                    (x, w) in (0usize..10).prop_flat_map(|nb| (q80_blocks(nb), f32_vec(nb * 32))),
                    inv in any_f32(),
                    n_threads in 1usize..=9,
                ) {
                    check_rms_norm_q80($imp, &x, &w, inv, n_threads)?;
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

/// Every implementation, the reference included, on groups worked out by hand (all sums of
/// squares here are small integers, exact in any order).
#[test]
fn inv_rms_golden() {
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        let mut out = [0.0f32; 1];
        // 16 × 2² = 64, mean 4, √4 = 2: 1/2.
        k.inv_rms(&mut out[..], &[2.0; 16], 0.0, 1, 0).unwrap();
        assert_eq!(out, [0.5], "{imp}");
        // 1+1+1+1 = 4, mean 1, + eps 3 = 4: 1/2 (eps is added after the mean).
        k.inv_rms(&mut out[..], &[1.0, -1.0, 1.0, -1.0], 3.0, 1, 0)
            .unwrap();
        assert_eq!(out, [0.5], "{imp}");
        // 1² + … + 9² = 285 over 9 elements (one full group of 8 and a tail of 1).
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        k.inv_rms(&mut out[..], &x, 1e-5, 1, 0).unwrap();
        assert_eq!(out, [1.0 / (285.0f32 / 9.0 + 1e-5).sqrt()], "{imp}");
        // Two groups of 2: [3, 4] → 25/2 = 12.5; [0, 0] → eps only.
        let mut out2 = [0.0f32; 2];
        k.inv_rms(&mut out2[..], &[3.0, 4.0, 0.0, 0.0], 0.25, 1, 0)
            .unwrap();
        assert_eq!(out2, [1.0 / 12.75f32.sqrt(), 2.0], "{imp}");
        // The norm itself: (x · inv) · w.
        let mut y = [0.0f32; 3];
        k.rms_norm(&mut y[..], &[2.0, -4.0, 6.0], &[1.0, 0.5, -2.0], 0.5, 1, 0)
            .unwrap();
        assert_eq!(y, [1.0, -1.0, -6.0], "{imp}");
    }
}

#[test]
fn error_paths() {
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        let mut out = [0.0f32; 2];
        let x = [1.0f32; 5];
        assert!(matches!(
            k.inv_rms(&mut out[..0], &x, 0.0, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            k.inv_rms(&mut out[..], &[], 0.0, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            k.inv_rms(&mut out[..], &x, 0.0, 1, 0),
            Err(KernelError::NotMultiple { .. })
        ));
        assert!(matches!(
            k.inv_rms(&mut out[..], &x[..4], 0.0, 2, 2),
            Err(KernelError::BadThreadSplit { .. })
        ));
        let mut y = [0.0f32; 5];
        assert!(matches!(
            k.rms_norm(&mut y[..], &x, &x[..4], 1.0, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert!(matches!(
            k.rms_norm(&mut y[..4], &x, &x, 1.0, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        let blocks = [BlockQ80::default(); 1];
        let mut y32 = [0.0f32; 32];
        assert!(matches!(
            k.rms_norm_q80(&mut y32[..], &blocks, &x, 1.0, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert!(matches!(
            k.rms_norm_q80(&mut y[..], &blocks, &[0.0; 32], 1.0, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert_eq!(out, [0.0; 2]);
        assert_eq!(y, [0.0; 5]);
    }
}
