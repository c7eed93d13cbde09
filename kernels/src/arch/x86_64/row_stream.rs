//! Software prefetch for the row-major Q80 × Q40 kernels.
//!
//! A kernel walks a tile of `R` rows side by side, one `seg`-byte chunk of each, and the next
//! tile's rows start `tile_bytes` further on. Seen from one row slot, the bytes it will read
//! form a stream: its chunk in this tile, then in the next tile, and so on. Prefetching a fixed
//! distance ahead in that stream (rather than in the row itself) keeps short rows warm across
//! tile boundaries, where the hardware streamer, which follows one 4 KiB page at a time,
//! loses them.

use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};

use crate::block::BlockQ40;

/// A position in a row slot's stream: whole tiles ahead plus bytes into the chunk.
#[derive(Clone, Copy)]
pub(crate) struct StreamPos {
    tiles: usize,
    within: usize,
    seg: usize,
    tile_bytes: usize,
}

impl StreamPos {
    /// `ahead` bytes into the stream of `seg`-byte chunks, tiles `tile_bytes` apart.
    #[inline]
    pub(crate) fn new(ahead: usize, seg: usize, tile_bytes: usize) -> StreamPos {
        let seg = seg.max(1);
        StreamPos {
            tiles: ahead / seg,
            within: ahead % seg,
            seg,
            tile_bytes,
        }
    }

    /// Byte offset from the slot's current row start.
    #[inline]
    pub(crate) fn offset(self) -> usize {
        self.tiles * self.tile_bytes + self.within
    }

    /// Moves `step` bytes on (no division; one pass of the loop when `step ≤ seg`).
    #[inline]
    pub(crate) fn advance(&mut self, step: usize) {
        self.within += step;
        while self.within >= self.seg {
            self.within -= self.seg;
            self.tiles += 1;
        }
    }
}

/// Starts a pass over blocks `c0..c0 + cn` of `rows ≥ 1` weight rows of `nb` blocks, walked in
/// tiles of `R` rows: requests the first `dist` bytes of every row slot's stream at once (so the
/// pass does not open with a run of demand misses one group at a time), and returns the
/// position `dist` bytes ahead from which each tile's prefetch runs. Prefetches never fault.
pub(crate) fn start_streams<const R: usize>(
    w: &[BlockQ40],
    rows: usize,
    nb: usize,
    c0: usize,
    cn: usize,
    dist: usize,
) -> StreamPos {
    let seg = cn * core::mem::size_of::<BlockQ40>();
    let tile_bytes = R * nb * core::mem::size_of::<BlockQ40>();
    let mut pos = StreamPos::new(0, seg, tile_bytes);
    let mut done = 0;
    while done < dist {
        for i in 0..R.min(rows) {
            let r = w[i * nb + c0..].as_ptr().cast::<u8>();
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults, whatever
            // the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(r.wrapping_add(pos.offset()).cast()) };
        }
        let step = 64.min(pos.seg);
        pos.advance(step);
        done += step;
    }
    StreamPos::new(dist, seg, tile_bytes)
}
