//! The executor's memory: every `unsafe` of the executor lives in this module.
//!
//! distributed-llama runs one op on all pool threads at once, every thread writing its own share
//! of the same output buffer through a raw pointer. We keep that model (it is what the kernels'
//! `(n_threads, thread_index)` contract is built for) and confine it here:
//!
//! * [`AlignedBuf`]: a 64-byte aligned, zeroed heap block with ordinary ownership (`&self` reads,
//!   `&mut self` writes). Weights live in these.
//! * [`SharedRegion`]: the same kind of block, but written by several threads at once while an
//!   op runs. It has no `&self` accessor; pool threads reach it only through a [`View`].
//! * [`View`]: typed read slices and [`Out`] write windows over a set of shared regions, made by
//!   the one `unsafe fn` [`View::new`] whose contract the segment runner upholds.
//!
//! The discipline that makes the views sound (checked where it can be, in `plan.rs`):
//! 1. within one op, no region is both read and written (the plan rejects such ops; in-place ops
//!    only take write windows);
//! 2. threads running an op call the same kernel with the same sizes and `n_threads` and a
//!    distinct `thread_index`, so their writes fall on disjoint items (the kernels' split
//!    contract), or they write whole rows that the runner assigns to one thread only;
//! 3. a barrier separates two ops whenever one writes a region the other reads or writes (ops
//!    without such a hazard may run back to back), and the pool's start/finish barriers
//!    separate a segment from everything the owning thread does with `&mut` access between
//!    segments.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use airllm_kernels::{BlockQ40, BlockQ80, Out};

/// Alignment of every buffer: a cache line, as the peer's `posix_memalign(64)`.
const ALIGN: usize = 64;

/// Plain data that any bit pattern is a valid value of, without padding bytes.
///
/// # Safety
/// Implementors must be `Copy`, contain no padding, and accept every bit pattern.
pub(crate) unsafe trait Pod: Copy + Send + Sync + 'static {}
// SAFETY: integers and floats accept every bit pattern and have no padding.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for f32 {}
// SAFETY: `#[repr(C)] { u16, [u8; 16] }`, 18 bytes (asserted by the kernel crate): no padding.
unsafe impl Pod for BlockQ40 {}
// SAFETY: `#[repr(C)] { u16, [i8; 32] }`, 34 bytes (asserted by the kernel crate): no padding.
unsafe impl Pod for BlockQ80 {}
// SAFETY: `#[repr(C, align(32))] { [u16; 16], [u8; 256] }`, 288 bytes (asserted by the kernel
// crate): a multiple of its alignment, so no padding; every bit pattern is valid.
unsafe impl Pod for airllm_kernels::PackedQ40 {}

/// Reinterprets bytes as `T`s; `None` if the slice is misaligned for `T` or not whole `T`s.
pub(crate) fn cast<T: Pod>(bytes: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(size)
        || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    // SAFETY: the pointer is aligned for `T` and `len/size` `T`s fit inside `bytes` (checked
    // above); `T: Pod` accepts any bytes; the result borrows `bytes`, so it cannot outlive it or
    // coexist with a write to it.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
}

/// Mutable [`cast`].
pub(crate) fn cast_mut<T: Pod>(bytes: &mut [u8]) -> Option<&mut [T]> {
    let size = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(size)
        || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    // SAFETY: as in `cast`; the exclusive borrow of `bytes` moves into the result.
    Some(unsafe {
        std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), bytes.len() / size)
    })
}

/// An owned zeroed allocation of `len` bytes aligned to [`ALIGN`].
struct RawAlloc {
    ptr: NonNull<u8>,
    len: usize,
}

impl RawAlloc {
    fn zeroed(len: usize) -> Result<RawAlloc, String> {
        let layout = Layout::from_size_align(len.max(1), ALIGN)
            .map_err(|_| format!("cannot allocate {len} bytes"))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(p).ok_or_else(|| format!("out of memory allocating {len} bytes"))?;
        Ok(RawAlloc { ptr, len })
    }
}

impl Drop for RawAlloc {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with exactly this layout (which succeeded then).
        unsafe {
            dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.len.max(1), ALIGN),
            )
        }
    }
}

// SAFETY: `RawAlloc` owns its block like a `Box<[u8]>`; access rules are those of the wrappers.
unsafe impl Send for RawAlloc {}
// SAFETY: as above; the wrappers only hand out shared access under their own rules.
unsafe impl Sync for RawAlloc {}

/// A zeroed, 64-byte aligned byte buffer with ordinary ownership.
pub(crate) struct AlignedBuf(RawAlloc);

impl AlignedBuf {
    /// `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> Result<AlignedBuf, String> {
        RawAlloc::zeroed(len).map(AlignedBuf)
    }
    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the block is valid for `len` initialised (zeroed) bytes; `&self` excludes
        // writers because the only write access is `bytes_mut(&mut self)`.
        unsafe { std::slice::from_raw_parts(self.0.ptr.as_ptr(), self.0.len) }
    }
    /// The bytes, exclusively.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.0.ptr.as_ptr(), self.0.len) }
    }
}

/// A zeroed, 64-byte aligned block that pool threads write concurrently during an op.
pub(crate) struct SharedRegion(RawAlloc);

impl SharedRegion {
    /// `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> Result<SharedRegion, String> {
        RawAlloc::zeroed(len).map(SharedRegion)
    }
    /// Size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len
    }
    /// The bytes, exclusively (between segments: the caller holds `&mut` to the regions, so no
    /// [`View`] of them is alive).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: valid for `len` initialised bytes; every `View` borrows the region slice
        // shared, so `&mut self` proves none is alive.
        unsafe { std::slice::from_raw_parts_mut(self.0.ptr.as_ptr(), self.0.len) }
    }
}

/// Typed access to the shared regions for one thread while ops run (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    regions: &'a [SharedRegion],
}

impl<'a> View<'a> {
    /// A view for one pool thread.
    ///
    /// # Safety
    /// For as long as views of `regions` are in use by several threads, the callers must follow
    /// the discipline of the module docs: per op, read and write sets of regions are disjoint;
    /// concurrent writes to one region are to disjoint items (kernel thread split, or rows owned
    /// by one thread); a barrier separates ops with a read/write or write/write hazard.
    pub(crate) unsafe fn new(regions: &'a [SharedRegion]) -> View<'a> {
        View { regions }
    }

    fn span<T: Pod>(&self, region: usize, byte_off: usize, n: usize) -> Result<*mut T, String> {
        let r = self
            .regions
            .get(region)
            .ok_or_else(|| format!("region {region} does not exist"))?;
        let bytes = n
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(byte_off))
            .ok_or_else(|| "region span overflows".to_string())?;
        if bytes > r.0.len {
            return Err(format!(
                "span {byte_off}+{} is outside region {region} of {} bytes",
                bytes - byte_off,
                r.0.len
            ));
        }
        if !byte_off.is_multiple_of(std::mem::align_of::<T>()) {
            return Err(format!(
                "offset {byte_off} of region {region} is misaligned"
            ));
        }
        // SAFETY: `byte_off <= len` (checked above), so the offset pointer stays in the block.
        Ok(unsafe { r.0.ptr.as_ptr().add(byte_off) }.cast::<T>())
    }

    /// `n` items of `T` at `byte_off` of `region`, to read.
    pub(crate) fn read<T: Pod>(
        &self,
        region: usize,
        byte_off: usize,
        n: usize,
    ) -> Result<&'a [T], String> {
        let p = self.span::<T>(region, byte_off, n)?;
        // SAFETY: in bounds and aligned (`span`); the contract of `View::new` guarantees no
        // thread writes this region while the op that reads it runs.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }

    /// `n` items of `T` at `byte_off` of `region`, as a kernel output window.
    pub(crate) fn write<T: Pod>(
        &self,
        region: usize,
        byte_off: usize,
        n: usize,
    ) -> Result<Out<'a, T>, String> {
        let p = self.span::<T>(region, byte_off, n)?;
        // SAFETY: in bounds, aligned and non-null (`span`); concurrent windows over the same
        // items are used by the same kernel with the same sizes and distinct thread indices, or
        // cover rows owned by one thread (contract of `View::new`), which is `Out::shared`'s
        // requirement.
        Ok(unsafe { Out::shared(p, n) })
    }

    /// `n` items of `T` at `byte_off` of `region` that this thread alone writes during the
    /// current op (its thread share of a copy, or rows the runner assigned to it).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn own<T: Pod>(
        &self,
        region: usize,
        byte_off: usize,
        n: usize,
    ) -> Result<&'a mut [T], String> {
        let p = self.span::<T>(region, byte_off, n)?;
        // SAFETY: in bounds and aligned (`span`); by the contract of `View::new` these items are
        // written by this thread only and read by nobody during the op, so the exclusive slice
        // does not alias any other live reference.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }
}
