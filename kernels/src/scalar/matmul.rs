//! Reference matmuls: `out[r] = Σ_j W[r][j] · x[j]`, weights stored as rows of inputs.

use crate::block::{f16_to_f32, BlockQ40, BlockQ80, QK};
use crate::math::{dot8, fma};

/// Exact integer dot product of one Q40 block with one Q80 block (nibbles minus 8).
#[inline]
pub(crate) fn block_dot(w: &BlockQ40, x: &BlockQ80) -> i32 {
    let mut s = 0i32;
    for j in 0..QK / 2 {
        let lo = (w.qs[j] & 0x0F) as i32 - 8;
        let hi = (w.qs[j] >> 4) as i32 - 8;
        s += lo * x.qs[j] as i32 + hi * x.qs[j + QK / 2] as i32;
    }
    s
}

/// One output row: `acc = fma(float(blockdot), f32(dW)·f32(dX), acc)` over blocks in order.
#[inline]
pub(crate) fn row_q80_q40(x: &[BlockQ80], w: &[BlockQ40]) -> f32 {
    let mut acc = 0.0f32;
    for (wb, xb) in w.iter().zip(x) {
        let s = f16_to_f32(wb.d) * f16_to_f32(xb.d);
        acc = fma(block_dot(wb, xb) as f32, s, acc);
    }
    acc
}

pub(crate) fn matmul_q80_q40(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]) {
    let nb = x.len();
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(nb)) {
        *o = row_q80_q40(x, row);
    }
}

pub(crate) fn matmul_q80_q40_batch(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize) {
    let rows = out.len() / b.max(1);
    let nb = x.len() / b.max(1);
    for bi in 0..b {
        matmul_q80_q40(
            &mut out[bi * rows..(bi + 1) * rows],
            &x[bi * nb..(bi + 1) * nb],
            &w[..rows * nb],
        );
    }
}

pub(crate) fn matmul_f32(out: &mut [f32], x: &[f32], w: &[f32]) {
    let n = x.len();
    for (r, o) in out.iter_mut().enumerate() {
        *o = dot8(x, &w[r * n..(r + 1) * n]);
    }
}

pub(crate) fn matmul_f32_batch(out: &mut [f32], x: &[f32], w: &[f32], b: usize) {
    let rows = out.len() / b.max(1);
    let n = x.len() / b.max(1);
    for bi in 0..b {
        matmul_f32(
            &mut out[bi * rows..(bi + 1) * rows],
            &x[bi * n..(bi + 1) * n],
            &w[..rows * n],
        );
    }
}
