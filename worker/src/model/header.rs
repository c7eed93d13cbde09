//! The `.m` header (spec §1.1): the key/value pairs and the values derived from them.

use crate::float_type::FloatType;

/// Model architecture (header key 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArchType {
    /// `0xABCD00`: Llama (and Mistral).
    Llama,
    /// `0xABCD01`: Qwen3 (per-head q/k norms, falcon RoPE).
    Qwen3,
    /// `0xABCD02`: Qwen3 mixture of experts.
    Qwen3Moe,
}

/// RoPE variant (header key 18; Qwen3 forces `Falcon`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeType {
    /// 0: interleaved pairs.
    Llama,
    /// 1: NeoX half split.
    Falcon,
    /// 2: interleaved pairs with llama 3.1 frequency scaling.
    Llama31,
}

/// FFN activation (header key 11; printed by the peer but the graph always uses SiLU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HiddenAct {
    /// 0.
    Gelu,
    /// 1.
    Silu,
}

/// A validated `.m` header with its derived values. Sizes are element counts.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelHeader {
    /// Key 0, stored but unused.
    pub version: i32,
    /// Key 1.
    pub arch: ArchType,
    /// Key 2: model width.
    pub dim: usize,
    /// Key 3: dense FFN width.
    pub hidden_dim: usize,
    /// Key 4.
    pub n_layers: usize,
    /// Key 5: query heads.
    pub n_heads: usize,
    /// Key 6: key/value heads.
    pub n_kv_heads: usize,
    /// Key 7: experts (0 = dense).
    pub n_experts: usize,
    /// Key 8: experts per token.
    pub n_active_experts: usize,
    /// Key 9.
    pub vocab_size: usize,
    /// Key 10: the context length written in the file.
    pub max_seq_len: usize,
    /// Key 11.
    pub hidden_act: HiddenAct,
    /// Key 12 (an integer in the file).
    pub rope_theta: f32,
    /// Key 13: type of the big matrices.
    pub weight_type: FloatType,
    /// Key 14.
    pub rope_scaling_factor: f32,
    /// Key 15.
    pub rope_scaling_low_freq_factor: f32,
    /// Key 16.
    pub rope_scaling_high_freq_factor: f32,
    /// Key 17.
    pub rope_scaling_orig_max_seq_len: u32,
    /// Key 18 after the Qwen3 override.
    pub rope_type: RopeType,
    /// Key 19, or `dim / n_heads` when 0.
    pub head_dim: usize,
    /// Key 20: 1e-5 or 1e-6.
    pub norm_epsilon: f32,
    /// Key 21: expert FFN width.
    pub moe_hidden_dim: usize,
    /// `head_dim · n_heads`.
    pub q_dim: usize,
    /// `head_dim · n_kv_heads`.
    pub kv_dim: usize,
    /// `hidden_dim`, or `moe_hidden_dim` for Qwen3 MoE.
    pub ff_dim: usize,
    /// The context length in use: `max_seq_len`, lowered by `--max-seq-len`.
    pub seq_len: usize,
    /// Bytes of the header, where the tensor data starts.
    pub header_size: usize,
}
