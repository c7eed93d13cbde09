//! The in-process cluster: N nodes, each with its own executor, buffers and weight slices,
//! exchanging pipe slices in memory as the network protocol does (spec §5.5).

mod refmodel;

use std::sync::Arc;

use airllm_kernels::Kernels;
use airllm_worker::float_type::FloatType;
use airllm_worker::infer::{ClusterOptions, InferError, LocalCluster};
use airllm_worker::model::gen::GenArch;
use airllm_worker::model::ModelFile;
use airllm_worker::sample::argmax;
use refmodel::{max_abs_diff, rms, tiny_model};

fn cluster(file: &Arc<ModelFile>, n_nodes: usize, sync: FloatType) -> LocalCluster {
    let opts = ClusterOptions {
        n_nodes,
        n_threads: 1,
        sync_type: sync,
        kernels: Kernels::current(),
    };
    LocalCluster::new(Arc::clone(file), &opts, &mut |_, _| {}).unwrap()
}

/// Greedy generation from token 1 (a 3-token prompt evaluated in one batch, then one token at a
/// time), with the logits of every decoded position.
fn greedy(c: &mut LocalCluster, steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let prompt = [1u32, 2, 3];
    c.forward(&prompt, 0).unwrap();
    let mut token = argmax(c.logits(prompt.len() - 1).unwrap());
    let mut tokens = vec![token];
    let mut logits = Vec::new();
    for pos in prompt.len()..steps {
        c.forward(&[token], pos).unwrap();
        let l = c.logits(0).unwrap().to_vec();
        token = argmax(&l);
        tokens.push(token);
        logits.push(l);
    }
    (tokens, logits)
}

#[test]
fn f32_weights_and_sync_give_the_same_tokens_on_1_2_and_4_nodes() {
    for arch in [GenArch::Llama, GenArch::Qwen3, GenArch::Qwen3Moe] {
        let file = Arc::new(tiny_model(arch, FloatType::F32, 11));
        let (one, logits1) = greedy(&mut cluster(&file, 1, FloatType::F32), 40);
        for n in [2, 4] {
            let (tokens, logits) = greedy(&mut cluster(&file, n, FloatType::F32), 40);
            assert_eq!(tokens, one, "{arch}: {n} nodes generated other tokens");
            // Only the order of float additions differs between node counts.
            for (a, b) in logits.iter().zip(&logits1) {
                assert!(max_abs_diff(a, b) <= 1e-5 * rms(b), "{arch}: {n} nodes");
            }
        }
    }
}

#[test]
fn q80_sync_on_several_nodes_stays_close_to_one_node() {
    // Each node quantises its own partial sums, so node counts differ slightly (spec §6.11);
    // the bound is the Q40 tolerance of the reference tests.
    let file = Arc::new(tiny_model(GenArch::Llama, FloatType::Q40, 11));
    let tokens: Vec<u32> = (0..24).map(|i| (i * 37 + 5) % 512).collect();
    let mut runs = Vec::new();
    for n in [1, 2, 4] {
        let mut c = cluster(&file, n, FloatType::Q80);
        c.forward(&tokens, 0).unwrap();
        runs.push(
            (0..tokens.len())
                .map(|r| c.logits(r).unwrap().to_vec())
                .collect::<Vec<_>>(),
        );
    }
    for (n, run) in [(2, &runs[1]), (4, &runs[2])] {
        for (pos, (a, b)) in run.iter().zip(&runs[0]).enumerate() {
            let rel = max_abs_diff(a, b) / rms(b);
            assert!(rel < 0.12, "{n} nodes, position {pos}: {rel}");
        }
        assert_ne!(
            run, &runs[0],
            "{n} nodes should quantise different partial sums"
        );
    }
}

#[test]
fn node_counts_the_model_cannot_split_are_refused() {
    let file = Arc::new(tiny_model(GenArch::Llama, FloatType::Q40, 1));
    let opts = |n| ClusterOptions {
        n_nodes: n,
        n_threads: 1,
        sync_type: FloatType::Q80,
        kernels: Kernels::current(),
    };
    for n in [0, 3, 8] {
        let r = LocalCluster::new(Arc::clone(&file), &opts(n), &mut |_, _| {});
        assert!(r.is_err(), "{n} nodes accepted");
    }
    let f32_sync = ClusterOptions {
        sync_type: FloatType::F32,
        ..opts(1)
    };
    assert!(matches!(
        LocalCluster::new(Arc::clone(&file), &f32_sync, &mut |_, _| {}),
        Err(InferError::Invalid(_))
    ));
}
