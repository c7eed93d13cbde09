//! Reference element-wise kernels and softmax (spec §6.2, §6.9, §6.12).

use crate::block::{f16_to_f32, BlockQ80, QK};
use crate::math::{exp_poly, expf, fma, hsum8, tanhf};

/// Softmax of one row in place: max, then `exp_poly(x − max)` for the full groups of 8
/// (summed in 8 lanes, reduced with `hsum8`), `expf` for the `len % 8` tail (added in order),
/// a zero sum replaced by 1e-6, then every element times `1 / sum`.
pub(crate) fn softmax(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let mut max = x[0];
    for &v in &x[1..] {
        if v > max {
            max = v;
        }
    }
    let full = x.len() - x.len() % 8;
    let mut lanes = [0.0f32; 8];
    for (i, v) in x[..full].iter_mut().enumerate() {
        *v = exp_poly(*v - max);
        lanes[i % 8] += *v;
    }
    let mut sum = hsum8(&lanes);
    for v in &mut x[full..] {
        *v = expf(*v - max);
        sum += *v;
    }
    if sum == 0.0 {
        sum = 0.000001;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `x / (1 + e^(−x))` in place; the first `n_poly` elements use [`exp_poly`], the rest `expf`.
pub(crate) fn silu(x: &mut [f32], n_poly: usize) {
    let n_poly = n_poly.min(x.len());
    let (head, tail) = x.split_at_mut(n_poly);
    for v in head {
        *v = *v / (1.0 + exp_poly(0.0 - *v));
    }
    for v in tail {
        *v = *v / (1.0 + expf(-*v));
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_4_f64 as f32;
const GELU_COEF_A: f32 = 0.044715;

/// Tanh-form GELU in place: `0.5·v·(1 + tanh(√(2/π)·v·(1 + 0.044715·v²)))`.
pub(crate) fn gelu(x: &mut [f32]) {
    for v in x {
        let t = *v;
        *v = 0.5 * t * (1.0 + tanhf(SQRT_2_OVER_PI * t * (1.0 + GELU_COEF_A * t * t)));
    }
}

/// `x = x · m`.
pub(crate) fn mul(x: &mut [f32], m: &[f32]) {
    for (v, &b) in x.iter_mut().zip(m) {
        *v *= b;
    }
}

/// `out += x`.
pub(crate) fn add(out: &mut [f32], x: &[f32]) {
    for (o, &a) in out.iter_mut().zip(x) {
        *o += a;
    }
}

/// `out = fma(d, q, out)` per Q80 element.
pub(crate) fn add_q80(out: &mut [f32], x: &[BlockQ80]) {
    for (os, b) in out.chunks_exact_mut(QK).zip(x) {
        let d = f16_to_f32(b.d);
        for (o, &q) in os.iter_mut().zip(&b.qs) {
            *o = fma(d, q as f32, *o);
        }
    }
}

/// `x = x · s`.
pub(crate) fn scale(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}
