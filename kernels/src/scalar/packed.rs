//! Reference matmul on row-group packed Q40 weights: each row is the row-major reference
//! ([`row_q80_q40`](super::matmul::row_q80_q40)) on that row's blocks.

use crate::api::packed::{PackedQ40, PACK_ROWS};
use crate::block::BlockQ80;
use crate::math::fma;
use crate::scalar::matmul::block_dot;

/// `out` holds whole groups of [`PACK_ROWS`] rows; `w` holds `out.len() / 16` groups of
/// `x.len()` packed blocks.
pub(crate) fn matmul_q80_q40_packed(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]) {
    let nb = x.len();
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, group) in out.chunks_exact_mut(PACK_ROWS).zip(w.chunks_exact(nb)) {
        for (r, or) in o.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for (p, xb) in group.iter().zip(x) {
                let wb = p.row(r);
                let s = wb.scale() * xb.scale();
                acc = fma(block_dot(&wb, xb) as f32, s, acc);
            }
            *or = acc;
        }
    }
}
