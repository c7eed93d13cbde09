//! The graph builder against the verified examples of the spec (§4.2, §4.4, §5.3).

use airllm_worker::float_type::FloatType;
use airllm_worker::graph::{
    build_llm_net, OpCode, OpParams, PointerConfig, PointerSource, PointerType, Size3D, SyncType,
    N_BATCHES,
};
use airllm_worker::model::header::{ArchType, HiddenAct, ModelHeader, RopeType};

/// The spec's tiny test model (§1.5): dim 256, hidden 768, 4 layers, 8/4 heads, vocab 512.
fn tiny(arch: ArchType) -> ModelHeader {
    ModelHeader {
        version: 0,
        arch,
        dim: 256,
        hidden_dim: 768,
        n_layers: 4,
        n_heads: 8,
        n_kv_heads: 4,
        n_experts: if arch == ArchType::Qwen3Moe { 4 } else { 0 },
        n_active_experts: if arch == ArchType::Qwen3Moe { 2 } else { 0 },
        vocab_size: 512,
        max_seq_len: 256,
        hidden_act: HiddenAct::Silu,
        rope_theta: 10000.0,
        weight_type: FloatType::Q40,
        rope_scaling_factor: 1.0,
        rope_scaling_low_freq_factor: 0.0,
        rope_scaling_high_freq_factor: 0.0,
        rope_scaling_orig_max_seq_len: 0,
        rope_type: if arch == ArchType::Llama {
            RopeType::Llama
        } else {
            RopeType::Falcon
        },
        head_dim: 32,
        norm_epsilon: 1e-5,
        moe_hidden_dim: if arch == ArchType::Qwen3Moe { 256 } else { 0 },
        q_dim: 256,
        kv_dim: 128,
        ff_dim: if arch == ArchType::Qwen3Moe { 256 } else { 768 },
        seq_len: 256,
        header_size: 136,
    }
}

#[test]
fn tiny_q80_two_nodes_buffer_list() {
    let net = build_llm_net(&tiny(ArchType::Llama), 2, N_BATCHES, FloatType::Q80).unwrap();
    let node = &net.nodes[1];
    assert_eq!(node.node_index, 1);
    assert_eq!(node.buffers.len(), 31);
    assert_eq!(node.segments.len(), 10);
    let f32_ = FloatType::F32;
    let q80 = FloatType::Q80;
    let expect: [(&str, FloatType, u32, u32, u32); 23] = [
        ("x", f32_, 1, 32, 256),
        ("y", f32_, 1, 32, 256),
        ("q_y", q80, 1, 32, 256),
        ("z", f32_, 1, 32, 256),
        ("q_z_slice", q80, 1, 32, 128),
        ("q", f32_, 1, 32, 128),
        ("k_temp", f32_, 1, 32, 64),
        ("v_temp", f32_, 1, 32, 64),
        ("inv_rms", f32_, 1, 32, 1),
        ("rope_cache", f32_, 1, 256, 192),
        ("att", f32_, 1, 32, 4 * 256),
        ("lg", f32_, 1, 32, 256),
        ("d", f32_, 1, 32, 384),
        ("q_d", q80, 1, 32, 384),
        ("l", f32_, 1, 32, 384),
        ("gt", f32_, 1, 32, 1),
        ("act_exp_ix", f32_, 1, 32, 1),
        ("moe_y", f32_, 1, 32, 256),
        ("q_moe_y", q80, 1, 32, 256),
        ("moe_d", f32_, 1, 32, 384),
        ("q_moe_d", q80, 1, 32, 384),
        ("moe_l", f32_, 1, 32, 384),
        ("moe_s", f32_, 1, 32, 1),
    ];
    for (i, (name, ft, z, y, x)) in expect.iter().enumerate() {
        let b = &node.buffers[i];
        assert_eq!(
            (b.name.as_str(), b.size),
            (*name, Size3D::new(*ft, *z, *y, *x).unwrap()),
            "buffer {i}"
        );
    }
    for l in 0..4 {
        for (j, name) in ["k", "v"].iter().enumerate() {
            let b = &node.buffers[23 + 2 * l + j];
            assert_eq!(b.name, *name);
            assert_eq!(b.size, Size3D::new(f32_, 1, 256, 64).unwrap());
        }
    }
}

#[test]
fn f32_sync_drops_the_quantised_buffers() {
    let net = build_llm_net(&tiny(ArchType::Llama), 2, N_BATCHES, FloatType::F32).unwrap();
    let names: Vec<&str> = net.nodes[0]
        .buffers
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(names.len(), 27);
    assert!(!names
        .iter()
        .any(|n| n.starts_with("q_") && *n != "q_z_slice"));
    assert_eq!(&names[..4], &["x", "y", "z", "q_z_slice"]);
    // The casts into q_y / q_d disappear; the z-slice and ZQ casts stay (as F32 copies).
    let ops: Vec<&str> = net.nodes[0].segments[1]
        .ops
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert!(!ops.contains(&"block_cast_y"));
    assert!(ops.contains(&"block_cast_y2") && ops.contains(&"block_cast_d"));
    assert_eq!(net.net.pipes[4].size.float_type(), FloatType::F32);
}

#[test]
fn net_config_pipes_match_the_capture() {
    let net = build_llm_net(&tiny(ArchType::Llama), 2, N_BATCHES, FloatType::Q80).unwrap();
    assert_eq!((net.net.n_batches, net.net.n_nodes), (32, 2));
    let names: Vec<&str> = net.net.pipes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["POS", "TOK", "X", "LG", "ZQ"]);
    assert_eq!(net.net.pre_syncs, [0]);
    // pipe 0 bytes from the verified capture (spec §5.3).
    let pos: [u8; 40] = [
        0, 0, 0, 0, 1, 0, 0, 0, 0x20, 0, 0, 0, 1, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0,
        0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(net.net.pipes[0].size.to_bytes(), pos);
    let zq = net.net.pipes[4].size;
    assert_eq!(
        (zq.float_type(), zq.x(), zq.n_bytes()),
        (FloatType::Q80, 512, 17408)
    );
    assert_eq!(Size3D::from_bytes(&zq.to_bytes()).unwrap(), zq);
    assert_eq!(Size3D::EMPTY.to_bytes()[..4], (-1i32).to_le_bytes());
}

#[test]
fn rope_and_attention_configs_of_node_1_of_2() {
    let net = build_llm_net(&tiny(ArchType::Llama), 2, N_BATCHES, FloatType::Q80).unwrap();
    let node = &net.nodes[1];
    let rope_q = node.find_op("block_rope_q", 0).unwrap();
    let OpParams::Rope(r) = rope_q.params else {
        panic!("rope config expected")
    };
    assert_eq!(
        (r.is_q, r.position_pipe_index, r.rope_cache_buffer_index),
        (1, 0, 9)
    );
    assert_eq!(
        (
            r.scaling_factor,
            r.scaling_low_freq_factor,
            r.scaling_high_freq_factor,
            r.scaling_orig_max_seq_len
        ),
        (1.0, 0.0, 0.0, 0)
    );
    let s = r.slice;
    assert_eq!(
        [
            s.q_dim0,
            s.q_dim_start,
            s.q_dim_end,
            s.q_shift,
            s.kv_dim,
            s.kv_dim0,
            s.kv_dim_start,
            s.slice_dim,
            s.seq_len,
            s.head_dim,
            s.n_kv_heads
        ],
        [128, 128, 256, 64, 128, 64, 64, 192, 256, 32, 4]
    );
    assert_eq!(s.rope_theta, 10000.0);
    assert_eq!(s.cache_size, Size3D::d2(FloatType::F32, 256, 192).unwrap());
    let bytes = rope_q.params.to_bytes();
    assert_eq!(bytes.len(), 120);
    assert_eq!(bytes[0..4], 0u32.to_le_bytes());
    assert_eq!(bytes[80..120], s.cache_size.to_bytes());
    assert_eq!(
        OpParams::from_bytes(OpCode::Rope, &bytes).unwrap(),
        rope_q.params
    );

    let att = node.find_op("block_multihead_att", 0).unwrap();
    let bytes = att.params.to_bytes();
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words, [8, 4, 4, 32, 256, 128, 64, 0, 5, 23, 24, 10]);
    assert_eq!(
        att.input,
        PointerConfig {
            source: PointerSource::Buffer,
            index: 3,
            kind: PointerType::BatchedSlice
        }
    );
    // Layer 3 uses the last KV pair.
    let OpParams::MultiheadAtt(a3) = node.find_op("block_multihead_att", 3).unwrap().params else {
        panic!("attention config expected")
    };
    assert_eq!(
        (a3.key_cache_buffer_index, a3.value_cache_buffer_index),
        (29, 30)
    );
}

#[test]
fn segments_ops_and_syncs_follow_the_peer_layout() {
    let net = build_llm_net(&tiny(ArchType::Llama), 2, N_BATCHES, FloatType::Q80).unwrap();
    let root = &net.nodes[0];
    let worker = &net.nodes[1];
    assert_eq!(root.segments[0].ops.len(), 1);
    assert_eq!(root.segments[0].ops[0].code, OpCode::Embedding);
    assert_eq!(
        root.segments[0].ops[0].weight_size,
        Size3D::d2(FloatType::F32, 512, 256).unwrap()
    );
    assert!(worker.segments[0].ops.is_empty());
    assert_eq!(worker.segments[0].syncs[0].sync_type, SyncType::WithRoot);
    let att0: Vec<&str> = worker.segments[1]
        .ops
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(
        att0,
        [
            "block_cast_x",
            "block_norm_pre_0",
            "block_norm_0",
            "block_cast_y",
            "block_matmul_q",
            "block_matmul_k",
            "block_matmul_v",
            "block_rope_q",
            "block_rope_k",
            "block_shift_k",
            "block_shift_v",
            "block_multihead_att",
            "block_cast_y2",
            "block_matmul_wo",
            "block_cast_d"
        ]
    );
    assert_eq!(worker.segments[3].ops[0].name, "block_merge_add");
    let ff: Vec<&str> = worker.segments[2]
        .ops
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(
        ff,
        [
            "block_merge_add2",
            "block_norm_pre_1",
            "block_norm_1",
            "block_cast_y3",
            "block_matmul_w1",
            "block_matmul_w3",
            "block_act",
            "block_mul",
            "block_cast_d2",
            "block_matmul_w2",
            "block_cast_d3"
        ]
    );
    let end = &worker.segments[9];
    assert_eq!(end.syncs[0].sync_type, SyncType::NodeSlicesExceptRoot);
    let logits = end
        .ops
        .iter()
        .find(|o| o.name == "final_matmul_logits")
        .unwrap();
    assert_eq!(logits.params.to_bytes(), [0u8; 12]);
    let wq = worker.find_op("block_matmul_q", 2).unwrap();
    assert_eq!(
        wq.weight_size,
        Size3D::d2(FloatType::Q40, 256, 128).unwrap()
    );
    assert_eq!(wq.weight_size.n_bytes(), 18432);
    let wo = worker.find_op("block_matmul_wo", 2).unwrap();
    assert_eq!(wo.weight_size.n_bytes(), 18432);
    assert_eq!(
        wq.params.to_bytes(),
        [0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0],
        "dense matmuls point at act_exp_ix"
    );
}

#[test]
fn qwen3_adds_head_norms_with_falcon_rope() {
    let net = build_llm_net(&tiny(ArchType::Qwen3), 2, N_BATCHES, FloatType::Q80).unwrap();
    let node = &net.nodes[1];
    assert_eq!(
        node.buffers[8].size.x(),
        4,
        "inv_rms holds max(q, k) heads per node"
    );
    let norm_q = node.find_op("block_norm_q", 1).unwrap();
    assert_eq!(
        norm_q.params,
        OpParams::RmsNorm {
            inv_rms_buffer_index: 8,
            n_columns: 4
        }
    );
    assert_eq!(
        norm_q.weight_size,
        Size3D::d2(FloatType::F32, 1, 32).unwrap()
    );
    let OpParams::Rope(r) = node.find_op("block_rope_k", 1).unwrap().params else {
        panic!("rope config expected")
    };
    assert_eq!(r.rope_type, RopeType::Falcon);
    assert_eq!((r.slice.q_dim_start, r.slice.slice_dim), (0, 0));
    assert_eq!(
        r.slice.cache_size,
        Size3D::d2(FloatType::F32, 256, 32).unwrap()
    );
}

#[test]
fn qwen3_moe_expert_ops() {
    let net = build_llm_net(&tiny(ArchType::Qwen3Moe), 2, N_BATCHES, FloatType::Q80).unwrap();
    let node = &net.nodes[0];
    assert_eq!(node.buffers[17].name, "moe_y");
    assert_eq!(node.buffers[17].size.z(), 2);
    let w1 = node.find_op("block_matmul_w1", 0).unwrap();
    assert_eq!(
        w1.weight_size,
        Size3D::new(FloatType::Q40, 4, 256, 128).unwrap()
    );
    assert_eq!(
        w1.params,
        OpParams::Matmul {
            n_experts: 4,
            n_active_experts: 2,
            active_expert_indexes_buffer_index: 16
        }
    );
    let gate2 = node.find_op("block_moe_gate2", 0).unwrap();
    assert_eq!(
        gate2.params,
        OpParams::MoeGate {
            k: 2,
            norm_topk: 1,
            indexes_buffer_index: 16
        }
    );
    assert_eq!(
        node.find_op("block_moe_gate", 0).unwrap().weight_size,
        Size3D::d2(FloatType::F32, 256, 4).unwrap()
    );
}

#[test]
fn configs_roundtrip_through_bytes() {
    for arch in [ArchType::Llama, ArchType::Qwen3, ArchType::Qwen3Moe] {
        let net = build_llm_net(&tiny(arch), 2, N_BATCHES, FloatType::Q80).unwrap();
        for (_, op) in net.nodes[1].ops() {
            let b = op.params.to_bytes();
            assert_eq!(b.len(), OpParams::wire_size(op.code), "{}", op.name);
            assert!(op.params.matches(op.code));
            assert_eq!(OpParams::from_bytes(op.code, &b).unwrap(), op.params);
            assert_eq!(
                PointerConfig::from_bytes(&op.input.to_bytes()).unwrap(),
                op.input
            );
            assert_eq!(OpCode::from_code(op.code.code()).unwrap(), op.code);
        }
    }
}

#[test]
fn split_rules_are_errors_not_panics() {
    let h = tiny(ArchType::Llama);
    assert!(
        build_llm_net(&h, 8, N_BATCHES, FloatType::Q80).is_err(),
        "more nodes than KV heads"
    );
    assert!(build_llm_net(&h, 3, N_BATCHES, FloatType::Q80).is_err());
    assert!(build_llm_net(&h, 0, N_BATCHES, FloatType::Q80).is_err());
    assert!(build_llm_net(&h, 1, N_BATCHES, FloatType::Q40).is_err());
    assert!(build_llm_net(&h, 4, N_BATCHES, FloatType::Q80).is_ok());
}
