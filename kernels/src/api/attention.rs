use super::{check_at_least, check_len, check_split, mul_size};
use crate::scalar::attention::AttHeads;
use crate::{split, KernelError, Kernels, Out};

/// The shape of one node's attention (the peer's `NnMultiHeadAttOpConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query heads of the whole model.
    pub n_heads: usize,
    /// Query heads on this node (`q` holds `n_heads0 · head_dim` floats).
    pub n_heads0: usize,
    /// KV heads of the whole model.
    pub n_kv_heads: usize,
    /// Floats per head.
    pub head_dim: usize,
    /// Positions the KV cache holds.
    pub seq_len: usize,
    /// Floats per KV-cache row on this node (`n_kv_heads0 · head_dim`).
    pub kv_dim0: usize,
}

impl Kernels {
    /// Multi-head attention with grouped-query heads at position `pos` (spec §6.8).
    ///
    /// `y` and `q`: `n_heads0 × head_dim`; `att`: `n_heads0 × seq_len` scratch (its contents
    /// afterwards are unspecified); `k_cache`, `v_cache`: at least `(pos+1) × kv_dim0`, row `t` =
    /// position `t`. Local head `h` reads KV head `h / (n_heads / n_kv_heads)`. Per head:
    /// `score_t = dot8(q, K_t) / sqrtf(head_dim)`, softmax over `t ≤ pos`, then
    /// `y = fma(a_t, V_t, y)` for `t` in order. Threads split the heads.
    #[allow(clippy::too_many_arguments)]
    pub fn multihead_attention<'o, 'a>(
        &self,
        y: impl Into<Out<'o, f32>>,
        att: impl Into<Out<'a, f32>>,
        q: &[f32],
        k_cache: &[f32],
        v_cache: &[f32],
        pos: usize,
        shape: &AttentionShape,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let (mut y, mut att) = (y.into(), att.into());
        check_split(n_threads, thread_index)?;
        let s = shape;
        if s.head_dim == 0 || s.n_kv_heads == 0 || s.n_heads == 0 || s.n_heads0 == 0 {
            return Err(KernelError::BadArgument(
                "attention heads and head_dim must be > 0",
            ));
        }
        if !s.n_heads.is_multiple_of(s.n_kv_heads) {
            return Err(KernelError::BadArgument(
                "n_heads must be a multiple of n_kv_heads",
            ));
        }
        if pos >= s.seq_len {
            return Err(KernelError::BadArgument("pos must be below seq_len"));
        }
        let kv_mul = s.n_heads / s.n_kv_heads;
        // Every local query head must find its KV head inside a cache row.
        let kv_heads_needed = (s.n_heads0 - 1) / kv_mul + 1;
        check_at_least(
            "kv_dim0",
            mul_size("kv heads·head_dim", kv_heads_needed, s.head_dim)?,
            s.kv_dim0,
        )?;
        let qlen = mul_size("n_heads0·head_dim", s.n_heads0, s.head_dim)?;
        check_len("q", qlen, q.len())?;
        check_len("y", qlen, y.len())?;
        check_len(
            "att",
            mul_size("n_heads0·seq_len", s.n_heads0, s.seq_len)?,
            att.len(),
        )?;
        let rows = mul_size("(pos+1)·kv_dim0", pos + 1, s.kv_dim0)?;
        check_at_least("k_cache", rows, k_cache.len())?;
        check_at_least("v_cache", rows, v_cache.len())?;
        let h = split(s.n_heads0, n_threads, thread_index);
        let hd = s.head_dim;
        let heads = AttHeads {
            q: &q[h.start * hd..h.end * hd],
            k_cache: &k_cache[..rows],
            v_cache: &v_cache[..rows],
            head_dim: hd,
            kv_dim0: s.kv_dim0,
            kv_mul,
            first_head: h.start,
            pos,
        };
        (self.table.attention)(
            y.part(h.start * hd..h.end * hd),
            att.part(h.start * s.seq_len..h.end * s.seq_len),
            s.seq_len,
            &heads,
        );
        Ok(())
    }
}
