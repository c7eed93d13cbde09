//! Row order and software prefetch for the Q80 × Q40 mat-vec kernels (the packed kernels use
//! the same order for their 16-row groups).
//!
//! A kernel walks a tile of `R` rows side by side (`R` row slots), one `seg`-byte chunk of
//! each. [`RowTiles`] spreads the slots: slot `i` takes rows `i·q, i·q + 1, …` in successive
//! tiles (`q = rows / R`), so the bytes one slot reads form a stream through consecutive rows,
//! and the `R` streams run far apart in memory. Tiles of adjacent rows instead keep all `R`
//! streams inside one `R`-row stretch, a few pages at a time, and break every stream at every
//! tile; measured on streaming weights (AVX-512, 4096 columns): 1 thread 12.6 → 15.5 GB/s,
//! 2 threads 25.5 → 30.5 GB/s, and 512-column rows 22 → 29.5 GB/s on 2 threads.
//!
//! Each slot's prefetch runs a fixed distance ahead in its stream ([`StreamPos`]): within a
//! row, then on into the slot's next row, so short rows stay warm across tile boundaries.

use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};

use crate::block::BlockQ40;

/// A position in a row slot's stream: whole rows ahead plus bytes into the chunk.
#[derive(Clone, Copy)]
pub(crate) struct StreamPos {
    rows: usize,
    within: usize,
    seg: usize,
    row_bytes: usize,
}

impl StreamPos {
    /// `ahead` bytes into the stream of `seg`-byte chunks of rows `row_bytes` apart.
    #[inline]
    pub(crate) fn new(ahead: usize, seg: usize, row_bytes: usize) -> StreamPos {
        let seg = seg.max(1);
        StreamPos {
            rows: ahead / seg,
            within: ahead % seg,
            seg,
            row_bytes,
        }
    }

    /// Byte offset from the slot's current row start.
    #[inline]
    pub(crate) fn offset(self) -> usize {
        self.rows * self.row_bytes + self.within
    }

    /// Moves `step` bytes on (no division; one pass of the loop when `step ≤ seg`).
    #[inline]
    pub(crate) fn advance(&mut self, step: usize) {
        self.within += step;
        while self.within >= self.seg {
            self.within -= self.seg;
            self.rows += 1;
        }
    }
}

/// The rows of each tile of a pass over `rows` rows with `R` row slots.
///
/// Tiles `0..q` (`q = rows / R`) are spread: slot `i` of tile `t` is row `i·q + t`. The last
/// `rows mod R` rows, if any, form one final tile of adjacent rows whose unused slots repeat
/// its last row (computed and dropped). Every row is in exactly one tile.
#[derive(Clone, Copy)]
pub(crate) struct RowTiles<const R: usize> {
    rows: usize,
    q: usize,
}

impl<const R: usize> RowTiles<R> {
    /// The tiles of `rows` rows.
    #[inline]
    pub(crate) fn new(rows: usize) -> RowTiles<R> {
        RowTiles { rows, q: rows / R }
    }

    /// How many tiles there are.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.q + usize::from(!self.rows.is_multiple_of(R))
    }

    /// Tile `t < count()`: the row of each slot, and how many slots hold distinct rows (the
    /// first `live`).
    #[inline]
    pub(crate) fn tile(&self, t: usize) -> ([usize; R], usize) {
        if t < self.q {
            (core::array::from_fn(|i| i * self.q + t), R)
        } else {
            let r0 = self.q * R;
            let live = self.rows - r0;
            (core::array::from_fn(|i| r0 + i.min(live - 1)), live)
        }
    }

    /// Whether tile `t` starts new slot streams (the first tile, and the final adjacent one).
    #[inline]
    fn starts_streams(&self, t: usize) -> bool {
        t == 0 || t == self.q
    }

    /// The tiles of a pass over blocks `c0..c0 + cn` of rows of `nb` blocks, in order, each with
    /// the position `dist` bytes ahead in its slots' streams from which its prefetch runs; the
    /// streams are started ([`start_streams`]) where a tile begins new ones.
    #[inline]
    pub(crate) fn with_streams(
        self,
        w: &[BlockQ40],
        nb: usize,
        c0: usize,
        cn: usize,
        dist: usize,
    ) -> impl Iterator<Item = ([usize; R], usize, StreamPos)> + '_ {
        let mut ahead = StreamPos::new(0, 1, 0);
        (0..self.count()).map(move |t| {
            let (rows, live) = self.tile(t);
            if self.starts_streams(t) {
                ahead = start_streams(w, &rows, nb, c0, cn, dist);
            }
            (rows, live, ahead)
        })
    }
}

/// Starts the slot streams of a pass over blocks `c0..c0 + cn` of rows of `nb` blocks, slot
/// `i` at row `first[i]`: requests the first `dist` bytes of every stream at once (so the pass
/// does not open with a run of demand misses one group at a time), and returns the position
/// `dist` bytes ahead from which each tile's prefetch runs. Prefetches never fault.
fn start_streams<const R: usize>(
    w: &[BlockQ40],
    first: &[usize; R],
    nb: usize,
    c0: usize,
    cn: usize,
    dist: usize,
) -> StreamPos {
    let seg = cn * core::mem::size_of::<BlockQ40>();
    let row_bytes = nb * core::mem::size_of::<BlockQ40>();
    let mut pos = StreamPos::new(0, seg, row_bytes);
    let mut done = 0;
    while done < dist {
        for &f in first {
            let r = w[f * nb + c0..].as_ptr().cast::<u8>();
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults, whatever
            // the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(r.wrapping_add(pos.offset()).cast()) };
        }
        let step = 64.min(pos.seg);
        pos.advance(step);
        done += step;
    }
    StreamPos::new(dist, seg, row_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers<const R: usize>(rows: usize) {
        let tiles = RowTiles::<R>::new(rows);
        let mut seen = [0u32; 70];
        for t in 0..tiles.count() {
            let (rowi, live) = tiles.tile(t);
            assert!((1..=R).contains(&live), "rows {rows} tile {t}: live {live}");
            for &r in &rowi[..live] {
                seen[r] += 1;
            }
            // Unused slots repeat a live row of the same tile.
            assert!(rowi[live..].iter().all(|r| rowi[..live].contains(r)));
            if t > 0 && live == R {
                // A spread slot takes the row after its previous one.
                let (prev, _) = tiles.tile(t - 1);
                assert!(prev.iter().zip(&rowi).all(|(p, r)| r == &(p + 1)));
            }
            assert_eq!(tiles.starts_streams(t), t == 0 || live < R);
        }
        assert!(
            seen[..rows].iter().all(|&c| c == 1),
            "rows {rows}: {seen:?}"
        );
    }

    #[test]
    fn tiles_take_every_row_once() {
        for rows in 1..=70 {
            covers::<1>(rows);
            covers::<2>(rows);
            covers::<4>(rows);
            covers::<8>(rows);
        }
    }

    #[test]
    fn stream_position_crosses_into_the_next_row() {
        // 100-byte chunks of rows 1000 bytes apart: 250 bytes ahead is row 2, byte 50.
        let mut p = StreamPos::new(250, 100, 1000);
        assert_eq!(p.offset(), 2050);
        p.advance(72);
        assert_eq!(p.offset(), 3022);
    }
}
