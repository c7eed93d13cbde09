//! The tensor index of a `.m` file (spec §1.2, §1.3): every tensor's kind, layer, expert,
//! encoding, shape and byte range, in file order.

use super::header::ModelHeader;
use super::ModelError;
use crate::float_type::FloatType;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// What a tensor is. The order of the variants is not the file order; see [`TensorIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorKind {
    /// Token embedding, F32 `[vocab, dim]`; root only.
    Embedding,
    /// Query projection, WT `[q_dim, dim]`.
    Q,
    /// Key projection, WT `[kv_dim, dim]`.
    K,
    /// Value projection, WT `[kv_dim, dim]`.
    V,
    /// Attention output, WT `[dim, q_dim]`.
    Wo,
    /// MoE router, F32 `[n_experts, dim]`.
    MoeGate,
    /// FFN gate (per expert for MoE), WT `[ff_dim, dim]`.
    W1,
    /// FFN down (per expert for MoE), WT `[dim, ff_dim]`.
    W2,
    /// FFN up (per expert for MoE), WT `[ff_dim, dim]`.
    W3,
    /// Qwen3 per-head query norm, F32 `[head_dim]`.
    QNorm,
    /// Qwen3 per-head key norm, F32 `[head_dim]`.
    KNorm,
    /// Norm before attention, F32 `[dim]`.
    AttnNorm,
    /// Norm before the FFN, F32 `[dim]`.
    FfnNorm,
    /// Norm before the classifier, F32 `[dim]`.
    FinalNorm,
    /// Output projection (lm head), WT `[vocab, dim]`.
    Classifier,
}

/// How a tensor is shared out over `n` nodes (spec §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Only the root (node 0) holds it, whole.
    RootOnly,
    /// Node k gets output rows `[k·d/n, (k+1)·d/n)`: contiguous bytes.
    Rows,
    /// Node k gets input columns `[k·c/n, (k+1)·c/n)` of every row, concatenated.
    Cols,
    /// Every node gets the whole tensor.
    Full,
}

impl TensorKind {
    /// The peer's op name that receives this tensor (spec §5.4).
    pub fn op_name(self) -> &'static str {
        match self {
            TensorKind::Embedding => "embedding",
            TensorKind::Q => "block_matmul_q",
            TensorKind::K => "block_matmul_k",
            TensorKind::V => "block_matmul_v",
            TensorKind::Wo => "block_matmul_wo",
            TensorKind::MoeGate => "block_moe_gate",
            TensorKind::W1 => "block_matmul_w1",
            TensorKind::W2 => "block_matmul_w2",
            TensorKind::W3 => "block_matmul_w3",
            TensorKind::QNorm => "block_norm_q",
            TensorKind::KNorm => "block_norm_k",
            TensorKind::AttnNorm => "block_norm_0",
            TensorKind::FfnNorm => "block_norm_1",
            TensorKind::FinalNorm => "final_norm",
            TensorKind::Classifier => "final_matmul_logits",
        }
    }

    /// Short name used in [`TensorId`]'s display form.
    pub fn short_name(self) -> &'static str {
        match self {
            TensorKind::Embedding => "embedding",
            TensorKind::Q => "wq",
            TensorKind::K => "wk",
            TensorKind::V => "wv",
            TensorKind::Wo => "wo",
            TensorKind::MoeGate => "moe_gate",
            TensorKind::W1 => "w1",
            TensorKind::W2 => "w2",
            TensorKind::W3 => "w3",
            TensorKind::QNorm => "q_norm",
            TensorKind::KNorm => "k_norm",
            TensorKind::AttnNorm => "attn_norm",
            TensorKind::FfnNorm => "ffn_norm",
            TensorKind::FinalNorm => "final_norm",
            TensorKind::Classifier => "classifier",
        }
    }

    /// How the tensor is split over nodes.
    pub fn split(self) -> Split {
        match self {
            TensorKind::Embedding => Split::RootOnly,
            TensorKind::Q | TensorKind::K | TensorKind::V => Split::Rows,
            TensorKind::W1 | TensorKind::W3 | TensorKind::Classifier => Split::Rows,
            TensorKind::Wo | TensorKind::W2 => Split::Cols,
            TensorKind::MoeGate
            | TensorKind::QNorm
            | TensorKind::KNorm
            | TensorKind::AttnNorm
            | TensorKind::FfnNorm
            | TensorKind::FinalNorm => Split::Full,
        }
    }

    /// Whether the tensor lives outside the layers (embedding, final norm, classifier).
    pub fn is_global(self) -> bool {
        matches!(
            self,
            TensorKind::Embedding | TensorKind::FinalNorm | TensorKind::Classifier
        )
    }
}

/// Identifies one tensor: kind, layer (0 for global tensors) and expert (`Some` only for the
/// w1/w2/w3 of a MoE model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId {
    /// What it is.
    pub kind: TensorKind,
    /// Layer index; 0 for global tensors.
    pub layer: u32,
    /// Expert index; `None` for dense tensors.
    pub expert: Option<u32>,
}

impl TensorId {
    /// A global tensor (embedding, final norm, classifier).
    pub fn global(kind: TensorKind) -> TensorId {
        TensorId {
            kind,
            layer: 0,
            expert: None,
        }
    }

    /// A per-layer tensor (dense FFN matrices included).
    pub fn layer(kind: TensorKind, layer: usize) -> TensorId {
        TensorId {
            kind,
            layer: layer as u32,
            expert: None,
        }
    }

    /// An expert's w1/w2/w3.
    pub fn expert(kind: TensorKind, layer: usize, expert: usize) -> TensorId {
        TensorId {
            kind,
            layer: layer as u32,
            expert: Some(expert as u32),
        }
    }
}

impl fmt::Display for TensorId {
    /// `embedding`, `layers.3.wq`, `layers.3.experts.5.w1`, `final_norm`, `classifier`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.kind.short_name();
        if self.kind.is_global() {
            f.write_str(name)
        } else if let Some(e) = self.expert {
            write!(f, "layers.{}.experts.{}.{}", self.layer, e, name)
        } else {
            write!(f, "layers.{}.{}", self.layer, name)
        }
    }
}

/// One tensor of the file. Shapes are `[rows, cols]` = `[out, in]` as stored: row `r` holds the
/// `cols` inputs of output `r`; 1-D tensors (norms) have one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Which tensor.
    pub id: TensorId,
    /// Encoding.
    pub float_type: FloatType,
    /// Output rows.
    pub rows: usize,
    /// Input columns (elements per row).
    pub cols: usize,
    /// Absolute byte offset in the file. Always even (header and every tensor size are even),
    /// so Q40 blocks are 2-aligned inside a page-aligned map; F32 tensors may be only 2-aligned.
    pub offset: u64,
    /// Size in bytes.
    pub bytes: u64,
}

impl TensorInfo {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> u64 {
        self.bytes / self.rows as u64
    }

    /// Absolute byte range in the file.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.bytes
    }

    /// How the tensor is split over nodes.
    pub fn split(&self) -> Split {
        self.id.kind.split()
    }

    /// Peer's op name (spec §5.4).
    pub fn op_name(&self) -> &'static str {
        self.id.kind.op_name()
    }

    /// Peer's op index: the layer, 0 for global tensors.
    pub fn op_index(&self) -> u32 {
        self.id.layer
    }
}

/// The tensors of a model in file order, with lookup by [`TensorId`].
#[derive(Clone, Debug)]
pub struct TensorIndex {
    entries: Vec<TensorInfo>,
    positions: HashMap<TensorId, usize>,
    file_size: u64,
}

/// Shapes `(kind, type, rows, cols)` of one layer in file order; experts are expanded by the
/// caller. Sizes were range-checked by the header parser.
fn layer_layout(h: &ModelHeader) -> Vec<(TensorKind, FloatType, usize, usize, bool)> {
    let wt = h.weight_type;
    let mut v = vec![
        (TensorKind::Q, wt, h.q_dim, h.dim, false),
        (TensorKind::K, wt, h.kv_dim, h.dim, false),
        (TensorKind::V, wt, h.kv_dim, h.dim, false),
        (TensorKind::Wo, wt, h.dim, h.q_dim, false),
    ];
    if h.is_moe() {
        v.push((
            TensorKind::MoeGate,
            FloatType::F32,
            h.n_experts,
            h.dim,
            false,
        ));
    }
    v.extend([
        (TensorKind::W1, wt, h.ff_dim, h.dim, h.is_moe()),
        (TensorKind::W2, wt, h.dim, h.ff_dim, h.is_moe()),
        (TensorKind::W3, wt, h.ff_dim, h.dim, h.is_moe()),
    ]);
    if h.arch.has_qk_norm() {
        v.push((TensorKind::QNorm, FloatType::F32, 1, h.head_dim, false));
        v.push((TensorKind::KNorm, FloatType::F32, 1, h.head_dim, false));
    }
    v.push((TensorKind::AttnNorm, FloatType::F32, 1, h.dim, false));
    v.push((TensorKind::FfnNorm, FloatType::F32, 1, h.dim, false));
    v
}

fn tensor_bytes(t: FloatType, rows: usize, cols: usize) -> Result<u64, ModelError> {
    // Quantised rows must hold whole blocks so each block stays inside one row (spec §1.3).
    if !cols.is_multiple_of(t.block_len()) {
        return Err(ModelError::Shape(format!(
            "{t} rows of {cols} elements are not whole blocks of {}",
            t.block_len()
        )));
    }
    (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|n| t.bytes(n))
        .ok_or(ModelError::SizeOverflow)
}

impl TensorIndex {
    /// The file size the header implies (header plus every tensor), computed without
    /// allocating, so a file can be checked before its index is built.
    pub fn expected_file_size(h: &ModelHeader) -> Result<u64, ModelError> {
        let mut per_layer = 0u64;
        let experts = h.n_experts.max(1) as u64;
        for (_, t, rows, cols, per_expert) in layer_layout(h) {
            let b = tensor_bytes(t, rows, cols)?;
            let b = if per_expert {
                b.checked_mul(experts).ok_or(ModelError::SizeOverflow)?
            } else {
                b
            };
            per_layer = per_layer.checked_add(b).ok_or(ModelError::SizeOverflow)?;
        }
        let globals = [
            tensor_bytes(FloatType::F32, h.vocab_size, h.dim)?,
            tensor_bytes(FloatType::F32, 1, h.dim)?,
            tensor_bytes(h.weight_type, h.vocab_size, h.dim)?,
        ];
        let layers = per_layer
            .checked_mul(h.n_layers as u64)
            .ok_or(ModelError::SizeOverflow)?;
        globals
            .iter()
            .try_fold(layers.checked_add(h.header_size as u64), |acc, &b| {
                acc.map(|a| a.checked_add(b))
            })
            .flatten()
            .ok_or(ModelError::SizeOverflow)
    }

    /// Builds the index for `h`. The caller should first compare
    /// [`expected_file_size`](Self::expected_file_size) with the real file length: the entry
    /// count grows with layers × experts.
    pub fn build(h: &ModelHeader) -> Result<TensorIndex, ModelError> {
        let file_size = Self::expected_file_size(h)?;
        let layout = layer_layout(h);
        let per_layer: usize = layout
            .iter()
            .map(|l| if l.4 { h.n_experts } else { 1 })
            .sum();
        let count = per_layer * h.n_layers + 3;
        let mut entries = Vec::with_capacity(count);
        let mut offset = h.header_size as u64;
        let mut push =
            |id: TensorId, t: FloatType, rows: usize, cols: usize| -> Result<(), ModelError> {
                let bytes = tensor_bytes(t, rows, cols)?;
                entries.push(TensorInfo {
                    id,
                    float_type: t,
                    rows,
                    cols,
                    offset,
                    bytes,
                });
                offset += bytes;
                Ok(())
            };
        push(
            TensorId::global(TensorKind::Embedding),
            FloatType::F32,
            h.vocab_size,
            h.dim,
        )?;
        for l in 0..h.n_layers {
            let mut i = 0;
            while i < layout.len() {
                let (kind, t, rows, cols, per_expert) = layout[i];
                if !per_expert {
                    push(TensorId::layer(kind, l), t, rows, cols)?;
                    i += 1;
                    continue;
                }
                // Experts are stored one after another, each with its w1, w2, w3.
                let group = layout[i..].iter().take_while(|x| x.4).count();
                for e in 0..h.n_experts {
                    for &(kind, t, rows, cols, _) in &layout[i..i + group] {
                        push(TensorId::expert(kind, l, e), t, rows, cols)?;
                    }
                }
                i += group;
            }
        }
        push(
            TensorId::global(TensorKind::FinalNorm),
            FloatType::F32,
            1,
            h.dim,
        )?;
        push(
            TensorId::global(TensorKind::Classifier),
            h.weight_type,
            h.vocab_size,
            h.dim,
        )?;
        debug_assert_eq!(offset, file_size);
        let positions = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        Ok(TensorIndex {
            entries,
            positions,
            file_size,
        })
    }

    /// Checks that a file of `len` bytes holds exactly the tensors of the index.
    pub fn check_file_len(&self, len: u64) -> Result<(), ModelError> {
        check_len(self.file_size, len)
    }

    /// The file size the index describes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// All tensors in file order.
    pub fn entries(&self) -> &[TensorInfo] {
        &self.entries
    }

    /// The tensor `id`, if the model has it.
    pub fn get(&self, id: TensorId) -> Option<&TensorInfo> {
        self.positions.get(&id).map(|&i| &self.entries[i])
    }

    /// The tensor `id`, or [`ModelError::NoSuchTensor`].
    pub fn require(&self, id: TensorId) -> Result<&TensorInfo, ModelError> {
        self.get(id).ok_or(ModelError::NoSuchTensor(id))
    }

    /// Position of `id` in file order.
    pub fn position(&self, id: TensorId) -> Option<usize> {
        self.positions.get(&id).copied()
    }
}

/// `expected` vs `actual` file length as the right error.
pub(crate) fn check_len(expected: u64, actual: u64) -> Result<(), ModelError> {
    if actual < expected {
        Err(ModelError::MissingBytes { expected, actual })
    } else if actual > expected {
        Err(ModelError::ExtraBytes { expected, actual })
    } else {
        Ok(())
    }
}
