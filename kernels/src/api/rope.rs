use super::{check_at_least, check_len, check_split, mul_size};
use crate::{split, KernelError, Kernels, Out};

/// One node's slice of the rotary embedding (the peer's `NnRopeSlice`, spec §4.4).
///
/// For llama-style RoPE the cache has `seq_len` rows of `slice_dim` floats covering global
/// features `kv_dim_start..q_dim_end` as (cos, sin) pairs; the node's k features start at
/// offset 0 of a row and its q features at `q_shift`. For falcon the cache has `seq_len` rows of
/// `head_dim` floats (cos half, sin half) and only `q_dim0`, `kv_dim0`, `head_dim`, `seq_len`
/// and `theta` matter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeSlice {
    /// Query features on this node.
    pub q_dim0: usize,
    /// First global query feature of this node.
    pub q_dim_start: usize,
    /// One past the last global query feature of this node.
    pub q_dim_end: usize,
    /// `q_dim_start − kv_dim_start`: where q's pairs start in a cache row.
    pub q_shift: usize,
    /// KV features of the whole model.
    pub kv_dim: usize,
    /// KV features on this node.
    pub kv_dim0: usize,
    /// First global KV feature of this node.
    pub kv_dim_start: usize,
    /// Floats per llama cache row: `q_dim_end − kv_dim_start`.
    pub slice_dim: usize,
    /// Positions in the cache.
    pub seq_len: usize,
    /// Floats per head.
    pub head_dim: usize,
    /// KV heads of the whole model.
    pub n_kv_heads: usize,
    /// RoPE base θ.
    pub theta: f32,
}

impl RopeSlice {
    /// The slice of node `node` of `n_nodes` for a model with the given dimensions, as the
    /// peer's `sliceRope` computes it.
    #[allow(clippy::too_many_arguments)]
    pub fn for_node(
        q_dim: usize,
        kv_dim: usize,
        n_kv_heads: usize,
        n_nodes: usize,
        seq_len: usize,
        head_dim: usize,
        theta: f32,
        node: usize,
    ) -> RopeSlice {
        let q_dim0 = q_dim / n_nodes;
        let kv_dim0 = kv_dim / n_nodes;
        let q_dim_start = node * q_dim0;
        let kv_dim_start = node * kv_dim0;
        let q_dim_end = q_dim_start + q_dim0;
        RopeSlice {
            q_dim0,
            q_dim_start,
            q_dim_end,
            q_shift: q_dim_start - kv_dim_start,
            kv_dim,
            kv_dim0,
            kv_dim_start,
            slice_dim: q_dim_end - kv_dim_start,
            seq_len,
            head_dim,
            n_kv_heads,
            theta,
        }
    }
}

impl Kernels {
    /// Llama (interleaved-pair) RoPE in place on this node's q (`is_q`, `q_dim0` floats) or k
    /// (`kv_dim0` floats) at position `pos`, reading the (cos, sin) pairs of row `pos` of
    /// `cache` (see [`crate::rope::fill_llama_cache`]). Threads split the pairs.
    #[allow(clippy::too_many_arguments)]
    pub fn rope_llama<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        cache: &[f32],
        is_q: bool,
        pos: usize,
        slice: &RopeSlice,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        let (dim0, shift) = if is_q {
            (slice.q_dim0, slice.q_shift)
        } else {
            (slice.kv_dim0, 0)
        };
        if dim0 % 2 != 0 {
            return Err(KernelError::BadArgument("rope dimension must be even"));
        }
        if pos >= slice.seq_len {
            return Err(KernelError::BadArgument("pos must be below seq_len"));
        }
        check_len("x", dim0, x.len())?;
        if shift + dim0 > slice.slice_dim {
            return Err(KernelError::BadArgument(
                "rope slice does not fit slice_dim",
            ));
        }
        let row = mul_size("pos·slice_dim", pos, slice.slice_dim)?;
        check_at_least("cache", row + slice.slice_dim, cache.len())?;
        let pairs = split(dim0 / 2, n_threads, thread_index);
        let e = pairs.start * 2..pairs.end * 2;
        let c = row + shift + e.start..row + shift + e.end;
        (self.table.rope_llama)(x.part(e), &cache[c]);
        Ok(())
    }

    /// Falcon/NeoX (half-split) RoPE in place on whole heads of this node's q or k at position
    /// `pos`, reading row `pos` of a `seq_len × head_dim` cache (see
    /// [`crate::rope::fill_falcon_cache`]). Threads split the heads.
    #[allow(clippy::too_many_arguments)]
    pub fn rope_falcon<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        cache: &[f32],
        is_q: bool,
        pos: usize,
        slice: &RopeSlice,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        let dim0 = if is_q { slice.q_dim0 } else { slice.kv_dim0 };
        let hd = slice.head_dim;
        if hd == 0 || !hd.is_multiple_of(2) || dim0 % hd != 0 {
            return Err(KernelError::BadArgument(
                "rope head_dim must be even and divide the node's dimension",
            ));
        }
        if pos >= slice.seq_len {
            return Err(KernelError::BadArgument("pos must be below seq_len"));
        }
        check_len("x", dim0, x.len())?;
        let row = mul_size("pos·head_dim", pos, hd)?;
        check_at_least("cache", row + hd, cache.len())?;
        let heads = split(dim0 / hd, n_threads, thread_index);
        (self.table.rope_falcon)(
            x.part(heads.start * hd..heads.end * hd),
            &cache[row..row + hd],
        );
        Ok(())
    }
}
