//! Reference RoPE rotations (spec §6.6). The caches are built by [`crate::rope`].

use crate::math::fma;

/// Interleaved pairs: `x[2m], x[2m+1]` rotated by `cache[2m] = cos`, `cache[2m+1] = sin`.
/// `x0' = x0·c − x1·s`, `x1' = x0·s + x1·c`, every product rounded: GCC 12 `-O3` turns the
/// peer's pair loop into `mulps` + `vaddsubps` (no FMA), unlike the falcon loop below.
pub(crate) fn rope_llama(x: &mut [f32], cache: &[f32]) {
    for (p, cs) in x.chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
        let (v0, v1) = (p[0], p[1]);
        let (c, s) = (cs[0], cs[1]);
        p[0] = v0 * c - v1 * s;
        p[1] = v0 * s + v1 * c;
    }
}

/// NeoX halves: per head, `x[j]` pairs with `x[j + h/2]`; `cache[j]` = cos, `cache[j + h/2]`
/// = sin, `h` = `cache.len()`. `x0' = fma(x0, c, −(x1·s))`, `x1' = fma(x0, s, x1·c)`: GCC
/// keeps this loop scalar and contracts each expression into one FMA.
pub(crate) fn rope_falcon(x: &mut [f32], cache: &[f32]) {
    let head_dim = cache.len();
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim.max(1)) {
        for j in 0..half {
            let (c, s) = (cache[j], cache[j + half]);
            let (q0, q1) = (head[j], head[j + half]);
            head[j] = fma(q0, c, -(q1 * s));
            head[j + half] = fma(q0, s, q1 * c);
        }
    }
}
