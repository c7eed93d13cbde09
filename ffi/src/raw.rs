//! Checked views of the caller's pointers: every pointer is tested for NULL, alignment, a
//! size that can be addressed, and overlap with the other buffers of the call before any Rust
//! slice or [`Out`] is made from it.

use core::mem::size_of;
use core::ops::Range;
use core::panic::AssertUnwindSafe;

use kernels::{BlockQ40, BlockQ80, Out};

use crate::types::{airllm_block_q40, airllm_block_q80, airllm_status};

/// Runs one exported call: maps `Err` to its status and turns a panic into
/// [`airllm_status::Panic`], so that no unwind reaches the C caller.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), airllm_status>) -> airllm_status {
    // The closure only touches the call's own arguments and buffers; after a panic the caller
    // sees an error status and must treat the output as garbage, so no broken invariant of
    // ours survives the unwind.
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => airllm_status::Ok,
        Ok(Err(status)) => status,
        Err(payload) => {
            // Dropping the payload runs its destructor, which could panic in turn; catch that
            // too, and only leak the (vanishingly unlikely) second payload.
            let dropped = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            if let Err(again) = dropped {
                core::mem::forget(again);
            }
            airllm_status::Panic
        }
    }
}

/// `a * b` as a length, or [`airllm_status::BadSize`] if it does not fit `usize`.
pub(crate) fn mul(a: usize, b: usize) -> Result<usize, airllm_status> {
    a.checked_mul(b).ok_or(airllm_status::BadSize)
}

/// Blocks in `n` floats, or [`airllm_status::BadSize`] if `n` is not a multiple of 32.
pub(crate) fn blocks(n: u32) -> Result<usize, airllm_status> {
    if !n.is_multiple_of(32) {
        return Err(airllm_status::BadSize);
    }
    Ok(n as usize / 32)
}

/// A caller's buffer of `len` elements of `T` that passed the pointer checks.
pub(crate) struct Raw<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Raw<T> {
    /// An input buffer (read only).
    pub(crate) fn input(ptr: *const T, len: usize) -> Result<Raw<T>, airllm_status> {
        Raw::output(ptr.cast_mut(), len)
    }

    /// An output or in-place buffer.
    pub(crate) fn output(ptr: *mut T, len: usize) -> Result<Raw<T>, airllm_status> {
        if ptr.is_null() {
            return Err(airllm_status::NullPointer);
        }
        if !ptr.is_aligned() {
            return Err(airllm_status::Misaligned);
        }
        // `slice::from_raw_parts` needs the byte size to fit `isize`; checking it also keeps
        // `bytes()` below from overflowing.
        match len.checked_mul(size_of::<T>()) {
            Some(bytes) if bytes <= isize::MAX as usize => Ok(Raw { ptr, len }),
            _ => Err(airllm_status::BadSize),
        }
    }

    /// The addresses this buffer covers.
    fn bytes(&self) -> Range<usize> {
        let start = self.ptr as usize;
        start..start.saturating_add(self.len * size_of::<T>())
    }

    /// The caller's view of a shared slice.
    ///
    /// # Safety
    /// The caller of the exported function guarantees that the memory is valid for reads of
    /// `len` elements and not written by anyone while the call runs.
    pub(crate) unsafe fn slice<'a>(&self) -> &'a [T] {
        // SAFETY: non-null, aligned and of addressable size (checked in `output`); valid and
        // unchanging for the call by this function's contract.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The caller's view of an output buffer shared with concurrent calls.
    ///
    /// # Safety
    /// The caller of the exported function guarantees that the memory is valid for reads and
    /// writes of `len` elements, and that concurrent calls on it are the same kernel with the
    /// same sizes and `n_threads` and distinct `thread_index` values (the contract of
    /// [`Out::shared`]).
    pub(crate) unsafe fn out<'a>(&self) -> Out<'a, T> {
        // SAFETY: non-null and aligned (checked in `output`); the rest is this function's
        // contract, which is `Out::shared`'s.
        unsafe { Out::shared(self.ptr, self.len) }
    }
}

impl Raw<airllm_block_q40> {
    /// The same buffer as the kernel crate's block type.
    pub(crate) fn blocks(&self) -> Raw<BlockQ40> {
        // The two block types have the same size, alignment and field offsets (asserted at
        // compile time in `types`), so the pointer stays aligned and the length unchanged.
        Raw {
            ptr: self.ptr.cast(),
            len: self.len,
        }
    }
}

impl Raw<airllm_block_q80> {
    /// The same buffer as the kernel crate's block type.
    pub(crate) fn blocks(&self) -> Raw<BlockQ80> {
        // See `Raw<airllm_block_q40>::blocks`.
        Raw {
            ptr: self.ptr.cast(),
            len: self.len,
        }
    }
}

/// Address ranges of the buffers of one call, to refuse an output that overlaps anything
/// else: the Rust views of them must not alias.
#[derive(Default)]
pub(crate) struct Regions {
    outputs: [Range<usize>; 2],
    inputs: [Range<usize>; 3],
    n_out: usize,
    n_in: usize,
}

impl Regions {
    /// Records an output (or in-place) buffer.
    pub(crate) fn output<T>(mut self, r: &Raw<T>) -> Self {
        self.outputs[self.n_out] = r.bytes();
        self.n_out += 1;
        self
    }

    /// Records an input buffer.
    pub(crate) fn input<T>(mut self, r: &Raw<T>) -> Self {
        self.inputs[self.n_in] = r.bytes();
        self.n_in += 1;
        self
    }

    /// [`airllm_status::Overlap`] if an output shares a byte with an input or another output.
    pub(crate) fn check(&self) -> Result<(), airllm_status> {
        let outs = &self.outputs[..self.n_out];
        for (i, o) in outs.iter().enumerate() {
            let others = outs[i + 1..].iter().chain(&self.inputs[..self.n_in]);
            for other in others {
                // Empty buffers hold no bytes, so they cannot alias anything.
                let shared = !o.is_empty() && !other.is_empty();
                if shared && o.start < other.end && other.start < o.end {
                    return Err(airllm_status::Overlap);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_a_status() {
        let s = guard(|| panic!("kernel bug"));
        assert_eq!(s, airllm_status::Panic);
        assert_eq!(guard(|| Ok(())), airllm_status::Ok);
        assert_eq!(
            guard(|| Err(airllm_status::BadSize)),
            airllm_status::BadSize
        );
    }

    #[test]
    fn pointer_checks() {
        let v = [0.0f32; 4];
        assert!(Raw::input(v.as_ptr(), 4).is_ok());
        assert_eq!(
            Raw::<f32>::input(core::ptr::null(), 0).err(),
            Some(airllm_status::NullPointer)
        );
        let odd = v.as_ptr().cast::<u8>().wrapping_add(1).cast::<f32>();
        assert_eq!(Raw::input(odd, 1).err(), Some(airllm_status::Misaligned));
        assert_eq!(
            Raw::input(v.as_ptr(), usize::MAX / 2).err(),
            Some(airllm_status::BadSize)
        );
    }

    #[test]
    fn overlap_is_found_and_touching_is_fine() {
        let mut v = [0.0f32; 8];
        let p = v.as_mut_ptr();
        let a = Raw::output(p, 4).unwrap();
        let b = Raw::input(p.wrapping_add(4), 4).unwrap();
        let c = Raw::input(p.wrapping_add(3), 2).unwrap();
        let empty = Raw::input(p.wrapping_add(1), 0).unwrap();
        assert!(Regions::default().output(&a).input(&b).check().is_ok());
        assert!(Regions::default().output(&a).input(&empty).check().is_ok());
        assert_eq!(
            Regions::default().output(&a).input(&c).check(),
            Err(airllm_status::Overlap)
        );
        assert_eq!(
            Regions::default().output(&b).output(&c).check(),
            Err(airllm_status::Overlap)
        );
    }

    #[test]
    fn block_sizes_need_multiples_of_32() {
        assert_eq!(blocks(64), Ok(2));
        assert_eq!(blocks(0), Ok(0));
        assert_eq!(blocks(33), Err(airllm_status::BadSize));
    }
}
