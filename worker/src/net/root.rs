//! The root of a cluster: connects to workers (Rust or C++), sends them their configs and
//! weight slices from the memory-mapped model, then runs forward passes as node 0, driving the
//! workers with control packets and the sync steps (spec §5.2–§5.5, §5.7).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use airllm_kernels::Kernels;

use super::codec::{
    net_config_bytes, node_config_bytes, weight_header_bytes, Control, Handshake, PeerAddr, ReadLe,
    WeightHeader, ACK, END_OF_WEIGHTS,
};
use super::tcp::{connect, Links};
use super::NetError;
use crate::exec::{Executor, MeshSync};
use crate::float_type::FloatType;
use crate::graph::{build_llm_net, LlmNet, N_BATCHES};
use crate::infer::{place_node_weights, Cluster, InferError};
use crate::model::ModelFile;
use crate::weights::node_slices;

/// A worker address as given to `--workers host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerAddr {
    /// Host name or dotted IPv4 address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::str::FromStr for WorkerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("worker address {s:?} is not host:port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("worker address {s:?} has a bad port"))?;
        if host.is_empty() {
            return Err(format!("worker address {s:?} has no host"));
        }
        Ok(WorkerAddr {
            host: host.to_string(),
            port,
        })
    }
}

/// How the root runs.
#[derive(Clone, Copy, Debug)]
pub struct RootOptions {
    /// Pool threads on the root.
    pub n_threads: usize,
    /// Type of the exchanged partial sums (Q80 for Q40 weights, or F32).
    pub sync_type: FloatType,
    /// Kernel implementation on the root.
    pub kernels: Kernels,
    /// How long a connect, read or write may stall before the root gives up.
    pub io_timeout: Duration,
}

/// Node 0 of a cluster whose other nodes are workers on sockets.
pub struct RemoteCluster {
    model: Arc<ModelFile>,
    net: LlmNet,
    root: Executor,
    links: Links,
    weight_bytes_per_token: u64,
    last_position: u32,
    stopped: bool,
}

impl RemoteCluster {
    /// Connects to `workers` (node `k + 1` = `workers[k]`), hands each its configs and weights,
    /// and prepares the root's own share. `progress(done, total)` reports weight bytes placed.
    pub fn connect(
        model: Arc<ModelFile>,
        workers: &[WorkerAddr],
        opts: &RootOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RemoteCluster, InferError> {
        let h = model.header().clone();
        let n_nodes = workers.len() + 1;
        if h.weight_type == FloatType::Q40 && opts.sync_type != FloatType::Q80 {
            return Err(InferError::Invalid(
                "Q40 weights need --buffer-float-type q80".into(),
            ));
        }
        if n_nodes > h.n_kv_heads {
            return Err(InferError::Invalid(format!(
                "{n_nodes} nodes are more than the model's {} KV heads",
                h.n_kv_heads
            )));
        }
        h.validate_for_nodes(n_nodes)?;
        let net = build_llm_net(&h, n_nodes as u32, N_BATCHES, opts.sync_type)?;
        let mut links = Links::new(n_nodes);
        let w_count = workers.len() as u32;
        let net_err = |e: NetError| InferError::Invalid(e.to_string());

        // Handshake with every worker, each ACKed, then "root ready" to all.
        for (w, addr) in workers.iter().enumerate() {
            let mut s =
                connect(&addr.host, u32::from(addr.port), opts.io_timeout).map_err(net_err)?;
            s.set_read_timeout(Some(opts.io_timeout))
                .map_err(NetError::from)
                .map_err(net_err)?;
            s.set_write_timeout(Some(opts.io_timeout))
                .map_err(NetError::from)
                .map_err(net_err)?;
            let peers = workers
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != w)
                .map(|(_, a)| PeerAddr {
                    host: a.host.clone(),
                    port: u32::from(a.port),
                })
                .collect();
            let hs = Handshake {
                n_workers: w_count,
                worker_index: w as u32,
                peers,
            };
            s.write_all(&hs.to_bytes())
                .map_err(NetError::from)
                .map_err(net_err)?;
            s.ack().map_err(net_err)?;
            links.set(w + 1, s).map_err(net_err)?;
        }
        for k in 1..n_nodes {
            let s = links.stream(k).map_err(net_err)?;
            s.write_all(&ACK.to_le_bytes())
                .map_err(NetError::from)
                .map_err(net_err)?;
        }

        // Configs: net then node, each ACKed, worker by worker.
        let net_bytes = net_config_bytes(&net.net);
        for k in 1..n_nodes {
            let s = links.stream(k).map_err(net_err)?;
            s.write_all(&net_bytes)
                .map_err(NetError::from)
                .map_err(net_err)?;
            s.ack().map_err(net_err)?;
            s.write_all(&node_config_bytes(&net.nodes[k]))
                .map_err(NetError::from)
                .map_err(net_err)?;
            s.ack().map_err(net_err)?;
        }

        // The root's own executor and weights.
        let mut root = Executor::new(&net.net, &net.nodes[0], opts.n_threads, opts.kernels)?;
        let total: u64 = (0..n_nodes)
            .flat_map(|k| node_slices(&*model, k, n_nodes))
            .map(|s| s.map(|s| s.bytes.len() as u64))
            .sum::<Result<u64, _>>()?;
        progress(0, total);
        let mut done = 0;
        let per_token = place_node_weights(&mut root, &model, 0, n_nodes, &mut |n| {
            done += n;
            progress(done, total)
        })?;

        // Workers' weights, tensor by tensor in file order, each worker's share on its socket.
        let mut per_worker: Vec<_> = (1..n_nodes)
            .map(|k| node_slices(&*model, k, n_nodes))
            .collect();
        let mut per_token = per_token;
        loop {
            let mut any = false;
            for (i, it) in per_worker.iter_mut().enumerate() {
                let Some(slice) = it.next() else { continue };
                any = true;
                let slice = slice?;
                let s = links.stream(i + 1).map_err(net_err)?;
                let head = weight_header_bytes(&WeightHeader {
                    op_name: slice.op_name.to_string(),
                    op_index: slice.op_index,
                    offset: slice.op_offset,
                    n_bytes: slice.bytes.len() as u64,
                });
                s.write_all(&head)
                    .map_err(NetError::from)
                    .map_err(net_err)?;
                s.write_all(&slice.bytes)
                    .map_err(NetError::from)
                    .map_err(net_err)?;
                per_token += active_bytes(&h, slice.id.expert.is_some(), slice.bytes.len());
                done += slice.bytes.len() as u64;
                progress(done, total);
            }
            if !any {
                break;
            }
        }
        drop(per_worker);
        for k in 1..n_nodes {
            let s = links.stream(k).map_err(net_err)?;
            s.write_all(&END_OF_WEIGHTS)
                .map_err(NetError::from)
                .map_err(net_err)?;
            s.ack().map_err(net_err)?;
        }
        links.set_timeout(Some(opts.io_timeout)).map_err(net_err)?;
        Ok(RemoteCluster {
            model,
            net,
            root,
            links,
            weight_bytes_per_token: per_token,
            last_position: 0,
            stopped: false,
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

    /// Rows per forward pass.
    pub fn n_batches(&self) -> usize {
        self.net.net.n_batches as usize
    }

    /// Weight bytes all nodes read for one token.
    pub fn weight_bytes_per_token(&self) -> u64 {
        self.weight_bytes_per_token
    }

    /// Bytes sent and received by the root in the last forward pass, and the time spent in
    /// socket calls.
    pub fn last_traffic(&self) -> (u64, u64, Duration) {
        (self.links.sent, self.links.received, self.links.busy)
    }

    /// One forward pass over `tokens` at positions `start_pos..`, on every node.
    pub fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<(), InferError> {
        let h = self.model.header();
        let bs = tokens.len();
        if self.stopped {
            return Err(InferError::Invalid("the cluster was stopped".into()));
        }
        if bs == 0 || bs > self.n_batches() || start_pos + bs > h.seq_len {
            return Err(InferError::Invalid(format!(
                "a forward pass of {bs} tokens at {start_pos} does not fit"
            )));
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= h.vocab_size) {
            return Err(InferError::Invalid(format!(
                "token {t} is outside the vocabulary"
            )));
        }
        let pos = self.root.pipe_f32(self.net.position_pipe)?;
        for (b, p) in pos.iter_mut().take(bs).enumerate() {
            *p = (start_pos + b) as f32;
        }
        let tok = self.root.pipe_f32(self.net.token_pipe)?;
        for (slot, &t) in tok.iter_mut().zip(tokens) {
            *slot = t as f32;
        }
        let c = Control {
            position: start_pos as u32,
            batch_size: bs as u32,
        };
        self.last_position = c.position;
        self.links.reset_counters();
        for k in 1..self.links.len() {
            let s = self
                .links
                .stream(k)
                .map_err(|e| InferError::Invalid(e.to_string()))?;
            s.write_all(&c.to_bytes())
                .map_err(|e| InferError::Invalid(format!("worker {k}: {e}")))?;
        }
        self.root.forward(bs, &mut MeshSync::new(&mut self.links))?;
        Ok(())
    }

    /// The logits of batch row `row` of the last forward pass.
    pub fn logits(&mut self, row: usize) -> Result<&[f32], InferError> {
        let vocab = self.model.header().vocab_size;
        if row >= self.n_batches() {
            return Err(InferError::Invalid(format!("row {row} is past the batch")));
        }
        let lg = self.root.pipe_f32(self.net.logits_pipe)?;
        Ok(&lg[row * vocab..(row + 1) * vocab])
    }

    /// Writes raw bytes to worker node `node` (protocol tests: a hostile or broken root).
    #[doc(hidden)]
    pub fn send_raw_to_worker(&mut self, node: usize, bytes: &[u8]) -> Result<(), NetError> {
        self.links.stream(node)?.write_all(bytes)?;
        Ok(())
    }

    /// Closes every socket without the stop packet, as a root that crashes would; the workers
    /// notice the closed sockets and go back to listening.
    pub fn abandon(mut self) {
        self.stopped = true;
        self.links.close();
    }

    /// Sends the stop packet to every worker and closes the sockets (also done on drop).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let c = Control {
            position: self.last_position,
            batch_size: 0,
        };
        for k in 1..self.links.len() {
            if let Ok(s) = self.links.stream(k) {
                let _ = s.write_all(&c.to_bytes());
            }
        }
        self.links.close();
    }
}

impl Drop for RemoteCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Weight bytes a token reads of a slice: experts count at the active fraction.
fn active_bytes(h: &crate::model::ModelHeader, expert: bool, len: usize) -> u64 {
    if expert {
        len as u64 * h.n_active_experts as u64 / h.n_experts.max(1) as u64
    } else {
        len as u64
    }
}

impl Cluster for RemoteCluster {
    fn model(&self) -> &ModelFile {
        RemoteCluster::model(self)
    }
    fn n_batches(&self) -> usize {
        RemoteCluster::n_batches(self)
    }
    fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<(), InferError> {
        RemoteCluster::forward(self, tokens, start_pos)
    }
    fn logits(&mut self, row: usize) -> Result<&[f32], InferError> {
        RemoteCluster::logits(self, row)
    }
    fn weight_bytes_per_token(&self) -> u64 {
        RemoteCluster::weight_bytes_per_token(self)
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerAddr;

    #[test]
    fn worker_addresses_parse() {
        let a: WorkerAddr = "127.0.0.1:9999".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 9999));
        assert!("127.0.0.1".parse::<WorkerAddr>().is_err());
        assert!(":80".parse::<WorkerAddr>().is_err());
        assert!("h:99999".parse::<WorkerAddr>().is_err());
    }
}
