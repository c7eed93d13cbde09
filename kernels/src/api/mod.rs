//! The safe, checked kernel API: methods of [`crate::Kernels`], one file per family. Each
//! method validates every length and the thread split, computes this thread's share with
//! [`crate::split`], and runs the implementation's table function on that share only.

mod activation;
mod attention;
mod matmul;
mod moe;
mod norm;
pub(crate) mod packed;
mod quant;
mod rope;

pub use attention::AttentionShape;
pub use packed::{pack_q40_rows, packed_q40_len, unpack_q40_rows, PackedQ40, PACK_ROWS};
pub use rope::RopeSlice;

use crate::KernelError;

#[inline]
pub(crate) fn check_split(n_threads: usize, thread_index: usize) -> Result<(), KernelError> {
    if n_threads == 0 || thread_index >= n_threads {
        return Err(KernelError::BadThreadSplit {
            n_threads,
            thread_index,
        });
    }
    Ok(())
}

#[inline]
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), KernelError> {
    if expected != got {
        return Err(KernelError::BadSize {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

#[inline]
pub(crate) fn check_at_least(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), KernelError> {
    if got < expected {
        return Err(KernelError::BadSize {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

#[inline]
pub(crate) fn check_multiple(
    what: &'static str,
    len: usize,
    unit: usize,
) -> Result<(), KernelError> {
    if unit == 0 || !len.is_multiple_of(unit) {
        return Err(KernelError::NotMultiple { what, len, unit });
    }
    Ok(())
}

/// `a * b`, or an error naming `what` if it overflows `usize`.
#[inline]
pub(crate) fn mul_size(what: &'static str, a: usize, b: usize) -> Result<usize, KernelError> {
    a.checked_mul(b).ok_or(KernelError::BadArgument(what))
}
