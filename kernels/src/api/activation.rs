use super::{check_len, check_multiple, check_split};
use crate::block::{BlockQ80, QK};
use crate::{split, KernelError, Kernels, Out};

impl Kernels {
    /// Softmax in place over each row of `row_len` floats of `x` (see the crate docs for the
    /// exact arithmetic). Threads split the rows.
    pub fn softmax<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        row_len: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        if row_len == 0 {
            return Err(KernelError::BadArgument("softmax row length is 0"));
        }
        check_multiple("x", x.len(), row_len)?;
        let r = split(x.len() / row_len, n_threads, thread_index);
        for row in r {
            (self.table.softmax)(x.part(row * row_len..(row + 1) * row_len));
        }
        Ok(())
    }

    /// SiLU in place, `v / (1 + e^(−v))`: the exp polynomial for elements before
    /// `len − len % 8`, `expf` after. Threads split the elements.
    pub fn silu<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        let len = x.len();
        let full = len - len % 8;
        let r = split(len, n_threads, thread_index);
        let n_poly = full.saturating_sub(r.start).min(r.len());
        (self.table.silu)(x.part(r), n_poly);
        Ok(())
    }

    /// Tanh-form GELU in place. Threads split the elements.
    pub fn gelu<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.gelu)(x.part(r));
        Ok(())
    }

    /// `x[i] *= m[i]` in place. Threads split the elements.
    pub fn mul<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        m: &[f32],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        check_len("m", x.len(), m.len())?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.mul)(x.part(r.clone()), &m[r]);
        Ok(())
    }

    /// `y[i] += x[i]` (merge-add of an F32 slice). Threads split the elements.
    pub fn add<'o>(
        &self,
        y: impl Into<Out<'o, f32>>,
        x: &[f32],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut y = y.into();
        check_split(n_threads, thread_index)?;
        check_len("x", y.len(), x.len())?;
        let r = split(y.len(), n_threads, thread_index);
        (self.table.add)(y.part(r.clone()), &x[r]);
        Ok(())
    }

    /// `y[i] = fma(d, q[i], y[i])` (merge-add of a Q80 slice); `y.len() == 32 · x.len()`.
    /// Threads split the blocks.
    pub fn add_q80<'o>(
        &self,
        y: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut y = y.into();
        check_split(n_threads, thread_index)?;
        check_len("y", x.len() * QK, y.len())?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.add_q80)(y.part(r.start * QK..r.end * QK), &x[r]);
        Ok(())
    }

    /// `x[i] *= s` in place. Threads split the elements.
    pub fn scale<'o>(
        &self,
        x: impl Into<Out<'o, f32>>,
        s: f32,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut x = x.into();
        check_split(n_threads, thread_index)?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.scale)(x.part(r), s);
        Ok(())
    }
}
