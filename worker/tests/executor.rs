//! Executor behaviour that must hold bit for bit: batching, thread counts, and refusing configs
//! it cannot run before anything runs.

mod refmodel;

use std::sync::Arc;

use airllm_kernels::Kernels;
use airllm_worker::exec::{ExecError, Executor, NoSync};
use airllm_worker::float_type::FloatType;
use airllm_worker::graph::{build_llm_net, OpCode, N_BATCHES};
use airllm_worker::infer::{default_sync_type, ClusterOptions, InferError, LocalCluster};
use airllm_worker::model::gen::GenArch;
use airllm_worker::model::ModelFile;
use refmodel::tiny_model;

fn cluster(file: &Arc<ModelFile>, n_nodes: usize, n_threads: usize) -> LocalCluster {
    let opts = ClusterOptions {
        n_nodes,
        n_threads,
        sync_type: default_sync_type(file.header().weight_type),
        kernels: Kernels::current(),
    };
    LocalCluster::new(Arc::clone(file), &opts, &mut |_, _| {}).unwrap()
}

/// A fixed pseudo-random prompt inside the vocabulary.
fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| (i * 7919 + 13) % vocab as u32)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Logits of every position, feeding `tokens` in forward passes of `chunk` tokens.
fn run(c: &mut LocalCluster, tokens: &[u32], chunk: usize) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for (i, part) in tokens.chunks(chunk).enumerate() {
        c.forward(part, i * chunk).unwrap();
        for row in 0..part.len() {
            out.push(bits(c.logits(row).unwrap()));
        }
    }
    out
}

#[test]
fn prefill_in_one_batch_gives_the_bits_of_one_token_at_a_time() {
    for (arch, weights, n_nodes) in [
        (GenArch::Llama, FloatType::Q40, 1),
        (GenArch::Qwen3Moe, FloatType::F32, 1),
        (GenArch::Qwen3, FloatType::Q40, 2),
        (GenArch::Llama31, FloatType::Q40, 4),
    ] {
        let file = Arc::new(tiny_model(arch, weights, 3));
        let tokens = prompt(40, file.header().vocab_size);
        let batched = run(&mut cluster(&file, n_nodes, 2), &tokens, N_BATCHES as usize);
        let single = run(&mut cluster(&file, n_nodes, 2), &tokens, 1);
        let odd = run(&mut cluster(&file, n_nodes, 2), &tokens, 7);
        assert_eq!(batched.len(), 40);
        for pos in 0..40 {
            assert!(
                batched[pos] == single[pos] && odd[pos] == single[pos],
                "{arch} {weights} N={n_nodes}: position {pos} differs between batch sizes"
            );
        }
    }
}

#[test]
fn thread_count_does_not_change_a_bit() {
    let file = Arc::new(tiny_model(GenArch::Qwen3Moe, FloatType::Q40, 5));
    let tokens = prompt(12, file.header().vocab_size);
    let one = run(&mut cluster(&file, 1, 1), &tokens, 5);
    for n_threads in [2, 3, 4] {
        assert_eq!(
            run(&mut cluster(&file, 1, n_threads), &tokens, 5),
            one,
            "{n_threads} threads"
        );
    }
}

#[test]
fn unsupported_type_combination_is_named_before_running() {
    // F32 weights with Q80 exchange would need a Q80 × F32 matmul, which has no kernel.
    let file = tiny_model(GenArch::Llama, FloatType::F32, 1);
    let net = build_llm_net(file.header(), 1, N_BATCHES, FloatType::Q80).unwrap();
    let err = match Executor::new(&net.net, &net.nodes[0], 1, Kernels::current()) {
        Err(e) => e,
        Ok(_) => panic!("the executor accepted a Q80 × F32 matmul"),
    };
    assert_eq!(
        err,
        ExecError::Unsupported {
            op: "block_matmul_q".into(),
            layer: 0,
            code: OpCode::Matmul,
            quant: "Q80_F32_F32".into(),
        }
    );
    assert!(err.to_string().contains("MATMUL") && err.to_string().contains("block_matmul_q"));
}

#[test]
fn missing_and_misdirected_weights_are_errors() {
    let file = tiny_model(GenArch::Llama, FloatType::Q40, 1);
    let net = build_llm_net(file.header(), 2, N_BATCHES, FloatType::Q80).unwrap();
    let mut ex = Executor::new(&net.net, &net.nodes[1], 2, Kernels::current()).unwrap();
    // A worker's config has 9 weighted ops per layer (7 matrices, 2 norms) plus the final two.
    assert_eq!(ex.missing_weights().len(), 9 * 4 + 2);
    assert!(matches!(
        ex.load_weight("embedding", 0, 0, &[0; 4]),
        Err(ExecError::Weight(_))
    ));
    assert!(matches!(
        ex.load_weight("final_norm", 0, 1020, &[0; 8]),
        Err(ExecError::Weight(_))
    ));
    ex.load_weight("final_norm", 0, 0, &[0; 1024]).unwrap();
    assert_eq!(ex.missing_weights().len(), 9 * 4 + 1);
    let err = ex.forward(1, &mut NoSync).unwrap_err();
    assert!(matches!(err, ExecError::Weight(_)), "{err}");
}

#[test]
fn bad_positions_and_batches_are_refused() {
    let file = Arc::new(tiny_model(GenArch::Llama, FloatType::Q40, 1));
    let mut c = cluster(&file, 1, 1);
    let seq_len = file.header().seq_len;
    assert!(matches!(c.forward(&[], 0), Err(InferError::Invalid(_))));
    assert!(matches!(
        c.forward(&[1; 33], 0),
        Err(InferError::Invalid(_))
    ));
    assert!(matches!(
        c.forward(&[1], seq_len),
        Err(InferError::Invalid(_))
    ));
    assert!(matches!(
        c.forward(&[100_000], 0),
        Err(InferError::Invalid(_))
    ));
    c.forward(&[1, 2], seq_len - 2).unwrap();
}
