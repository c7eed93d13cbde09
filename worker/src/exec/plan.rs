//! Turns a node config into executable steps: resolves pointers to (region, offset, stride),
//! chooses the kernel for each (op code, input, weight, output) type combination, and checks
//! every size the kernels and the shared-memory discipline rely on, before anything runs.

use airllm_kernels::{AttentionShape, RopeSlice};

use super::ExecError;
use crate::float_type::FloatType;
use crate::graph::{
    NetConfig, NodeConfig, OpCode, OpConfig, OpParams, PointerConfig, PointerSource, PointerType,
    Size3D,
};
use crate::model::header::RopeType;

/// A resolved pointer: rows `(z, y)` of `x` elements at `offset + (z·y_rows + y)·stride` bytes
/// of region `region`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ptr {
    pub region: usize,
    pub ft: FloatType,
    pub z: usize,
    pub y: usize,
    pub x: usize,
    pub stride: usize,
    pub offset: usize,
}

impl Ptr {
    /// Byte offset of row `(z, y)`.
    pub fn row(&self, z: usize, y: usize) -> usize {
        (z * self.y + y) * self.stride + self.offset
    }
    /// Whether the `y` rows of plane 0 are one contiguous run (for the batched matmul).
    pub fn rows_contiguous(&self) -> bool {
        self.offset == 0 && self.stride == bytes(self.ft, self.x)
    }
}

fn bytes(ft: FloatType, n: usize) -> usize {
    ft.bytes(n as u64).unwrap_or(0) as usize
}

/// Llama 3.1 RoPE scaling parameters of a ROPE op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scaling {
    pub factor: f32,
    pub low: f32,
    pub high: f32,
    pub orig: u32,
}

/// The MoE part of a matmul.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Experts {
    pub n_experts: usize,
    pub n_active: usize,
    pub ix_region: usize,
    /// Floats per row of the index buffer.
    pub ix_stride: usize,
}

/// What a step computes, with everything resolved.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Embedding {
        tok: Ptr,
        out: Ptr,
        vocab: usize,
    },
    Copy {
        inp: Ptr,
        out: Ptr,
    },
    Quantize {
        inp: Ptr,
        out: Ptr,
    },
    Dequantize {
        inp: Ptr,
        out: Ptr,
    },
    MergeAdd {
        inp: Ptr,
        out: Ptr,
        n_slices: usize,
    },
    MergeSum {
        inp: Ptr,
        out: Ptr,
    },
    InvRms {
        inp: Ptr,
        out: Ptr,
        eps: f32,
        n_cols: usize,
    },
    RmsNorm {
        inp: Ptr,
        out: Ptr,
        inv: Ptr,
        n_cols: usize,
        in_place: bool,
    },
    Matmul {
        inp: Ptr,
        out: Ptr,
        n: usize,
        d: usize,
        plane_bytes: usize,
        experts: Option<Experts>,
        /// Dense Q40 weights with `d` a multiple of 16: the executor repacks them into row
        /// groups ([`airllm_kernels::PackedQ40`]) before the first forward pass and runs the
        /// packed kernels (same bits, fewer shuffles).
        packed: bool,
    },
    Rope {
        x: Ptr,
        pos_region: usize,
        cache_region: usize,
        cache_len: usize,
        falcon: bool,
        is_q: bool,
        slice: RopeSlice,
        scaling: Scaling,
    },
    Shift {
        inp: Ptr,
        cache: Ptr,
        pos_region: usize,
    },
    Attention {
        out: Ptr,
        q: Ptr,
        att: Ptr,
        k_region: usize,
        v_region: usize,
        cache_len: usize,
        pos_region: usize,
        shape: AttentionShape,
    },
    Silu {
        x: Ptr,
    },
    Gelu {
        x: Ptr,
    },
    Mul {
        x: Ptr,
        m: Ptr,
    },
    Scale {
        x: Ptr,
        s_region: usize,
    },
    Softmax {
        x: Ptr,
    },
    MoeGate {
        inp: Ptr,
        out: Ptr,
        ix_region: usize,
        k: usize,
        normalize: bool,
    },
    RepeatZ {
        inp: Ptr,
        out: Ptr,
    },
}

/// One op, ready to run.
pub(crate) struct Step {
    pub name: String,
    pub layer: u32,
    pub kind: Kind,
    /// Bytes of weights the op needs (0 = none).
    pub weight_bytes: usize,
    /// Weight element type.
    pub weight_ft: FloatType,
    /// Whether threads must meet at a barrier after this step: the next step touches a region
    /// that this step or an earlier one since the last barrier writes, or writes one they read.
    pub barrier_after: bool,
}

/// The peer's `<input>_<weight>_<output>` label, with the input type standing in for an unknown
/// weight type.
pub(crate) fn quant_label(inp: FloatType, w: FloatType, out: FloatType) -> String {
    let w = if w == FloatType::Unknown { inp } else { w };
    format!("{inp}_{w}_{out}").to_uppercase()
}

/// Resolves a pointer against the pipes (regions `0..n_pipes`) and buffers (after them).
fn resolve(net: &NetConfig, node: &NodeConfig, p: &PointerConfig) -> Result<Ptr, String> {
    let n_pipes = net.pipes.len();
    let (size, region) = match p.source {
        PointerSource::Pipe => (
            net.pipes
                .get(p.index as usize)
                .ok_or_else(|| format!("pipe {} does not exist", p.index))?
                .size,
            p.index as usize,
        ),
        PointerSource::Buffer => (
            node.buffers
                .get(p.index as usize)
                .ok_or_else(|| format!("buffer {} does not exist", p.index))?
                .size,
            n_pipes + p.index as usize,
        ),
    };
    let ft = size.float_type();
    if !matches!(ft, FloatType::F32 | FloatType::Q80) {
        return Err(format!("{ft} activations are not supported"));
    }
    match p.kind {
        PointerType::Raw => Ok(Ptr {
            region,
            ft,
            z: 1,
            y: 1,
            x: size.length() as usize,
            stride: size.n_bytes() as usize,
            offset: 0,
        }),
        PointerType::Batch | PointerType::BatchedSlice => {
            if size.y() != net.n_batches {
                return Err(format!(
                    "source has {} rows, the net has {} batches",
                    size.y(),
                    net.n_batches
                ));
            }
            let row = ft
                .bytes(u64::from(size.x()))
                .ok_or_else(|| format!("rows of {} {ft} are not whole blocks", size.x()))?
                as usize;
            let (x, offset) = if p.kind == PointerType::BatchedSlice {
                let n = net.n_nodes;
                if size.x() % n != 0 {
                    return Err(format!(
                        "{} columns cannot be sliced over {n} nodes",
                        size.x()
                    ));
                }
                let x0 = size.x() / n;
                let sb = ft
                    .bytes(u64::from(x0))
                    .ok_or_else(|| format!("a slice of {x0} {ft} is not whole blocks"))?;
                (x0 as usize, (sb * u64::from(node.node_index)) as usize)
            } else {
                (size.x() as usize, 0)
            };
            Ok(Ptr {
                region,
                ft,
                z: size.z() as usize,
                y: size.y() as usize,
                x,
                stride: row,
                offset,
            })
        }
    }
}

fn buffer_ptr(net: &NetConfig, node: &NodeConfig, index: u32) -> Result<Ptr, String> {
    resolve(
        net,
        node,
        &PointerConfig::batch(PointerSource::Buffer, index),
    )
}

fn raw_buffer(net: &NetConfig, node: &NodeConfig, index: u32) -> Result<Ptr, String> {
    resolve(net, node, &PointerConfig::raw(PointerSource::Buffer, index))
}

fn raw_pipe(net: &NetConfig, node: &NodeConfig, index: u32) -> Result<Ptr, String> {
    resolve(net, node, &PointerConfig::raw(PointerSource::Pipe, index))
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

fn f32_only(p: &Ptr, what: &str) -> Result<(), String> {
    check(p.ft == FloatType::F32, || {
        format!("{what} must be f32, is {}", p.ft)
    })
}

/// The POS pipe must hold one float per batch row.
fn pos_pipe(net: &NetConfig, node: &NodeConfig, index: u32) -> Result<usize, String> {
    let p = raw_pipe(net, node, index)?;
    f32_only(&p, "position pipe")?;
    check(p.x >= net.n_batches as usize, || {
        "position pipe is shorter than the batch".into()
    })?;
    Ok(p.region)
}

/// Plans every segment of `node`; the error names the first op that cannot run.
pub(crate) fn plan(net: &NetConfig, node: &NodeConfig) -> Result<Vec<Vec<Step>>, ExecError> {
    check(net.n_nodes >= 1 && node.node_index < net.n_nodes, || {
        format!("node {} of {}", node.node_index, net.n_nodes)
    })
    .map_err(ExecError::Invalid)?;
    let mut segments = Vec::with_capacity(node.segments.len());
    for seg in &node.segments {
        let mut steps = Vec::with_capacity(seg.ops.len());
        for op in &seg.ops {
            steps.push(plan_op(net, node, op)?);
        }
        place_barriers(&mut steps);
        segments.push(steps);
    }
    Ok(segments)
}

fn plan_op(net: &NetConfig, node: &NodeConfig, op: &OpConfig) -> Result<Step, ExecError> {
    let inp = resolve(net, node, &op.input)
        .map_err(|e| ExecError::invalid_op(op, format!("input: {e}")))?;
    let out = resolve(net, node, &op.output)
        .map_err(|e| ExecError::invalid_op(op, format!("output: {e}")))?;
    let w = op.weight_size;
    let label = quant_label(inp.ft, w.float_type(), out.ft);
    let unsupported = || ExecError::Unsupported {
        op: op.name.clone(),
        layer: op.index,
        code: op.code,
        quant: label.clone(),
    };
    let kind = kind_for(net, node, op, inp, out, w, &unsupported)?;
    if !op.params.matches(op.code) {
        return Err(ExecError::invalid_op(
            op,
            "config does not match the op code".into(),
        ));
    }
    let step = Step {
        name: op.name.clone(),
        layer: op.index,
        kind: kind.map_err(|e| ExecError::invalid_op(op, e))?,
        weight_bytes: w.n_bytes() as usize,
        weight_ft: w.float_type(),
        barrier_after: true,
    };
    let (reads, writes) = access(&step.kind);
    if let Some(r) = reads.iter().find(|r| writes.contains(r)) {
        return Err(ExecError::invalid_op(
            op,
            format!("region {r} would be read and written by the same op"),
        ));
    }
    Ok(step)
}

/// The op's kind, or `Err(unsupported)` for a type combination with no kernel, or `Ok(Err(_))`
/// for a supported combination with inconsistent sizes.
#[allow(clippy::type_complexity)]
fn kind_for(
    net: &NetConfig,
    node: &NodeConfig,
    op: &OpConfig,
    inp: Ptr,
    out: Ptr,
    w: Size3D,
    unsupported: &dyn Fn() -> ExecError,
) -> Result<Result<Kind, String>, ExecError> {
    use FloatType::{Unknown as Unk, F32, Q40, Q80};
    let types = (inp.ft, w.float_type(), out.ft);
    let same_ptr = op.input == op.output;
    let no_weight = w.n_bytes() == 0;
    let k = match (op.code, &op.params) {
        (OpCode::Embedding, _) => {
            if !matches!(types, (F32, F32, F32)) {
                return Err(unsupported());
            }
            (|| {
                check(inp.x == 1, || "token pipe must have one column".into())?;
                check(w.x() as usize == out.x && out.z == 1, || {
                    format!("embedding rows of {} vs output rows of {}", w.x(), out.x)
                })?;
                Ok(Kind::Embedding {
                    tok: inp,
                    out,
                    vocab: w.y() as usize,
                })
            })()
        }
        (OpCode::Cast, _) => {
            let shape = check(
                inp.x == out.x && inp.y == out.y && inp.z == out.z && no_weight,
                || "cast input and output shapes differ".into(),
            );
            let kind = match (inp.ft, out.ft) {
                (F32, F32) | (Q80, Q80) => Kind::Copy { inp, out },
                (F32, Q80) => Kind::Quantize { inp, out },
                (Q80, F32) => Kind::Dequantize { inp, out },
                _ => return Err(unsupported()),
            };
            if !matches!(types.1, Unk) {
                return Err(unsupported());
            }
            shape.map(|()| kind)
        }
        (OpCode::MergeAdd, _) => {
            if !matches!(types, (F32, Unk, F32) | (Q80, Unk, F32)) {
                return Err(unsupported());
            }
            (|| {
                check(
                    out.x > 0 && inp.x.is_multiple_of(out.x) && inp.y == out.y,
                    || format!("merge of {} into {} columns", inp.x, out.x),
                )?;
                check(out.z == 1 && inp.z == 1, || "merge-add needs z = 1".into())?;
                Ok(Kind::MergeAdd {
                    inp,
                    out,
                    n_slices: inp.x / out.x,
                })
            })()
        }
        (OpCode::MergeSum, _) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(out.z == 1 && inp.x == out.x && inp.y == out.y, || {
                    "merge-sum shapes".into()
                })?;
                Ok(Kind::MergeSum { inp, out })
            })()
        }
        (OpCode::InvRms, &OpParams::InvRms { epsilon, n_columns }) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                let n_cols = n_columns as usize;
                check(n_cols > 0 && inp.x.is_multiple_of(n_cols), || {
                    format!("{} columns in {n_cols} groups", inp.x)
                })?;
                check(out.x >= n_cols && out.y == inp.y && inp.z == 1, || {
                    "inv-rms output too small".into()
                })?;
                Ok(Kind::InvRms {
                    inp,
                    out,
                    eps: epsilon,
                    n_cols,
                })
            })()
        }
        (
            OpCode::RmsNorm,
            &OpParams::RmsNorm {
                inv_rms_buffer_index,
                n_columns,
            },
        ) => {
            if !matches!(types, (F32, F32, F32) | (Q80, F32, F32)) {
                return Err(unsupported());
            }
            (|| {
                let n_cols = n_columns as usize;
                let inv = buffer_ptr(net, node, inv_rms_buffer_index)?;
                f32_only(&inv, "inv-rms buffer")?;
                check(n_cols > 0 && inv.x >= n_cols, || {
                    "inv-rms buffer too small".into()
                })?;
                check(
                    inp.x == out.x && inp.x.is_multiple_of(n_cols) && inp.z == 1 && out.z == 1,
                    || "rms-norm shapes".into(),
                )?;
                check(
                    w.y() == 1 && w.z() == 1 && w.x() as usize == inp.x / n_cols,
                    || {
                        format!(
                            "rms-norm weight {w} for {} columns in {n_cols} groups",
                            inp.x
                        )
                    },
                )?;
                check(inp.ft == F32 || n_cols == 1, || {
                    "q80 rms-norm supports one column group".into()
                })?;
                Ok(Kind::RmsNorm {
                    inp,
                    out,
                    inv,
                    n_cols,
                    in_place: same_ptr,
                })
            })()
        }
        (
            OpCode::Matmul,
            &OpParams::Matmul {
                n_experts,
                n_active_experts,
                active_expert_indexes_buffer_index,
            },
        ) => {
            if !matches!(types, (F32, F32, F32) | (Q80, Q40, F32)) {
                return Err(unsupported());
            }
            (|| {
                let n = w.y() as usize;
                let d = w.x() as usize;
                check(inp.x == n && out.x == d, || {
                    format!("matmul {n}→{d} with input {} and output {}", inp.x, out.x)
                })?;
                check(inp.y == out.y, || "matmul row counts differ".into())?;
                let slots = n_active_experts.max(1) as usize;
                check(inp.z == slots && out.z == slots, || {
                    format!(
                        "matmul planes {} / {} for {slots} expert slots",
                        inp.z, out.z
                    )
                })?;
                check(w.z() == n_experts.max(1), || {
                    format!("weight planes {} for {n_experts} experts", w.z())
                })?;
                let experts = if n_active_experts > 0 {
                    let ix = buffer_ptr(net, node, active_expert_indexes_buffer_index)?;
                    f32_only(&ix, "expert index buffer")?;
                    check(ix.x == n_active_experts as usize && ix.z == 1, || {
                        "expert index buffer shape".into()
                    })?;
                    Some(Experts {
                        n_experts: n_experts as usize,
                        n_active: n_active_experts as usize,
                        ix_region: ix.region,
                        ix_stride: ix.x,
                    })
                } else {
                    None
                };
                let packed = types == (Q80, Q40, F32)
                    && experts.is_none()
                    && d.is_multiple_of(airllm_kernels::PACK_ROWS);
                Ok(Kind::Matmul {
                    inp,
                    out,
                    n,
                    d,
                    plane_bytes: w.n_bytes_xy() as usize,
                    experts,
                    packed,
                })
            })()
        }
        (OpCode::Rope, OpParams::Rope(r)) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(same_ptr && out.z == 1, || "rope must work in place".into())?;
                let s = &r.slice;
                let slice = RopeSlice {
                    q_dim0: s.q_dim0 as usize,
                    q_dim_start: s.q_dim_start as usize,
                    q_dim_end: s.q_dim_end as usize,
                    q_shift: s.q_shift as usize,
                    kv_dim: s.kv_dim as usize,
                    kv_dim0: s.kv_dim0 as usize,
                    kv_dim_start: s.kv_dim_start as usize,
                    slice_dim: s.slice_dim as usize,
                    seq_len: s.seq_len as usize,
                    head_dim: s.head_dim as usize,
                    n_kv_heads: s.n_kv_heads as usize,
                    theta: s.rope_theta,
                };
                let is_q = r.is_q == 1;
                let want = if is_q { slice.q_dim0 } else { slice.kv_dim0 };
                check(out.x == want, || {
                    format!("rope over {} features, slice has {want}", out.x)
                })?;
                let falcon = r.rope_type == RopeType::Falcon;
                let cache = raw_buffer(net, node, r.rope_cache_buffer_index)?;
                f32_only(&cache, "rope cache")?;
                let row = if falcon {
                    slice.head_dim
                } else {
                    slice.slice_dim
                };
                check(cache.x == slice.seq_len * row, || {
                    format!(
                        "rope cache of {} floats, expected {}×{row}",
                        cache.x, slice.seq_len
                    )
                })?;
                if !falcon {
                    check(slice.q_shift + slice.q_dim0 <= slice.slice_dim, || {
                        "rope q slice outside the cache row".into()
                    })?;
                    check(slice.kv_dim0 <= slice.slice_dim, || {
                        "rope k slice outside the cache row".into()
                    })?;
                }
                Ok(Kind::Rope {
                    x: out,
                    pos_region: pos_pipe(net, node, r.position_pipe_index)?,
                    cache_region: cache.region,
                    cache_len: cache.x,
                    falcon,
                    is_q,
                    slice,
                    scaling: Scaling {
                        factor: r.scaling_factor,
                        low: r.scaling_low_freq_factor,
                        high: r.scaling_high_freq_factor,
                        orig: r.scaling_orig_max_seq_len,
                    },
                })
            })()
        }
        (OpCode::Shift, &OpParams::Shift { index_pipe_index }) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(op.output.kind == PointerType::Raw, || {
                    "shift output must be raw".into()
                })?;
                check(
                    inp.z == 1 && inp.x > 0 && out.x.is_multiple_of(inp.x),
                    || format!("cache of {} floats for rows of {}", out.x, inp.x),
                )?;
                Ok(Kind::Shift {
                    inp,
                    cache: out,
                    pos_region: pos_pipe(net, node, index_pipe_index)?,
                })
            })()
        }
        (OpCode::MultiheadAtt, OpParams::MultiheadAtt(a)) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(out.x == a.q_slice_d0 as usize && out.z == 1, || {
                    format!(
                        "attention output of {} for a q slice of {}",
                        out.x, a.q_slice_d0
                    )
                })?;
                let q = buffer_ptr(net, node, a.query_buffer_index)?;
                f32_only(&q, "query buffer")?;
                check(q.x == a.q_slice_d0 as usize, || "query buffer width".into())?;
                let att = buffer_ptr(net, node, a.att_buffer_index)?;
                f32_only(&att, "attention scratch")?;
                check(
                    att.x == (a.n_heads0 as usize) * (a.seq_len as usize),
                    || "attention scratch width".into(),
                )?;
                let kc = raw_buffer(net, node, a.key_cache_buffer_index)?;
                let vc = raw_buffer(net, node, a.value_cache_buffer_index)?;
                f32_only(&kc, "key cache")?;
                f32_only(&vc, "value cache")?;
                let cache_len = (a.seq_len as usize) * (a.kv_dim0 as usize);
                check(kc.x >= cache_len && vc.x >= cache_len, || {
                    "KV caches too small".into()
                })?;
                check(
                    a.n_heads0 as usize * a.head_dim as usize == a.q_slice_d0 as usize,
                    || "q slice is not n_heads0 × head_dim".into(),
                )?;
                Ok(Kind::Attention {
                    out,
                    q,
                    att,
                    k_region: kc.region,
                    v_region: vc.region,
                    cache_len,
                    pos_region: pos_pipe(net, node, a.position_pipe_index)?,
                    shape: AttentionShape {
                        n_heads: a.n_heads as usize,
                        n_heads0: a.n_heads0 as usize,
                        n_kv_heads: a.n_kv_heads as usize,
                        head_dim: a.head_dim as usize,
                        seq_len: a.seq_len as usize,
                        kv_dim0: a.kv_dim0 as usize,
                    },
                })
            })()
        }
        (OpCode::Silu | OpCode::Gelu | OpCode::Softmax, _) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(same_ptr, || "this op works in place only".into())?;
                Ok(match op.code {
                    OpCode::Silu => Kind::Silu { x: out },
                    OpCode::Gelu => Kind::Gelu { x: out },
                    _ => {
                        check(out.z == 1, || "softmax needs z = 1".into())?;
                        Kind::Softmax { x: out }
                    }
                })
            })()
        }
        (
            OpCode::Mul,
            &OpParams::Mul {
                multiplier_buffer_index,
            },
        ) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(same_ptr, || "mul works in place only".into())?;
                let m = buffer_ptr(net, node, multiplier_buffer_index)?;
                f32_only(&m, "multiplier")?;
                check(
                    m.x == out.x && m.z == out.z && m.y == out.y && m.offset == 0,
                    || "multiplier shape differs from the output".into(),
                )?;
                Ok(Kind::Mul { x: out, m })
            })()
        }
        (OpCode::Scale, &OpParams::Scale { scale_buffer_index }) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(same_ptr, || "scale works in place only".into())?;
                let s = raw_buffer(net, node, scale_buffer_index)?;
                f32_only(&s, "scale buffer")?;
                check(s.x >= out.z * out.y, || "scale buffer too small".into())?;
                Ok(Kind::Scale {
                    x: out,
                    s_region: s.region,
                })
            })()
        }
        (
            OpCode::MoeGate,
            &OpParams::MoeGate {
                k,
                norm_topk,
                indexes_buffer_index,
            },
        ) => {
            if types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                let k = k as usize;
                check(inp.z == 1 && k > 0 && inp.x >= k, || {
                    format!("top-{k} of {} experts", inp.x)
                })?;
                check(out.z == k && out.x == 1 && out.y == inp.y, || {
                    "moe-gate output must be (k, batches, 1)".into()
                })?;
                let ix = buffer_ptr(net, node, indexes_buffer_index)?;
                f32_only(&ix, "expert index buffer")?;
                check(ix.x == k && ix.z == 1, || {
                    "expert index buffer shape".into()
                })?;
                Ok(Kind::MoeGate {
                    inp,
                    out,
                    ix_region: ix.region,
                    k,
                    normalize: norm_topk == 1,
                })
            })()
        }
        (OpCode::RepeatZ, _) => {
            // The peer only has F32 → Q80; F32 → F32 (qwen3-moe with F32 sync) copies instead.
            if types != (F32, Unk, Q80) && types != (F32, Unk, F32) {
                return Err(unsupported());
            }
            (|| {
                check(inp.z == 1 && inp.x == out.x && inp.y == out.y, || {
                    "repeat-z shapes".into()
                })?;
                Ok(Kind::RepeatZ { inp, out })
            })()
        }
        _ => return Err(unsupported()),
    };
    // Ops without weights must not declare any; ops with weights need them in a known type.
    if let Ok(kind) = &k {
        let wants_weight = matches!(
            kind,
            Kind::Embedding { .. } | Kind::RmsNorm { .. } | Kind::Matmul { .. }
        );
        if wants_weight == no_weight {
            return Ok(Err(if no_weight {
                "the op needs weights but declares none".into()
            } else {
                "the op declares weights it does not use".into()
            }));
        }
    }
    Ok(k)
}

/// Puts a barrier between two steps only where a later step reads a region written since the
/// last barrier, or writes a region read or written since then (independent ops such as the q,
/// k and v matmuls run back to back). The last step needs none: the pool's finishing gate
/// follows it.
fn place_barriers(steps: &mut [Step]) {
    let mut read: Vec<usize> = Vec::new();
    let mut written: Vec<usize> = Vec::new();
    for i in 0..steps.len() {
        let (r, w) = access(&steps[i].kind);
        let hazard = r.iter().any(|x| written.contains(x))
            || w.iter().any(|x| written.contains(x) || read.contains(x));
        if hazard && i > 0 {
            steps[i - 1].barrier_after = true;
            read.clear();
            written.clear();
        } else if i > 0 {
            steps[i - 1].barrier_after = false;
        }
        read.extend(r);
        written.extend(w);
    }
    if let Some(last) = steps.last_mut() {
        last.barrier_after = false;
    }
}

/// Regions a step reads and writes (for the one-op no-aliasing rule).
pub(crate) fn access(k: &Kind) -> (Vec<usize>, Vec<usize>) {
    match k {
        Kind::Embedding { tok, out, .. } => (vec![tok.region], vec![out.region]),
        Kind::Copy { inp, out }
        | Kind::Quantize { inp, out }
        | Kind::Dequantize { inp, out }
        | Kind::MergeAdd { inp, out, .. }
        | Kind::MergeSum { inp, out }
        | Kind::InvRms { inp, out, .. }
        | Kind::RepeatZ { inp, out } => (vec![inp.region], vec![out.region]),
        Kind::RmsNorm {
            inp,
            out,
            inv,
            in_place,
            ..
        } => {
            if *in_place {
                (vec![inv.region], vec![out.region])
            } else {
                (vec![inp.region, inv.region], vec![out.region])
            }
        }
        Kind::Matmul {
            inp, out, experts, ..
        } => {
            let mut r = vec![inp.region];
            if let Some(e) = experts {
                r.push(e.ix_region);
            }
            (r, vec![out.region])
        }
        Kind::Rope {
            x,
            pos_region,
            cache_region,
            ..
        } => (vec![*pos_region, *cache_region], vec![x.region]),
        Kind::Shift {
            inp,
            cache,
            pos_region,
        } => (vec![inp.region, *pos_region], vec![cache.region]),
        Kind::Attention {
            out,
            q,
            att,
            k_region,
            v_region,
            pos_region,
            ..
        } => (
            vec![q.region, *k_region, *v_region, *pos_region],
            vec![out.region, att.region],
        ),
        Kind::Silu { x } | Kind::Gelu { x } | Kind::Softmax { x } => (vec![], vec![x.region]),
        Kind::Mul { x, m } => (vec![m.region], vec![x.region]),
        Kind::Scale { x, s_region } => (vec![*s_region], vec![x.region]),
        Kind::MoeGate {
            inp,
            out,
            ix_region,
            ..
        } => (vec![inp.region], vec![out.region, *ix_region]),
    }
}
