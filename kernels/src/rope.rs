//! Building the RoPE cos/sin caches (once per model; scalar on every implementation, so the
//! cache is the same bits everywhere).

use crate::api::{check_len, check_split, mul_size};
use crate::math::{cosf, powf, sinf};
use crate::{split, KernelError, Out, RopeSlice};

/// Llama 3.1 frequency scaling (applied whenever `factor != 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScaling {
    /// `rope_scaling_factor`.
    pub factor: f32,
    /// `rope_scaling_low_freq_factor`.
    pub low_freq_factor: f32,
    /// `rope_scaling_high_freq_factor`.
    pub high_freq_factor: f32,
    /// `rope_scaling_orig_max_seq_len`.
    pub orig_max_seq_len: u32,
}

/// The llama 3.1 scaled frequency, in the peer's arithmetic: the wavelength `2π/freq` in double
/// precision, the smooth blend `(1 − s)·freq/factor + s·freq` with its last product fused.
pub fn scale_frequency_llama3(freq: f32, s: &RopeScaling) -> f32 {
    let wave_len = (2.0 * core::f64::consts::PI / freq as f64) as f32;
    let orig = s.orig_max_seq_len as f32;
    let high_wl = orig / s.high_freq_factor;
    if wave_len < high_wl {
        return freq;
    }
    let low_wl = orig / s.low_freq_factor;
    if wave_len > low_wl {
        return freq / s.factor;
    }
    let smooth = (orig / wave_len - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    crate::math::fma(smooth, freq, (1.0 - smooth) * freq / s.factor)
}

/// Fills the llama cache: `seq_len` rows of `slice_dim` floats; pair `i` (global feature
/// `g = kv_dim_start + i`, `h = g mod head_dim`) holds `cos(pos·f)`, `sin(pos·f)` with
/// `f = 1 / powf(theta, h / head_dim)`, scaled when `scaling` is given with a factor ≠ 1.
/// Threads split the positions.
pub fn fill_llama_cache<'o>(
    cache: impl Into<Out<'o, f32>>,
    slice: &RopeSlice,
    scaling: Option<&RopeScaling>,
    n_threads: usize,
    thread_index: usize,
) -> Result<(), KernelError> {
    let mut cache = cache.into();
    check_split(n_threads, thread_index)?;
    if slice.head_dim == 0 || !slice.slice_dim.is_multiple_of(2) {
        return Err(KernelError::BadArgument(
            "rope cache needs head_dim > 0 and an even slice_dim",
        ));
    }
    let sd = slice.slice_dim;
    check_len(
        "cache",
        mul_size("seq_len·slice_dim", slice.seq_len, sd)?,
        cache.len(),
    )?;
    let scaling = scaling.filter(|s| s.factor != 1.0);
    let hd = slice.head_dim as f32;
    let positions = split(slice.seq_len, n_threads, thread_index);
    let rows = cache.part(positions.start * sd..positions.end * sd);
    for (p, row) in positions.zip(rows.chunks_exact_mut(sd.max(1))) {
        for (k, pair) in row.chunks_exact_mut(2).enumerate() {
            let h = (slice.kv_dim_start + 2 * k) % slice.head_dim;
            let mut freq = 1.0 / powf(slice.theta, h as f32 / hd);
            if let Some(s) = scaling {
                freq = scale_frequency_llama3(freq, s);
            }
            let val = p as f32 * freq;
            pair[0] = cosf(val);
            pair[1] = sinf(val);
        }
    }
    Ok(())
}

/// Fills the falcon cache: `seq_len` rows of `head_dim` floats; `cos(pos·f_j)` at `j` and
/// `sin(pos·f_j)` at `j + head_dim/2`, `f_j = 1 / powf(theta, 2·(j / head_dim))`. Threads split
/// the positions.
pub fn fill_falcon_cache<'o>(
    cache: impl Into<Out<'o, f32>>,
    slice: &RopeSlice,
    n_threads: usize,
    thread_index: usize,
) -> Result<(), KernelError> {
    let mut cache = cache.into();
    check_split(n_threads, thread_index)?;
    let hd = slice.head_dim;
    if hd == 0 || !hd.is_multiple_of(2) {
        return Err(KernelError::BadArgument(
            "rope head_dim must be even and > 0",
        ));
    }
    check_len(
        "cache",
        mul_size("seq_len·head_dim", slice.seq_len, hd)?,
        cache.len(),
    )?;
    let hs = hd as f32;
    let positions = split(slice.seq_len, n_threads, thread_index);
    let rows = cache.part(positions.start * hd..positions.end * hd);
    for (p, row) in positions.zip(rows.chunks_exact_mut(hd)) {
        for j in 0..hd / 2 {
            let freq = 1.0 / powf(slice.theta, 2.0 * (j as f32 / hs));
            let val = p as f32 * freq;
            row[j] = cosf(val);
            row[j + hd / 2] = sinf(val);
        }
    }
    Ok(())
}
