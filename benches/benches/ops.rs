//! Criterion benchmarks of attention (Llama-3-8B heads at three positions, 1 thread and all
//! threads, KV cache resident or streamed) and of the small per-token kernels (1 thread).

mod common;

use std::cell::{Cell, OnceCell};

use airllm_benches::data::{f32_vec, Copies};
use airllm_benches::small::{SmallOp, SmallOps};
use airllm_benches::team::{run_many, Op, Outputs};
use airllm_benches::{thread_counts, Regime};
use airllm_kernels::{AttentionShape, Kernels};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use common::impls;

const N_HEADS: usize = 32;
const N_KV_HEADS: usize = 8;
const HEAD_DIM: usize = 128;

fn attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sampling_mode(SamplingMode::Flat);
    let kv_dim = N_KV_HEADS * HEAD_DIM;
    for pos in [255, 1023, 4095] {
        let seq_len = pos + 1;
        let rows = seq_len * kv_dim;
        let shape = AttentionShape {
            n_heads: N_HEADS,
            n_heads0: N_HEADS,
            n_kv_heads: N_KV_HEADS,
            head_dim: HEAD_DIM,
            seq_len,
            kv_dim0: kv_dim,
        };
        // K then V of one copy of the cache; several copies for the stream regime.
        let case = OnceCell::new();
        g.throughput(Throughput::Bytes((2 * rows * size_of::<f32>()) as u64));
        for imp in impls() {
            for t in thread_counts() {
                for regime in Regime::ALL {
                    let id = format!("{imp}/t{t}/{}/h32_kv8_d128_pos{pos}", regime.name());
                    let next = Cell::new(0);
                    g.bench_function(id, |bench| {
                        let (kv, q): &(Copies<f32>, Vec<f32>) = case.get_or_init(|| {
                            (
                                Copies::new(f32_vec(2 * rows, 31, -1.0, 1.0), Regime::Stream),
                                f32_vec(N_HEADS * HEAD_DIM, 32, -1.0, 1.0),
                            )
                        });
                        let k = Kernels::new(imp).expect("available");
                        let mut outs = Outputs::new(N_HEADS * HEAD_DIM, N_HEADS * seq_len);
                        bench.iter_custom(|iters| {
                            let first = next.get();
                            next.set(first + iters as usize);
                            run_many(k, t, &mut outs, first, iters, |i| {
                                let c = kv.get(match regime {
                                    Regime::Cache => 0,
                                    Regime::Stream => i,
                                });
                                Op::Attention {
                                    q,
                                    k_cache: &c[..rows],
                                    v_cache: &c[rows..],
                                    pos,
                                    shape,
                                }
                            })
                        })
                    });
                }
            }
        }
    }
    g.finish();
}

fn small_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("small");
    let mut data = SmallOps::new();
    for op in SmallOp::ALL {
        g.throughput(Throughput::Bytes(op.bytes() as u64));
        for imp in impls() {
            let k = Kernels::new(imp).expect("available");
            let id = format!("{imp}/{}/{}", op.kernel(), common::slug(op.shape()));
            g.bench_function(id, |bench| {
                data.prepare(op);
                bench.iter(|| {
                    data.call(k, op)
                        .unwrap_or_else(|e| panic!("{} refused: {e}", op.kernel()))
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = attention, small_ops
}
criterion_main!(benches);
