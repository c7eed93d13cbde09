use super::{check_len, check_multiple, check_split};
use crate::block::{BlockQ80, QK};
use crate::{split, KernelError, Kernels, Out};

impl Kernels {
    /// Inverse RMS of each of `out.len()` equal column groups of `x`:
    /// `out[c] = 1 / sqrtf(dot8(g, g) / len(g) + eps)`. Threads split the groups.
    pub fn inv_rms<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[f32],
        eps: f32,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        if out.is_empty() || x.is_empty() {
            return Err(KernelError::BadArgument(
                "inv_rms needs at least one non-empty group",
            ));
        }
        check_multiple("x", x.len(), out.len())?;
        let group = x.len() / out.len();
        let r = split(out.len(), n_threads, thread_index);
        (self.table.inv_rms)(out.part(r.clone()), &x[r.start * group..r.end * group], eps);
        Ok(())
    }

    /// `out[i] = (x[i] · inv_rms) · w[i]`; all three the same length. Threads split the elements.
    pub fn rms_norm<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[f32],
        w: &[f32],
        inv_rms: f32,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_len("w", x.len(), w.len())?;
        check_len("out", x.len(), out.len())?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.rms_norm)(out.part(r.clone()), &x[r.clone()], &w[r], inv_rms);
        Ok(())
    }

    /// [`rms_norm`](Self::rms_norm) of a Q80 input: `out = w · ((inv_rms · d) · q)`;
    /// `out.len() == w.len() == 32 · x.len()`. Threads split the blocks.
    pub fn rms_norm_q80<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        w: &[f32],
        inv_rms: f32,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_len("w", x.len() * QK, w.len())?;
        check_len("out", x.len() * QK, out.len())?;
        let r = split(x.len(), n_threads, thread_index);
        let e = r.start * QK..r.end * QK;
        (self.table.rms_norm_q80)(out.part(e.clone()), &x[r], &w[e], inv_rms);
        Ok(())
    }
}
