//! Softmax, SiLU, GELU and the element-wise kernels: every implementation against the scalar
//! reference bit for bit, for every thread split; hand-computed softmax rows; error paths.
//! Test names carry the implementation (`avx2::softmax_rows`, `neon::silu`, …).

mod common;

use common::handle;

use airllm_kernels::{BlockQ80, Impl, KernelError, Kernels};
use common::{any_f32, bits, each_thread, f32_vec, moderate_vec, q80_blocks, Placed};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(192)
}

/// Rows of softmax input: moderate values, or the full mix (huge magnitudes, denormals,
/// all-equal rows).
fn softmax_input() -> impl Strategy<Value = (usize, Vec<f32>)> {
    (1usize..4, 1usize..80).prop_flat_map(|(rows, len)| {
        let n = rows * len;
        (Just(len), prop_oneof![moderate_vec(n), f32_vec(n)])
    })
}

fn check_softmax(imp: Impl, len: usize, x: &[f32], n_threads: usize) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = x.to_vec();
    Kernels::scalar().softmax(&mut want[..], len, 1, 0).unwrap();
    let mut got = x.to_vec();
    each_thread(n_threads, |n, t| {
        k.softmax(&mut got[..], len, n, t).unwrap()
    });
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} softmax len {} threads {}",
        imp,
        len,
        n_threads
    );
    Ok(())
}

/// One row softmaxed by `k` in a buffer where it starts `offset` elements (0..16) past a 64-byte
/// boundary, and by the reference: `(got, want)`.
fn softmax_placed(k: Kernels, x: &[f32], offset: usize) -> (Vec<f32>, Vec<f32>) {
    let len = x.len();
    let mut want = x.to_vec();
    Kernels::scalar().softmax(&mut want[..], len, 1, 0).unwrap();
    let mut got = Placed::new(x, offset);
    k.softmax(got.get_mut(), len, 1, 0).unwrap();
    (got.get().to_vec(), want)
}

/// Bit patterns with every NaN as one value: which NaN an operation returns is not part of
/// the contract.
fn nan_as_one(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
        .collect()
}

fn check_silu(imp: Impl, x: &[f32], n_threads: usize) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = x.to_vec();
    Kernels::scalar().silu(&mut want[..], 1, 0).unwrap();
    let mut got = x.to_vec();
    each_thread(n_threads, |n, t| k.silu(&mut got[..], n, t).unwrap());
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} silu len {} threads {}",
        imp,
        x.len(),
        n_threads
    );
    Ok(())
}

fn check_gelu(imp: Impl, x: &[f32], n_threads: usize) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = x.to_vec();
    Kernels::scalar().gelu(&mut want[..], 1, 0).unwrap();
    let mut got = x.to_vec();
    each_thread(n_threads, |n, t| k.gelu(&mut got[..], n, t).unwrap());
    prop_assert_eq!(bits(&got), bits(&want));
    Ok(())
}

/// `mul`, `add` and `scale` with `x` (the output) and `m` placed at the element offsets `at`.
fn check_elementwise(
    imp: Impl,
    x: &[f32],
    m: &[f32],
    s: f32,
    n_threads: usize,
    at: (usize, usize),
) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let sc = Kernels::scalar();
    let (mut w_mul, mut w_add, mut w_scale) = (x.to_vec(), x.to_vec(), x.to_vec());
    sc.mul(&mut w_mul[..], m, 1, 0).unwrap();
    sc.add(&mut w_add[..], m, 1, 0).unwrap();
    sc.scale(&mut w_scale[..], s, 1, 0).unwrap();
    let m = Placed::new(m, at.1);
    let (mut g_mul, mut g_add, mut g_scale) = (
        Placed::new(x, at.0),
        Placed::new(x, at.0),
        Placed::new(x, at.0),
    );
    each_thread(n_threads, |n, t| {
        k.mul(g_mul.get_mut(), m.get(), n, t).unwrap();
        k.add(g_add.get_mut(), m.get(), n, t).unwrap();
        k.scale(g_scale.get_mut(), s, n, t).unwrap();
    });
    prop_assert_eq!(bits(g_mul.get()), bits(&w_mul), "{} mul at {:?}", imp, at);
    prop_assert_eq!(bits(g_add.get()), bits(&w_add), "{} add at {:?}", imp, at);
    prop_assert_eq!(
        bits(g_scale.get()),
        bits(&w_scale),
        "{} scale at {:?}",
        imp,
        at
    );
    Ok(())
}

fn check_add_q80(
    imp: Impl,
    y: &[f32],
    x: &[BlockQ80],
    n_threads: usize,
) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let mut want = y.to_vec();
    Kernels::scalar().add_q80(&mut want[..], x, 1, 0).unwrap();
    let mut got = y.to_vec();
    each_thread(n_threads, |n, t| k.add_q80(&mut got[..], x, n, t).unwrap());
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} add_q80 blocks {}",
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
                fn softmax_rows((len, x) in softmax_input(), n_threads in 1usize..=9) {
                    check_softmax($imp, len, &x, n_threads)?;
                }

                #[test]
                fn softmax_long_row(x in moderate_vec(4096 + 5), n_threads in 1usize..=3) {
                    check_softmax($imp, x.len(), &x, n_threads)?;
                }

                /// Lengths on both sides of the wide path's thresholds (64 elements, len % 16).
                #[test]
                fn softmax_mid_rows(x in (60usize..700).prop_flat_map(moderate_vec)) {
                    check_softmax($imp, x.len(), &x, 1)?;
                }

                /// Every placement of a row relative to the 64-byte grid (the wide path
                /// aligns its vectors and rotates its 8-lane sum to match).
                #[test]
                fn softmax_any_alignment(
                    x in (90usize..400).prop_flat_map(|n| prop_oneof![moderate_vec(n), f32_vec(n)]),
                    offset in 0usize..16,
                ) {
                    let Some(k) = handle($imp) else { return Ok(()) };
                    let (got, want) = softmax_placed(k, &x, offset);
                    prop_assert_eq!(bits(&got), bits(&want), "offset {} len {}", offset, x.len());
                }

                /// Rows whose smallest exps sit on the polynomial's underflow edge (`x − max`
                /// around −87.68, where `2^n` turns from the least normal power into +0),
                /// with a few elements far below it.
                #[test]
                fn softmax_underflow_edge(
                    x in (90usize..300).prop_flat_map(|n| proptest::collection::vec(prop_oneof![
                        8 => -88.5f32..-86.8,
                        1 => -1.0e30f32..-100.0,
                        1 => -1.0f32..0.0,
                    ], n)),
                    shift in prop_oneof![Just(0.0f32), -50.0f32..50.0],
                ) {
                    let x: Vec<f32> = x.iter().map(|v| v + shift).collect();
                    check_softmax($imp, x.len(), &x, 1)?;
                }

                /// NaN and infinities anywhere in a row (the first element included) give
                /// what the reference gives, NaN for NaN.
                #[test]
                fn softmax_non_finite(
                    x in (1usize..300, 0usize..4).prop_flat_map(|(n, kind)| {
                        // NaN alone, −∞ alone, both, or all three with +∞ (whose maximum is
                        // not finite), a few per row.
                        let special = match kind {
                            0 => Just(f32::NAN).boxed(),
                            1 => Just(f32::NEG_INFINITY).boxed(),
                            2 => prop_oneof![Just(f32::NAN), Just(f32::NEG_INFINITY)].boxed(),
                            _ => prop_oneof![
                                Just(f32::NAN),
                                Just(f32::NEG_INFINITY),
                                Just(f32::INFINITY),
                            ]
                            .boxed(),
                        };
                        proptest::collection::vec(prop_oneof![12 => -8.0f32..8.0, 1 => special], n)
                    }),
                ) {
                    let Some(k) = handle($imp) else { return Ok(()) };
                    // Every placement against the 64-byte grid, so that each special also lands
                    // in the wide path's partial head and end vectors.
                    for offset in 0..16 {
                        let (got, want) = softmax_placed(k, &x, offset);
                        prop_assert_eq!(nan_as_one(&got), nan_as_one(&want), "offset {}", offset);
                    }
                }

                #[test]
                fn silu(x in (0usize..300).prop_flat_map(f32_vec), n_threads in 1usize..=9) {
                    check_silu($imp, &x, n_threads)?;
                }

                #[test]
                fn gelu(x in (0usize..100).prop_flat_map(f32_vec), n_threads in 1usize..=9) {
                    check_gelu($imp, &x, n_threads)?;
                }

                #[test]
                fn mul_add_scale(
                    (x, m) in (0usize..200).prop_flat_map(|n| (f32_vec(n), f32_vec(n))),
                    s in any_f32(),
                    n_threads in 1usize..=9,
                    at in (0usize..16, 0usize..16),
                ) {
                    check_elementwise($imp, &x, &m, s, n_threads, at)?;
                }

                #[test]
                fn add_q80(
                    (y, x) in (0usize..12).prop_flat_map(|nb| (f32_vec(nb * 32), q80_blocks(nb))),
                    n_threads in 1usize..=9,
                ) {
                    check_add_q80($imp, &y, &x, n_threads)?;
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

/// Every implementation, the reference included, on rows worked out by hand.
#[test]
fn softmax_golden_rows() {
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        // Two equal values (the `expf` tail only): e^0 = 1 each, sum 2.
        let mut x = [3.5f32, 3.5];
        k.softmax(&mut x[..], 2, 1, 0).unwrap();
        assert_eq!(x, [0.5, 0.5], "{imp}");
        // Eight equal values: one polynomial group, whose exp(0) is exactly 1.
        let mut x = [-2.0f32; 8];
        k.softmax(&mut x[..], 8, 1, 0).unwrap();
        assert_eq!(x, [0.125; 8], "{imp}");
        // Nine: eight polynomial exps and one tail exp, sum 9, every element times 1/9.
        let mut x = [7.0f32; 9];
        k.softmax(&mut x[..], 9, 1, 0).unwrap();
        assert_eq!(x, [1.0f32 / 9.0; 9], "{imp}");
        // ln 2 apart in a 2-element row: e^0 = 1 and e^−ln2 = 1/2 (to f32), sum 3/2.
        let mut x = [0.0f32, -core::f32::consts::LN_2];
        k.softmax(&mut x[..], 2, 1, 0).unwrap();
        let half = airllm_kernels::math::expf(-core::f32::consts::LN_2);
        let inv = 1.0 / (1.0 + half);
        assert_eq!(x, [inv, half * inv], "{imp}");
        assert!((x[0] - 2.0 / 3.0).abs() < 1e-6 && (x[1] - 1.0 / 3.0).abs() < 1e-6);
        // Rows are independent: a 2-row call equals two 1-row calls.
        let mut x = [1.0f32, 2.0, 1.0, 2.0];
        k.softmax(&mut x[..], 2, 2, 1).unwrap();
        k.softmax(&mut x[..], 2, 2, 0).unwrap();
        assert_eq!(x[..2], x[2..], "{imp}");
    }
}

#[test]
fn silu_golden_values() {
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        // silu(0) = 0 / (1 + 1) = 0 on the polynomial (first 8) and the expf tail alike.
        let mut x = [0.0f32; 9];
        k.silu(&mut x[..], 1, 0).unwrap();
        assert_eq!(x, [0.0; 9], "{imp}");
        // Large inputs: silu(x) = x to f32 precision, as e^−x vanishes.
        let mut x = [100.0f32; 9];
        k.silu(&mut x[..], 1, 0).unwrap();
        assert_eq!(x, [100.0; 9], "{imp}");
    }
}

/// The polynomial's clamp at ±88 (and where `2^n` underflows to +0, near −87.7), and the
/// special values, on every implementation against the reference, bit for bit.
#[test]
fn silu_clamp_edges_and_specials() {
    let mut x: Vec<f32> = Vec::new();
    for centre in [-88.0f32, -87.68, 87.68, 88.0] {
        x.extend((0..1000).map(|i| centre - 0.05 + i as f32 * 1e-4));
    }
    x.extend((-2000..2000).map(|i| i as f32 * 0.05));
    x.extend([
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -0.0,
        1e-45,
        -1e-45,
    ]);
    // A length off the 16-lane grid, so the masked group and the `expf` tail are both used.
    x.truncate(x.len() - x.len() % 8 + 5);
    let mut want = x.clone();
    Kernels::scalar().silu(&mut want[..], 1, 0).unwrap();
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        for n_threads in [1, 3] {
            let mut got = x.clone();
            for t in 0..n_threads {
                k.silu(&mut got[..], n_threads, t).unwrap();
            }
            assert_eq!(bits(&got), bits(&want), "{imp} threads {n_threads}");
        }
    }
}

#[test]
fn error_paths() {
    for imp in airllm_kernels::available() {
        let k = Kernels::new(imp).unwrap();
        let mut x = [0.0f32; 6];
        assert!(matches!(
            k.softmax(&mut x[..], 0, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            k.softmax(&mut x[..], 4, 1, 0),
            Err(KernelError::NotMultiple { .. })
        ));
        assert!(matches!(
            k.softmax(&mut x[..], 3, 0, 0),
            Err(KernelError::BadThreadSplit { .. })
        ));
        assert!(matches!(
            k.silu(&mut x[..], 2, 2),
            Err(KernelError::BadThreadSplit { .. })
        ));
        assert!(matches!(
            k.mul(&mut x[..], &[1.0; 5], 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert!(matches!(
            k.add(&mut x[..], &[1.0; 7], 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        let blocks = [BlockQ80::default(); 1];
        assert!(matches!(
            k.add_q80(&mut x[..], &blocks, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        // Nothing was written by the refused calls.
        assert_eq!(x, [0.0; 6]);
    }
}
