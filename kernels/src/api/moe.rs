use super::{check_len, check_split, mul_size};
use crate::{split, KernelError, Kernels, Out};

impl Kernels {
    /// MoE top-k gate over rows of `n_experts` probabilities (the output of softmax).
    ///
    /// For each row: the `k` largest values, largest first (equal values: lower expert index
    /// first), their indices into `indices` and their weights into `weights` (both `rows × k`).
    /// With `normalize` the weights are `p / Σ_topk p` (the sum taken in order, from 0), else
    /// `p` itself. Threads split the rows.
    #[allow(clippy::too_many_arguments)]
    pub fn moe_gate<'o, 'i>(
        &self,
        weights: impl Into<Out<'o, f32>>,
        indices: impl Into<Out<'i, u32>>,
        probs: &[f32],
        n_experts: usize,
        k: usize,
        normalize: bool,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let (mut weights, mut indices) = (weights.into(), indices.into());
        check_split(n_threads, thread_index)?;
        if k == 0 || k > n_experts || n_experts > u32::MAX as usize {
            return Err(KernelError::BadArgument(
                "moe gate needs 0 < k <= n_experts",
            ));
        }
        if !probs.len().is_multiple_of(n_experts) {
            return Err(KernelError::NotMultiple {
                what: "probs",
                len: probs.len(),
                unit: n_experts,
            });
        }
        let rows = probs.len() / n_experts;
        check_len("weights", mul_size("rows·k", rows, k)?, weights.len())?;
        check_len("indices", rows * k, indices.len())?;
        let r = split(rows, n_threads, thread_index);
        let ws = weights.part(r.start * k..r.end * k);
        let is = indices.part(r.start * k..r.end * k);
        for ((row, w), ix) in probs[r.start * n_experts..r.end * n_experts]
            .chunks_exact(n_experts)
            .zip(ws.chunks_exact_mut(k))
            .zip(is.chunks_exact_mut(k))
        {
            top_k(row, ix);
            let sum = if normalize {
                ix.iter().fold(0.0f32, |s, &i| s + row[i as usize])
            } else {
                1.0
            };
            for (wv, &i) in w.iter_mut().zip(ix.iter()) {
                *wv = row[i as usize] / sum;
            }
        }
        Ok(())
    }

    /// Writes `row` into row `pos` of a KV cache of rows of `row.len()` floats (the SHIFT op).
    /// Threads split the elements of the row.
    pub fn kv_write<'o>(
        &self,
        cache: impl Into<Out<'o, f32>>,
        row: &[f32],
        pos: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut cache = cache.into();
        check_split(n_threads, thread_index)?;
        let start = mul_size("pos·row", pos, row.len())?;
        if start + row.len() > cache.len() {
            return Err(KernelError::BadArgument(
                "kv_write position is past the cache",
            ));
        }
        let r = split(row.len(), n_threads, thread_index);
        cache
            .part(start + r.start..start + r.end)
            .copy_from_slice(&row[r]);
        Ok(())
    }
}

/// Indices of the `out.len()` largest values of `x`, largest first, lower index first on ties.
fn top_k(x: &[f32], out: &mut [u32]) {
    for slot in 0..out.len() {
        let taken = &out[..slot];
        let mut best: Option<usize> = None;
        for (i, &v) in x.iter().enumerate() {
            if taken.contains(&(i as u32)) {
                continue;
            }
            let better = match best {
                Some(b) => v > x[b],
                None => true,
            };
            if better {
                best = Some(i);
            }
        }
        out[slot] = best.unwrap_or(0) as u32;
    }
}
