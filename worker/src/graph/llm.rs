//! `buildLlmNet`: the net config and every node's config for llama, qwen3 and qwen3-moe.
//!
//! Buffers are created in the peer's order (their indices are part of the op configs and so of
//! the wire bytes), including the MoE scratch buffers that dense models allocate too, and the
//! per-layer KV caches created as each layer is built.

use super::params::{MultiHeadAttConfig, OpParams, RopeConfig, RopeSliceConfig};
use super::types::{
    NamedSize, NetConfig, NodeConfig, OpCode, OpConfig, PointerConfig, PointerSource,
    SegmentConfig, Size3D, SyncConfig, SyncType,
};
use super::GraphError;
use crate::float_type::FloatType;
use crate::model::header::{ArchType, ModelHeader, RopeType};

/// Batch rows per forward pass; the peer's CLI always uses 32.
pub const N_BATCHES: u32 = 32;

/// A matrix split by output rows (`NnRowMatmulSlice`): node k holds rows `k·d0 .. (k+1)·d0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSlice {
    /// Weight type.
    pub float_type: FloatType,
    /// Inputs per row.
    pub n: u32,
    /// Output rows of the whole matrix.
    pub d: u32,
    /// Output rows per node.
    pub d0: u32,
}

/// A matrix split by input columns (`NnColMatmulSlice`): node k holds columns
/// `k·n0 .. (k+1)·n0` of every row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColSlice {
    /// Weight type.
    pub float_type: FloatType,
    /// Inputs per row of the whole matrix.
    pub n: u32,
    /// Inputs per row on each node.
    pub n0: u32,
    /// Output rows.
    pub d: u32,
}

/// The built graph of one model over `n_nodes` nodes (the peer's `LlmNet`).
#[derive(Clone, Debug, PartialEq)]
pub struct LlmNet {
    /// Shared by all nodes.
    pub net: NetConfig,
    /// One per node; index 0 is the root.
    pub nodes: Vec<NodeConfig>,
    /// The `POS` pipe.
    pub position_pipe: u32,
    /// The `TOK` pipe.
    pub token_pipe: u32,
    /// The `X` pipe.
    pub x_pipe: u32,
    /// The `LG` pipe.
    pub logits_pipe: u32,
    /// The `ZQ` pipe.
    pub zq_pipe: u32,
    /// `wq`.
    pub q_slice: RowSlice,
    /// `wk`.
    pub k_slice: RowSlice,
    /// `wv`.
    pub v_slice: RowSlice,
    /// `wo`.
    pub wo_slice: ColSlice,
    /// `w1` (per expert for MoE).
    pub w1_slice: RowSlice,
    /// `w2` (per expert for MoE).
    pub w2_slice: ColSlice,
    /// `w3` (per expert for MoE).
    pub w3_slice: RowSlice,
    /// The classifier.
    pub wcls_slice: RowSlice,
}

fn to_u32(what: &str, v: usize) -> Result<u32, GraphError> {
    u32::try_from(v).map_err(|_| GraphError::Unsplittable(format!("{what} {v} does not fit u32")))
}

fn need(ok: bool, why: impl FnOnce() -> String) -> Result<(), GraphError> {
    if ok {
        Ok(())
    } else {
        Err(GraphError::Unsplittable(why()))
    }
}

fn row_slice(
    ft: FloatType,
    n_nodes: u32,
    n: u32,
    d: u32,
    what: &str,
) -> Result<RowSlice, GraphError> {
    need(d.is_multiple_of(n_nodes), || {
        format!("{what}: {d} output rows cannot be split over {n_nodes} nodes")
    })?;
    Ok(RowSlice {
        float_type: ft,
        n,
        d,
        d0: d / n_nodes,
    })
}

fn col_slice(
    ft: FloatType,
    n_nodes: u32,
    n: u32,
    d: u32,
    what: &str,
) -> Result<ColSlice, GraphError> {
    need(n.is_multiple_of(n_nodes), || {
        format!("{what}: {n} input columns cannot be split over {n_nodes} nodes")
    })?;
    let n0 = n / n_nodes;
    need(ft.bytes(u64::from(n0)).is_some(), || {
        format!("{what}: a column slice of {n0} is not whole {ft} blocks")
    })?;
    Ok(ColSlice {
        float_type: ft,
        n,
        n0,
        d,
    })
}

/// Collects a segment's ops and syncs (`NnSegmentConfigBuilder`).
#[derive(Default)]
struct Segment(SegmentConfig);

impl Segment {
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        code: OpCode,
        name: &str,
        index: u32,
        input: PointerConfig,
        output: PointerConfig,
        weight_size: Size3D,
        params: OpParams,
    ) {
        debug_assert!(params.matches(code));
        self.0.ops.push(OpConfig {
            code,
            name: name.to_owned(),
            index,
            input,
            output,
            weight_size,
            params,
        });
    }
    fn sync(&mut self, pipe_index: u32, sync_type: SyncType) {
        self.0.syncs.push(SyncConfig {
            pipe_index,
            sync_type,
        });
    }
}

/// Adds named buffers and returns their indices (`NnNodeConfigBuilder::addBuffer`).
struct Buffers(Vec<NamedSize>);

impl Buffers {
    fn add(&mut self, name: &str, size: Size3D) -> u32 {
        self.0.push(NamedSize {
            name: name.to_owned(),
            size,
        });
        (self.0.len() - 1) as u32
    }
}

/// Builds the net config and all `n_nodes` node configs for the model `h`, with pipes and
/// partial sums in `sync_type` (`--buffer-float-type`: F32, or Q80 for quantised exchange) and
/// `n_batches` rows per forward.
///
/// Checks the split rules of spec §7 and returns an error (where the peer asserts) if the model
/// cannot be split over `n_nodes`.
pub fn build_llm_net(
    h: &ModelHeader,
    n_nodes: u32,
    n_batches: u32,
    sync_type: FloatType,
) -> Result<LlmNet, GraphError> {
    use PointerSource::{Buffer as Buf, Pipe};
    let batch = PointerConfig::batch;
    let sliced = PointerConfig::batched_slice;

    need(n_nodes >= 1, || "at least one node is needed".into())?;
    need((1..=255).contains(&n_batches), || {
        format!("n_batches {n_batches} must be 1..=255")
    })?;
    need(matches!(sync_type, FloatType::F32 | FloatType::Q80), || {
        format!("sync type {sync_type} is not f32 or q80")
    })?;
    let dim = to_u32("dim", h.dim)?;
    let q_dim = to_u32("q_dim", h.q_dim)?;
    let kv_dim = to_u32("kv_dim", h.kv_dim)?;
    let head_dim = to_u32("head_dim", h.head_dim)?;
    let n_heads = to_u32("n_heads", h.n_heads)?;
    let n_kv_heads = to_u32("n_kv_heads", h.n_kv_heads)?;
    let n_layers = to_u32("n_layers", h.n_layers)?;
    let vocab = to_u32("vocab_size", h.vocab_size)?;
    let seq_len = to_u32("seq_len", h.seq_len)?;
    let n_experts = to_u32("n_experts", h.n_experts)?;
    let n_active = to_u32("n_active_experts", h.n_active_experts)?;
    let ff_dim = to_u32(
        "ff_dim",
        if h.arch == ArchType::Qwen3Moe {
            h.moe_hidden_dim
        } else {
            h.hidden_dim
        },
    )?;
    let wt = h.weight_type;
    let is_qwen = matches!(h.arch, ArchType::Qwen3 | ArchType::Qwen3Moe);
    let is_moe = h.arch == ArchType::Qwen3Moe;
    // Qwen3 always uses NeoX rotation, whatever the file says.
    let rope_type = if is_qwen {
        RopeType::Falcon
    } else {
        h.rope_type
    };

    need(
        dim > 0 && head_dim > 0 && n_heads > 0 && n_kv_heads > 0 && seq_len > 0,
        || "dim, head_dim, heads and seq_len must be > 0".into(),
    )?;
    need(n_nodes <= n_kv_heads, || {
        format!("{n_nodes} nodes is more than the {n_kv_heads} KV heads")
    })?;
    need(n_heads % n_kv_heads == 0, || {
        format!("n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}")
    })?;
    need(n_heads % n_nodes == 0, || {
        format!("{n_heads} heads cannot be split over {n_nodes} nodes")
    })?;
    need(q_dim >= kv_dim, || {
        format!("q_dim {q_dim} < kv_dim {kv_dim}")
    })?;
    need(q_dim % n_nodes == 0 && kv_dim % n_nodes == 0, || {
        format!("q_dim {q_dim} / kv_dim {kv_dim} cannot be split over {n_nodes} nodes")
    })?;
    need(
        (q_dim / n_nodes).is_multiple_of(2) && (kv_dim / n_nodes).is_multiple_of(2),
        || "each node's q and kv slices must have an even length".into(),
    )?;
    if is_moe {
        need(
            n_experts > 0 && n_active > 0 && n_active <= n_experts,
            || format!("bad MoE shape: {n_active} active of {n_experts} experts"),
        )?;
    }

    let n_experts_or1 = n_experts.max(1);
    let n_active_or1 = n_active.max(1);

    let token_embedding_size = Size3D::d2(FloatType::F32, vocab, dim)?;
    let rms_norm_size = Size3D::d1(FloatType::F32, dim)?;
    let moe_gate_size = if is_moe {
        Size3D::d2(FloatType::F32, dim, n_experts)?
    } else {
        Size3D::EMPTY
    };

    let kv_dim0 = kv_dim / n_nodes;
    let kv_cache_size = Size3D::d2(FloatType::F32, seq_len, kv_dim0)?;
    let n_heads0 = n_heads / n_nodes;
    let att_size = Size3D::d2(
        FloatType::F32,
        n_batches,
        n_heads0
            .checked_mul(seq_len)
            .ok_or_else(|| GraphError::Unsplittable("attention scratch size overflows".into()))?,
    )?;

    let q_slice = row_slice(wt, n_nodes, dim, q_dim, "wq")?;
    let k_slice = row_slice(wt, n_nodes, dim, kv_dim, "wk")?;
    let v_slice = row_slice(wt, n_nodes, dim, kv_dim, "wv")?;
    let wo_slice = col_slice(wt, n_nodes, q_dim, dim, "wo")?;
    let w1_slice = row_slice(wt, n_nodes, dim, ff_dim, "w1")?;
    let w2_slice = col_slice(wt, n_nodes, ff_dim, dim, "w2")?;
    let w3_slice = row_slice(wt, n_nodes, dim, ff_dim, "w3")?;
    let wcls_slice = row_slice(wt, n_nodes, dim, vocab, "classifier")?;

    let (n_q_norm_cols, n_k_norm_cols) = if is_qwen {
        need(
            q_slice.d0 % head_dim == 0 && k_slice.d0 % head_dim == 0,
            || "each node's q and k slices must be whole heads".into(),
        )?;
        (q_slice.d0 / head_dim, k_slice.d0 / head_dim)
    } else {
        (1, 1)
    };
    let n_inv_cols = n_q_norm_cols.max(n_k_norm_cols);

    let pipes = vec![
        NamedSize {
            name: "POS".into(),
            size: Size3D::d2(FloatType::F32, n_batches, 1)?,
        },
        NamedSize {
            name: "TOK".into(),
            size: Size3D::d2(FloatType::F32, n_batches, 1)?,
        },
        NamedSize {
            name: "X".into(),
            size: Size3D::d2(FloatType::F32, n_batches, dim)?,
        },
        NamedSize {
            name: "LG".into(),
            size: Size3D::d2(FloatType::F32, n_batches, vocab)?,
        },
        NamedSize {
            name: "ZQ".into(),
            size: Size3D::d2(sync_type, n_batches, dim * n_nodes)?,
        },
    ];
    let (pos_pipe, tok_pipe, x_pipe, lg_pipe, zq_pipe) = (0u32, 1u32, 2u32, 3u32, 4u32);
    let net = NetConfig {
        n_batches,
        n_nodes,
        pipes,
        pre_syncs: vec![pos_pipe],
    };

    let f32_ = FloatType::F32;
    let q_sync = sync_type != FloatType::F32;
    let mut nodes = Vec::with_capacity(n_nodes as usize);
    for node_index in 0..n_nodes {
        let slice = rope_slice(
            rope_type,
            q_dim,
            kv_dim,
            n_kv_heads,
            n_nodes,
            seq_len,
            head_dim,
            h.rope_theta,
            node_index,
        )?;
        let mut b = Buffers(Vec::new());
        let x_buf = b.add("x", Size3D::d2(f32_, n_batches, dim)?);
        let y_buf = b.add("y", Size3D::d2(f32_, n_batches, dim)?);
        let yq_buf = if q_sync {
            b.add("q_y", Size3D::d2(sync_type, n_batches, dim)?)
        } else {
            y_buf
        };
        let z_buf = b.add("z", Size3D::d2(f32_, n_batches, q_dim)?);
        let zq_slice_buf = b.add(
            "q_z_slice",
            Size3D::d2(sync_type, n_batches, q_dim / n_nodes)?,
        );
        let q_buf = b.add("q", Size3D::d2(f32_, n_batches, q_slice.d0)?);
        let k_temp_buf = b.add("k_temp", Size3D::d2(f32_, n_batches, k_slice.d0)?);
        let v_temp_buf = b.add("v_temp", Size3D::d2(f32_, n_batches, v_slice.d0)?);
        let inv_rms_buf = b.add("inv_rms", Size3D::d2(f32_, n_batches, n_inv_cols)?);
        let rope_cache_buf = b.add("rope_cache", slice.cache_size);
        let att_buf = b.add("att", att_size);
        let lg_buf = b.add("lg", Size3D::d2(f32_, n_batches, vocab / n_nodes)?);

        let d_buf = b.add("d", Size3D::d2(f32_, n_batches, w1_slice.d0)?);
        let dq_buf = if q_sync {
            b.add("q_d", Size3D::d2(sync_type, n_batches, w1_slice.d0)?)
        } else {
            d_buf
        };
        let l_buf = b.add("l", Size3D::d2(f32_, n_batches, w3_slice.d0)?);

        let moe_gt_buf = b.add("gt", Size3D::d2(f32_, n_batches, n_experts_or1)?);
        let moe_ix_buf = b.add("act_exp_ix", Size3D::d2(f32_, n_batches, n_active_or1)?);
        let moe_y_buf = b.add("moe_y", Size3D::new(f32_, n_active_or1, n_batches, dim)?);
        let moe_yq_buf = if q_sync {
            b.add(
                "q_moe_y",
                Size3D::new(sync_type, n_active_or1, n_batches, dim)?,
            )
        } else {
            moe_y_buf
        };
        let moe_d_buf = b.add(
            "moe_d",
            Size3D::new(f32_, n_active_or1, n_batches, w1_slice.d0)?,
        );
        let moe_dq_buf = if q_sync {
            b.add(
                "q_moe_d",
                Size3D::new(sync_type, n_active_or1, n_batches, w1_slice.d0)?,
            )
        } else {
            moe_d_buf
        };
        let moe_l_buf = b.add(
            "moe_l",
            Size3D::new(f32_, n_active_or1, n_batches, w3_slice.d0)?,
        );
        let moe_s_buf = b.add("moe_s", Size3D::new(f32_, n_active_or1, n_batches, 1)?);

        let dense_mm = OpParams::Matmul {
            n_experts: 0,
            n_active_experts: 0,
            active_expert_indexes_buffer_index: moe_ix_buf,
        };
        let inv_rms = |n_columns| OpParams::InvRms {
            epsilon: h.norm_epsilon,
            n_columns,
        };
        let rms_norm = |n_columns| OpParams::RmsNorm {
            inv_rms_buffer_index: inv_rms_buf,
            n_columns,
        };
        let rope = |is_q| {
            OpParams::Rope(RopeConfig {
                rope_type,
                is_q,
                position_pipe_index: pos_pipe,
                rope_cache_buffer_index: rope_cache_buf,
                scaling_factor: h.rope_scaling_factor,
                scaling_low_freq_factor: h.rope_scaling_low_freq_factor,
                scaling_high_freq_factor: h.rope_scaling_high_freq_factor,
                scaling_orig_max_seq_len: h.rope_scaling_orig_max_seq_len,
                slice,
            })
        };
        let empty = Size3D::EMPTY;
        let mut segments = Vec::with_capacity(2 + 2 * n_layers as usize);

        let mut start = Segment::default();
        if node_index == 0 {
            start.op(
                OpCode::Embedding,
                "embedding",
                0,
                batch(Pipe, tok_pipe),
                batch(Pipe, x_pipe),
                token_embedding_size,
                OpParams::Empty,
            );
        }
        start.sync(x_pipe, SyncType::WithRoot);
        segments.push(start.0);

        for l in 0..n_layers {
            let k_cache_buf = b.add("k", kv_cache_size);
            let v_cache_buf = b.add("v", kv_cache_size);
            let mut att = Segment::default();
            if l == 0 {
                att.op(
                    OpCode::Cast,
                    "block_cast_x",
                    l,
                    batch(Pipe, x_pipe),
                    batch(Buf, x_buf),
                    empty,
                    OpParams::Empty,
                );
            } else {
                att.op(
                    OpCode::MergeAdd,
                    "block_merge_add",
                    l,
                    batch(Pipe, zq_pipe),
                    batch(Buf, x_buf),
                    empty,
                    OpParams::Empty,
                );
            }
            att.op(
                OpCode::InvRms,
                "block_norm_pre_0",
                l,
                batch(Buf, x_buf),
                batch(Buf, inv_rms_buf),
                empty,
                inv_rms(1),
            );
            att.op(
                OpCode::RmsNorm,
                "block_norm_0",
                l,
                batch(Buf, x_buf),
                batch(Buf, y_buf),
                rms_norm_size,
                rms_norm(1),
            );
            if q_sync {
                att.op(
                    OpCode::Cast,
                    "block_cast_y",
                    l,
                    batch(Buf, y_buf),
                    batch(Buf, yq_buf),
                    empty,
                    OpParams::Empty,
                );
            }
            for (name, out, s) in [
                ("block_matmul_q", q_buf, q_slice),
                ("block_matmul_k", k_temp_buf, k_slice),
                ("block_matmul_v", v_temp_buf, v_slice),
            ] {
                att.op(
                    OpCode::Matmul,
                    name,
                    l,
                    batch(Buf, yq_buf),
                    batch(Buf, out),
                    Size3D::d2(wt, s.n, s.d0)?,
                    dense_mm,
                );
            }
            if is_qwen {
                let head_norm = Size3D::d2(f32_, 1, head_dim)?;
                for (pre, norm, buf, cols) in [
                    ("block_norm_pre_q", "block_norm_q", q_buf, n_q_norm_cols),
                    (
                        "block_norm_pre_k",
                        "block_norm_k",
                        k_temp_buf,
                        n_k_norm_cols,
                    ),
                ] {
                    att.op(
                        OpCode::InvRms,
                        pre,
                        l,
                        batch(Buf, buf),
                        batch(Buf, inv_rms_buf),
                        empty,
                        inv_rms(cols),
                    );
                    att.op(
                        OpCode::RmsNorm,
                        norm,
                        l,
                        batch(Buf, buf),
                        batch(Buf, buf),
                        head_norm,
                        rms_norm(cols),
                    );
                }
            }
            att.op(
                OpCode::Rope,
                "block_rope_q",
                l,
                batch(Buf, q_buf),
                batch(Buf, q_buf),
                empty,
                rope(1),
            );
            att.op(
                OpCode::Rope,
                "block_rope_k",
                l,
                batch(Buf, k_temp_buf),
                batch(Buf, k_temp_buf),
                empty,
                rope(0),
            );
            for (name, src, cache) in [
                ("block_shift_k", k_temp_buf, k_cache_buf),
                ("block_shift_v", v_temp_buf, v_cache_buf),
            ] {
                att.op(
                    OpCode::Shift,
                    name,
                    l,
                    batch(Buf, src),
                    PointerConfig::raw(Buf, cache),
                    empty,
                    OpParams::Shift {
                        index_pipe_index: pos_pipe,
                    },
                );
            }
            att.op(
                OpCode::MultiheadAtt,
                "block_multihead_att",
                l,
                sliced(Buf, z_buf),
                sliced(Buf, z_buf),
                empty,
                OpParams::MultiheadAtt(MultiHeadAttConfig {
                    n_heads,
                    n_heads0,
                    n_kv_heads,
                    head_dim,
                    seq_len,
                    q_slice_d0: q_slice.d0,
                    kv_dim0,
                    position_pipe_index: pos_pipe,
                    query_buffer_index: q_buf,
                    key_cache_buffer_index: k_cache_buf,
                    value_cache_buffer_index: v_cache_buf,
                    att_buffer_index: att_buf,
                }),
            );
            att.op(
                OpCode::Cast,
                "block_cast_y2",
                l,
                sliced(Buf, z_buf),
                batch(Buf, zq_slice_buf),
                empty,
                OpParams::Empty,
            );
            att.op(
                OpCode::Matmul,
                "block_matmul_wo",
                l,
                batch(Buf, zq_slice_buf),
                batch(Buf, y_buf),
                Size3D::d2(wt, wo_slice.n0, wo_slice.d)?,
                dense_mm,
            );
            att.op(
                OpCode::Cast,
                "block_cast_d",
                l,
                batch(Buf, y_buf),
                sliced(Pipe, zq_pipe),
                empty,
                OpParams::Empty,
            );
            att.sync(zq_pipe, SyncType::NodeSlices);

            let mut ff = Segment::default();
            ff.op(
                OpCode::MergeAdd,
                "block_merge_add2",
                l,
                batch(Pipe, zq_pipe),
                batch(Buf, x_buf),
                empty,
                OpParams::Empty,
            );
            ff.op(
                OpCode::InvRms,
                "block_norm_pre_1",
                l,
                batch(Buf, x_buf),
                batch(Buf, inv_rms_buf),
                empty,
                inv_rms(1),
            );
            ff.op(
                OpCode::RmsNorm,
                "block_norm_1",
                l,
                batch(Buf, x_buf),
                batch(Buf, y_buf),
                rms_norm_size,
                rms_norm(1),
            );
            if is_moe {
                let moe_mm = OpParams::Matmul {
                    n_experts,
                    n_active_experts: n_active,
                    active_expert_indexes_buffer_index: moe_ix_buf,
                };
                ff.op(
                    OpCode::RepeatZ,
                    "block_moe_y_repeat",
                    l,
                    batch(Buf, y_buf),
                    batch(Buf, moe_yq_buf),
                    empty,
                    OpParams::Empty,
                );
                ff.op(
                    OpCode::Matmul,
                    "block_moe_gate",
                    l,
                    batch(Buf, y_buf),
                    batch(Buf, moe_gt_buf),
                    moe_gate_size,
                    dense_mm,
                );
                ff.op(
                    OpCode::Softmax,
                    "block_moe_softmax",
                    l,
                    batch(Buf, moe_gt_buf),
                    batch(Buf, moe_gt_buf),
                    empty,
                    OpParams::Empty,
                );
                ff.op(
                    OpCode::MoeGate,
                    "block_moe_gate2",
                    l,
                    batch(Buf, moe_gt_buf),
                    batch(Buf, moe_s_buf),
                    empty,
                    OpParams::MoeGate {
                        k: n_active,
                        norm_topk: 1,
                        indexes_buffer_index: moe_ix_buf,
                    },
                );
                ff.op(
                    OpCode::Matmul,
                    "block_matmul_w1",
                    l,
                    batch(Buf, moe_yq_buf),
                    batch(Buf, moe_d_buf),
                    Size3D::new(wt, n_experts, w1_slice.n, w1_slice.d0)?,
                    moe_mm,
                );
                ff.op(
                    OpCode::Matmul,
                    "block_matmul_w3",
                    l,
                    batch(Buf, moe_yq_buf),
                    batch(Buf, moe_l_buf),
                    Size3D::new(wt, n_experts, w3_slice.n, w3_slice.d0)?,
                    moe_mm,
                );
                ff.op(
                    OpCode::Silu,
                    "block_act",
                    l,
                    batch(Buf, moe_d_buf),
                    batch(Buf, moe_d_buf),
                    empty,
                    OpParams::Empty,
                );
                ff.op(
                    OpCode::Mul,
                    "block_mul",
                    l,
                    batch(Buf, moe_d_buf),
                    batch(Buf, moe_d_buf),
                    empty,
                    OpParams::Mul {
                        multiplier_buffer_index: moe_l_buf,
                    },
                );
                if q_sync {
                    ff.op(
                        OpCode::Cast,
                        "block_cast_d2",
                        l,
                        batch(Buf, moe_d_buf),
                        batch(Buf, moe_dq_buf),
                        empty,
                        OpParams::Empty,
                    );
                }
                ff.op(
                    OpCode::Matmul,
                    "block_matmul_w2",
                    l,
                    batch(Buf, moe_dq_buf),
                    batch(Buf, moe_y_buf),
                    Size3D::new(wt, n_experts, w2_slice.n0, w2_slice.d)?,
                    moe_mm,
                );
                ff.op(
                    OpCode::Scale,
                    "block_moe_scale",
                    l,
                    batch(Buf, moe_y_buf),
                    batch(Buf, moe_y_buf),
                    empty,
                    OpParams::Scale {
                        scale_buffer_index: moe_s_buf,
                    },
                );
                ff.op(
                    OpCode::MergeSum,
                    "block_moe_merge_sum",
                    l,
                    batch(Buf, moe_y_buf),
                    batch(Buf, y_buf),
                    empty,
                    OpParams::Empty,
                );
            } else {
                if q_sync {
                    ff.op(
                        OpCode::Cast,
                        "block_cast_y3",
                        l,
                        batch(Buf, y_buf),
                        batch(Buf, yq_buf),
                        empty,
                        OpParams::Empty,
                    );
                }
                ff.op(
                    OpCode::Matmul,
                    "block_matmul_w1",
                    l,
                    batch(Buf, yq_buf),
                    batch(Buf, d_buf),
                    Size3D::d2(wt, w1_slice.n, w1_slice.d0)?,
                    dense_mm,
                );
                ff.op(
                    OpCode::Matmul,
                    "block_matmul_w3",
                    l,
                    batch(Buf, yq_buf),
                    batch(Buf, l_buf),
                    Size3D::d2(wt, w3_slice.n, w3_slice.d0)?,
                    dense_mm,
                );
                ff.op(
                    OpCode::Silu,
                    "block_act",
                    l,
                    batch(Buf, d_buf),
                    batch(Buf, d_buf),
                    empty,
                    OpParams::Empty,
                );
                ff.op(
                    OpCode::Mul,
                    "block_mul",
                    l,
                    batch(Buf, d_buf),
                    batch(Buf, d_buf),
                    empty,
                    OpParams::Mul {
                        multiplier_buffer_index: l_buf,
                    },
                );
                if q_sync {
                    ff.op(
                        OpCode::Cast,
                        "block_cast_d2",
                        l,
                        batch(Buf, d_buf),
                        batch(Buf, dq_buf),
                        empty,
                        OpParams::Empty,
                    );
                }
                ff.op(
                    OpCode::Matmul,
                    "block_matmul_w2",
                    l,
                    batch(Buf, dq_buf),
                    batch(Buf, y_buf),
                    Size3D::d2(wt, w2_slice.n0, w2_slice.d)?,
                    dense_mm,
                );
            }
            ff.op(
                OpCode::Cast,
                "block_cast_d3",
                l,
                batch(Buf, y_buf),
                sliced(Pipe, zq_pipe),
                empty,
                OpParams::Empty,
            );
            ff.sync(zq_pipe, SyncType::NodeSlices);
            segments.push(att.0);
            segments.push(ff.0);
        }

        let mut end = Segment::default();
        end.op(
            OpCode::MergeAdd,
            "final_merge_add",
            0,
            batch(Pipe, zq_pipe),
            batch(Buf, x_buf),
            empty,
            OpParams::Empty,
        );
        end.op(
            OpCode::InvRms,
            "final_norm_pre",
            0,
            batch(Buf, x_buf),
            batch(Buf, inv_rms_buf),
            empty,
            inv_rms(1),
        );
        end.op(
            OpCode::RmsNorm,
            "final_norm",
            0,
            batch(Buf, x_buf),
            batch(Buf, y_buf),
            rms_norm_size,
            rms_norm(1),
        );
        if q_sync {
            end.op(
                OpCode::Cast,
                "final_cast_y",
                0,
                batch(Buf, y_buf),
                batch(Buf, yq_buf),
                empty,
                OpParams::Empty,
            );
        }
        // The peer builds this one config with `NnMatmulOpConfig{}`: all three fields zero.
        end.op(
            OpCode::Matmul,
            "final_matmul_logits",
            0,
            batch(Buf, yq_buf),
            batch(Buf, lg_buf),
            Size3D::d2(wt, wcls_slice.n, wcls_slice.d0)?,
            OpParams::Matmul {
                n_experts: 0,
                n_active_experts: 0,
                active_expert_indexes_buffer_index: 0,
            },
        );
        end.op(
            OpCode::Cast,
            "final_cast_logits",
            0,
            batch(Buf, lg_buf),
            sliced(Pipe, lg_pipe),
            empty,
            OpParams::Empty,
        );
        end.sync(lg_pipe, SyncType::NodeSlicesExceptRoot);
        segments.push(end.0);

        nodes.push(NodeConfig {
            node_index,
            buffers: b.0,
            segments,
        });
    }

    Ok(LlmNet {
        net,
        nodes,
        position_pipe: pos_pipe,
        token_pipe: tok_pipe,
        x_pipe,
        logits_pipe: lg_pipe,
        zq_pipe,
        q_slice,
        k_slice,
        v_slice,
        wo_slice,
        w1_slice,
        w2_slice,
        w3_slice,
        wcls_slice,
    })
}

/// `sliceRope`: this node's RoPE slice and cache shape. Falcon leaves the llama-only fields 0.
#[allow(clippy::too_many_arguments)]
fn rope_slice(
    rope_type: RopeType,
    q_dim: u32,
    kv_dim: u32,
    n_kv_heads: u32,
    n_nodes: u32,
    seq_len: u32,
    head_dim: u32,
    theta: f32,
    node_index: u32,
) -> Result<RopeSliceConfig, GraphError> {
    let q_dim0 = q_dim / n_nodes;
    let kv_dim0 = kv_dim / n_nodes;
    let mut s = RopeSliceConfig {
        q_dim0,
        q_dim_start: 0,
        q_dim_end: 0,
        q_shift: 0,
        kv_dim,
        kv_dim0,
        kv_dim_start: 0,
        slice_dim: 0,
        seq_len,
        head_dim,
        n_kv_heads,
        rope_theta: theta,
        cache_size: Size3D::EMPTY,
    };
    match rope_type {
        RopeType::Llama | RopeType::Llama31 => {
            s.kv_dim_start = kv_dim0 * node_index;
            s.q_dim_start = q_dim0 * node_index;
            s.q_dim_end = s.q_dim_start + q_dim0;
            s.q_shift = s.q_dim_start - s.kv_dim_start;
            s.slice_dim = s.q_dim_end - s.kv_dim_start;
            need(s.slice_dim.is_multiple_of(2), || {
                "rope slice_dim must be even".into()
            })?;
            s.cache_size = Size3D::d2(FloatType::F32, seq_len, s.slice_dim)?;
        }
        RopeType::Falcon => {
            s.cache_size = Size3D::d2(FloatType::F32, seq_len, head_dim)?;
        }
    }
    Ok(s)
}
