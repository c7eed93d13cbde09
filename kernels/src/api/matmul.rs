use super::{check_len, check_multiple, check_split, mul_size};
use crate::block::{BlockQ40, BlockQ80, QK};
use crate::{split, KernelError, Kernels, Out};

/// Batch rows handed to one batched table call; larger batches are done in groups.
const BATCH_GROUP: usize = 32;
/// Floats in the per-call tile a batched F32 call writes before it is scattered to the batch rows.
const TILE: usize = 2048;
/// The same for Q80 × Q40 (16 KiB: 128 weight rows at the full batch group), large enough that
/// the per-call activation re-layout is spread over many rows.
const TILE_Q40: usize = 4096;

impl Kernels {
    /// `out[r] = Σ_j W[r][j] · x[j]` for Q80 `x` (`n/32` blocks) and Q40 weights stored as `d`
    /// rows of `n/32` blocks; `out.len() == d`. Threads split the rows `d`.
    ///
    /// Per row: `acc = fma(float(blockdot_j), f32(dW_j)·f32(dX_j), acc)` for blocks in order.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_q80_q40<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        w: &[BlockQ40],
        n: usize,
        d: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        self.matmul_q80_q40_batch(out, x, w, n, d, 1, n_threads, thread_index)
    }

    /// Batched [`matmul_q80_q40`](Self::matmul_q80_q40): `x` is `b` vectors of `n/32` blocks,
    /// `out` is `b` rows of `d` floats. Same bits as `b` single calls; threads split `d`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_q80_q40_batch<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[BlockQ80],
        w: &[BlockQ40],
        n: usize,
        d: usize,
        b: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_multiple("n", n, QK)?;
        let nb = n / QK;
        check_len("x", mul_size("b·n", b, nb)?, x.len())?;
        check_len("w", mul_size("d·n", d, nb)?, w.len())?;
        check_len("out", mul_size("b·d", b, d)?, out.len())?;
        let rows = split(d, n_threads, thread_index);
        let w = &w[rows.start * nb..rows.end * nb];
        if b == 1 {
            (self.table.matmul_q80_q40)(out.part(rows), x, w);
            return Ok(());
        }
        batched::<TILE_Q40>(&mut out, d, rows, b, |tile, b0, bc, r0, rc| {
            (self.table.matmul_q80_q40_batch)(
                tile,
                &x[b0 * nb..(b0 + bc) * nb],
                &w[r0 * nb..(r0 + rc) * nb],
                bc,
            )
        });
        Ok(())
    }

    /// `out[r] = dot8(x, W[r])` for F32 `x` (`n` floats) and weights stored as `d` rows of `n`;
    /// `out.len() == d`. Threads split the rows `d`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_f32<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[f32],
        w: &[f32],
        n: usize,
        d: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        self.matmul_f32_batch(out, x, w, n, d, 1, n_threads, thread_index)
    }

    /// Batched [`matmul_f32`](Self::matmul_f32): `x` is `b × n`, `out` is `b × d`. Same bits as
    /// `b` single calls; threads split `d`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_f32_batch<'o>(
        &self,
        out: impl Into<Out<'o, f32>>,
        x: &[f32],
        w: &[f32],
        n: usize,
        d: usize,
        b: usize,
        n_threads: usize,
        thread_index: usize,
    ) -> Result<(), KernelError> {
        let mut out = out.into();
        check_split(n_threads, thread_index)?;
        check_len("x", mul_size("b·n", b, n)?, x.len())?;
        check_len("w", mul_size("d·n", d, n)?, w.len())?;
        check_len("out", mul_size("b·d", b, d)?, out.len())?;
        let rows = split(d, n_threads, thread_index);
        let w = &w[rows.start * n..rows.end * n];
        if b == 1 {
            (self.table.matmul_f32)(out.part(rows), x, w);
            return Ok(());
        }
        batched::<TILE>(&mut out, d, rows, b, |tile, b0, bc, r0, rc| {
            (self.table.matmul_f32_batch)(
                tile,
                &x[b0 * n..(b0 + bc) * n],
                &w[r0 * n..(r0 + rc) * n],
                bc,
            )
        });
        Ok(())
    }
}

/// Runs a batched kernel over this thread's `rows` of a `b × d` output in tiles of `T` floats: `kernel(tile,
/// b0, bc, r0, rc)` fills `tile` (`bc × rc`, batch-major) for batch rows `b0..b0+bc` and
/// thread-local weight rows `r0..r0+rc`; each tile row is then copied to its batch row. The
/// tile keeps every write inside this thread's share of `out`.
fn batched<const T: usize>(
    out: &mut Out<'_, f32>,
    d: usize,
    rows: core::ops::Range<usize>,
    b: usize,
    mut kernel: impl FnMut(&mut [f32], usize, usize, usize, usize),
) {
    let mut tile = [0.0f32; T];
    let n_rows = rows.len();
    let mut b0 = 0;
    while b0 < b {
        let bc = BATCH_GROUP.min(b - b0);
        let rows_per_tile = (T / bc).max(1);
        let mut r0 = 0;
        while r0 < n_rows {
            let rc = rows_per_tile.min(n_rows - r0);
            let t = &mut tile[..bc * rc];
            kernel(t, b0, bc, r0, rc);
            for bi in 0..bc {
                let start = (b0 + bi) * d + rows.start + r0;
                out.part(start..start + rc)
                    .copy_from_slice(&t[bi * rc..(bi + 1) * rc]);
            }
            r0 += rc;
        }
        b0 += bc;
    }
}
