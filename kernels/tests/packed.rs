//! Row-group packed Q40 weights: pack/unpack round trips, the size and split checks, and
//! `matmul_q80_q40_packed` of every implementation against the row-major scalar reference, bit
//! for bit, for random shapes and thread splits.
//!
//! One module per implementation, so the test log names the implementation that ran; an
//! implementation this CPU lacks reports itself skipped.

mod common;

use common::handle;

use airllm_kernels::{
    pack_q40_rows, packed_q40_len, split, unpack_q40_rows, BlockQ40, BlockQ80, Impl, KernelError,
    Kernels, Out, PackedQ40, PACK_ROWS,
};
use common::{bits, q40_blocks, q80_blocks};
use proptest::prelude::*;

fn packed(w: &[BlockQ40], n: usize, d: usize) -> Vec<PackedQ40> {
    let mut p = vec![PackedQ40::default(); packed_q40_len(n, d).unwrap()];
    pack_q40_rows(w, n, d, &mut p).unwrap();
    p
}

/// `(blocks per row, row groups, threads, x, row-major w)`.
fn case(
    nb: impl Strategy<Value = usize>,
    groups: impl Strategy<Value = usize>,
) -> impl Strategy<Value = (usize, usize, usize, Vec<BlockQ80>, Vec<BlockQ40>)> {
    (nb, groups, 1usize..=9).prop_flat_map(|(nb, g, t)| {
        (
            Just(nb),
            Just(g),
            Just(t),
            q80_blocks(nb),
            q40_blocks(nb * g * PACK_ROWS),
        )
    })
}

/// Every thread of a `threads` split writes only its own rows, and together they give the
/// scalar row-major result bit for bit; a one-thread call gives it too.
fn check(
    k: &Kernels,
    x: &[BlockQ80],
    w: &[BlockQ40],
    nb: usize,
    groups: usize,
    threads: usize,
) -> Result<(), TestCaseError> {
    let (n, d) = (nb * 32, groups * PACK_ROWS);
    let mut want = vec![0.0f32; d];
    Kernels::scalar()
        .matmul_q80_q40(&mut want[..], x, w, n, d, 1, 0)
        .unwrap();
    let p = packed(w, n, d);

    let mut one = vec![f32::NAN; d];
    k.matmul_q80_q40_packed(&mut one[..], x, &p, n, d, 1, 0)
        .unwrap();
    prop_assert_eq!(bits(&one), bits(&want), "{} one thread", k.imp());

    let mut all = vec![f32::NAN; d];
    for t in 0..threads {
        let mut mine = vec![f32::NAN; d];
        k.matmul_q80_q40_packed(&mut mine[..], x, &p, n, d, threads, t)
            .unwrap();
        let g = split(groups, threads, t);
        let rows = g.start * PACK_ROWS..g.end * PACK_ROWS;
        for (r, v) in mine.iter().enumerate() {
            prop_assert_eq!(
                rows.contains(&r),
                !v.is_nan(),
                "{} thread {} row {}",
                k.imp(),
                t,
                r
            );
        }
        // The same split on one shared buffer, as a thread pool runs it.
        // SAFETY: `all` is borrowed mutably for this loop; calls run one after another.
        let o = unsafe { Out::shared(all.as_mut_ptr(), all.len()) };
        k.matmul_q80_q40_packed(o, x, &p, n, d, threads, t).unwrap();
    }
    prop_assert_eq!(bits(&all), bits(&want), "{} {} threads", k.imp(), threads);
    Ok(())
}

/// `b = xs.len() / 20` vectors (the first `nb` blocks of each 20 used) through the batched
/// packed kernel on a `threads` split, against the row-major scalar result per vector.
fn check_batch(
    k: &Kernels,
    xs: &[BlockQ80],
    w: &[BlockQ40],
    nb: usize,
    groups: usize,
    threads: usize,
) -> Result<(), TestCaseError> {
    let (n, d) = (nb * 32, groups * PACK_ROWS);
    let x: Vec<BlockQ80> = xs.chunks_exact(20).flat_map(|c| c[..nb].to_vec()).collect();
    let b = x.len() / nb;
    let mut want = vec![0.0f32; b * d];
    for (bi, xb) in x.chunks_exact(nb).enumerate() {
        Kernels::scalar()
            .matmul_q80_q40(&mut want[bi * d..(bi + 1) * d], xb, w, n, d, 1, 0)
            .unwrap();
    }
    let p = packed(w, n, d);
    let mut got = vec![f32::NAN; b * d];
    let (ptr, len) = (got.as_mut_ptr(), got.len());
    for t in 0..threads {
        // SAFETY: `ptr`/`len` describe `got`, borrowed for this loop only; the calls run one
        // after another with distinct thread indices of one split.
        let o = unsafe { Out::shared(ptr, len) };
        k.matmul_q80_q40_packed_batch(o, &x, &p, n, d, b, threads, t)
            .unwrap();
    }
    prop_assert_eq!(bits(&got), bits(&want), "{} batch {}", k.imp(), b);
    Ok(())
}

macro_rules! per_impl {
    ($($m:ident => $imp:expr),* $(,)?) => {$(
        mod $m {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(40))]

                /// 1..=24 blocks per row, 1..=13 groups of 16 rows (a thread's groups run in
                /// spread tiles of up to 4 plus leftovers), 1..=9 threads (more threads than
                /// groups included).
                #[test]
                fn packed_matches_row_major_scalar(
                    (nb, g, t, x, w) in case(
                        prop_oneof![Just(1usize), 1usize..=24],
                        prop_oneof![Just(1usize), 1usize..=13],
                    )
                ) {
                    if let Some(k) = handle($imp) {
                        check(&k, &x, &w, nb, g, t)?;
                    }
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(4))]

                /// Rows long enough (up to 1100 blocks) to take several activation passes, in
                /// spread tiles and leftovers.
                #[test]
                fn packed_long_rows_match_row_major_scalar(
                    (nb, g, t, x, w) in case(500usize..=1100, 1usize..=9)
                ) {
                    if let Some(k) = handle($imp) {
                        check(&k, &x, &w, nb, g, t)?;
                    }
                }
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(24))]

                /// Batched packed calls, split over threads into one buffer, equal the
                /// row-major scalar result of every vector.
                #[test]
                fn packed_batch_matches_row_major_scalar(
                    (nb, g, t, w) in (1usize..=20, 1usize..=4, 1usize..=5)
                        .prop_flat_map(|(nb, g, t)| {
                            (Just(nb), Just(g), Just(t), q40_blocks(nb * g * PACK_ROWS))
                        }),
                    xs in (1usize..=9).prop_flat_map(|b| q80_blocks(b * 20)),
                ) {
                    if let Some(k) = handle($imp) {
                        check_batch(&k, &xs, &w, nb, g, t)?;
                    }
                }
            }

            #[test]
            fn size_and_split_errors() {
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

/// Every refusal leaves the output untouched.
fn errors(k: &Kernels) {
    let (n, d) = (64, 32);
    let x = vec![BlockQ80::default(); 2];
    let p = vec![PackedQ40::default(); packed_q40_len(n, d).unwrap()];
    let mut out = vec![f32::NAN; d];
    let call = |out: &mut [f32], x: &[BlockQ80], p: &[PackedQ40], n, d, nt, t| {
        k.matmul_q80_q40_packed(out, x, p, n, d, nt, t)
    };
    assert!(matches!(
        call(&mut out, &x, &p, 48, d, 1, 0),
        Err(KernelError::NotMultiple { what: "n", .. })
    ));
    assert!(matches!(
        call(&mut out[..24], &x, &p[..2], n, 24, 1, 0),
        Err(KernelError::NotMultiple { what: "d", .. })
    ));
    assert!(matches!(
        call(&mut out, &x[..1], &p, n, d, 1, 0),
        Err(KernelError::BadSize { what: "x", .. })
    ));
    assert!(matches!(
        call(&mut out, &x, &p[..3], n, d, 1, 0),
        Err(KernelError::BadSize { what: "w", .. })
    ));
    assert!(matches!(
        call(&mut out[..16], &x, &p, n, d, 1, 0),
        Err(KernelError::BadSize { what: "out", .. })
    ));
    assert!(matches!(
        call(&mut out, &x, &p, n, d, 2, 2),
        Err(KernelError::BadThreadSplit { .. })
    ));
    assert!(matches!(
        call(&mut out, &x, &p, n, d, 0, 0),
        Err(KernelError::BadThreadSplit { .. })
    ));
    assert!(out.iter().all(|v| v.is_nan()));
    // Zero blocks per row: every row is the empty sum.
    call(&mut out, &[], &[], 0, d, 1, 0).unwrap();
    assert_eq!(bits(&out), vec![0u32; d]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Unpacking gives back the row-major weights, and row `r` of each packed block is block
    /// `j` of row `16g + r`.
    #[test]
    fn pack_unpack_round_trip(
        (nb, g, _t, _x, w) in case(0usize..=12, 0usize..=4)
    ) {
        let (n, d) = (nb * 32, g * PACK_ROWS);
        let p = packed(&w, n, d);
        prop_assert_eq!(p.len(), g * nb);
        for (i, pb) in p.iter().enumerate() {
            let (grp, j) = (i / nb, i % nb);
            for r in 0..PACK_ROWS {
                prop_assert_eq!(pb.row(r), w[(grp * PACK_ROWS + r) * nb + j]);
            }
        }
        let mut back = vec![BlockQ40::default(); w.len()];
        unpack_q40_rows(&p, n, d, &mut back).unwrap();
        prop_assert_eq!(back, w);
    }
}

#[test]
fn packed_layout_is_documented_byte_order() {
    let mut b = BlockQ40 {
        d: 0x3c00,
        qs: [0; 16],
    };
    for (i, q) in b.qs.iter_mut().enumerate() {
        *q = i as u8 + 1;
    }
    let mut p = PackedQ40::default();
    p.set_row(5, &b);
    assert_eq!(p.d[5], 0x3c00);
    for m in 0..4 {
        for i in 0..4 {
            assert_eq!(p.qs[64 * m + 4 * 5 + i], (4 * m + i) as u8 + 1);
        }
    }
    assert_eq!(core::mem::size_of::<PackedQ40>(), 18 * PACK_ROWS);
    assert_eq!(core::mem::align_of::<PackedQ40>(), 32);
}

#[test]
fn pack_size_errors() {
    let w = vec![BlockQ40::default(); 2 * 16];
    let mut p = vec![PackedQ40::default(); 2];
    assert!(matches!(
        packed_q40_len(33, 16),
        Err(KernelError::NotMultiple { what: "n", .. })
    ));
    assert!(matches!(
        packed_q40_len(64, 17),
        Err(KernelError::NotMultiple { what: "d", .. })
    ));
    assert!(matches!(
        packed_q40_len(usize::MAX / 32 * 32, usize::MAX / 16 * 16),
        Err(KernelError::BadArgument(_))
    ));
    assert!(matches!(
        pack_q40_rows(&w[..31], 64, 16, &mut p),
        Err(KernelError::BadSize { what: "w", .. })
    ));
    assert!(matches!(
        pack_q40_rows(&w, 64, 16, &mut p[..1]),
        Err(KernelError::BadSize { what: "out", .. })
    ));
    assert!(matches!(
        pack_q40_rows(&w, 64, 24, &mut p),
        Err(KernelError::NotMultiple { what: "d", .. })
    ));
    let mut back = vec![BlockQ40::default(); 2 * 16];
    assert!(matches!(
        unpack_q40_rows(&p[..1], 64, 16, &mut back),
        Err(KernelError::BadSize { what: "packed", .. })
    ));
    assert!(matches!(
        unpack_q40_rows(&p, 64, 16, &mut back[..30]),
        Err(KernelError::BadSize { what: "out", .. })
    ));
}
