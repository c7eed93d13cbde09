//! One deterministic small call of every kernel on every available implementation, compared
//! bit for bit with the scalar reference. Small enough to run under Miri (CI runs this file
//! there for the scalar and AVX2 paths), so it exercises every `unsafe` block with real sizes,
//! tails and thread splits. Miri cannot run F16C, so under Miri the kernels that convert f16
//! scales (the Q40/Q80 families) run on the reference for every implementation.

mod common;

use airllm_kernels::rope::{fill_falcon_cache, fill_llama_cache, RopeScaling};
use airllm_kernels::{available, AttentionShape, BlockQ40, BlockQ80, Kernels, Out, RopeSlice};
use common::bits;

/// Deterministic pseudo-random floats in [-2, 2) (xorshift32).
fn floats(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// Runs `f` for every thread of a 3-way split sharing one output, as a pool would (in turn).
fn split3<T: Copy>(out: &mut [T], mut f: impl FnMut(Out<'_, T>, usize, usize)) {
    let (ptr, len) = (out.as_mut_ptr(), out.len());
    for t in 0..3 {
        // SAFETY: `ptr`/`len` describe `out`, borrowed mutably for this whole function; the calls
        // run one after another, each with a distinct thread index of the same split.
        f(unsafe { Out::shared(ptr, len) }, 3, t);
    }
}

fn q80(k: &Kernels, x: &[f32]) -> Vec<BlockQ80> {
    let mut q = vec![BlockQ80::default(); x.len() / 32];
    k.quantize_q80(&mut q[..], x, 1, 0).unwrap();
    q
}

fn q40(x: &[f32]) -> Vec<BlockQ40> {
    let mut q = vec![BlockQ40::default(); x.len() / 32];
    Kernels::scalar().quantize_q40(&mut q[..], x, 1, 0).unwrap();
    q
}

/// Every kernel's outputs, concatenated as bit patterns.
fn run_all(k: &Kernels) -> Vec<u32> {
    let kq = if cfg!(miri) { Kernels::scalar() } else { *k };
    let mut all = Vec::new();
    let (n, d, b) = (96, 5, 3);
    let x = floats(n * b, 1);
    let wf = floats(n * d, 2);
    let xq = q80(&kq, &x);
    all.extend(xq.iter().flat_map(|b| {
        let mut v = vec![b.d as u32];
        v.extend(b.qs.iter().map(|&q| q as u8 as u32));
        v
    }));
    let wq = q40(&wf);

    let mut deq = vec![0f32; n];
    split3(&mut deq, |o, nt, t| {
        kq.dequantize_q80(o, &xq[..n / 32], nt, t).unwrap()
    });
    all.extend(bits(&deq));
    split3(&mut deq, |o, nt, t| {
        kq.dequantize_q40(o, &wq[..n / 32], nt, t).unwrap()
    });
    all.extend(bits(&deq));

    let mut out = vec![0f32; d * b];
    split3(&mut out[..d], |o, nt, t| {
        kq.matmul_q80_q40(o, &xq[..n / 32], &wq, n, d, nt, t)
            .unwrap()
    });
    all.extend(bits(&out[..d]));
    split3(&mut out, |o, nt, t| {
        kq.matmul_q80_q40_batch(o, &xq, &wq, n, d, b, nt, t)
            .unwrap()
    });
    all.extend(bits(&out));
    // Packed weights: two groups of 16 rows (the 5-row matrix above repeated), split 3 ways.
    let d16 = 2 * airllm_kernels::PACK_ROWS;
    let wq16: Vec<BlockQ40> = wq.iter().cycle().take(d16 * n / 32).copied().collect();
    let mut wp =
        vec![airllm_kernels::PackedQ40::default(); d16 * n / 32 / airllm_kernels::PACK_ROWS];
    airllm_kernels::pack_q40_rows(&wq16, n, d16, &mut wp).unwrap();
    let mut outp = vec![0f32; d16];
    split3(&mut outp, |o, nt, t| {
        kq.matmul_q80_q40_packed(o, &xq[..n / 32], &wp, n, d16, nt, t)
            .unwrap()
    });
    all.extend(bits(&outp));
    split3(&mut out[..d], |o, nt, t| {
        k.matmul_f32(o, &x[..n], &wf, n, d, nt, t).unwrap()
    });
    all.extend(bits(&out[..d]));
    split3(&mut out, |o, nt, t| {
        k.matmul_f32_batch(o, &x, &wf, n, d, b, nt, t).unwrap()
    });
    all.extend(bits(&out));

    let mut inv = [0f32; 3];
    split3(&mut inv, |o, nt, t| {
        k.inv_rms(o, &x[..n], 1e-5, nt, t).unwrap()
    });
    all.extend(bits(&inv));
    let mut y = vec![0f32; n];
    split3(&mut y, |o, nt, t| {
        k.rms_norm(o, &x[..n], &wf[..n], inv[0], nt, t).unwrap()
    });
    all.extend(bits(&y));
    split3(&mut y, |o, nt, t| {
        kq.rms_norm_q80(o, &xq[..n / 32], &wf[..n], inv[1], nt, t)
            .unwrap()
    });
    all.extend(bits(&y));

    // RoPE on node 1 of 2: q_dim 64, kv_dim 32, head_dim 16.
    let slice = RopeSlice::for_node(64, 32, 2, 2, 8, 16, 10000.0, 1);
    let mut cache = vec![0f32; slice.seq_len * slice.slice_dim];
    let scaling = RopeScaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        orig_max_seq_len: 8192,
    };
    fill_llama_cache(&mut cache[..], &slice, Some(&scaling), 1, 0).unwrap();
    let mut q = x[..slice.q_dim0].to_vec();
    split3(&mut q, |o, nt, t| {
        k.rope_llama(o, &cache, true, 5, &slice, nt, t).unwrap()
    });
    all.extend(bits(&q));
    let mut fcache = vec![0f32; slice.seq_len * slice.head_dim];
    fill_falcon_cache(&mut fcache[..], &slice, 1, 0).unwrap();
    let mut kk = x[..slice.kv_dim0].to_vec();
    split3(&mut kk, |o, nt, t| {
        k.rope_falcon(o, &fcache, false, 7, &slice, nt, t).unwrap()
    });
    all.extend(bits(&kk));

    // Attention: 6 query heads, 2 KV heads (3 per group), head_dim 12 (not a multiple of 8).
    let shape = AttentionShape {
        n_heads: 6,
        n_heads0: 6,
        n_kv_heads: 2,
        head_dim: 12,
        seq_len: 11,
        kv_dim0: 24,
    };
    let kc = floats(11 * 24, 3);
    let vc = floats(11 * 24, 4);
    let qa = floats(72, 5);
    let mut att = vec![0f32; 6 * 11];
    let mut ya = vec![0f32; 72];
    for t in 0..3 {
        let (yp, ap) = (ya.as_mut_ptr(), att.as_mut_ptr());
        // SAFETY: as in `split3`, for two outputs at once.
        let (yo, ao) = unsafe { (Out::shared(yp, 72), Out::shared(ap, 66)) };
        k.multihead_attention(yo, ao, &qa, &kc, &vc, 9, &shape, 3, t)
            .unwrap();
    }
    all.extend(bits(&ya));

    let mut s = floats(2 * 13, 6);
    split3(&mut s, |o, nt, t| k.softmax(o, 13, nt, t).unwrap());
    all.extend(bits(&s));
    let mut a = floats(27, 7);
    split3(&mut a, |o, nt, t| k.silu(o, nt, t).unwrap());
    all.extend(bits(&a));
    split3(&mut a, |o, nt, t| k.gelu(o, nt, t).unwrap());
    all.extend(bits(&a));
    split3(&mut a, |o, nt, t| k.mul(o, &x[..27], nt, t).unwrap());
    all.extend(bits(&a));
    split3(&mut a, |o, nt, t| k.add(o, &x[27..54], nt, t).unwrap());
    all.extend(bits(&a));
    split3(&mut a, |o, nt, t| k.scale(o, 0.37, nt, t).unwrap());
    all.extend(bits(&a));
    split3(&mut y, |o, nt, t| {
        kq.add_q80(o, &xq[..n / 32], nt, t).unwrap()
    });
    all.extend(bits(&y));

    let mut gw = vec![0f32; 2 * 3];
    let mut gi = vec![0u32; 2 * 3];
    k.moe_gate(&mut gw[..], &mut gi[..], &s, 13, 3, true, 1, 0)
        .unwrap();
    all.extend(bits(&gw));
    all.extend(&gi);
    let mut kv = vec![0f32; 4 * 10];
    split3(&mut kv, |o, nt, t| {
        k.kv_write(o, &x[..10], 2, nt, t).unwrap()
    });
    all.extend(bits(&kv));
    all
}

#[test]
fn every_kernel_every_impl_matches_scalar() {
    let reference = run_all(&Kernels::scalar());
    for imp in available() {
        let got = run_all(&Kernels::new(imp).unwrap());
        assert_eq!(got.len(), reference.len());
        if let Some(i) = got.iter().zip(&reference).position(|(a, b)| a != b) {
            panic!(
                "{imp}: output word {i} differs: {:#x} vs {:#x}",
                got[i], reference[i]
            );
        }
        println!("{imp}: {} output words identical to scalar", got.len());
    }
}
