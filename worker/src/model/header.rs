//! The `.m` header (spec §1.1): the key/value pairs and the values derived from them.
//!
//! Layout: `i32 magic = 0x0A00ABCD`, `i32 headerSize = 8 + 8·nPairs`, then `nPairs` pairs of
//! `(i32 key, i32 value)`, all little-endian. Tensor data starts at `headerSize`.
//!
//! [`ModelHeader::parse`] checks everything that does not depend on the node count (spec §7),
//! so that every later size computation is in range; [`ModelHeader::validate_for_nodes`] adds
//! the node-count rules. [`ModelHeader::to_bytes`] writes a header the peer reads back to the
//! same values.

use crate::float_type::FloatType;
use thiserror::Error;

/// `0x0A00ABCD`, the current model format.
pub const MODEL_MAGIC: i32 = 0x0A00_ABCD;
/// Magics of the two older formats the peer names "Old model format".
pub const OLD_MODEL_MAGICS: [i32; 2] = [0x00AB_CD00, 0x00AB_CD01];
/// Most pairs a header may hold. The format has 22 keys; a larger count is corruption.
pub const MAX_HEADER_PAIRS: usize = 64;
/// Largest accepted width, head count product or vocabulary (elements).
pub const MAX_DIM: usize = 1 << 24;
/// Largest accepted layer count.
pub const MAX_LAYERS: usize = 1 << 12;
/// Largest accepted head count (query or key/value).
pub const MAX_HEADS: usize = 1 << 12;
/// Largest accepted expert count.
pub const MAX_EXPERTS: usize = 1 << 10;

/// Header keys (spec §1.1), with their file codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeaderKey {
    /// 0.
    Version,
    /// 1.
    ArchType,
    /// 2.
    Dim,
    /// 3.
    HiddenDim,
    /// 4.
    NLayers,
    /// 5.
    NHeads,
    /// 6.
    NKvHeads,
    /// 7.
    NExperts,
    /// 8.
    NActiveExperts,
    /// 9.
    VocabSize,
    /// 10.
    MaxSeqLen,
    /// 11.
    HiddenAct,
    /// 12.
    RopeTheta,
    /// 13.
    WeightsFloatType,
    /// 14.
    RopeScalingFactor,
    /// 15.
    RopeScalingLowFreqFactor,
    /// 16.
    RopeScalingHighFreqFactor,
    /// 17.
    RopeScalingOrigMaxSeqLen,
    /// 18.
    RopeType,
    /// 19.
    HeadDim,
    /// 20.
    NormEpsilon,
    /// 21.
    MoeHiddenDim,
}

impl HeaderKey {
    /// All keys in code order.
    pub const ALL: [HeaderKey; 22] = [
        HeaderKey::Version,
        HeaderKey::ArchType,
        HeaderKey::Dim,
        HeaderKey::HiddenDim,
        HeaderKey::NLayers,
        HeaderKey::NHeads,
        HeaderKey::NKvHeads,
        HeaderKey::NExperts,
        HeaderKey::NActiveExperts,
        HeaderKey::VocabSize,
        HeaderKey::MaxSeqLen,
        HeaderKey::HiddenAct,
        HeaderKey::RopeTheta,
        HeaderKey::WeightsFloatType,
        HeaderKey::RopeScalingFactor,
        HeaderKey::RopeScalingLowFreqFactor,
        HeaderKey::RopeScalingHighFreqFactor,
        HeaderKey::RopeScalingOrigMaxSeqLen,
        HeaderKey::RopeType,
        HeaderKey::HeadDim,
        HeaderKey::NormEpsilon,
        HeaderKey::MoeHiddenDim,
    ];

    /// The file code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The key with this code, or `None`.
    pub fn from_code(code: i32) -> Option<HeaderKey> {
        usize::try_from(code)
            .ok()
            .and_then(|i| HeaderKey::ALL.get(i).copied())
    }
}

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

impl ArchType {
    /// The file code.
    pub fn code(self) -> i32 {
        match self {
            ArchType::Llama => 0xAB_CD00,
            ArchType::Qwen3 => 0xAB_CD01,
            ArchType::Qwen3Moe => 0xAB_CD02,
        }
    }

    /// The architecture with this code, or `None`.
    pub fn from_code(code: i32) -> Option<ArchType> {
        match code {
            0xAB_CD00 => Some(ArchType::Llama),
            0xAB_CD01 => Some(ArchType::Qwen3),
            0xAB_CD02 => Some(ArchType::Qwen3Moe),
            _ => None,
        }
    }

    /// Qwen3 and Qwen3 MoE: per-head q/k norms in every layer and forced falcon RoPE.
    pub fn has_qk_norm(self) -> bool {
        matches!(self, ArchType::Qwen3 | ArchType::Qwen3Moe)
    }
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

impl RopeType {
    /// The file (and wire) code.
    pub fn code(self) -> i32 {
        match self {
            RopeType::Llama => 0,
            RopeType::Falcon => 1,
            RopeType::Llama31 => 2,
        }
    }

    /// The type with this code, or `None`.
    pub fn from_code(code: i32) -> Option<RopeType> {
        match code {
            0 => Some(RopeType::Llama),
            1 => Some(RopeType::Falcon),
            2 => Some(RopeType::Llama31),
            _ => None,
        }
    }
}

/// FFN activation (header key 11; printed by the peer but the graph always uses SiLU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HiddenAct {
    /// 0.
    Gelu,
    /// 1.
    Silu,
}

impl HiddenAct {
    /// The file code.
    pub fn code(self) -> i32 {
        match self {
            HiddenAct::Gelu => 0,
            HiddenAct::Silu => 1,
        }
    }
}

/// Why a header was rejected. Messages name the key or rule at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Fewer bytes than the 8-byte prefix or than `headerSize`.
    #[error("truncated model header: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// `0xABCD00` / `0xABCD01`.
    #[error("old model format is not supported (magic {0:#x})")]
    OldFormat(i32),
    /// Any other wrong magic.
    #[error("unsupported magic number {0:#x} (expected 0xa00abcd)")]
    BadMagic(i32),
    /// `headerSize` is not `8 + 8·nPairs` with `nPairs <= MAX_HEADER_PAIRS`.
    #[error("bad header size {0}: must be 8 + 8*nPairs with at most 64 pairs")]
    BadHeaderSize(i32),
    /// A key outside 0..=21.
    #[error("unsupported header key {0}")]
    UnknownKey(i32),
    /// The same key twice.
    #[error("duplicate header key {0:?}")]
    DuplicateKey(HeaderKey),
    /// Key 13 absent.
    #[error("model does not specify weight type")]
    MissingWeightType,
    /// Key 13 names a type the CPU matmuls cannot use as weights.
    #[error("unsupported weight type code {0} (only f32 = 0 and q40 = 2 are supported)")]
    UnsupportedWeightType(i32),
    /// Key 1 is absent or not one of the three architectures.
    #[error("unsupported architecture {0:#x}")]
    BadArch(i32),
    /// Key 11 not 0 or 1.
    #[error("unsupported hidden activation {0}")]
    BadHiddenAct(i32),
    /// Key 18 not 0, 1 or 2.
    #[error("unsupported rope type {0}")]
    BadRopeType(i32),
    /// Key 20 not 5 or 6.
    #[error("unsupported norm epsilon code {0} (expected 5 or 6)")]
    BadNormEpsilon(i32),
    /// A key whose value is out of its range (negative, zero where a size is needed, or above
    /// the crate's limits).
    #[error("header value {key:?} = {value} is out of range ({why})")]
    OutOfRange {
        /// The key.
        key: HeaderKey,
        /// The value in the file.
        value: i64,
        /// The rule that failed.
        why: &'static str,
    },
    /// A relation between values that the graph needs does not hold.
    #[error("inconsistent header: {0}")]
    Inconsistent(String),
    /// The `--max-seq-len` override is 0.
    #[error("--max-seq-len must be at least 1")]
    ZeroSeqLenOverride,
    /// A node-count rule of spec §7 fails.
    #[error("model cannot be split over {n_nodes} nodes: {why}")]
    Nodes {
        /// The node count asked for.
        n_nodes: usize,
        /// The rule that failed.
        why: String,
    },
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

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads the raw `(key, value)` pairs of a header without interpreting them. `bytes` may be the
/// whole file. Checks the magic and the header size; returns the pairs and `headerSize`.
pub fn read_pairs(bytes: &[u8]) -> Result<(Vec<(i32, i32)>, usize), HeaderError> {
    if bytes.len() < 8 {
        return Err(HeaderError::Truncated {
            needed: 8,
            have: bytes.len(),
        });
    }
    let magic = read_i32(bytes, 0);
    if OLD_MODEL_MAGICS.contains(&magic) {
        return Err(HeaderError::OldFormat(magic));
    }
    if magic != MODEL_MAGIC {
        return Err(HeaderError::BadMagic(magic));
    }
    let raw_size = read_i32(bytes, 4);
    let size = usize::try_from(raw_size).map_err(|_| HeaderError::BadHeaderSize(raw_size))?;
    if size < 8 || !(size - 8).is_multiple_of(8) || (size - 8) / 8 > MAX_HEADER_PAIRS {
        return Err(HeaderError::BadHeaderSize(raw_size));
    }
    if bytes.len() < size {
        return Err(HeaderError::Truncated {
            needed: size,
            have: bytes.len(),
        });
    }
    let pairs = (8..size)
        .step_by(8)
        .map(|at| (read_i32(bytes, at), read_i32(bytes, at + 4)))
        .collect();
    Ok((pairs, size))
}

/// Encodes raw pairs as a header, in the order given (for tests that need odd headers).
pub fn encode_pairs(pairs: &[(i32, i32)]) -> Vec<u8> {
    let size = 8 + 8 * pairs.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&MODEL_MAGIC.to_le_bytes());
    out.extend_from_slice(&(size as i32).to_le_bytes());
    for &(k, v) in pairs {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn non_negative(key: HeaderKey, value: i32) -> Result<usize, HeaderError> {
    usize::try_from(value).map_err(|_| HeaderError::OutOfRange {
        key,
        value: value.into(),
        why: "negative",
    })
}

fn in_range(key: HeaderKey, value: usize, lo: usize, hi: usize) -> Result<usize, HeaderError> {
    if value < lo {
        return Err(HeaderError::OutOfRange {
            key,
            value: value as i64,
            why: if lo == 1 {
                "must be at least 1"
            } else {
                "too small"
            },
        });
    }
    if value > hi {
        return Err(HeaderError::OutOfRange {
            key,
            value: value as i64,
            why: "above the supported limit",
        });
    }
    Ok(value)
}

fn inconsistent(msg: impl Into<String>) -> HeaderError {
    HeaderError::Inconsistent(msg.into())
}

impl ModelHeader {
    /// Parses and validates the header at the start of `bytes` (the header alone or the whole
    /// file). `max_seq_len` is the `--max-seq-len` override: `Some(n)` lowers `seq_len` to `n`
    /// when the file's value is larger; `Some(0)` is an error.
    ///
    /// Applies the peer's defaults, derived values and Qwen3 falcon override, and every rule
    /// of spec §7 that does not depend on the node count, so all element counts and byte sizes
    /// computed from the result fit in `u64` and `usize`.
    pub fn parse(bytes: &[u8], max_seq_len: Option<usize>) -> Result<ModelHeader, HeaderError> {
        let (pairs, header_size) = read_pairs(bytes)?;
        let mut values: [Option<i32>; 22] = [None; 22];
        for &(k, v) in &pairs {
            let key = HeaderKey::from_code(k).ok_or(HeaderError::UnknownKey(k))?;
            let slot = &mut values[key as usize];
            if slot.is_some() {
                return Err(HeaderError::DuplicateKey(key));
            }
            *slot = Some(v);
        }
        let get = |k: HeaderKey| values[k as usize];
        let get_or = |k: HeaderKey, d: i32| values[k as usize].unwrap_or(d);

        let weight_code = get(HeaderKey::WeightsFloatType).ok_or(HeaderError::MissingWeightType)?;
        let weight_type = match FloatType::from_code(weight_code) {
            Some(FloatType::Unknown) => return Err(HeaderError::MissingWeightType),
            Some(t @ (FloatType::F32 | FloatType::Q40)) => t,
            _ => return Err(HeaderError::UnsupportedWeightType(weight_code)),
        };
        let arch_code = get_or(HeaderKey::ArchType, 0);
        let arch = ArchType::from_code(arch_code).ok_or(HeaderError::BadArch(arch_code))?;
        let hidden_act = match get_or(HeaderKey::HiddenAct, 1) {
            0 => HiddenAct::Gelu,
            1 => HiddenAct::Silu,
            v => return Err(HeaderError::BadHiddenAct(v)),
        };
        let rope_code = get_or(HeaderKey::RopeType, 0);
        let mut rope_type =
            RopeType::from_code(rope_code).ok_or(HeaderError::BadRopeType(rope_code))?;
        if arch.has_qk_norm() {
            rope_type = RopeType::Falcon;
        }
        let norm_epsilon = match get(HeaderKey::NormEpsilon) {
            None | Some(5) => 1e-5f32,
            Some(6) => 1e-6f32,
            Some(v) => return Err(HeaderError::BadNormEpsilon(v)),
        };

        let size = |k: HeaderKey, lo: usize, hi: usize| -> Result<usize, HeaderError> {
            in_range(k, non_negative(k, get_or(k, 0))?, lo, hi)
        };
        let dim = size(HeaderKey::Dim, 1, MAX_DIM)?;
        let n_layers = size(HeaderKey::NLayers, 1, MAX_LAYERS)?;
        let n_heads = size(HeaderKey::NHeads, 1, MAX_HEADS)?;
        let n_kv_heads = size(HeaderKey::NKvHeads, 1, MAX_HEADS)?;
        let vocab_size = size(HeaderKey::VocabSize, 1, MAX_DIM)?;
        let file_seq_len = size(HeaderKey::MaxSeqLen, 1, MAX_DIM)?;
        let is_moe = arch == ArchType::Qwen3Moe;
        let hidden_dim = size(HeaderKey::HiddenDim, usize::from(!is_moe), MAX_DIM)?;
        let n_experts = size(HeaderKey::NExperts, usize::from(is_moe), MAX_EXPERTS)?;
        let n_active_experts = size(HeaderKey::NActiveExperts, usize::from(is_moe), MAX_EXPERTS)?;
        let moe_hidden_dim = size(HeaderKey::MoeHiddenDim, usize::from(is_moe), MAX_DIM)?;
        let head_dim_key = size(HeaderKey::HeadDim, 0, MAX_DIM)?;
        let rope_theta = get_or(HeaderKey::RopeTheta, 10000);
        if rope_theta <= 0 {
            return Err(HeaderError::OutOfRange {
                key: HeaderKey::RopeTheta,
                value: rope_theta.into(),
                why: "must be positive",
            });
        }
        let scaling = get_or(HeaderKey::RopeScalingFactor, 1);
        let low = get_or(HeaderKey::RopeScalingLowFreqFactor, 0);
        let high = get_or(HeaderKey::RopeScalingHighFreqFactor, 0);
        let orig = get_or(HeaderKey::RopeScalingOrigMaxSeqLen, 0);
        if scaling <= 0 {
            return Err(HeaderError::OutOfRange {
                key: HeaderKey::RopeScalingFactor,
                value: scaling.into(),
                why: "must be positive",
            });
        }
        // Llama 3.1 scaling runs whenever the factor is not 1 (spec §6.6) and divides by the
        // original length, both frequency factors and their difference.
        if scaling != 1 && (orig <= 0 || low <= 0 || high <= low) {
            return Err(inconsistent(format!(
                "rope scaling factor {scaling} needs orig_max_seq_len > 0 and \
                 0 < low_freq_factor < high_freq_factor (got {orig}, {low}, {high})"
            )));
        }
        if orig < 0 {
            return Err(HeaderError::OutOfRange {
                key: HeaderKey::RopeScalingOrigMaxSeqLen,
                value: orig.into(),
                why: "negative",
            });
        }

        if !is_moe && (n_experts != 0 || n_active_experts != 0) {
            return Err(inconsistent("experts on a dense architecture"));
        }
        if n_active_experts > n_experts {
            return Err(inconsistent(format!(
                "n_active_experts {n_active_experts} > n_experts {n_experts}"
            )));
        }
        if n_kv_heads > n_heads || !n_heads.is_multiple_of(n_kv_heads) {
            return Err(inconsistent(format!(
                "n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}"
            )));
        }
        let head_dim = if head_dim_key != 0 {
            head_dim_key
        } else {
            if !dim.is_multiple_of(n_heads) {
                return Err(inconsistent(format!(
                    "dim {dim} is not a multiple of n_heads {n_heads} and head_dim is not given"
                )));
            }
            dim / n_heads
        };
        let q_dim = head_dim
            .checked_mul(n_heads)
            .filter(|&q| q <= MAX_DIM)
            .ok_or_else(|| inconsistent("head_dim * n_heads is above the supported limit"))?;
        let kv_dim = head_dim * n_kv_heads;
        let ff_dim = if is_moe { moe_hidden_dim } else { hidden_dim };

        // x86 attention and norm kernels work in 8-lane chunks; RoPE rotates pairs.
        if !head_dim.is_multiple_of(8) {
            return Err(inconsistent(format!(
                "head_dim {head_dim} is not a multiple of 8"
            )));
        }
        let row_multiple = if weight_type == FloatType::Q40 { 32 } else { 8 };
        for (name, v) in [("dim", dim), ("q_dim", q_dim), ("ff_dim", ff_dim)] {
            if !v.is_multiple_of(row_multiple) {
                return Err(inconsistent(format!(
                    "{name} {v} is not a multiple of {row_multiple} (required for {weight_type} weights)"
                )));
            }
        }

        let seq_len = match max_seq_len {
            Some(0) => return Err(HeaderError::ZeroSeqLenOverride),
            Some(m) => file_seq_len.min(m),
            None => file_seq_len,
        };

        let header = ModelHeader {
            version: get_or(HeaderKey::Version, 0),
            arch,
            dim,
            hidden_dim,
            n_layers,
            n_heads,
            n_kv_heads,
            n_experts,
            n_active_experts,
            vocab_size,
            max_seq_len: file_seq_len,
            hidden_act,
            rope_theta: rope_theta as f32,
            weight_type,
            rope_scaling_factor: scaling as f32,
            rope_scaling_low_freq_factor: low as f32,
            rope_scaling_high_freq_factor: high as f32,
            rope_scaling_orig_max_seq_len: orig as u32,
            rope_type,
            head_dim,
            norm_epsilon,
            moe_hidden_dim,
            q_dim,
            kv_dim,
            ff_dim,
            seq_len,
            header_size,
        };
        Ok(header)
    }

    /// Checks the node-count rules of spec §7 for `n_nodes` nodes (root included): at most one
    /// node per KV head, whole heads per node, every row/column slice divisible, and slices that
    /// stay whole quantisation blocks (Q40 weights, Q80 activations) or 8-lane chunks (F32).
    pub fn validate_for_nodes(&self, n_nodes: usize) -> Result<(), HeaderError> {
        let fail = |why: String| Err(HeaderError::Nodes { n_nodes, why });
        if n_nodes == 0 {
            return fail("at least one node is needed".into());
        }
        if n_nodes > self.n_kv_heads {
            return fail(format!(
                "more nodes than KV heads ({}) is not supported",
                self.n_kv_heads
            ));
        }
        for (name, v) in [
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("q_dim", self.q_dim),
            ("kv_dim", self.kv_dim),
            ("ff_dim", self.ff_dim),
            ("vocab_size", self.vocab_size),
        ] {
            if !v.is_multiple_of(n_nodes) {
                return fail(format!("{name} {v} is not divisible by the node count"));
            }
        }
        let q0 = self.q_dim / n_nodes;
        let ff0 = self.ff_dim / n_nodes;
        // Column slices of wo and w2 (and the Q80 activations z and d when weights are Q40)
        // must stay whole blocks; F32 matmuls read 8 lanes at a time.
        let col_multiple = if self.weight_type == FloatType::Q40 {
            32
        } else {
            8
        };
        for (name, v) in [("q_dim / nodes", q0), ("ff_dim / nodes", ff0)] {
            if !v.is_multiple_of(col_multiple) {
                return fail(format!("{name} = {v} is not a multiple of {col_multiple}"));
            }
        }
        Ok(())
    }

    /// Whether the model has experts (Qwen3 MoE).
    pub fn is_moe(&self) -> bool {
        self.arch == ArchType::Qwen3Moe
    }

    /// The pairs [`to_bytes`](Self::to_bytes) writes, in key order: keys 0–13, 19 and 20
    /// always; the rope scaling keys 14–17 when the factor is not 1; 18 when the RoPE type is
    /// not the default for the architecture; 21 for MoE.
    pub fn to_pairs(&self) -> Vec<(HeaderKey, i32)> {
        use HeaderKey as K;
        let i = |v: usize| v as i32;
        let mut pairs = vec![
            (K::Version, self.version),
            (K::ArchType, self.arch.code()),
            (K::Dim, i(self.dim)),
            (K::HiddenDim, i(self.hidden_dim)),
            (K::NLayers, i(self.n_layers)),
            (K::NHeads, i(self.n_heads)),
            (K::NKvHeads, i(self.n_kv_heads)),
            (K::NExperts, i(self.n_experts)),
            (K::NActiveExperts, i(self.n_active_experts)),
            (K::VocabSize, i(self.vocab_size)),
            (K::MaxSeqLen, i(self.max_seq_len)),
            (K::HiddenAct, self.hidden_act.code()),
            (K::RopeTheta, self.rope_theta as i32),
            (K::WeightsFloatType, self.weight_type.code()),
        ];
        if self.rope_scaling_factor != 1.0 {
            pairs.extend([
                (K::RopeScalingFactor, self.rope_scaling_factor as i32),
                (
                    K::RopeScalingLowFreqFactor,
                    self.rope_scaling_low_freq_factor as i32,
                ),
                (
                    K::RopeScalingHighFreqFactor,
                    self.rope_scaling_high_freq_factor as i32,
                ),
                (
                    K::RopeScalingOrigMaxSeqLen,
                    self.rope_scaling_orig_max_seq_len as i32,
                ),
            ]);
        }
        let default_rope = if self.arch.has_qk_norm() {
            RopeType::Falcon
        } else {
            RopeType::Llama
        };
        if self.rope_type != default_rope {
            pairs.push((K::RopeType, self.rope_type.code()));
        }
        pairs.push((K::HeadDim, i(self.head_dim)));
        pairs.push((
            K::NormEpsilon,
            if self.norm_epsilon == 1e-6 { 6 } else { 5 },
        ));
        if self.is_moe() {
            pairs.push((K::MoeHiddenDim, i(self.moe_hidden_dim)));
        }
        pairs
    }

    /// The header bytes: magic, size, [`to_pairs`](Self::to_pairs). Parsing them back gives
    /// `self` with `seq_len = max_seq_len` and `header_size` = the length written.
    pub fn to_bytes(&self) -> Vec<u8> {
        let pairs: Vec<(i32, i32)> = self
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k.code(), v))
            .collect();
        encode_pairs(&pairs)
    }

    /// Builds a header from the primary values, filling in the derived ones (as [`parse`]
    /// would) and validating it by a round trip through the byte form.
    ///
    /// [`parse`]: Self::parse
    pub fn from_params(p: &HeaderParams) -> Result<ModelHeader, HeaderError> {
        use HeaderKey as K;
        let mut pairs = vec![
            (K::Version, 0),
            (K::ArchType, p.arch.code()),
            (K::Dim, clamp_i32(p.dim)),
            (K::HiddenDim, clamp_i32(p.hidden_dim)),
            (K::NLayers, clamp_i32(p.n_layers)),
            (K::NHeads, clamp_i32(p.n_heads)),
            (K::NKvHeads, clamp_i32(p.n_kv_heads)),
            (K::NExperts, clamp_i32(p.n_experts)),
            (K::NActiveExperts, clamp_i32(p.n_active_experts)),
            (K::VocabSize, clamp_i32(p.vocab_size)),
            (K::MaxSeqLen, clamp_i32(p.seq_len)),
            (K::HiddenAct, HiddenAct::Silu.code()),
            (K::RopeTheta, p.rope_theta),
            (K::WeightsFloatType, p.weight_type.code()),
        ];
        if let Some(s) = p.rope_scaling {
            pairs.extend([
                (K::RopeScalingFactor, s.factor),
                (K::RopeScalingLowFreqFactor, s.low_freq_factor),
                (K::RopeScalingHighFreqFactor, s.high_freq_factor),
                (K::RopeScalingOrigMaxSeqLen, s.orig_max_seq_len),
            ]);
        }
        pairs.push((K::RopeType, p.rope_type.code()));
        pairs.push((K::HeadDim, clamp_i32(p.head_dim)));
        pairs.push((K::NormEpsilon, if p.norm_epsilon_1e6 { 6 } else { 5 }));
        pairs.push((K::MoeHiddenDim, clamp_i32(p.moe_hidden_dim)));
        let raw: Vec<(i32, i32)> = pairs.into_iter().map(|(k, v)| (k.code(), v)).collect();
        let parsed = ModelHeader::parse(&encode_pairs(&raw), None)?;
        // Re-encode canonically so `header_size` matches what `to_bytes` writes.
        ModelHeader::parse(&parsed.to_bytes(), None)
    }
}

fn clamp_i32(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Llama 3.1 RoPE scaling values (header keys 14–17), as the integers the file stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeScaling {
    /// Key 14.
    pub factor: i32,
    /// Key 15.
    pub low_freq_factor: i32,
    /// Key 16.
    pub high_freq_factor: i32,
    /// Key 17.
    pub orig_max_seq_len: i32,
}

/// The primary values of a header, for [`ModelHeader::from_params`] (writers and generators).
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderParams {
    /// Architecture.
    pub arch: ArchType,
    /// Weight type of the big matrices (F32 or Q40).
    pub weight_type: FloatType,
    /// Model width.
    pub dim: usize,
    /// Dense FFN width (0 for MoE).
    pub hidden_dim: usize,
    /// Layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head width; 0 = `dim / n_heads`.
    pub head_dim: usize,
    /// Experts (0 = dense).
    pub n_experts: usize,
    /// Experts per token.
    pub n_active_experts: usize,
    /// Expert FFN width.
    pub moe_hidden_dim: usize,
    /// Vocabulary.
    pub vocab_size: usize,
    /// Context length.
    pub seq_len: usize,
    /// RoPE theta (integer, as stored).
    pub rope_theta: i32,
    /// RoPE type as written in key 18 (Qwen3 forces falcon regardless).
    pub rope_type: RopeType,
    /// Llama 3.1 scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Norm epsilon 1e-6 instead of 1e-5.
    pub norm_epsilon_1e6: bool,
}
