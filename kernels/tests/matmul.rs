//! Q80 × Q40 and F32 matmuls: every implementation against the scalar reference, bit for bit,
//! for random shapes, batch sizes and thread splits; hand-computed golden values; the
//! reference's accuracy against an f64 computation; and the size checks.
//!
//! One module per implementation, so the test log names the implementation that ran; an
//! implementation this CPU lacks reports itself skipped.

mod common;

use common::handle;

use airllm_kernels::{BlockQ40, BlockQ80, Impl, KernelError, Kernels, Out};
use common::{bits, q40_blocks, q80_blocks};
use proptest::prelude::*;

/// Floats for F32 matmuls: ordinary values, signed zeros, denormals and tiny magnitudes (whose
/// products underflow to signed zeros), but no overflow.
fn f32_elem() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => (1u32..0x007f_ffff).prop_map(f32::from_bits),
        1 => (1u32..0x007f_ffff).prop_map(|m| -f32::from_bits(m)),
        1 => -1.0e-30f32..1.0e-30,
        1 => -1.0e3f32..1.0e3,
    ]
}

/// Runs `f(out, n_threads, thread_index)` for every thread of the split on one shared buffer.
fn each_thread_into<T>(
    out: &mut [T],
    n_threads: usize,
    mut f: impl FnMut(Out<'_, T>, usize, usize),
) {
    let (ptr, len) = (out.as_mut_ptr(), out.len());
    for t in 0..n_threads {
        // SAFETY: `ptr`/`len` describe `out`, mutably borrowed for this whole function; the
        // calls run one after another with distinct thread indices of the same split.
        f(unsafe { Out::shared(ptr, len) }, n_threads, t);
    }
}

/// `b` single-vector scalar results, batch-major: the reference every batched call must match.
fn q80_q40_reference(x: &[BlockQ80], w: &[BlockQ40], nb: usize, d: usize, b: usize) -> Vec<f32> {
    let s = Kernels::scalar();
    let mut out = vec![0.0f32; b * d];
    for (o, xv) in out.chunks_mut(d).zip(x.chunks(nb)) {
        s.matmul_q80_q40(o, xv, w, nb * 32, d, 1, 0).unwrap();
    }
    out
}

/// Single calls (one thread and split) and batched calls (split) of `k` against the reference.
#[allow(clippy::too_many_arguments)]
fn check_q80_q40(
    k: &Kernels,
    x: &[BlockQ80],
    w: &[BlockQ40],
    nb: usize,
    d: usize,
    b: usize,
    threads: usize,
) -> Result<(), TestCaseError> {
    let n = nb * 32;
    let want = q80_q40_reference(x, w, nb, d, b);
    for (v, xv) in x.chunks(nb).enumerate() {
        let mut one = vec![f32::NAN; d];
        k.matmul_q80_q40(&mut one[..], xv, w, n, d, 1, 0).unwrap();
        prop_assert_eq!(
            bits(&one),
            bits(&want[v * d..(v + 1) * d]),
            "{} single, vector {}",
            k.imp(),
            v
        );
        let mut split = vec![f32::NAN; d];
        each_thread_into(&mut split, threads, |o, nt, t| {
            k.matmul_q80_q40(o, xv, w, n, d, nt, t).unwrap()
        });
        prop_assert_eq!(
            bits(&split),
            bits(&one),
            "{} single, {} threads",
            k.imp(),
            threads
        );
    }
    let mut batch = vec![f32::NAN; b * d];
    each_thread_into(&mut batch, threads, |o, nt, t| {
        k.matmul_q80_q40_batch(o, x, w, n, d, b, nt, t).unwrap()
    });
    prop_assert_eq!(
        bits(&batch),
        bits(&want),
        "{} batch {}, {} threads",
        k.imp(),
        b,
        threads
    );
    Ok(())
}

/// Single and batched F32 calls of `k` against `b` one-thread scalar calls.
#[allow(clippy::too_many_arguments)]
fn check_f32(
    k: &Kernels,
    x: &[f32],
    w: &[f32],
    n: usize,
    d: usize,
    b: usize,
    threads: usize,
) -> Result<(), TestCaseError> {
    let s = Kernels::scalar();
    let mut want = vec![0.0f32; b * d];
    for (o, xv) in want.chunks_mut(d).zip(x.chunks(n.max(1))) {
        s.matmul_f32(o, xv, w, n, d, 1, 0).unwrap();
    }
    if n > 0 {
        for (v, xv) in x.chunks(n).enumerate() {
            let mut one = vec![f32::NAN; d];
            each_thread_into(&mut one, threads, |o, nt, t| {
                k.matmul_f32(o, xv, w, n, d, nt, t).unwrap()
            });
            prop_assert_eq!(
                bits(&one),
                bits(&want[v * d..(v + 1) * d]),
                "{} f32 single",
                k.imp()
            );
        }
    }
    let mut batch = vec![f32::NAN; b * d];
    each_thread_into(&mut batch, threads, |o, nt, t| {
        k.matmul_f32_batch(o, x, w, n, d, b, nt, t).unwrap()
    });
    prop_assert_eq!(bits(&batch), bits(&want), "{} f32 batch {}", k.imp(), b);
    Ok(())
}

/// A Q80 × Q40 problem: blocks per row, rows, batch, threads, activations, weights.
type Q80Q40Case = (usize, usize, usize, usize, Vec<BlockQ80>, Vec<BlockQ40>);

fn q80_q40_case(
    nb: impl Strategy<Value = usize>,
    d: impl Strategy<Value = usize>,
    b: impl Strategy<Value = usize>,
) -> impl Strategy<Value = Q80Q40Case> {
    (nb, d, b, 1usize..=9).prop_flat_map(|(nb, d, b, t)| {
        (
            Just(nb),
            Just(d),
            Just(b),
            Just(t),
            q80_blocks(b * nb),
            q40_blocks(d * nb),
        )
    })
}

type F32Case = (usize, usize, usize, usize, Vec<f32>, Vec<f32>);

fn f32_case() -> impl Strategy<Value = F32Case> {
    (0usize..=70, 1usize..=20, 1usize..=40, 1usize..=9).prop_flat_map(|(n, d, b, t)| {
        (
            Just(n),
            Just(d),
            Just(b),
            Just(t),
            proptest::collection::vec(f32_elem(), b * n),
            proptest::collection::vec(f32_elem(), d * n),
        )
    })
}

macro_rules! per_impl {
    ($($m:ident => $imp:expr),* $(,)?) => {$(
        mod $m {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(40))]

                /// Shapes with 1..=24 blocks per row (odd counts, partial four-block groups,
                /// several batch passes), 1..=40 rows and vectors (crossing the batch group of
                /// 32), 1..=9 threads.
                #[test]
                fn q80_q40_matches_scalar(
                    (nb, d, b, t, x, w) in q80_q40_case(
                        prop_oneof![Just(1usize), Just(3), 1usize..=24],
                        prop_oneof![Just(1usize), Just(3), Just(7), Just(17), 1usize..=40],
                        prop_oneof![Just(1usize), Just(32), Just(33), 1usize..=40],
                    )
                ) {
                    if let Some(k) = handle($imp) {
                        check_q80_q40(&k, &x, &w, nb, d, b, t)?;
                    }
                }

                #[test]
                fn f32_matches_scalar((n, d, b, t, x, w) in f32_case()) {
                    if let Some(k) = handle($imp) {
                        check_f32(&k, &x, &w, n, d, b, t)?;
                    }
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(6))]

                /// Rows long enough (up to 600 blocks, n = 19200) to take several activation
                /// passes in the vector kernels, up to 20 rows (spread tiles and a leftover
                /// tile on one thread).
                #[test]
                fn q80_q40_long_rows_match_scalar(
                    (nb, d, b, t, x, w) in q80_q40_case(
                        prop_oneof![250usize..=300, 500usize..=600],
                        1usize..=20,
                        1usize..=3,
                    )
                ) {
                    if let Some(k) = handle($imp) {
                        check_q80_q40(&k, &x, &w, nb, d, b, t)?;
                    }
                }
            }

            #[test]
            fn golden_values() {
                if let Some(k) = handle($imp) {
                    golden_q80_q40(&k);
                    golden_f32(&k);
                }
            }

            #[test]
            fn size_errors() {
                if let Some(k) = handle($imp) {
                    errors(&k);
                }
            }
        }
    )*};
}

per_impl!(
    scalar => Impl::Scalar,
    avx2 => Impl::Avx2,
    avx512 => Impl::Avx512,
    avx512vnni => Impl::Avx512Vnni,
    neon => Impl::Neon,
    neon_dotprod => Impl::NeonDotprod,
);

/// Three hand-computed blocks in one row (f16 bits: 0x3800 = 0.5, 0x3400 = 0.25,
/// 0x3C00 = 1, 0x4000 = 2):
///
/// 1. `w` nibbles: element `j < 16` is `j` (value `j − 8`), element `16 + j` is `15 − j`
///    (value `7 − j`), `dW = 0.5`; `x[i] = i − 16`, `dX = 0.25`. Integer dot:
///    `Σ_{j<16} (j−8)(j−16) + Σ_{j<16} (7−j)·j = (1240 − 2880 + 2048) + (840 − 1240) = 8`;
///    times `0.5 · 0.25` gives 1.
/// 2. All nibbles 0 (value −8), `dW = 1`; `x = 1`, `dX = 2`: `−8 · 32 · 2 = −512`.
/// 3. All nibbles 15 (value 7), `dW = 1`; `x = −128`, `dX = 1`: `7 · (−128) · 32 = −28672`.
///
/// Row 0 against `x` is the three blocks: `1 − 512 − 28672 = −29183`. In a batch of two, row 1
/// (block 1's nibbles with scale 1, three times) against a vector of three copies of `x`'s
/// block 1 with scale 1 gives `8 · 3 = 24`. Every step is exact.
fn golden_q80_q40(k: &Kernels) {
    let mut w1 = BlockQ40 {
        d: 0x3800,
        qs: [0; 16],
    };
    for j in 0..16u8 {
        w1.qs[j as usize] = j | ((15 - j) << 4);
    }
    let w2 = BlockQ40 {
        d: 0x3C00,
        qs: [0x00; 16],
    };
    let w3 = BlockQ40 {
        d: 0x3C00,
        qs: [0xFF; 16],
    };
    let mut x1 = BlockQ80 {
        d: 0x3400,
        qs: [0; 32],
    };
    for i in 0..32 {
        x1.qs[i] = i as i8 - 16;
    }
    let x2 = BlockQ80 {
        d: 0x4000,
        qs: [1; 32],
    };
    let x3 = BlockQ80 {
        d: 0x3C00,
        qs: [-128; 32],
    };
    let w1_one = BlockQ40 { d: 0x3C00, ..w1 };
    let x1_one = BlockQ80 { d: 0x3C00, ..x1 };
    let w = [w1, w2, w3, w1_one, w1_one, w1_one];
    let x = [x1, x2, x3];
    let mut out = [0.0f32; 2];
    k.matmul_q80_q40(&mut out[..], &x, &w, 96, 2, 1, 0).unwrap();
    assert_eq!(out[0], -29183.0, "{}", k.imp());
    let xs = [x1_one, x1_one, x1_one];
    let mut out2 = [0.0f32; 4];
    let both = [x, xs].concat();
    k.matmul_q80_q40_batch(&mut out2[..], &both, &w, 96, 2, 2, 1, 0)
        .unwrap();
    assert_eq!(out2[0], -29183.0, "{}", k.imp());
    assert_eq!(out2[3], 24.0, "{}", k.imp());
}

/// The 8-lane rule is observable: with `x = 1`, `w[0] = 2^24` and `w[1] = w[8] = w[9] = 1`,
/// elements 8 and 9 (the tail) go to lanes 0 and 1: lane 0 is `2^24 + 1`, rounded to `2^24`
/// (ties to even), lane 1 is 2, and the reduction gives `2^24 + 2`. A left-to-right sum would
/// round every `+ 1` away and give `2^24`.
fn golden_f32(k: &Kernels) {
    let x = [1.0f32; 10];
    let mut w = [0.0f32; 10];
    w[0] = 16_777_216.0;
    w[1] = 1.0;
    w[8] = 1.0;
    w[9] = 1.0;
    let mut out = [0.0f32; 1];
    k.matmul_f32(&mut out[..], &x, &w, 10, 1, 1, 0).unwrap();
    assert_eq!(out[0], 16_777_218.0, "{}", k.imp());

    // Every product `1e-30 · −1e-30` underflows to −0, so all eight lanes are −0 and so is the
    // sum. A tail that added zero-padded products into lanes 1..8 would make them +0 (−0 + +0
    // is +0) and the result +0.
    let x = [1.0e-30f32; 9];
    let w = [-1.0e-30f32; 9];
    k.matmul_f32(&mut out[..], &x, &w, 9, 1, 1, 0).unwrap();
    assert_eq!(out[0].to_bits(), (-0.0f32).to_bits(), "{}", k.imp());
    let mut out2 = [0.0f32; 2];
    k.matmul_f32_batch(&mut out2[..], &[x, x].concat(), &w, 9, 1, 2, 1, 0)
        .unwrap();
    assert_eq!(bits(&out2), bits(&[-0.0, -0.0]), "{}", k.imp());
}

fn errors(k: &Kernels) {
    let x = vec![BlockQ80::default(); 2];
    let w = vec![BlockQ40::default(); 6];
    let mut out = vec![0.0f32; 3];
    let e = k
        .matmul_q80_q40(&mut out[..], &x, &w, 40, 3, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::NotMultiple {
                what: "n",
                len: 40,
                unit: 32
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40(&mut out[..], &x[..1], &w, 64, 3, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "x",
                expected: 2,
                got: 1
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40(&mut out[..], &x, &w[..5], 64, 3, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "w",
                expected: 6,
                got: 5
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40(&mut out[..2], &x, &w, 64, 3, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "out",
                expected: 3,
                got: 2
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40(&mut out[..], &x, &w, 64, 3, 0, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadThreadSplit {
                n_threads: 0,
                thread_index: 0
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40(&mut out[..], &x, &w, 64, 3, 2, 2)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadThreadSplit {
                n_threads: 2,
                thread_index: 2
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40_batch(&mut out[..], &x, &w, 32, 3, 2, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "w",
                expected: 3,
                got: 6
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_q80_q40_batch(&mut out[..], &x, &w[..3], 32, 3, 2, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "out",
                expected: 6,
                got: 3
            }
        ),
        "{e:?}"
    );

    let xf = vec![0.0f32; 8];
    let wf = vec![0.0f32; 24];
    let mut of = vec![0.0f32; 3];
    let e = k
        .matmul_f32(&mut of[..], &xf[..7], &wf, 8, 3, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "x",
                expected: 8,
                got: 7
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_f32(&mut of[..], &xf, &wf[..23], 8, 3, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "w",
                expected: 24,
                got: 23
            }
        ),
        "{e:?}"
    );
    let e = k.matmul_f32(&mut of[..], &xf, &wf, 8, 3, 3, 5).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadThreadSplit {
                n_threads: 3,
                thread_index: 5
            }
        ),
        "{e:?}"
    );
    let e = k
        .matmul_f32_batch(&mut of[..], &xf, &wf, 4, 3, 2, 1, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "w",
                expected: 12,
                got: 24
            }
        ),
        "{e:?}"
    );
    // Nothing was written by any refused call.
    assert_eq!(bits(&out), bits(&[0.0; 3]));
    assert_eq!(bits(&of), bits(&[0.0; 3]));
}

/// Unit roundoff of f32.
const U: f64 = f32::EPSILON as f64 / 2.0;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The reference's error against the exact sum of the dequantised products.
    ///
    /// Per block the integer dot `p_j` is exact and the dequantised values (`(q−8)·dW`,
    /// `q·dX`) are exact in f32, so the exact result is `Σ_j p_j·σ_j` with `σ_j = dW_j·dX_j`.
    /// The reference rounds `σ_j` once (`s_j = σ_j(1+δ)`) and each FMA once: with
    /// `acc_j = (p_j s_j + acc_{j−1})(1+ε_j)`, term `j` of `nb` carries at most
    /// `nb − j + 2 ≤ nb + 1` factors `(1+θ)`, `|θ| ≤ u = 2⁻²⁴`, so
    /// `|acc − Σ p_j σ_j| ≤ γ_{nb+1} · Σ_j |p_j σ_j|` with `γ_k = k·u / (1 − k·u)`, and
    /// `Σ_j |p_j σ_j| ≤ Σ_i |w_i x_i|` over the dequantised elements. The f64 side sums exact
    /// products; its own error (< 2⁻⁴⁴ of the same sum here) is added to the bound.
    #[test]
    fn q80_q40_reference_accuracy(
        (nb, d, _b, _t, x, w) in q80_q40_case(1usize..=40, 1usize..=4, Just(1usize))
    ) {
        let s = Kernels::scalar();
        let n = nb * 32;
        let mut got = vec![0.0f32; d];
        s.matmul_q80_q40(&mut got[..], &x, &w, n, d, 1, 0).unwrap();
        let mut xf = vec![0.0f32; n];
        s.dequantize_q80(&mut xf[..], &x, 1, 0).unwrap();
        let mut wf = vec![0.0f32; n * d];
        s.dequantize_q40(&mut wf[..], &w, 1, 0).unwrap();
        let gamma = (nb + 1) as f64 * U / (1.0 - (nb + 1) as f64 * U);
        for r in 0..d {
            let row = &wf[r * n..(r + 1) * n];
            let exact: f64 = row.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
            let cond: f64 = row.iter().zip(&xf).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
            prop_assume!(cond < f32::MAX as f64 / 2.0);
            let bound = gamma * cond + cond * 2f64.powi(-44);
            let err = (got[r] as f64 - exact).abs();
            prop_assert!(err <= bound, "row {}: |{} − {}| = {:e} > {:e}", r, got[r], exact, err, bound);
        }
    }
}
