//! Output buffers that several threads may write at once, each its own share.
//!
//! distributed-llama runs one kernel call per thread, all on the same output pointer, each
//! with its own `thread_index`. A Rust `&mut [T]` cannot be held by several threads, so
//! kernels take an [`Out`]: built safely from `&mut [T]` (one caller), or, for thread pools and
//! the C ABI, from a raw pointer under the contract of [`Out::shared`]. A kernel turns an `Out`
//! into a `&mut` slice only for the items its `(n_threads, thread_index)` owns, so the slices
//! made by concurrent calls never overlap.

use core::marker::PhantomData;
use core::ops::Range;
use core::ptr::NonNull;

/// A kernel's output (or in-place) buffer; see the module docs.
pub struct Out<'a, T> {
    ptr: NonNull<T>,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

impl<'a, T> From<&'a mut [T]> for Out<'a, T> {
    fn from(s: &'a mut [T]) -> Self {
        Out {
            len: s.len(),
            ptr: NonNull::from(s).cast(),
            _borrow: PhantomData,
        }
    }
}

impl<'a, T> Out<'a, T> {
    /// An output shared by several concurrent kernel calls.
    ///
    /// # Safety
    /// `ptr` must be non-null, aligned, and valid for reads and writes of `len` elements of `T`
    /// for `'a`. While `Out`s built from overlapping memory are in use at the same time, each
    /// must be passed to the same kernel with the same sizes and `n_threads` and a distinct
    /// `thread_index`, and no other code may access that memory.
    pub unsafe fn shared(ptr: *mut T, len: usize) -> Self {
        Out {
            // SAFETY: the caller guarantees `ptr` is non-null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            len,
            _borrow: PhantomData,
        }
    }

    /// Length of the whole buffer, in elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A view of the items `r` (relative to this buffer), for calling a kernel on part of a
    /// buffer (one batch row, one column group). Concurrent users of a shared buffer must all
    /// take the same views. Panics if `r` is outside the buffer.
    pub fn slice(&mut self, r: Range<usize>) -> Out<'_, T> {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "Out::slice out of range"
        );
        Out {
            // SAFETY: `r.start <= len`, so the offset stays inside (or one past) the buffer.
            ptr: unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(r.start)) },
            len: r.len(),
            _borrow: PhantomData,
        }
    }

    /// The items `r` of the buffer, exclusively for the lifetime of the borrow of `self`.
    ///
    /// Panics if `r` is outside the buffer; kernels check sizes before calling this.
    #[inline]
    pub(crate) fn part(&mut self, r: Range<usize>) -> &mut [T] {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "Out::part out of range"
        );
        // SAFETY: `r` lies inside the buffer (checked above), which is valid for `'a` by
        // construction. Either this `Out` came from a `&'a mut [T]` (exclusive) or from
        // `shared`, whose contract makes concurrent callers use distinct thread indices; every
        // kernel asks only for the items of its own thread share, so no two live slices overlap.
        // `&mut self` prevents two parts of the same `Out` from being alive together.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(r.start), r.len()) }
    }
}
