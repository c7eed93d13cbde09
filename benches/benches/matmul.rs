//! Criterion benchmarks of the matmuls: Q80×Q40 mat-vec and batched, the mat-vec on packed
//! weights, and F32, for every available implementation, 1 thread and all threads,
//! cache-resident and streaming weights.
//!
//! Ids read `IMPL/tTHREADS/REGIME/SHAPE` (shape `n×d` = inputs × outputs); run one with e.g.
//! `cargo bench -p airllm-benches --bench matmul -- 'avx2/t1/stream'`.

mod common;

use std::cell::{Cell, OnceCell};

use airllm_benches::data::{f32_vec, pack_q40, q40_matrix, q80_vec, Copies};
use airllm_benches::shapes::{self, MatShape};
use airllm_benches::team::{run_many, Op, Outputs};
use airllm_benches::{thread_counts, Regime};
use airllm_kernels::{BlockQ40, BlockQ80, Impl, Kernels, PackedQ40, PACK_ROWS, QK};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use common::{full, impls, slug};

/// Which copy call `i` uses: always the first in cache, the next in stream.
fn rotation(regime: Regime, i: usize) -> usize {
    match regime {
        Regime::Cache => 0,
        Regime::Stream => i,
    }
}

/// Q40 weights and enough Q80 input for `bmax` vectors, built the first time a benchmark of
/// the shape actually runs (criterion's filter may skip them all).
struct Q40Case {
    w: Copies<BlockQ40>,
    x: Vec<BlockQ80>,
}

impl Q40Case {
    fn new(s: &MatShape, bmax: usize) -> Q40Case {
        Q40Case {
            w: Copies::new(q40_matrix(s.d, s.n, 11), Regime::Stream),
            x: q80_vec(s.n * bmax, 12),
        }
    }
}

/// Benchmarks `matmul_q80_q40_batch` with batch `b` on `s` for each configuration.
fn q40_group(
    c: &mut Criterion,
    group: &str,
    shapes: &[MatShape],
    batches: &[usize],
    impls: &[Impl],
    regimes: &[Regime],
) {
    let mut g = c.benchmark_group(group);
    g.sampling_mode(SamplingMode::Flat);
    let bmax = batches.iter().copied().max().unwrap_or(1);
    for s in shapes {
        // Dropped at the end of the shape: streaming pools are freed between shapes.
        let case = OnceCell::new();
        for &b in batches {
            g.throughput(if b == 1 {
                Throughput::Bytes((s.d * s.n / QK * size_of::<BlockQ40>()) as u64)
            } else {
                Throughput::Elements(b as u64)
            });
            for &imp in impls {
                for t in thread_counts() {
                    for &regime in regimes {
                        let batch = if b == 1 {
                            String::new()
                        } else {
                            format!("/b{b}")
                        };
                        let id =
                            format!("{imp}/t{t}/{}/{}{batch}", regime.name(), slug(&s.label()));
                        let next = Cell::new(0);
                        g.bench_function(id, |bench| {
                            let case: &Q40Case = case.get_or_init(|| Q40Case::new(s, bmax));
                            let k = Kernels::new(imp).expect("available");
                            let mut outs = Outputs::new(s.d * b, 0);
                            let x = &case.x[..b * s.n / QK];
                            bench.iter_custom(|iters| {
                                let first = next.get();
                                next.set(first + iters as usize);
                                run_many(k, t, &mut outs, first, iters, |i| Op::MatmulQ80Q40 {
                                    x,
                                    w: case.w.get(rotation(regime, i)),
                                    n: s.n,
                                    d: s.d,
                                    b,
                                })
                            })
                        });
                    }
                }
            }
        }
    }
    g.finish();
}

fn matmul_q80_q40(c: &mut Criterion) {
    let shapes = if full() {
        shapes::all_shapes()
    } else {
        shapes::default_shapes()
    };
    q40_group(c, "matmul_q80_q40", &shapes, &[1], &impls(), &Regime::ALL);
}

fn matmul_q80_q40_batch(c: &mut Criterion) {
    let mut shapes = shapes::standard_shapes()[..1].to_vec();
    let (impls, regimes): (Vec<Impl>, &[Regime]) = if full() {
        shapes.extend(
            shapes::model_shapes()
                .into_iter()
                .filter(|s| s.model == "llama3-8b" && s.tensor == "w1"),
        );
        (impls(), &Regime::ALL)
    } else {
        // The scalar batch is b scalar mat-vecs; the default run leaves it out.
        let v = impls().into_iter().filter(|i| *i != Impl::Scalar).collect();
        (v, &[Regime::Stream])
    };
    q40_group(
        c,
        "matmul_q80_q40_batch",
        &shapes,
        &[4, 8, 16, 32],
        &impls,
        regimes,
    );
}

/// `matmul_q80_q40_packed`: the mat-vec on weights packed in groups of 16 rows, throughput in
/// the same Q40 bytes as the row-major group. By default the standard shapes, streaming only;
/// the full run adds every model shape (all have `d` a multiple of 16) and the cache regime.
fn matmul_q80_q40_packed(c: &mut Criterion) {
    let (shapes, regimes): (Vec<MatShape>, &[Regime]) = if full() {
        (shapes::all_shapes(), &Regime::ALL)
    } else {
        (shapes::standard_shapes(), &[Regime::Stream])
    };
    let mut g = c.benchmark_group("matmul_q80_q40_packed");
    g.sampling_mode(SamplingMode::Flat);
    for s in shapes.iter().filter(|s| s.d % PACK_ROWS == 0) {
        let case = OnceCell::new();
        g.throughput(Throughput::Bytes(
            (s.d * s.n / QK * size_of::<BlockQ40>()) as u64,
        ));
        for imp in impls() {
            for t in thread_counts() {
                for &regime in regimes {
                    let id = format!("{imp}/t{t}/{}/{}", regime.name(), slug(&s.label()));
                    let next = Cell::new(0);
                    g.bench_function(id, |bench| {
                        let (w, x): &(Copies<PackedQ40>, Vec<BlockQ80>) = case.get_or_init(|| {
                            let w = pack_q40(&q40_matrix(s.d, s.n, 11), s.n, s.d)
                                .expect("d is a multiple of 16");
                            (Copies::new(w, Regime::Stream), q80_vec(s.n, 12))
                        });
                        let k = Kernels::new(imp).expect("available");
                        let mut outs = Outputs::new(s.d, 0);
                        bench.iter_custom(|iters| {
                            let first = next.get();
                            next.set(first + iters as usize);
                            run_many(k, t, &mut outs, first, iters, |i| Op::MatmulQ80Q40Packed {
                                x,
                                w: w.get(rotation(regime, i)),
                                n: s.n,
                                d: s.d,
                            })
                        })
                    });
                }
            }
        }
    }
    g.finish();
}

fn matmul_f32(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    g.sampling_mode(SamplingMode::Flat);
    for s in shapes::standard_shapes() {
        let case = OnceCell::new();
        g.throughput(Throughput::Bytes((s.n * s.d * size_of::<f32>()) as u64));
        for imp in impls() {
            for t in thread_counts() {
                for regime in Regime::ALL {
                    let id = format!("{imp}/t{t}/{}/{}", regime.name(), slug(&s.label()));
                    let next = Cell::new(0);
                    g.bench_function(id, |bench| {
                        let (w, x): &(Copies<f32>, Vec<f32>) = case.get_or_init(|| {
                            (
                                Copies::new(f32_vec(s.n * s.d, 21, -0.05, 0.05), Regime::Stream),
                                f32_vec(s.n, 22, -1.0, 1.0),
                            )
                        });
                        let k = Kernels::new(imp).expect("available");
                        let mut outs = Outputs::new(s.d, 0);
                        bench.iter_custom(|iters| {
                            let first = next.get();
                            next.set(first + iters as usize);
                            run_many(k, t, &mut outs, first, iters, |i| Op::MatmulF32 {
                                x,
                                w: w.get(rotation(regime, i)),
                                n: s.n,
                                d: s.d,
                                b: 1,
                            })
                        })
                    });
                }
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = matmul_q80_q40, matmul_q80_q40_batch, matmul_q80_q40_packed, matmul_f32
}
criterion_main!(benches);
