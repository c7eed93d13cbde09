use super::{check_len, check_multiple, check_split};
use crate::block::{BlockQ40, BlockQ80, QK};
use crate::{split, KernelError, Kernels, Out};

impl Kernels {
    /// F32 → Q80: `x` (a multiple of 32 floats) into `x.len()/32` blocks of `out`. Threads
    /// split the blocks.
    pub fn quantize_q80<'o>(
        &self,
        out: impl Into<Out<'o, BlockQ80>>,
        x: &[f32],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_multiple("x", x.len(), QK)?;
        check_len("out", x.len() / QK, out.len())?;
        let r = split(out.len(), n_threads, thread_index);
        (self.table.quantize_q80)(&x[r.start * QK..r.end * QK], out.part(r));
        Ok(())
    }

    /// F32 → Q40 (the model writer's encoder): `x` into `x.len()/32` blocks. Threads split the
    /// blocks.
    pub fn quantize_q40<'o>(
        &self,
        out: impl Into<Out<'o, BlockQ40>>,
        x: &[f32],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_multiple("x", x.len(), QK)?;
        check_len("out", x.len() / QK, out.len())?;
        let r = split(out.len(), n_threads, thread_index);
        (self.table.quantize_q40)(&x[r.start * QK..r.end * QK], out.part(r));
        Ok(())
    }

    /// Q80 → F32: `out.len() == 32 · x.len()`. Threads split the blocks.
    pub fn dequantize_q80<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_len("out", x.len() * QK, out.len())?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.dequantize_q80)(&x[r.clone()], out.part(r.start * QK..r.end * QK));
        Ok(())
    }

    /// Q40 → F32: `out.len() == 32 · x.len()`. Threads split the blocks.
    pub fn dequantize_q40<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ40],
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_len("out", x.len() * QK, out.len())?;
        let r = split(x.len(), n_threads, thread_index);
        (self.table.dequantize_q40)(&x[r.clone()], out.part(r.start * QK..r.end * QK));
        Ok(())
    }
}
