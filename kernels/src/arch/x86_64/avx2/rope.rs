//! AVX2 RoPE: llama pairs with `addsub` (products rounded, as the reference), falcon halves
//! with one FMA per output.

use core::arch::x86_64::*;

use super::activation::fma1;

/// Four (x0, x1) pairs against four (cos, sin) pairs: `[x0·c − x1·s, x0·s + x1·c]`.
#[target_feature(enable = "avx2,fma,f16c")]
fn rope_llama_impl(x: &mut [f32], cache: &[f32]) {
    let mut xs = x.chunks_exact_mut(8);
    let mut cs = cache.chunks_exact(8);
    for (v, c) in (&mut xs).zip(&mut cs) {
        // SAFETY: `v` and `c` have exactly 8 floats.
        unsafe {
            let vv = _mm256_loadu_ps(v.as_ptr());
            let cc = _mm256_loadu_ps(c.as_ptr());
            let v0 = _mm256_moveldup_ps(vv);
            let v1 = _mm256_movehdup_ps(vv);
            let sc = _mm256_permute_ps::<0b1011_0001>(cc);
            let r = _mm256_addsub_ps(_mm256_mul_ps(v0, cc), _mm256_mul_ps(v1, sc));
            _mm256_storeu_ps(v.as_mut_ptr(), r);
        }
    }
    let rest = xs
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(cs.remainder().chunks_exact(2));
    for (p, c) in rest {
        let (v0, v1) = (p[0], p[1]);
        p[0] = v0 * c[0] - v1 * c[1];
        p[1] = v0 * c[1] + v1 * c[0];
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rope_falcon_impl(x: &mut [f32], cache: &[f32]) {
    let head_dim = cache.len();
    let half = head_dim / 2;
    let full = half - half % 8;
    let cp = cache.as_ptr();
    for head in x.chunks_exact_mut(head_dim.max(1)) {
        let hp = head.as_mut_ptr();
        let mut j = 0;
        while j < full {
            // SAFETY: `j + 8 <= half`, so `j..j+8` and `j+half..j+half+8` lie inside the head
            // and inside the cache (both `head_dim` floats).
            unsafe {
                let c = _mm256_loadu_ps(cp.add(j));
                let s = _mm256_loadu_ps(cp.add(j + half));
                let q0 = _mm256_loadu_ps(hp.add(j));
                let q1 = _mm256_loadu_ps(hp.add(j + half));
                let x0 = _mm256_fmsub_ps(q0, c, _mm256_mul_ps(q1, s));
                let x1 = _mm256_fmadd_ps(q0, s, _mm256_mul_ps(q1, c));
                _mm256_storeu_ps(hp.add(j), x0);
                _mm256_storeu_ps(hp.add(j + half), x1);
            }
            j += 8;
        }
        for j in full..half {
            let (c, s) = (cache[j], cache[j + half]);
            let (q0, q1) = (head[j], head[j + half]);
            head[j] = fma1(q0, c, -(q1 * s));
            head[j + half] = fma1(q0, s, q1 * c);
        }
    }
}

// SAFETY (both wrappers): reached only through the AVX2 and AVX-512 tables, which
// `Impl::table` hands out after checking that the CPU has AVX2, FMA and F16C.

pub(crate) fn rope_llama(x: &mut [f32], cache: &[f32]) {
    // SAFETY: see above.
    unsafe { rope_llama_impl(x, cache) }
}

pub(crate) fn rope_falcon(x: &mut [f32], cache: &[f32]) {
    // SAFETY: see above.
    unsafe { rope_falcon_impl(x, cache) }
}
