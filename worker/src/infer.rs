//! Local inference: the nodes of one model run in this process (one [`Executor`] each, pipes
//! exchanged in memory exactly as the network would), and the token loop around them.
//!
//! With one node this is plain single-machine inference; with several it is the in-process
//! simulation of a cluster that the multi-node tests use: every node gets its own weights
//! slice, buffers and thread pool, and the syncs of spec §5.5 run over [`ChannelTransport`]s.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use airllm_kernels::Kernels;
use thiserror::Error;

use crate::exec::{ChannelTransport, ExecError, Executor, MeshSync, NoSync, WeightData};
use crate::float_type::FloatType;
use crate::graph::{build_llm_net, GraphError, LlmNet, N_BATCHES};
use crate::model::{HeaderError, ModelError, ModelFile, TensorKind};
use crate::sample::Sampler;
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::weights::{node_slices, WeightRef};

/// Why inference could not start or stopped.
#[derive(Debug, Error)]
pub enum InferError {
    /// Reading or slicing the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model cannot run with these settings.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Building the graph.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Planning or running a node.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Encoding or decoding text.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A bad argument (position past the context, empty batch, …).
    #[error("{0}")]
    Invalid(String),
}

/// How to run a model locally.
#[derive(Clone, Copy, Debug)]
pub struct ClusterOptions {
    /// Nodes to simulate (1 = ordinary single-node inference).
    pub n_nodes: usize,
    /// Pool threads per node.
    pub n_threads: usize,
    /// Type of the exchanged partial sums (`--buffer-float-type`): F32, or Q80 (required for
    /// Q40 weights).
    pub sync_type: FloatType,
    /// Kernel implementation.
    pub kernels: Kernels,
}

impl ClusterOptions {
    /// One node, `n_threads` threads, the sync type the weight type needs, the detected kernels.
    pub fn single(n_threads: usize, weight_type: FloatType) -> ClusterOptions {
        ClusterOptions {
            n_nodes: 1,
            n_threads,
            sync_type: default_sync_type(weight_type),
            kernels: Kernels::current(),
        }
    }
}

/// Q80 partial sums for Q40 weights, F32 otherwise (the two combinations the peer runs).
pub fn default_sync_type(weight_type: FloatType) -> FloatType {
    if weight_type == FloatType::Q40 {
        FloatType::Q80
    } else {
        FloatType::F32
    }
}

/// The model file as shared weight bytes, so executors can use the map without copying.
struct FileBytes(Arc<ModelFile>);

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// All nodes of one model in this process.
pub struct LocalCluster {
    model: Arc<ModelFile>,
    net: LlmNet,
    nodes: Vec<Executor>,
    syncs: Vec<Option<MeshSync<ChannelTransport>>>,
    weight_bytes_per_token: u64,
}

impl LocalCluster {
    /// Builds the graph for `opts.n_nodes` nodes, starts one executor per node and gives each
    /// its weight slices (shared with the map where possible, copied where the slice is not
    /// contiguous). `progress(done, total)` reports bytes of weights placed.
    pub fn new(
        model: Arc<ModelFile>,
        opts: &ClusterOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<LocalCluster, InferError> {
        let h = model.header().clone();
        if h.weight_type == FloatType::Q40 && opts.sync_type != FloatType::Q80 {
            return Err(InferError::Invalid(
                "Q40 weights need --buffer-float-type q80".into(),
            ));
        }
        h.validate_for_nodes(opts.n_nodes)?;
        let n_nodes = u32::try_from(opts.n_nodes)
            .map_err(|_| InferError::Invalid("too many nodes".into()))?;
        let net = build_llm_net(&h, n_nodes, N_BATCHES, opts.sync_type)?;
        let mut nodes = Vec::with_capacity(opts.n_nodes);
        for cfg in &net.nodes {
            nodes.push(Executor::new(&net.net, cfg, opts.n_threads, opts.kernels)?);
        }

        let total: u64 = (0..opts.n_nodes)
            .flat_map(|k| node_slices(&*model, k, opts.n_nodes))
            .map(|s| s.map(|s| s.bytes.len() as u64))
            .sum::<Result<u64, ModelError>>()?;
        let mut done = 0u64;
        let mut per_token = 0u64;
        progress(0, total);
        for (k, ex) in nodes.iter_mut().enumerate() {
            per_token += place_node_weights(ex, &model, k, opts.n_nodes, &mut |n| {
                done += n;
                progress(done, total);
            })?;
        }
        let syncs = ChannelTransport::mesh(opts.n_nodes)
            .into_iter()
            .map(|t| Some(MeshSync::new(t)))
            .collect();
        Ok(LocalCluster {
            model,
            net,
            nodes,
            syncs,
            weight_bytes_per_token: per_token,
        })
    }

    /// The model.
    pub fn model(&self) -> &ModelFile {
        &self.model
    }

    /// The graph in use.
    pub fn net(&self) -> &LlmNet {
        &self.net
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Weight bytes all nodes read for one token (the embedding row excluded; MoE experts
    /// counted at the active fraction).
    pub fn weight_bytes_per_token(&self) -> u64 {
        self.weight_bytes_per_token
    }

    /// Rows per forward pass.
    pub fn n_batches(&self) -> usize {
        self.net.net.n_batches as usize
    }

    /// Runs one forward pass over `tokens` at positions `start_pos..`; the logits of every row
    /// are then available from [`logits`](Self::logits).
    pub fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<(), InferError> {
        let bs = tokens.len();
        let h = self.model.header();
        if bs == 0 || bs > self.n_batches() {
            return Err(InferError::Invalid(format!(
                "a forward pass takes 1..={} tokens, got {bs}",
                self.n_batches()
            )));
        }
        if start_pos + bs > h.seq_len {
            return Err(InferError::Invalid(format!(
                "positions {start_pos}..{} exceed the context of {}",
                start_pos + bs,
                h.seq_len
            )));
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= h.vocab_size) {
            return Err(InferError::Invalid(format!(
                "token {t} is outside the vocabulary of {}",
                h.vocab_size
            )));
        }
        let (pos_pipe, tok_pipe) = (self.net.position_pipe, self.net.token_pipe);
        for (k, ex) in self.nodes.iter_mut().enumerate() {
            let pos = ex.pipe_f32(pos_pipe)?;
            for (b, p) in pos.iter_mut().take(bs).enumerate() {
                *p = (start_pos + b) as f32;
            }
            if k == 0 {
                let tok = ex.pipe_f32(tok_pipe)?;
                for (slot, &t) in tok.iter_mut().zip(tokens) {
                    *slot = t as f32;
                }
            }
        }
        if self.nodes.len() == 1 {
            self.nodes[0].forward(bs, &mut NoSync)?;
            return Ok(());
        }
        let syncs: Vec<MeshSync<ChannelTransport>> = self
            .syncs
            .iter_mut()
            .map(Option::take)
            .collect::<Option<_>>()
            .ok_or_else(|| InferError::Invalid("the cluster failed in an earlier pass".into()))?;
        // A node that fails drops its links, so the nodes waiting on it fail too instead of
        // blocking; the links then stay gone and later passes are refused.
        let results: Vec<Result<MeshSync<ChannelTransport>, ExecError>> =
            std::thread::scope(|scope| {
                let mut pairs = self.nodes.iter_mut().zip(syncs);
                let (root, mut root_sync) = pairs.next().expect("a cluster has a root");
                let handles: Vec<_> = pairs
                    .map(|(ex, mut sync)| {
                        scope.spawn(move || ex.forward(bs, &mut sync).map(|()| sync))
                    })
                    .collect();
                let mut out = vec![root.forward(bs, &mut root_sync).map(|()| root_sync)];
                for h in handles {
                    out.push(
                        h.join().unwrap_or_else(|_| {
                            Err(ExecError::Run("a node thread panicked".into()))
                        }),
                    );
                }
                out
            });
        let mut first_err = None;
        for (slot, r) in self.syncs.iter_mut().zip(results) {
            match r {
                Ok(s) => *slot = Some(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            self.syncs.iter_mut().for_each(|s| *s = None);
            return Err(e.into());
        }
        Ok(())
    }

    /// The logits of batch row `row` of the last forward pass (`vocab_size` floats).
    pub fn logits(&mut self, row: usize) -> Result<&[f32], InferError> {
        let vocab = self.model.header().vocab_size;
        if row >= self.n_batches() {
            return Err(InferError::Invalid(format!("row {row} is past the batch")));
        }
        let lg = self.nodes[0].pipe_f32(self.net.logits_pipe)?;
        Ok(&lg[row * vocab..(row + 1) * vocab])
    }
}

/// Gives executor `ex` (node `node` of `n_nodes`) its weight slices from `model`: shared with
/// the memory map where a slice is a whole op's contiguous weights, copied otherwise.
/// `placed(bytes)` is called after each slice. Returns the weight bytes this node reads per
/// token (the embedding excluded; MoE experts at the active fraction).
pub fn place_node_weights(
    ex: &mut Executor,
    model: &Arc<ModelFile>,
    node: usize,
    n_nodes: usize,
    placed: &mut dyn FnMut(u64),
) -> Result<u64, InferError> {
    let h = model.header();
    let file_data: WeightData = Arc::new(FileBytes(Arc::clone(model)));
    let base = model.bytes().as_ptr() as usize;
    let file_len = model.bytes().len();
    let mut per_token = 0u64;
    for slice in node_slices(&**model, node, n_nodes) {
        let s = slice?;
        let len = s.bytes.len();
        per_token += match (s.id.kind, s.id.expert) {
            (TensorKind::Embedding, _) => 0,
            (_, Some(_)) => len as u64 * h.n_active_experts as u64 / h.n_experts.max(1) as u64,
            _ => len as u64,
        };
        let op_bytes = ex
            .node()
            .find_op(s.op_name, s.op_index)
            .map_or(0, |op| op.weight_size.n_bytes() as usize);
        let whole = s.op_offset == 0 && len == op_bytes;
        match s.bytes {
            WeightRef::Borrowed(b) if whole => {
                let start = (b.as_ptr() as usize).wrapping_sub(base);
                let range: Range<usize> = start..start + len;
                if range.end > file_len {
                    return Err(InferError::Invalid("weight slice outside the file".into()));
                }
                touch_pages(b);
                ex.attach_weight(s.op_name, s.op_index, Arc::clone(&file_data), range)?;
            }
            WeightRef::Owned(v) if whole => {
                ex.attach_weight(s.op_name, s.op_index, Arc::new(v), 0..len)?;
            }
            WeightRef::Shared(a, r) if whole => {
                ex.attach_weight(s.op_name, s.op_index, Arc::new(a), r)?;
            }
            other => {
                ex.load_weight(s.op_name, s.op_index, s.op_offset as usize, &other)?;
            }
        }
        placed(len as u64);
    }
    let missing = ex.missing_weights();
    if !missing.is_empty() {
        return Err(InferError::Invalid(format!(
            "node {node} has no weights for {}",
            missing.join(", ")
        )));
    }
    ex.prepare()?;
    Ok(per_token)
}

/// Something that runs forward passes of a model: all nodes in this process
/// ([`LocalCluster`]) or a root driving workers over the network
/// ([`crate::net::root::RemoteCluster`]).
pub trait Cluster {
    /// The model.
    fn model(&self) -> &ModelFile;
    /// Rows per forward pass.
    fn n_batches(&self) -> usize;
    /// One forward pass over `tokens` at positions `start_pos..`.
    fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<(), InferError>;
    /// The logits (`vocab_size` floats) of batch row `row` of the last forward pass.
    fn logits(&mut self, row: usize) -> Result<&[f32], InferError>;
    /// Weight bytes all nodes read for one token.
    fn weight_bytes_per_token(&self) -> u64;
}

impl Cluster for LocalCluster {
    fn model(&self) -> &ModelFile {
        LocalCluster::model(self)
    }
    fn n_batches(&self) -> usize {
        LocalCluster::n_batches(self)
    }
    fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<(), InferError> {
        LocalCluster::forward(self, tokens, start_pos)
    }
    fn logits(&mut self, row: usize) -> Result<&[f32], InferError> {
        LocalCluster::logits(self, row)
    }
    fn weight_bytes_per_token(&self) -> u64 {
        LocalCluster::weight_bytes_per_token(self)
    }
}

/// Reads one byte per page so the first forward pass does not stall on page faults (and a
/// progress bar shows the real loading time of a cold file).
fn touch_pages(b: &[u8]) {
    let mut acc = 0u8;
    for i in (0..b.len()).step_by(4096) {
        acc ^= b[i];
    }
    std::hint::black_box(acc);
}

/// Timing of one [`generate`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerateStats {
    /// Prompt tokens evaluated in batches (all but the last one).
    pub prefill_tokens: usize,
    /// Seconds spent on them.
    pub prefill_secs: f64,
    /// Tokens generated one at a time.
    pub decode_tokens: usize,
    /// Seconds spent on them (forward passes and sampling).
    pub decode_secs: f64,
}

impl GenerateStats {
    /// Prefill tokens per second (0 when there was no prefill).
    pub fn prefill_tps(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_secs)
    }
    /// Decode tokens per second.
    pub fn decode_tps(&self) -> f64 {
        rate(self.decode_tokens, self.decode_secs)
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if n == 0 || secs <= 0.0 {
        0.0
    } else {
        n as f64 / secs
    }
}

/// Encodes `prompt` (with BOS), evaluates all of it but the last token in batches, then
/// generates until position `steps` (or the context end), feeding each sampled token back.
/// `on_text` receives decoded text as soon as it is complete UTF-8. As the peer's `inference`
/// mode, generation does not stop at EOS. Returns the generated token ids and the timing.
pub fn generate(
    cluster: &mut dyn Cluster,
    tokenizer: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &str,
    steps: usize,
    on_text: &mut dyn FnMut(&str),
) -> Result<(Vec<u32>, GenerateStats), InferError> {
    let seq_len = cluster.model().header().seq_len;
    let input = tokenizer.encode(prompt.as_bytes(), true, true)?;
    if input.is_empty() {
        return Err(InferError::Invalid(
            "the prompt encodes to no tokens".into(),
        ));
    }
    if input.len() > seq_len {
        return Err(InferError::Invalid(format!(
            "the prompt has {} tokens, more than the context of {seq_len}",
            input.len()
        )));
    }
    if input.len() > steps {
        return Err(InferError::Invalid(format!(
            "the prompt has {} tokens, more than --steps {steps}",
            input.len()
        )));
    }
    let mut stats = GenerateStats::default();
    let n_batches = cluster.n_batches();
    let prefill = &input[..input.len() - 1];
    let t0 = Instant::now();
    for (i, chunk) in prefill.chunks(n_batches).enumerate() {
        cluster.forward(chunk, i * n_batches)?;
    }
    stats.prefill_tokens = prefill.len();
    stats.prefill_secs = t0.elapsed().as_secs_f64();

    let max_pos = steps.min(seq_len);
    let mut token = *input.last().expect("checked non-empty");
    let mut out = Vec::new();
    let mut decoder = tokenizer.decoder();
    let mut logits = Vec::new();
    let t1 = Instant::now();
    for pos in prefill.len()..max_pos {
        cluster.forward(&[token], pos)?;
        logits.clear();
        logits.extend_from_slice(cluster.logits(0)?);
        token = sampler.sample(&mut logits);
        out.push(token);
        if let Some(text) = decoder.push(token)? {
            on_text(&text);
        }
    }
    if let Some(text) = decoder.flush() {
        on_text(&text);
    }
    stats.decode_tokens = out.len();
    stats.decode_secs = t1.elapsed().as_secs_f64();
    Ok((out, stats))
}
