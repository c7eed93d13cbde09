//! Typed op config structs and their exact C byte layouts (spec §4.4).
//!
//! Every field is a 32-bit little-endian value (`u32`, `f32` or a C enum); the RoPE config ends
//! with a 40-byte [`Size3D`]. "Empty" configs are C++ empty structs of one (unspecified) byte.

use super::types::{OpCode, Size3D};
use super::GraphError;
use crate::model::header::RopeType;

/// `NnRopeType` code of a RoPE variant.
pub fn rope_type_code(t: RopeType) -> u32 {
    match t {
        RopeType::Llama => 0,
        RopeType::Falcon => 1,
        RopeType::Llama31 => 2,
    }
}

/// The RoPE variant of an `NnRopeType` code.
pub fn rope_type_from_code(code: u32) -> Result<RopeType, GraphError> {
    Ok(match code {
        0 => RopeType::Llama,
        1 => RopeType::Falcon,
        2 => RopeType::Llama31,
        _ => {
            return Err(GraphError::BadCode {
                what: "rope type",
                code,
            })
        }
    })
}

/// One node's RoPE slice (`NnRopeSlice`, 80 bytes). Falcon leaves the llama-only fields
/// (`q_dim_start`, `q_dim_end`, `q_shift`, `kv_dim_start`, `slice_dim`) unset; we write 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeSliceConfig {
    /// Query features on this node.
    pub q_dim0: u32,
    /// First global query feature of this node.
    pub q_dim_start: u32,
    /// One past this node's last query feature.
    pub q_dim_end: u32,
    /// `q_dim_start − kv_dim_start`.
    pub q_shift: u32,
    /// KV features of the model.
    pub kv_dim: u32,
    /// KV features on this node.
    pub kv_dim0: u32,
    /// First global KV feature of this node.
    pub kv_dim_start: u32,
    /// Floats per llama cache row.
    pub slice_dim: u32,
    /// Positions.
    pub seq_len: u32,
    /// Floats per head.
    pub head_dim: u32,
    /// KV heads of the model.
    pub n_kv_heads: u32,
    /// RoPE base.
    pub rope_theta: f32,
    /// Shape of the cache buffer.
    pub cache_size: Size3D,
}

/// `NnRopeOpConfig` (120 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeConfig {
    /// Variant.
    pub rope_type: RopeType,
    /// 1 for q, 0 for k.
    pub is_q: u32,
    /// The POS pipe.
    pub position_pipe_index: u32,
    /// The shared cos/sin cache buffer.
    pub rope_cache_buffer_index: u32,
    /// Llama 3.1 scaling factor (scaling applies whenever ≠ 1).
    pub scaling_factor: f32,
    /// Llama 3.1 low-frequency factor.
    pub scaling_low_freq_factor: f32,
    /// Llama 3.1 high-frequency factor.
    pub scaling_high_freq_factor: f32,
    /// Llama 3.1 original context length.
    pub scaling_orig_max_seq_len: u32,
    /// This node's slice.
    pub slice: RopeSliceConfig,
}

/// `NnMultiHeadAttOpConfig` (48 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultiHeadAttConfig {
    /// Query heads of the model.
    pub n_heads: u32,
    /// Query heads on this node.
    pub n_heads0: u32,
    /// KV heads of the model.
    pub n_kv_heads: u32,
    /// Floats per head.
    pub head_dim: u32,
    /// KV cache positions.
    pub seq_len: u32,
    /// Query floats per row on this node.
    pub q_slice_d0: u32,
    /// KV floats per cache row on this node.
    pub kv_dim0: u32,
    /// The POS pipe.
    pub position_pipe_index: u32,
    /// The q buffer.
    pub query_buffer_index: u32,
    /// This layer's K cache buffer.
    pub key_cache_buffer_index: u32,
    /// This layer's V cache buffer.
    pub value_cache_buffer_index: u32,
    /// Scratch for the scores.
    pub att_buffer_index: u32,
}

/// An op's config struct, typed by op code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OpParams {
    /// The one-byte empty struct (EMBEDDING, MERGE_ADD, MERGE_SUM, SILU, GELU, CAST, REPEAT_Z,
    /// SOFTMAX).
    Empty,
    /// `NnInvRmsOpConfig`.
    InvRms {
        /// Added to the mean square.
        epsilon: f32,
        /// Equal column groups per row.
        n_columns: u32,
    },
    /// `NnRmsNormOpConfig`.
    RmsNorm {
        /// Buffer holding the inverse RMS values.
        inv_rms_buffer_index: u32,
        /// Equal column groups per row.
        n_columns: u32,
    },
    /// `NnMatmulOpConfig` (`0, 0, x` for dense).
    Matmul {
        /// Experts stacked in the weights (0 = dense).
        n_experts: u32,
        /// Expert slots per row (0 = dense).
        n_active_experts: u32,
        /// Buffer with the chosen experts per row, as floats.
        active_expert_indexes_buffer_index: u32,
    },
    /// `NnRopeOpConfig`.
    Rope(RopeConfig),
    /// `NnMultiHeadAttOpConfig`.
    MultiheadAtt(MultiHeadAttConfig),
    /// `NnMulOpCodeConfig`.
    Mul {
        /// The multiplier buffer.
        multiplier_buffer_index: u32,
    },
    /// `NnScaleOpCodeConfig`.
    Scale {
        /// Buffer of one scale per (z, row).
        scale_buffer_index: u32,
    },
    /// `NnShiftOpCodeConfig`.
    Shift {
        /// The POS pipe.
        index_pipe_index: u32,
    },
    /// `NnMoeGateOpCodeConfig`.
    MoeGate {
        /// Experts per row.
        k: u32,
        /// 1 = normalise the chosen weights to sum 1.
        norm_topk: u32,
        /// Buffer receiving the chosen expert indices, as floats.
        indexes_buffer_index: u32,
    },
}

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put_f32(v: &mut Vec<u8>, x: f32) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Reads consecutive 32-bit fields.
struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn u32(&mut self) -> u32 {
        let v = u32::from_le_bytes([
            self.b[self.at],
            self.b[self.at + 1],
            self.b[self.at + 2],
            self.b[self.at + 3],
        ]);
        self.at += 4;
        v
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
}

impl OpParams {
    /// The config size the peer sends for this op code (`sizeof` of its struct).
    pub fn wire_size(code: OpCode) -> usize {
        match code {
            OpCode::InvRms | OpCode::RmsNorm => 8,
            OpCode::Matmul | OpCode::MoeGate => 12,
            OpCode::Rope => 120,
            OpCode::MultiheadAtt => 48,
            OpCode::Mul | OpCode::Scale | OpCode::Shift => 4,
            OpCode::Embedding
            | OpCode::MergeAdd
            | OpCode::MergeSum
            | OpCode::Silu
            | OpCode::Gelu
            | OpCode::Cast
            | OpCode::RepeatZ
            | OpCode::Softmax => 1,
        }
    }

    /// Whether this config is the kind the op code uses.
    pub fn matches(&self, code: OpCode) -> bool {
        matches!(
            (self, code),
            (
                OpParams::Empty,
                OpCode::Embedding
                    | OpCode::MergeAdd
                    | OpCode::MergeSum
                    | OpCode::Silu
                    | OpCode::Gelu
                    | OpCode::Cast
                    | OpCode::RepeatZ
                    | OpCode::Softmax
            ) | (OpParams::InvRms { .. }, OpCode::InvRms)
                | (OpParams::RmsNorm { .. }, OpCode::RmsNorm)
                | (OpParams::Matmul { .. }, OpCode::Matmul)
                | (OpParams::Rope(_), OpCode::Rope)
                | (OpParams::MultiheadAtt(_), OpCode::MultiheadAtt)
                | (OpParams::Mul { .. }, OpCode::Mul)
                | (OpParams::Scale { .. }, OpCode::Scale)
                | (OpParams::Shift { .. }, OpCode::Shift)
                | (OpParams::MoeGate { .. }, OpCode::MoeGate)
        )
    }

    /// The raw C struct bytes (`configSize` of them). The empty struct is written as one 0.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(120);
        match *self {
            OpParams::Empty => v.push(0),
            OpParams::InvRms { epsilon, n_columns } => {
                put_f32(&mut v, epsilon);
                put_u32(&mut v, n_columns);
            }
            OpParams::RmsNorm {
                inv_rms_buffer_index,
                n_columns,
            } => {
                put_u32(&mut v, inv_rms_buffer_index);
                put_u32(&mut v, n_columns);
            }
            OpParams::Matmul {
                n_experts,
                n_active_experts,
                active_expert_indexes_buffer_index,
            } => {
                put_u32(&mut v, n_experts);
                put_u32(&mut v, n_active_experts);
                put_u32(&mut v, active_expert_indexes_buffer_index);
            }
            OpParams::Rope(r) => {
                put_u32(&mut v, rope_type_code(r.rope_type));
                put_u32(&mut v, r.is_q);
                put_u32(&mut v, r.position_pipe_index);
                put_u32(&mut v, r.rope_cache_buffer_index);
                put_f32(&mut v, r.scaling_factor);
                put_f32(&mut v, r.scaling_low_freq_factor);
                put_f32(&mut v, r.scaling_high_freq_factor);
                put_u32(&mut v, r.scaling_orig_max_seq_len);
                let s = &r.slice;
                for x in [
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
                    s.n_kv_heads,
                ] {
                    put_u32(&mut v, x);
                }
                put_f32(&mut v, s.rope_theta);
                v.extend_from_slice(&s.cache_size.to_bytes());
            }
            OpParams::MultiheadAtt(a) => {
                for x in [
                    a.n_heads,
                    a.n_heads0,
                    a.n_kv_heads,
                    a.head_dim,
                    a.seq_len,
                    a.q_slice_d0,
                    a.kv_dim0,
                    a.position_pipe_index,
                    a.query_buffer_index,
                    a.key_cache_buffer_index,
                    a.value_cache_buffer_index,
                    a.att_buffer_index,
                ] {
                    put_u32(&mut v, x);
                }
            }
            OpParams::Mul {
                multiplier_buffer_index: x,
            }
            | OpParams::Scale {
                scale_buffer_index: x,
            }
            | OpParams::Shift {
                index_pipe_index: x,
            } => put_u32(&mut v, x),
            OpParams::MoeGate {
                k,
                norm_topk,
                indexes_buffer_index,
            } => {
                put_u32(&mut v, k);
                put_u32(&mut v, norm_topk);
                put_u32(&mut v, indexes_buffer_index);
            }
        }
        v
    }

    /// Parses the config bytes of an op with this code; the length must be the struct size.
    pub fn from_bytes(code: OpCode, b: &[u8]) -> Result<OpParams, GraphError> {
        let want = OpParams::wire_size(code);
        if b.len() != want {
            return Err(GraphError::BadConfigSize {
                op: code,
                expected: want,
                got: b.len(),
            });
        }
        let mut f = Fields { b, at: 0 };
        Ok(match code {
            OpCode::InvRms => OpParams::InvRms {
                epsilon: f.f32(),
                n_columns: f.u32(),
            },
            OpCode::RmsNorm => OpParams::RmsNorm {
                inv_rms_buffer_index: f.u32(),
                n_columns: f.u32(),
            },
            OpCode::Matmul => OpParams::Matmul {
                n_experts: f.u32(),
                n_active_experts: f.u32(),
                active_expert_indexes_buffer_index: f.u32(),
            },
            OpCode::Rope => {
                let rope_type = rope_type_from_code(f.u32())?;
                let is_q = f.u32();
                let position_pipe_index = f.u32();
                let rope_cache_buffer_index = f.u32();
                let scaling_factor = f.f32();
                let scaling_low_freq_factor = f.f32();
                let scaling_high_freq_factor = f.f32();
                let scaling_orig_max_seq_len = f.u32();
                let mut u = [0u32; 11];
                for x in u.iter_mut() {
                    *x = f.u32();
                }
                let rope_theta = f.f32();
                let mut cs = [0u8; 40];
                cs.copy_from_slice(&b[80..120]);
                OpParams::Rope(RopeConfig {
                    rope_type,
                    is_q,
                    position_pipe_index,
                    rope_cache_buffer_index,
                    scaling_factor,
                    scaling_low_freq_factor,
                    scaling_high_freq_factor,
                    scaling_orig_max_seq_len,
                    slice: RopeSliceConfig {
                        q_dim0: u[0],
                        q_dim_start: u[1],
                        q_dim_end: u[2],
                        q_shift: u[3],
                        kv_dim: u[4],
                        kv_dim0: u[5],
                        kv_dim_start: u[6],
                        slice_dim: u[7],
                        seq_len: u[8],
                        head_dim: u[9],
                        n_kv_heads: u[10],
                        rope_theta,
                        cache_size: Size3D::from_bytes(&cs)?,
                    },
                })
            }
            OpCode::MultiheadAtt => {
                let mut u = [0u32; 12];
                for x in u.iter_mut() {
                    *x = f.u32();
                }
                OpParams::MultiheadAtt(MultiHeadAttConfig {
                    n_heads: u[0],
                    n_heads0: u[1],
                    n_kv_heads: u[2],
                    head_dim: u[3],
                    seq_len: u[4],
                    q_slice_d0: u[5],
                    kv_dim0: u[6],
                    position_pipe_index: u[7],
                    query_buffer_index: u[8],
                    key_cache_buffer_index: u[9],
                    value_cache_buffer_index: u[10],
                    att_buffer_index: u[11],
                })
            }
            OpCode::Mul => OpParams::Mul {
                multiplier_buffer_index: f.u32(),
            },
            OpCode::Scale => OpParams::Scale {
                scale_buffer_index: f.u32(),
            },
            OpCode::Shift => OpParams::Shift {
                index_pipe_index: f.u32(),
            },
            OpCode::MoeGate => OpParams::MoeGate {
                k: f.u32(),
                norm_topk: f.u32(),
                indexes_buffer_index: f.u32(),
            },
            OpCode::Embedding
            | OpCode::MergeAdd
            | OpCode::MergeSum
            | OpCode::Silu
            | OpCode::Gelu
            | OpCode::Cast
            | OpCode::RepeatZ
            | OpCode::Softmax => OpParams::Empty,
        })
    }
}
