//! Quantisers and dequantisers: every implementation against the scalar reference, bit for
//! bit, for random data and thread splits; hand-computed golden blocks; round-trip error
//! bounds; the size checks.
//!
//! One module per implementation, so the test log names the implementation that ran; an
//! implementation this CPU lacks reports itself skipped.

mod common;

use common::handle;

use airllm_kernels::{BlockQ40, BlockQ80, Impl, KernelError, Kernels, Out};
use common::{f32_vec, q40_blocks, q80_blocks};
use proptest::prelude::*;

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

fn fbits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `x` as `len` floats in `[-8, 8)` times a per-block magnitude, so block maxima span many
/// binades (and many f16 scale exponents).
fn scaled_blocks(nb: usize) -> impl Strategy<Value = Vec<f32>> {
    (
        proptest::collection::vec(-8.0f32..8.0, nb * 32),
        proptest::collection::vec(-6i32..12, nb),
    )
        .prop_map(|(mut x, e)| {
            for (xs, e) in x.chunks_mut(32).zip(e) {
                for v in xs {
                    *v *= 2f32.powi(e);
                }
            }
            x
        })
}

fn check_quant(k: &Kernels, x: &[f32], threads: usize) -> Result<(), TestCaseError> {
    let s = Kernels::scalar();
    let nb = x.len() / 32;
    let mut want80 = vec![BlockQ80::default(); nb];
    s.quantize_q80(&mut want80[..], x, 1, 0).unwrap();
    let mut got80 = vec![
        BlockQ80 {
            d: 0xFFFF,
            qs: [0x55; 32]
        };
        nb
    ];
    each_thread_into(&mut got80, threads, |o, nt, t| {
        k.quantize_q80(o, x, nt, t).unwrap()
    });
    prop_assert_eq!(&got80, &want80, "{} quantize_q80", k.imp());

    let mut want40 = vec![BlockQ40::default(); nb];
    s.quantize_q40(&mut want40[..], x, 1, 0).unwrap();
    let mut got40 = vec![
        BlockQ40 {
            d: 0xFFFF,
            qs: [0x55; 16]
        };
        nb
    ];
    each_thread_into(&mut got40, threads, |o, nt, t| {
        k.quantize_q40(o, x, nt, t).unwrap()
    });
    prop_assert_eq!(&got40, &want40, "{} quantize_q40", k.imp());
    Ok(())
}

fn check_dequant(
    k: &Kernels,
    q80: &[BlockQ80],
    q40: &[BlockQ40],
    threads: usize,
) -> Result<(), TestCaseError> {
    let s = Kernels::scalar();
    let mut want = vec![0.0f32; q80.len() * 32];
    s.dequantize_q80(&mut want[..], q80, 1, 0).unwrap();
    let mut got = vec![f32::NAN; q80.len() * 32];
    each_thread_into(&mut got, threads, |o, nt, t| {
        k.dequantize_q80(o, q80, nt, t).unwrap()
    });
    prop_assert_eq!(fbits(&got), fbits(&want), "{} dequantize_q80", k.imp());

    let mut want = vec![0.0f32; q40.len() * 32];
    s.dequantize_q40(&mut want[..], q40, 1, 0).unwrap();
    let mut got = vec![f32::NAN; q40.len() * 32];
    each_thread_into(&mut got, threads, |o, nt, t| {
        k.dequantize_q40(o, q40, nt, t).unwrap()
    });
    prop_assert_eq!(fbits(&got), fbits(&want), "{} dequantize_q40", k.imp());
    Ok(())
}

/// Q80 then back: `q = rint(x/d)` is within `d/2` of `x/d`; the stored scale is `f16(d)`, off
/// by at most `2⁻¹¹·d`, which moves `|q| ≤ 127` values by `127·2⁻¹¹·d < 0.063·d`; the product
/// `q·f16(d)` rounds once more (`≤ 2⁻²⁴·128·d`). So `|x − deq| ≤ 0.57·d`, `d = amax/127`,
/// while `d` is a normal f16 (`amax ≥ 2⁻⁶`; the inputs keep `amax < 2¹⁴`).
fn check_round_trip(k: &Kernels, x: &[f32]) -> Result<(), TestCaseError> {
    let nb = x.len() / 32;
    let mut q = vec![BlockQ80::default(); nb];
    k.quantize_q80(&mut q[..], x, 1, 0).unwrap();
    let mut y = vec![0.0f32; x.len()];
    k.dequantize_q80(&mut y[..], &q, 1, 0).unwrap();
    for (xs, ys) in x.chunks(32).zip(y.chunks(32)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax as f64 / 127.0;
        if amax < 2f32.powi(-6) {
            // `d` would be an f16 denormal, with fewer significant bits than the bound assumes.
            continue;
        }
        for (a, b) in xs.iter().zip(ys) {
            prop_assert!(
                (*a as f64 - *b as f64).abs() <= 0.57 * d,
                "{} q80: {} -> {} (d {})",
                k.imp(),
                a,
                b,
                d
            );
        }
    }
    // Q40 then back: nibbles are `round(x/d) + 8` clamped to 15, with `d = max/−8`: the clamp
    // only hits `x/d = 8` (error `|d|`), everything else is within `|d|/2`; the f16 scale adds
    // `≤ 8·2⁻¹¹·|d|`. So `|x − deq| ≤ 1.01·|d|`, `|d| = amax/8`.
    let mut q = vec![BlockQ40::default(); nb];
    k.quantize_q40(&mut q[..], x, 1, 0).unwrap();
    k.dequantize_q40(&mut y[..], &q, 1, 0).unwrap();
    for (xs, ys) in x.chunks(32).zip(y.chunks(32)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax as f64 / 8.0;
        for (a, b) in xs.iter().zip(ys) {
            prop_assert!(
                (*a as f64 - *b as f64).abs() <= 1.01 * d,
                "{} q40: {} -> {} (d {})",
                k.imp(),
                a,
                b,
                d
            );
        }
    }
    Ok(())
}

/// One block of 32 floats from one of the regimes the Q80 encoder treats differently.
fn block_regime() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        3 => f32_vec(32),
        1 => Just(vec![0.0f32; 32]),
        1 => proptest::collection::vec((1u32..0x007f_ffff).prop_map(f32::from_bits), 32),
        1 => proptest::collection::vec(-1.0e-36f32..1.0e-36, 32),
    ]
}

macro_rules! per_impl {
    ($($m:ident => $imp:expr),* $(,)?) => {$(
        mod $m {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(64))]

                /// Mixed magnitudes, signed zeros, denormals and ±1e30 (scales that overflow
                /// f16, reciprocals that overflow f32).
                #[test]
                fn quantize_matches_scalar(
                    (x, t) in (1usize..=20).prop_flat_map(|nb| (f32_vec(nb * 32), 1usize..=9))
                ) {
                    if let Some(k) = handle($imp) {
                        check_quant(&k, &x, t)?;
                    }
                }

                /// Many blocks (the wide paths take 8 or 16 at a time), each block from its own
                /// regime: ordinary, all zero, all denormal (1/d overflows), or tiny.
                #[test]
                fn quantize_many_blocks_matches_scalar(
                    (x, t) in (16usize..=70).prop_flat_map(|nb| {
                        (
                            proptest::collection::vec(block_regime(), nb).prop_map(|v| v.concat()),
                            1usize..=4,
                        )
                    })
                ) {
                    if let Some(k) = handle($imp) {
                        check_quant(&k, &x, t)?;
                    }
                }

                #[test]
                fn dequantize_matches_scalar(
                    (q80, q40, t) in (1usize..=20)
                        .prop_flat_map(|nb| (q80_blocks(nb), q40_blocks(nb), 1usize..=9))
                ) {
                    if let Some(k) = handle($imp) {
                        check_dequant(&k, &q80, &q40, t)?;
                    }
                }

                #[test]
                fn round_trip_error_is_bounded(x in (1usize..=8).prop_flat_map(scaled_blocks)) {
                    if let Some(k) = handle($imp) {
                        check_quant(&k, &x, 1)?;
                        check_round_trip(&k, &x)?;
                    }
                }
            }

            #[test]
            fn golden_blocks() {
                if let Some(k) = handle($imp) {
                    golden(&k);
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

/// Hand-computed blocks.
///
/// Q80: the block's largest magnitude is 127, so `d = 1` (f16 0x3C00), `id = 1` and every
/// value is `rint(x)`: ties go to even (0.5 → 0, 1.5 → 2, 2.5 → 2, −0.5 → 0, −1.5 → −2,
/// −2.5 → −2, 126.5 → 126), others to nearest (3.49 → 3, −3.51 → −4).
///
/// Q40: `x[0] = −8` is the signed maximum, so `d = −8/−8 = 1` and the nibble of `x` is
/// `trunc(x + 8.5)`: elements `j < 16` are `j − 8` → nibble `j`; elements `16 + j` are
/// `(j − 8)/2` → `trunc((j − 8)/2 + 8.5)` = 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12.
fn golden(k: &Kernels) {
    let mut x = [0.0f32; 32];
    let head = [
        127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 3.49, -3.51, -127.0, 64.0,
    ];
    x[..head.len()].copy_from_slice(&head);
    let mut q = [BlockQ80::default(); 1];
    k.quantize_q80(&mut q[..], &x, 1, 0).unwrap();
    let mut want = [0i8; 32];
    want[..12].copy_from_slice(&[127, 0, 2, 2, 0, -2, -2, 126, 3, -4, -127, 64]);
    assert_eq!(
        q[0],
        BlockQ80 {
            d: 0x3C00,
            qs: want
        },
        "{}",
        k.imp()
    );

    let mut x = [0.0f32; 32];
    for j in 0..16 {
        x[j] = j as f32 - 8.0;
        x[16 + j] = (j as f32 - 8.0) * 0.5;
    }
    let mut q = [BlockQ40::default(); 1];
    k.quantize_q40(&mut q[..], &x, 1, 0).unwrap();
    let want = BlockQ40 {
        d: 0x3C00,
        qs: [
            0x40, 0x51, 0x52, 0x63, 0x64, 0x75, 0x76, 0x87, 0x88, 0x99, 0x9A, 0xAB, 0xAC, 0xBD,
            0xBE, 0xCF,
        ],
    };
    assert_eq!(q[0], want, "{}", k.imp());

    // And back: nibble − 8 times 1, and the Q80 block times 1.
    let mut y = [0.0f32; 32];
    k.dequantize_q40(&mut y[..], &q, 1, 0).unwrap();
    let hi = [4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12];
    for j in 0..16 {
        assert_eq!(y[j], j as f32 - 8.0);
        assert_eq!(y[16 + j], (hi[j] - 8) as f32);
    }
}

fn errors(k: &Kernels) {
    let x = vec![0.0f32; 64];
    let mut q80 = vec![BlockQ80::default(); 2];
    let mut q40 = vec![BlockQ40::default(); 2];
    let e = k.quantize_q80(&mut q80[..], &x[..40], 1, 0).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::NotMultiple {
                what: "x",
                len: 40,
                unit: 32
            }
        ),
        "{e:?}"
    );
    let e = k.quantize_q80(&mut q80[..1], &x, 1, 0).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "out",
                expected: 2,
                got: 1
            }
        ),
        "{e:?}"
    );
    let e = k.quantize_q80(&mut q80[..], &x, 2, 2).unwrap_err();
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
    let e = k.quantize_q40(&mut q40[..], &x[..33], 1, 0).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::NotMultiple {
                what: "x",
                len: 33,
                unit: 32
            }
        ),
        "{e:?}"
    );
    let e = k.quantize_q40(&mut q40[..], &x, 0, 0).unwrap_err();
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
    let mut y = vec![0.0f32; 63];
    let e = k.dequantize_q80(&mut y[..], &q80, 1, 0).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "out",
                expected: 64,
                got: 63
            }
        ),
        "{e:?}"
    );
    let e = k.dequantize_q40(&mut y[..], &q40, 1, 0).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadSize {
                what: "out",
                expected: 64,
                got: 63
            }
        ),
        "{e:?}"
    );
    let mut y = vec![0.0f32; 64];
    let e = k.dequantize_q40(&mut y[..], &q40, 1, 1).unwrap_err();
    assert!(
        matches!(
            e,
            KernelError::BadThreadSplit {
                n_threads: 1,
                thread_index: 1
            }
        ),
        "{e:?}"
    );
    // Refused calls write nothing.
    assert!(q80.iter().all(|b| *b == BlockQ80::default()));
    assert!(q40.iter().all(|b| *b == BlockQ40::default()));
    assert!(y.iter().all(|v| v.to_bits() == 0));
}
