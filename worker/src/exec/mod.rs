//! The executor: interprets one node's config generically (spec §4, §6).
//!
//! [`Executor::new`] plans every op (choosing a kernel by op code and types, checking sizes and
//! reporting an unsupported combination by op name before anything runs), allocates every pipe
//! and buffer once, and fills the RoPE caches. Weights come either by copy
//! ([`Executor::load_weight`], as the network delivers them) or shared without copying
//! ([`Executor::attach_weight`], from a memory-mapped model). [`Executor::forward`] runs the
//! segments for up to `n_batches` rows on a persistent thread pool, with a barrier between ops,
//! and hands each segment's syncs to a [`Synchronizer`].

mod plan;
mod pool;
mod run;
mod shared;
mod sync;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use airllm_kernels::{pack_q40_rows, BlockQ40, Kernels, PackedQ40};

pub use sync::{ChannelTransport, MeshSync, NoSync, Synchronizer, Transport};

use crate::float_type::FloatType;
use crate::graph::{NetConfig, NodeConfig, OpCode, OpConfig};
use plan::{Kind, Step};
use pool::{Job, Pool};
use shared::{cast, cast_mut, AlignedBuf, SharedRegion, View};

/// Why the executor refused a config or failed to run.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecError {
    /// No kernel for this op with these types (the peer's "Unsupported CPU op code").
    Unsupported {
        /// Op name.
        op: String,
        /// Layer index.
        layer: u32,
        /// Op code.
        code: OpCode,
        /// `<input>_<weight>_<output>` types.
        quant: String,
    },
    /// A config that cannot be run (sizes, indices).
    Invalid(String),
    /// Weight loading problems (unknown op, wrong size, missing weights).
    Weight(String),
    /// A kernel or the pool failed while running.
    Run(String),
    /// Exchanging pipes failed.
    Sync(String),
}

impl ExecError {
    fn invalid_op(op: &OpConfig, why: String) -> ExecError {
        ExecError::Invalid(format!(
            "op {} (layer {}, {}): {why}",
            op.name, op.index, op.code
        ))
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Unsupported {
                op,
                layer,
                code,
                quant,
            } => write!(
                f,
                "unsupported op {code} with types {quant} (op {op}, layer {layer})"
            ),
            ExecError::Invalid(m) => write!(f, "invalid graph: {m}"),
            ExecError::Weight(m) => write!(f, "weights: {m}"),
            ExecError::Run(m) => write!(f, "execution failed: {m}"),
            ExecError::Sync(m) => write!(f, "sync failed: {m}"),
        }
    }
}

impl std::error::Error for ExecError {}

/// Shared, read-only weight bytes (a memory map, a `Vec<u8>`, …).
pub type WeightData = Arc<dyn AsRef<[u8]> + Send + Sync>;

enum Weight {
    /// Copied in; `loaded` counts the bytes delivered so far.
    Owned { buf: AlignedBuf, loaded: usize },
    /// Borrowed from shared memory.
    Mapped {
        data: WeightData,
        range: Range<usize>,
    },
    /// Repacked into 16-row groups (`PackedQ40`s) for the packed matmul kernels; a mapped
    /// row-major original is kept (it costs no memory of its own) for the batched row-major
    /// kernel, which is faster for prefill.
    Packed {
        buf: AlignedBuf,
        row_major: Option<(WeightData, Range<usize>)>,
    },
}

impl Weight {
    fn bytes(&self) -> &[u8] {
        match self {
            Weight::Owned { buf, .. } | Weight::Packed { buf, .. } => buf.bytes(),
            Weight::Mapped { data, range } => &(**data).as_ref()[range.clone()],
        }
    }

    /// The row-major bytes kept beside packed weights, if any.
    fn row_major(&self) -> Option<&[u8]> {
        match self {
            Weight::Packed {
                row_major: Some((data, range)),
                ..
            } => Some(&(**data).as_ref()[range.clone()]),
            _ => None,
        }
    }
}

/// Everything pool threads read while a segment runs.
struct State {
    regions: Vec<SharedRegion>,
    segments: Vec<Vec<Step>>,
    weights: Vec<Vec<Option<Weight>>>,
}

/// One node's executor.
pub struct Executor {
    net: NetConfig,
    node: NodeConfig,
    state: Arc<State>,
    pool: Pool,
    kernels: Kernels,
    by_name: HashMap<(String, u32), (usize, usize)>,
    /// Weights arrived since the packed-kernel matmuls' weights were last repacked.
    pack_pending: bool,
}

impl Executor {
    /// Plans `node` of `net`, allocates its pipes and buffers, fills the RoPE caches, and starts
    /// `n_threads` pool threads (the caller's thread counts as one).
    pub fn new(
        net: &NetConfig,
        node: &NodeConfig,
        n_threads: usize,
        kernels: Kernels,
    ) -> Result<Executor, ExecError> {
        if n_threads == 0 {
            return Err(ExecError::Invalid("at least one thread is needed".into()));
        }
        let segments = plan::plan(net, node)?;
        let mut regions = Vec::with_capacity(net.pipes.len() + node.buffers.len());
        for s in net.pipes.iter().chain(node.buffers.iter()) {
            let len = usize::try_from(s.size.n_bytes())
                .map_err(|_| ExecError::Invalid(format!("{} is too large", s.name)))?;
            regions.push(SharedRegion::zeroed(len).map_err(ExecError::Invalid)?);
        }
        let mut filled = vec![false; regions.len()];
        for step in segments.iter().flatten() {
            if let Kind::Rope {
                cache_region,
                falcon,
                slice,
                scaling,
                ..
            } = &step.kind
            {
                if !filled[*cache_region] {
                    run::fill_rope_cache(
                        regions[*cache_region].bytes_mut(),
                        *falcon,
                        slice,
                        scaling,
                    )
                    .map_err(|e| ExecError::Invalid(format!("rope cache: {e}")))?;
                    filled[*cache_region] = true;
                }
            }
        }
        let mut by_name = HashMap::new();
        for (s, seg) in node.segments.iter().enumerate() {
            for (i, op) in seg.ops.iter().enumerate() {
                by_name.entry((op.name.clone(), op.index)).or_insert((s, i));
            }
        }
        let weights = segments
            .iter()
            .map(|s| s.iter().map(|_| None).collect())
            .collect();
        let pool = Pool::new(n_threads).map_err(ExecError::Run)?;
        Ok(Executor {
            net: net.clone(),
            node: node.clone(),
            state: Arc::new(State {
                regions,
                segments,
                weights,
            }),
            pool,
            kernels,
            by_name,
            pack_pending: true,
        })
    }

    /// The net config this executor runs.
    pub fn net(&self) -> &NetConfig {
        &self.net
    }

    /// The node config this executor runs.
    pub fn node(&self) -> &NodeConfig {
        &self.node
    }

    /// Threads in the pool.
    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }

    /// The kernel implementation in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Bytes of all pipes and buffers.
    pub fn buffer_bytes(&self) -> u64 {
        self.state.regions.iter().map(|r| r.len() as u64).sum()
    }

    fn state_mut(&mut self) -> Result<&mut State, ExecError> {
        Arc::get_mut(&mut self.state)
            .ok_or_else(|| ExecError::Run("the executor state is still shared".into()))
    }

    fn slot(&self, name: &str, index: u32) -> Result<(usize, usize), ExecError> {
        self.by_name
            .get(&(name.to_owned(), index))
            .copied()
            .ok_or_else(|| ExecError::Weight(format!("cannot locate op by name: {name} {index}")))
    }

    /// Copies `bytes` to `offset` of the weights of op `(name, index)` (a weight message).
    pub fn load_weight(
        &mut self,
        name: &str,
        index: u32,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), ExecError> {
        let (s, i) = self.slot(name, index)?;
        let st = self.state_mut()?;
        let size = st.segments[s][i].weight_bytes;
        let end = offset
            .checked_add(bytes.len())
            .filter(|&e| e <= size)
            .ok_or_else(|| {
                ExecError::Weight(format!(
                    "{name} {index}: {} bytes at {offset} exceed its {size} bytes",
                    bytes.len()
                ))
            })?;
        let slot = &mut st.weights[s][i];
        if matches!(slot, Some(Weight::Packed { .. })) {
            return Err(ExecError::Weight(format!(
                "{name} {index}: the weights were already repacked for running"
            )));
        }
        self.pack_pending = true;
        let slot = &mut self.state_mut()?.weights[s][i];
        if !matches!(slot, Some(Weight::Owned { .. })) {
            let mut buf = AlignedBuf::zeroed(size).map_err(ExecError::Weight)?;
            let mut loaded = 0;
            if let Some(Weight::Mapped { .. }) = slot {
                buf.bytes_mut()
                    .copy_from_slice(slot.as_ref().map_or(&[][..], Weight::bytes));
                loaded = size;
            }
            *slot = Some(Weight::Owned { buf, loaded });
        }
        if let Some(Weight::Owned { buf, loaded }) = slot {
            buf.bytes_mut()[offset..end].copy_from_slice(bytes);
            *loaded += bytes.len();
        }
        Ok(())
    }

    /// Uses `data[range]` as the weights of op `(name, index)` without copying (copying only if
    /// the bytes are misaligned for the weight type). The range must be the op's whole weight.
    pub fn attach_weight(
        &mut self,
        name: &str,
        index: u32,
        data: WeightData,
        range: Range<usize>,
    ) -> Result<(), ExecError> {
        let (s, i) = self.slot(name, index)?;
        let st = self.state_mut()?;
        let step = &st.segments[s][i];
        let whole = (*data).as_ref();
        if range.end > whole.len() || range.start > range.end {
            return Err(ExecError::Weight(format!(
                "{name} {index}: range {range:?} is outside the {} bytes given",
                whole.len()
            )));
        }
        if range.len() != step.weight_bytes {
            return Err(ExecError::Weight(format!(
                "{name} {index}: {} bytes given, the op needs {}",
                range.len(),
                step.weight_bytes
            )));
        }
        let align = match step.weight_ft {
            FloatType::F32 => 4,
            _ => 2,
        };
        let aligned = (whole[range.clone()].as_ptr() as usize).is_multiple_of(align);
        self.pack_pending = true;
        let st = self.state_mut()?;
        st.weights[s][i] = Some(if aligned {
            Weight::Mapped { data, range }
        } else {
            let mut buf = AlignedBuf::zeroed(range.len()).map_err(ExecError::Weight)?;
            buf.bytes_mut().copy_from_slice(&whole[range.clone()]);
            Weight::Owned {
                loaded: range.len(),
                buf,
            }
        });
        Ok(())
    }

    /// Ops whose weights are missing or incomplete, as `name index`.
    pub fn missing_weights(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (s, seg) in self.state.segments.iter().enumerate() {
            for (i, step) in seg.iter().enumerate() {
                if step.weight_bytes == 0 {
                    continue;
                }
                let ok = match &self.state.weights[s][i] {
                    None => false,
                    Some(Weight::Owned { loaded, .. }) => *loaded >= step.weight_bytes,
                    Some(Weight::Mapped { .. } | Weight::Packed { .. }) => true,
                };
                if !ok {
                    out.push(format!("{} {}", step.name, step.layer));
                }
            }
        }
        out
    }

    /// Pipe `pipe` as floats, to fill (POS, TOK) or read (LG, X). Fails for a non-F32 pipe.
    pub fn pipe_f32(&mut self, pipe: u32) -> Result<&mut [f32], ExecError> {
        let bad = || ExecError::Invalid(format!("pipe {pipe} is not an f32 pipe"));
        let ft = self
            .net
            .pipes
            .get(pipe as usize)
            .ok_or_else(bad)?
            .size
            .float_type();
        if ft != FloatType::F32 {
            return Err(bad());
        }
        let st = self.state_mut()?;
        cast_mut::<f32>(st.regions[pipe as usize].bytes_mut()).ok_or_else(bad)
    }

    /// Pipe `pipe`'s raw bytes.
    pub fn pipe_bytes(&mut self, pipe: u32) -> Result<&mut [u8], ExecError> {
        if pipe as usize >= self.net.pipes.len() {
            return Err(ExecError::Invalid(format!("pipe {pipe} does not exist")));
        }
        Ok(self.state_mut()?.regions[pipe as usize].bytes_mut())
    }

    /// Buffer `index` as floats (for tests and debugging); fails for a non-F32 buffer.
    pub fn buffer_f32(&mut self, index: u32) -> Result<&[f32], ExecError> {
        let n_pipes = self.net.pipes.len();
        let ft = self
            .node
            .buffers
            .get(index as usize)
            .map(|b| b.size.float_type());
        if ft != Some(FloatType::F32) {
            return Err(ExecError::Invalid(format!("buffer {index} is not f32")));
        }
        let st = self.state_mut()?;
        let b = st.regions[n_pipes + index as usize].bytes_mut();
        cast::<f32>(b).ok_or_else(|| ExecError::Invalid("misaligned buffer".into()))
    }

    /// Runs every segment for `batch_size` rows (the POS pipe, and TOK on the root, must be
    /// filled), calling `sync` for each segment's syncs when the net has more than one node.
    pub fn forward(
        &mut self,
        batch_size: usize,
        sync: &mut dyn Synchronizer,
    ) -> Result<(), ExecError> {
        if batch_size == 0 || batch_size > self.net.n_batches as usize {
            return Err(ExecError::Run(format!(
                "batch size {batch_size} is not in 1..={}",
                self.net.n_batches
            )));
        }
        let missing = self.missing_weights();
        if !missing.is_empty() {
            return Err(ExecError::Weight(format!(
                "missing weights for {} op(s), first: {}",
                missing.len(),
                missing[0]
            )));
        }
        self.prepare()?;
        let multi = self.net.n_nodes > 1;
        // Segments between two syncs run as one pool job, saving the start/finish gates.
        let mut first = 0;
        for s in 0..self.node.segments.len() {
            let sync_here = multi && !self.node.segments[s].syncs.is_empty();
            if !sync_here && s + 1 < self.node.segments.len() {
                continue;
            }
            if (first..=s).any(|i| !self.state.segments[i].is_empty()) {
                self.run_segments(first..s + 1, batch_size)?;
            }
            first = s + 1;
            if sync_here {
                let n_pipes = self.net.pipes.len();
                let st = Arc::get_mut(&mut self.state)
                    .ok_or_else(|| ExecError::Run("the executor state is still shared".into()))?;
                let mut pipes: Vec<&mut [u8]> = st.regions[..n_pipes]
                    .iter_mut()
                    .map(SharedRegion::bytes_mut)
                    .collect();
                sync.sync(
                    &self.net,
                    self.node.node_index,
                    &self.node.segments[s].syncs,
                    &mut pipes,
                    batch_size,
                )?;
            }
        }
        Ok(())
    }

    /// Gets loaded weights ready to run (repacks the dense Q40 matmul weights into 16-row
    /// groups). `forward` does it when needed; calling it once all weights are in moves that
    /// one-off cost to load time.
    pub fn prepare(&mut self) -> Result<(), ExecError> {
        if self.pack_pending {
            self.pack_weights()?;
            self.pack_pending = false;
        }
        Ok(())
    }

    /// Repacks into 16-row groups the weights of every matmul planned for the packed kernels
    /// that are still row-major (a copy; the row-major bytes are released or stay in the map).
    fn pack_weights(&mut self) -> Result<(), ExecError> {
        let State {
            segments, weights, ..
        } = self.state_mut()?;
        for (seg, ws) in segments.iter().zip(weights.iter_mut()) {
            for (step, slot) in seg.iter().zip(ws.iter_mut()) {
                let Kind::Matmul {
                    packed: true, n, d, ..
                } = step.kind
                else {
                    continue;
                };
                let Some(w) = slot
                    .as_ref()
                    .filter(|w| !matches!(w, Weight::Packed { .. }))
                else {
                    continue;
                };
                let fail =
                    |e: String| ExecError::Weight(format!("{} {}: {e}", step.name, step.layer));
                let src = cast::<BlockQ40>(w.bytes())
                    .ok_or_else(|| fail("weights are misaligned".into()))?;
                let mut buf = AlignedBuf::zeroed(step.weight_bytes).map_err(fail)?;
                let dst = cast_mut::<PackedQ40>(buf.bytes_mut())
                    .ok_or_else(|| fail("packed buffer is misaligned".into()))?;
                pack_q40_rows(src, n, d, dst).map_err(|e| fail(e.to_string()))?;
                let row_major = match w {
                    Weight::Mapped { data, range } => Some((Arc::clone(data), range.clone())),
                    _ => None,
                };
                *slot = Some(Weight::Packed { buf, row_major });
            }
        }
        Ok(())
    }

    fn run_segments(&mut self, segs: Range<usize>, batch: usize) -> Result<(), ExecError> {
        let st = Arc::clone(&self.state);
        let k = self.kernels;
        let n = self.pool.n_threads();
        let job: Arc<Job> = Arc::new(move |t, barrier, scratch| {
            // SAFETY: every pool thread runs this same closure over the same steps in the same
            // order with the same batch size and a distinct `t`; the plan rejected ops that read
            // and write one region, and put a barrier between any two steps where one writes a
            // region the other reads or writes (`place_barriers`), the pool's gates close the
            // segment; each step only writes through kernel windows split by `(n, t)` or through
            // rows given to one thread (`run.rs`); segments run in one job are separated by a
            // barrier. This is the discipline `View::new` requires.
            let view = unsafe { View::new(&st.regions) };
            let ctx = run::Ctx {
                k,
                view,
                batch,
                n,
                t,
            };
            let mut first: Option<String> = None;
            for seg in segs.clone() {
                if seg > segs.start {
                    barrier.wait();
                }
                for (i, step) in st.segments[seg].iter().enumerate() {
                    if first.is_none() {
                        let w = st.weights[seg][i].as_ref().map(Weight::bytes);
                        let row_major = st.weights[seg][i].as_ref().and_then(Weight::row_major);
                        let r = catch_unwind(AssertUnwindSafe(|| {
                            run::run_step(step, w, row_major, &ctx, scratch)
                        }));
                        first = match r {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => {
                                Some(format!("op {} (layer {}): {e}", step.name, step.layer))
                            }
                            Err(_) => {
                                Some(format!("op {} (layer {}) panicked", step.name, step.layer))
                            }
                        };
                    }
                    // Threads keep meeting at every barrier after an error, so none is left
                    // waiting.
                    if step.barrier_after {
                        barrier.wait();
                    }
                }
            }
            first.map_or(Ok(()), Err)
        });
        self.pool.run(job).map_err(ExecError::Run)
    }
}
