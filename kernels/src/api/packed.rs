//! Row-group packed Q40 weights for the node's own matmuls.
//!
//! The row-major layout (`d` rows of `n/32` [`BlockQ40`]s, the peer's file format) stays the one
//! the C ABI and [`Kernels::matmul_q80_q40`] take. This layout interleaves [`PACK_ROWS`] rows
//! block by block, so a vector kernel computes one block for sixteen rows with one lane per row
//! and never reduces across lanes. The numbers are unchanged: every row still accumulates
//! `acc = fma(float(blockdot_j), f32(dW_j)·f32(dX_j), acc)` over its blocks in order, so
//! [`Kernels::matmul_q80_q40_packed`] gives the same bits as [`Kernels::matmul_q80_q40`] on the
//! row-major weights it was packed from.
//!
//! Packed weights are `d / 16` groups, each `n / 32` consecutive [`PackedQ40`]s (group `g`,
//! block `j` at index `g · n/32 + j`); `d` must be a multiple of [`PACK_ROWS`]. Size in bytes
//! equals the row-major size (18 per 32 weights). The caller owns every buffer: size it with
//! [`packed_q40_len`], fill it with [`pack_q40_rows`], and get the rows back with
//! [`unpack_q40_rows`].

use super::{check_len, check_multiple, check_split, mul_size};
use crate::block::{BlockQ40, BlockQ80, QK};
use crate::{split, KernelError, Kernels, Out};

/// Weight rows interleaved in one packed group.
pub const PACK_ROWS: usize = 16;

/// One block (32 weights) of each of [`PACK_ROWS`] consecutive rows, 288 bytes, 32-byte
/// aligned.
///
/// Row `r`'s [`BlockQ40`] is `d[r]` and, for `m < 4` and `i < 4`, `qs[64·m + 4·r + i]` =
/// `BlockQ40::qs[4·m + i]`: the 64 bytes at `64·m` hold one 4-byte column of all sixteen rows.
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackedQ40 {
    /// f16 scale bits of rows `0..16`.
    pub d: [u16; PACK_ROWS],
    /// Nibble bytes, 4-byte columns of the sixteen rows (see the type docs).
    pub qs: [u8; QK / 2 * PACK_ROWS],
}

const _: () = assert!(core::mem::size_of::<PackedQ40>() == PACK_ROWS * 18);

impl Default for PackedQ40 {
    fn default() -> Self {
        PackedQ40 {
            d: [0; PACK_ROWS],
            qs: [0; QK / 2 * PACK_ROWS],
        }
    }
}

impl PackedQ40 {
    /// Row `r`'s block (`r < 16`).
    #[inline]
    pub fn row(&self, r: usize) -> BlockQ40 {
        let mut b = BlockQ40 {
            d: self.d[r],
            qs: [0; QK / 2],
        };
        for (m, col) in b.qs.chunks_exact_mut(4).enumerate() {
            col.copy_from_slice(&self.qs[64 * m + 4 * r..64 * m + 4 * r + 4]);
        }
        b
    }

    /// Stores `b` as row `r`'s block (`r < 16`).
    #[inline]
    pub fn set_row(&mut self, r: usize, b: &BlockQ40) {
        self.d[r] = b.d;
        for (m, col) in b.qs.chunks_exact(4).enumerate() {
            self.qs[64 * m + 4 * r..64 * m + 4 * r + 4].copy_from_slice(col);
        }
    }
}

/// The number of [`PackedQ40`]s that hold a `d × n` weight matrix: `d/16 · n/32`. Fails unless
/// `n` is a multiple of 32 and `d` of [`PACK_ROWS`].
pub fn packed_q40_len(n: usize, d: usize) -> Result<usize, KernelError> {
    check_multiple("n", n, QK)?;
    check_multiple("d", d, PACK_ROWS)?;
    mul_size("d·n", d / PACK_ROWS, n / QK)
}

/// Packs row-major weights `w` (`d` rows of `n/32` blocks) into `out`
/// (`packed_q40_len(n, d)` elements). `n` must be a multiple of 32, `d` of [`PACK_ROWS`].
pub fn pack_q40_rows(
    w: &[BlockQ40],
    n: usize,
    d: usize,
    out: &mut [PackedQ40],
) -> Result<(), KernelError> {
    let len = packed_q40_len(n, d)?;
    check_len("w", len * PACK_ROWS, w.len())?;
    check_len("out", len, out.len())?;
    let nb = n / QK;
    if nb == 0 {
        return Ok(());
    }
    for (group, rows) in out.chunks_exact_mut(nb).zip(w.chunks_exact(nb * PACK_ROWS)) {
        for (r, row) in rows.chunks_exact(nb).enumerate() {
            for (p, b) in group.iter_mut().zip(row) {
                p.set_row(r, b);
            }
        }
    }
    Ok(())
}

/// The inverse of [`pack_q40_rows`]: `p` (`packed_q40_len(n, d)` elements) back into row-major
/// `out` (`d` rows of `n/32` blocks).
pub fn unpack_q40_rows(
    p: &[PackedQ40],
    n: usize,
    d: usize,
    out: &mut [BlockQ40],
) -> Result<(), KernelError> {
    let len = packed_q40_len(n, d)?;
    check_len("packed", len, p.len())?;
    check_len("out", len * PACK_ROWS, out.len())?;
    let nb = n / QK;
    if nb == 0 {
        return Ok(());
    }
    for (group, rows) in p.chunks_exact(nb).zip(out.chunks_exact_mut(nb * PACK_ROWS)) {
        for (r, row) in rows.chunks_exact_mut(nb).enumerate() {
            for (b, pb) in row.iter_mut().zip(group) {
                *b = pb.row(r);
            }
        }
    }
    Ok(())
}

impl Kernels {
    /// [`matmul_q80_q40`](Self::matmul_q80_q40) on packed weights: `out[r] = Σ_j W[r][j] · x[j]`
    /// for Q80 `x` (`n/32` blocks) and `w` = the `d × n` weights packed by [`pack_q40_rows`]
    /// (`packed_q40_len(n, d)` elements); `out.len() == d`, `d` a multiple of [`PACK_ROWS`].
    ///
    /// Threads split the `d / 16` row groups with [`split`] (the peer's rule applied to groups,
    /// not rows): thread `t` writes rows `16 · split(d/16, n_threads, t)`. Every row gets the
    /// same bits as from `matmul_q80_q40` on the row-major weights, whatever the split.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_q80_q40_packed<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        w: &[PackedQ40],
        n: usize,
        d: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        let len = packed_q40_len(n, d)?;
        let nb = n / QK;
        check_len("x", nb, x.len())?;
        check_len("w", len, w.len())?;
        check_len("out", d, out.len())?;
        let groups = split(d / PACK_ROWS, n_threads, thread_index);
        let w = &w[groups.start * nb..groups.end * nb];
        let rows = groups.start * PACK_ROWS..groups.end * PACK_ROWS;
        (self.table.matmul_q80_q40_packed)(out.part(rows), x, w);
        Ok(())
    }

    /// Batched [`matmul_q80_q40_packed`](Self::matmul_q80_q40_packed): `x` is `b` vectors of
    /// `n/32` blocks, `out` is `b` rows of `d` floats; same bits as `b` single calls (and as
    /// the row-major kernels). Threads split the `d / 16` row groups as the single call does.
    ///
    /// Each row group's weights (`n/32` [`PackedQ40`]s, 18 KB at `n` = 2048) are read from
    /// memory once and stay in cache while all `b` vectors use them.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_q80_q40_packed_batch<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        w: &[PackedQ40],
        n: usize,
        d: usize,
        b: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        let len = packed_q40_len(n, d)?;
        let nb = n / QK;
        check_len("x", mul_size("b·n", b, nb)?, x.len())?;
        check_len("w", len, w.len())?;
        check_len("out", mul_size("b·d", b, d)?, out.len())?;
        if nb == 0 {
            for bi in 0..b {
                let groups = split(d / PACK_ROWS, n_threads, thread_index);
                out.part(bi * d + groups.start * PACK_ROWS..bi * d + groups.end * PACK_ROWS)
                    .fill(0.0);
            }
            return Ok(());
        }
        for g in split(d / PACK_ROWS, n_threads, thread_index) {
            let wg = &w[g * nb..(g + 1) * nb];
            for (bi, xb) in x.chunks_exact(nb).enumerate() {
                let start = bi * d + g * PACK_ROWS;
                (self.table.matmul_q80_q40_packed)(out.part(start..start + PACK_ROWS), xb, wg);
            }
        }
        Ok(())
    }
}
