//! Errors from the safe kernel API: every size and split is checked before any work.

use core::fmt;

use crate::Impl;

/// Why a kernel call was refused. Nothing has been written when an error is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelError {
    /// A slice does not have the length the other arguments imply.
    BadSize {
        /// Which argument.
        what: &'static str,
        /// Length (in elements of the slice's type) that was required.
        expected: usize,
        /// Length that was given.
        got: usize,
    },
    /// A length that must be a multiple of some unit (32 for quantised data) is not.
    NotMultiple {
        /// Which argument.
        what: &'static str,
        /// The length given.
        len: usize,
        /// The unit it must be a multiple of.
        unit: usize,
    },
    /// `n_threads == 0` or `thread_index >= n_threads`.
    BadThreadSplit {
        /// Threads given.
        n_threads: usize,
        /// Thread index given.
        thread_index: usize,
    },
    /// A scalar argument is out of its range (position past the cache, zero heads, …).
    BadArgument(&'static str),
    /// The implementation cannot run on this CPU (or was not compiled in).
    Unsupported(Impl),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KernelError::BadSize {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} elements, got {got}"),
            KernelError::NotMultiple { what, len, unit } => {
                write!(f, "{what}: length {len} is not a multiple of {unit}")
            }
            KernelError::BadThreadSplit {
                n_threads,
                thread_index,
            } => write!(
                f,
                "thread index {thread_index} is not below the thread count {n_threads}"
            ),
            KernelError::BadArgument(what) => write!(f, "bad argument: {what}"),
            KernelError::Unsupported(imp) => {
                write!(
                    f,
                    "implementation {} is not available on this CPU",
                    imp.name()
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KernelError {}
