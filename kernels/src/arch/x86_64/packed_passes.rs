//! The pass structure both packed Q80 × Q40 kernels (AVX2, AVX-512) share: the activation
//! blocks are prepared a chunk at a time (scale as f32, the unsigned-nibble correction), and
//! each chunk's row groups are walked in spread tiles ([`RowTiles`]), several side by side as
//! one weight stream each. A kernel supplies only the work on one tile ([`GroupPass`]).

use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};

use super::avx2::matmul::q80_correction;
use super::avx2::quant::f16_value;
use super::row_stream::RowTiles;
use crate::api::packed::{PackedQ40, PACK_ROWS};
use crate::block::BlockQ80;

/// Blocks of `x` prepared per pass (stack: 4 KiB). Whole rows in one pass up to 16384
/// columns.
const CHUNK: usize = 512;

/// One pass: blocks `c0..c0 + xs.len()` of every row group.
pub(crate) struct Pass<'a> {
    /// The pass's activation blocks.
    pub(crate) xs: &'a [BlockQ80],
    /// The scale of each block of `xs` as f32 (`dx[j]` for `xs[j]`).
    pub(crate) dx: &'a [f32; CHUNK],
    /// `−8 · Σ qs` of each block of `xs`: the exact signed block dot's start when the weights'
    /// nibbles are taken as unsigned bytes `0..=15`.
    pub(crate) corr: &'a [i32; CHUNK],
    w: &'a [PackedQ40],
    nb: usize,
    c0: usize,
}

impl<'a> Pass<'a> {
    /// The pass's blocks of each row group in `gs`, in order.
    #[inline]
    pub(crate) fn streams<const S: usize>(&self, gs: [usize; S]) -> [&'a [PackedQ40]; S] {
        core::array::from_fn(|k| &self.w[gs[k] * self.nb + self.c0..][..self.xs.len()])
    }

    /// Whether an earlier pass left partial sums in `out` that this one continues.
    #[inline]
    pub(crate) fn continues(&self) -> bool {
        self.c0 > 0
    }
}

/// Requests into L2 the packed block `dist` blocks after block `j` of each stream in `ws`
/// (past the end of a group, the next group's, which the slot reads next when the tiles
/// continue; a prefetch never faults).
#[inline(always)]
pub(crate) fn prefetch_ahead<const S: usize>(ws: &[&[PackedQ40]; S], j: usize, dist: usize) {
    const LINES: usize = core::mem::size_of::<PackedQ40>().div_ceil(64);
    for wk in ws {
        let ahead = (&wk[j] as *const PackedQ40).wrapping_add(dist).cast::<u8>();
        for line in 0..LINES {
            // SAFETY: SSE is part of the x86-64 baseline; a prefetch never faults, whatever
            // the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(64 * line).cast()) };
        }
    }
}

/// A packed kernel's work on one tile of row groups.
pub(crate) trait GroupPass {
    /// Runs pass `p` over the row groups `gs` side by side, continuing each row's FMA chain
    /// from the partial sums in `out` when [`Pass::continues`], and leaves the sums in
    /// `out[g · PACK_ROWS..][..PACK_ROWS]` for each `g` in `gs`.
    ///
    /// # Safety
    /// The CPU has the implementation's target features.
    unsafe fn run<const S: usize>(out: &mut [f32], p: &Pass<'_>, gs: [usize; S]);
}

/// `out[r] = Σ_j W[r][j] · x[j]` over the packed row groups of `w` (`out.len() / PACK_ROWS`
/// groups of `x.len()` blocks), `SLOTS` groups side by side.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C and `G`'s target features. Call it from a function with
/// those features, so that it and the block preparation are compiled with them.
#[inline]
pub(crate) unsafe fn matmul<G: GroupPass, const SLOTS: usize>(
    out: &mut [f32],
    x: &[BlockQ80],
    w: &[PackedQ40],
) {
    let nb = x.len();
    let groups = out.len() / PACK_ROWS;
    if nb == 0 || groups == 0 {
        out.fill(0.0);
        return;
    }
    assert!(
        w.len() >= groups * nb,
        "weights shorter than groups × blocks"
    );
    let mut dx = [0.0f32; CHUNK];
    let mut corr = [0i32; CHUNK];
    let tiles = RowTiles::<SLOTS>::new(groups);
    let mut c0 = 0;
    while c0 < nb {
        let xs = &x[c0..c0 + CHUNK.min(nb - c0)];
        for (j, xb) in xs.iter().enumerate() {
            // SAFETY: the caller guarantees AVX2, FMA and F16C.
            dx[j] = unsafe { f16_value(xb.d) };
            corr[j] = -q80_correction(xb);
        }
        let pass = Pass {
            xs,
            dx: &dx,
            corr: &corr,
            w,
            nb,
            c0,
        };
        for t in 0..tiles.count() {
            let (gs, live) = tiles.tile(t);
            // SAFETY: the caller guarantees `G`'s features.
            unsafe {
                if live == SLOTS {
                    G::run(out, &pass, gs);
                } else {
                    for &g in &gs[..live] {
                        G::run(out, &pass, [g]);
                    }
                }
            }
        }
        c0 += xs.len();
    }
}
