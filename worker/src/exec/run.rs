//! Runs one planned step on one pool thread: the mapping from op kinds to kernel calls.
//!
//! Every thread of the pool calls [`run_step`] with the same step and batch size and its own
//! `thread_index`. Kernels split their work by `(n_threads, thread_index)`; the few ops the peer
//! splits by batch row (INV_RMS, SOFTMAX, MOE_GATE) give each row to one thread.

use airllm_kernels::rope::{fill_falcon_cache, fill_llama_cache, RopeScaling};
use airllm_kernels::{split, BlockQ40, BlockQ80, Kernels, Out, PackedQ40};

use super::plan::{Kind, Ptr, Scaling, Step};
use super::pool::Scratch;
use super::shared::{cast, cast_mut, View};
use crate::float_type::FloatType;

fn kerr(e: airllm_kernels::KernelError) -> String {
    e.to_string()
}

/// Everything a thread needs for one step.
pub(crate) struct Ctx<'a> {
    pub k: Kernels,
    pub view: View<'a>,
    pub batch: usize,
    pub n: usize,
    pub t: usize,
}

impl Ctx<'_> {
    fn f32_row(&self, p: &Ptr, z: usize, y: usize) -> Result<&[f32], String> {
        self.view.read::<f32>(p.region, p.row(z, y), p.x)
    }
    fn q80_row(&self, p: &Ptr, z: usize, y: usize) -> Result<&[BlockQ80], String> {
        self.view.read::<BlockQ80>(p.region, p.row(z, y), p.x / 32)
    }
    fn f32_out(&self, p: &Ptr, z: usize, y: usize) -> Result<Out<'_, f32>, String> {
        self.view.write::<f32>(p.region, p.row(z, y), p.x)
    }
    fn q80_out(&self, p: &Ptr, z: usize, y: usize) -> Result<Out<'_, BlockQ80>, String> {
        self.view.write::<BlockQ80>(p.region, p.row(z, y), p.x / 32)
    }
    /// The position of batch row `b`, from the POS pipe.
    fn pos(&self, region: usize, b: usize) -> Result<usize, String> {
        let v = self.view.read::<f32>(region, 4 * b, 1)?[0];
        if !(v >= 0.0 && v < u32::MAX as f32) || v.fract() != 0.0 {
            return Err(format!("position {v} of row {b} is not a valid index"));
        }
        Ok(v as usize)
    }
    /// Copies `src` into `dst` bytes at `off` of `region`, this thread's share of the bytes.
    fn copy_share(&self, region: usize, off: usize, src: &[u8]) -> Result<(), String> {
        let r = split(src.len(), self.n, self.t);
        let dst = self.view.own::<u8>(region, off + r.start, r.len())?;
        dst.copy_from_slice(&src[r]);
        Ok(())
    }
}

fn weights<T: super::shared::Pod>(w: Option<&[u8]>) -> Result<&[T], String> {
    let w = w.ok_or("weights are not loaded")?;
    cast::<T>(w).ok_or_else(|| "weights are misaligned".to_string())
}

/// Runs `step` for rows `0..ctx.batch` as thread `ctx.t` of `ctx.n`.
pub(crate) fn run_step(
    step: &Step,
    weight: Option<&[u8]>,
    row_major: Option<&[u8]>,
    c: &Ctx<'_>,
    scratch: &mut Scratch,
) -> Result<(), String> {
    let k = &c.k;
    let (n, t) = (c.n, c.t);
    match &step.kind {
        Kind::Embedding { tok, out, vocab } => {
            let w = weights::<u8>(weight)?;
            let row = out.x * 4;
            for b in 0..c.batch {
                let v = c.view.read::<f32>(tok.region, tok.row(0, b), 1)?[0];
                if !(v >= 0.0 && (v as usize) < *vocab) {
                    return Err(format!("token {v} is outside the vocabulary of {vocab}"));
                }
                let id = v as usize;
                c.copy_share(out.region, out.row(0, b), &w[id * row..(id + 1) * row])?;
            }
        }
        Kind::Copy { inp, out } => {
            let row = inp.ft.bytes(inp.x as u64).unwrap_or(0) as usize;
            for z in 0..inp.z {
                for y in 0..c.batch {
                    let src = c.view.read::<u8>(inp.region, inp.row(z, y), row)?;
                    c.copy_share(out.region, out.row(z, y), src)?;
                }
            }
        }
        Kind::Quantize { inp, out } => {
            for z in 0..inp.z {
                for y in 0..c.batch {
                    let x = c.f32_row(inp, z, y)?;
                    k.quantize_q80(c.q80_out(out, z, y)?, x, n, t)
                        .map_err(kerr)?;
                }
            }
        }
        Kind::Dequantize { inp, out } => {
            for z in 0..inp.z {
                for y in 0..c.batch {
                    let x = c.q80_row(inp, z, y)?;
                    k.dequantize_q80(c.f32_out(out, z, y)?, x, n, t)
                        .map_err(kerr)?;
                }
            }
        }
        Kind::MergeAdd { inp, out, n_slices } => {
            let x = out.x;
            for b in 0..c.batch {
                let mut o = c.f32_out(out, 0, b)?;
                if inp.ft == FloatType::Q80 {
                    let blocks = c.q80_row(inp, 0, b)?;
                    let nb = x / 32;
                    for s in 0..*n_slices {
                        k.add_q80(o.slice(0..x), &blocks[s * nb..(s + 1) * nb], n, t)
                            .map_err(kerr)?;
                    }
                } else {
                    let v = c.f32_row(inp, 0, b)?;
                    for s in 0..*n_slices {
                        k.add(o.slice(0..x), &v[s * x..(s + 1) * x], n, t)
                            .map_err(kerr)?;
                    }
                }
            }
        }
        Kind::MergeSum { inp, out } => {
            // The peer sums from 0.0 in z order, one rounding per add.
            let r = split(out.x, n, t);
            for y in 0..c.batch {
                let o = c
                    .view
                    .own::<f32>(out.region, out.row(0, y) + 4 * r.start, r.len())?;
                o.fill(0.0);
                for z in 0..inp.z {
                    let v = c.f32_row(inp, z, y)?;
                    k.add(&mut *o, &v[r.clone()], 1, 0).map_err(kerr)?;
                }
            }
        }
        Kind::InvRms {
            inp,
            out,
            eps,
            n_cols,
        } => {
            for b in (t..c.batch).step_by(n) {
                let x = c.f32_row(inp, 0, b)?;
                let o = c.view.own::<f32>(out.region, out.row(0, b), *n_cols)?;
                k.inv_rms(o, x, *eps, 1, 0).map_err(kerr)?;
            }
        }
        Kind::RmsNorm {
            inp,
            out,
            inv,
            n_cols,
            in_place,
        } => {
            let w = weights::<f32>(weight)?;
            let col = out.x / n_cols;
            for b in 0..c.batch {
                let invs = c.view.read::<f32>(inv.region, inv.row(0, b), *n_cols)?;
                if inp.ft == FloatType::Q80 {
                    let x = c.q80_row(inp, 0, b)?;
                    k.rms_norm_q80(c.f32_out(out, 0, b)?, x, w, invs[0], n, t)
                        .map_err(kerr)?;
                    continue;
                }
                for (g, &iv) in invs.iter().enumerate() {
                    let off = out.row(0, b) + 4 * g * col;
                    if *in_place {
                        // Each output element depends only on the same input element, so the
                        // thread copies its own share aside and normalises it alone.
                        let r = split(col, n, t);
                        let o = c.view.own::<f32>(out.region, off + 4 * r.start, r.len())?;
                        scratch.f32s.clear();
                        scratch.f32s.extend_from_slice(o);
                        k.rms_norm(o, &scratch.f32s, &w[r], iv, 1, 0)
                            .map_err(kerr)?;
                    } else {
                        let x = c.f32_row(inp, 0, b)?;
                        let o = c.view.write::<f32>(out.region, off, col)?;
                        k.rms_norm(o, &x[g * col..(g + 1) * col], w, iv, n, t)
                            .map_err(kerr)?;
                    }
                }
            }
        }
        Kind::Matmul {
            inp,
            out,
            n: nn,
            d,
            plane_bytes,
            experts,
            packed,
        } => {
            let w = weight.ok_or("weights are not loaded")?;
            let q40 = inp.ft == FloatType::Q80;
            // Dense Q40 weights repacked into 16-row groups before the first pass; a batch runs
            // on the row-major original instead where one is kept (same bits either way).
            let w = match row_major {
                Some(rm) if *packed && c.batch > 1 => rm,
                _ => w,
            };
            if *packed && !(c.batch > 1 && row_major.is_some()) {
                let wp = cast::<PackedQ40>(w).ok_or("packed weights are misaligned")?;
                if c.batch > 1 && inp.rows_contiguous() && out.rows_contiguous() {
                    let o = c
                        .view
                        .write::<f32>(out.region, out.row(0, 0), c.batch * d)?;
                    let x =
                        c.view
                            .read::<BlockQ80>(inp.region, inp.row(0, 0), c.batch * nn / 32)?;
                    k.matmul_q80_q40_packed_batch(o, x, wp, *nn, *d, c.batch, n, t)
                        .map_err(kerr)?;
                } else {
                    for y in 0..c.batch {
                        let o = c.f32_out(out, 0, y)?;
                        k.matmul_q80_q40_packed(o, c.q80_row(inp, 0, y)?, wp, *nn, *d, n, t)
                            .map_err(kerr)?;
                    }
                }
                return Ok(());
            }
            match experts {
                None if c.batch > 1 && inp.rows_contiguous() && out.rows_contiguous() => {
                    let o = c
                        .view
                        .write::<f32>(out.region, out.row(0, 0), c.batch * d)?;
                    if q40 {
                        let x = c.view.read::<BlockQ80>(
                            inp.region,
                            inp.row(0, 0),
                            c.batch * nn / 32,
                        )?;
                        let wq = cast::<BlockQ40>(w).ok_or("weights are misaligned")?;
                        k.matmul_q80_q40_batch(o, x, wq, *nn, *d, c.batch, n, t)
                    } else {
                        let x = c
                            .view
                            .read::<f32>(inp.region, inp.row(0, 0), c.batch * nn)?;
                        let wf = cast::<f32>(w).ok_or("weights are misaligned")?;
                        k.matmul_f32_batch(o, x, wf, *nn, *d, c.batch, n, t)
                    }
                    .map_err(kerr)?;
                }
                _ => {
                    let slots = experts.map_or(1, |e| e.n_active);
                    for y in 0..c.batch {
                        for e in 0..slots {
                            let slab = match experts {
                                None => 0,
                                Some(ex) => {
                                    let v = c.view.read::<f32>(
                                        ex.ix_region,
                                        4 * (y * ex.ix_stride + e),
                                        1,
                                    )?[0];
                                    if !(v >= 0.0 && (v as usize) < ex.n_experts) {
                                        return Err(format!("expert index {v} out of range"));
                                    }
                                    v as usize
                                }
                            };
                            let ws = &w[slab * plane_bytes..(slab + 1) * plane_bytes];
                            let o = c.f32_out(out, e, y)?;
                            if q40 {
                                let wq = cast::<BlockQ40>(ws).ok_or("weights are misaligned")?;
                                k.matmul_q80_q40(o, c.q80_row(inp, e, y)?, wq, *nn, *d, n, t)
                            } else {
                                let wf = cast::<f32>(ws).ok_or("weights are misaligned")?;
                                k.matmul_f32(o, c.f32_row(inp, e, y)?, wf, *nn, *d, n, t)
                            }
                            .map_err(kerr)?;
                        }
                    }
                }
            }
        }
        Kind::Rope {
            x,
            pos_region,
            cache_region,
            cache_len,
            falcon,
            is_q,
            slice,
            ..
        } => {
            let cache = c.view.read::<f32>(*cache_region, 0, *cache_len)?;
            for b in 0..c.batch {
                let pos = c.pos(*pos_region, b)?;
                let o = c.f32_out(x, 0, b)?;
                if *falcon {
                    k.rope_falcon(o, cache, *is_q, pos, slice, n, t)
                } else {
                    k.rope_llama(o, cache, *is_q, pos, slice, n, t)
                }
                .map_err(kerr)?;
            }
        }
        Kind::Shift {
            inp,
            cache,
            pos_region,
        } => {
            for b in 0..c.batch {
                let pos = c.pos(*pos_region, b)?;
                let row = c.f32_row(inp, 0, b)?;
                let o = c.view.write::<f32>(cache.region, 0, cache.x)?;
                k.kv_write(o, row, pos, n, t).map_err(kerr)?;
            }
        }
        Kind::Attention {
            out,
            q,
            att,
            k_region,
            v_region,
            cache_len,
            pos_region,
            shape,
        } => {
            let kc = c.view.read::<f32>(*k_region, 0, *cache_len)?;
            let vc = c.view.read::<f32>(*v_region, 0, *cache_len)?;
            for b in 0..c.batch {
                let pos = c.pos(*pos_region, b)?;
                let y = c.f32_out(out, 0, b)?;
                let a = c.f32_out(att, 0, b)?;
                let qr = c.f32_row(q, 0, b)?;
                k.multihead_attention(y, a, qr, kc, vc, pos, shape, n, t)
                    .map_err(kerr)?;
            }
        }
        Kind::Silu { x } | Kind::Gelu { x } => {
            let silu = matches!(step.kind, Kind::Silu { .. });
            for z in 0..x.z {
                for y in 0..c.batch {
                    let o = c.f32_out(x, z, y)?;
                    if silu {
                        k.silu(o, n, t)
                    } else {
                        k.gelu(o, n, t)
                    }
                    .map_err(kerr)?;
                }
            }
        }
        Kind::Mul { x, m } => {
            for z in 0..x.z {
                for y in 0..c.batch {
                    let mr = c.f32_row(m, z, y)?;
                    k.mul(c.f32_out(x, z, y)?, mr, n, t).map_err(kerr)?;
                }
            }
        }
        Kind::Scale { x, s_region } => {
            for z in 0..x.z {
                for y in 0..c.batch {
                    let s = c.view.read::<f32>(*s_region, 4 * (z * x.y + y), 1)?[0];
                    k.scale(c.f32_out(x, z, y)?, s, n, t).map_err(kerr)?;
                }
            }
        }
        Kind::Softmax { x } => {
            for b in (t..c.batch).step_by(n) {
                let o = c.view.own::<f32>(x.region, x.row(0, b), x.x)?;
                k.softmax(o, x.x, 1, 0).map_err(kerr)?;
            }
        }
        Kind::MoeGate {
            inp,
            out,
            ix_region,
            k: top,
            normalize,
        } => {
            scratch.f32s.resize(*top, 0.0);
            scratch.u32s.resize(*top, 0);
            for b in (t..c.batch).step_by(n) {
                let probs = c.f32_row(inp, 0, b)?;
                k.moe_gate(
                    &mut scratch.f32s[..],
                    &mut scratch.u32s[..],
                    probs,
                    inp.x,
                    *top,
                    *normalize,
                    1,
                    0,
                )
                .map_err(kerr)?;
                let ix = c.view.own::<f32>(*ix_region, 4 * b * top, *top)?;
                for (e, slot) in ix.iter_mut().enumerate() {
                    c.view.own::<f32>(out.region, out.row(e, b), 1)?[0] = scratch.f32s[e];
                    *slot = scratch.u32s[e] as f32;
                }
            }
        }
        Kind::RepeatZ { inp, out } => {
            // Every plane gets the same quantisation of the row; each thread quantises its own
            // blocks into every plane, so no thread reads another's output.
            for y in 0..c.batch {
                let x = c.f32_row(inp, 0, y)?;
                for z in 0..out.z {
                    if out.ft == FloatType::Q80 {
                        k.quantize_q80(c.q80_out(out, z, y)?, x, n, t)
                            .map_err(kerr)?;
                    } else {
                        let bytes = c.view.read::<u8>(inp.region, inp.row(0, y), 4 * x.len())?;
                        c.copy_share(out.region, out.row(z, y), bytes)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Fills a RoPE cache region (once, before the first forward).
pub(crate) fn fill_rope_cache(
    cache: &mut [u8],
    falcon: bool,
    slice: &airllm_kernels::RopeSlice,
    s: &Scaling,
) -> Result<(), String> {
    let c = cast_mut::<f32>(cache).ok_or("rope cache is misaligned")?;
    if falcon {
        fill_falcon_cache(c, slice, 1, 0).map_err(kerr)
    } else {
        let scaling = RopeScaling {
            factor: s.factor,
            low_freq_factor: s.low,
            high_freq_factor: s.high,
            orig_max_seq_len: s.orig,
        };
        fill_llama_cache(c, slice, Some(&scaling), 1, 0).map_err(kerr)
    }
}
