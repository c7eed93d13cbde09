//! Pipe exchange between nodes after a segment (spec §5.5), behind a trait so the transport can
//! be memory (the in-process cluster) or sockets (the network layer).

use std::sync::mpsc::{channel, Receiver, Sender};

use super::ExecError;
use crate::graph::{NetConfig, SyncConfig, SyncType};

/// Runs a segment's syncs on this node's pipes.
pub trait Synchronizer: Send {
    /// Exchanges the first `batch_size` rows of the pipes named in `syncs`, in order. `pipes`
    /// holds every pipe's bytes, indexed like `net.pipes`.
    fn sync(
        &mut self,
        net: &NetConfig,
        node_index: u32,
        syncs: &[SyncConfig],
        pipes: &mut [&mut [u8]],
        batch_size: usize,
    ) -> Result<(), ExecError>;
}

/// The synchroniser of a single-node run: nothing to exchange (the peer skips syncs too).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSync;

impl Synchronizer for NoSync {
    fn sync(
        &mut self,
        net: &NetConfig,
        _: u32,
        syncs: &[SyncConfig],
        _: &mut [&mut [u8]],
        _: usize,
    ) -> Result<(), ExecError> {
        if net.n_nodes > 1 && !syncs.is_empty() {
            return Err(ExecError::Sync(
                "a multi-node graph needs a real synchroniser".into(),
            ));
        }
        Ok(())
    }
}

/// Ordered, reliable byte messages to and from the other nodes, addressed by node index.
pub trait Transport: Send {
    /// Sends `bytes` to node `node`.
    fn send(&mut self, node: usize, bytes: &[u8]) -> Result<(), String>;
    /// Fills `bytes` with the next bytes from node `node`.
    fn recv(&mut self, node: usize, bytes: &mut [u8]) -> Result<(), String>;
}

/// The sync rules of spec §5.5 over any [`Transport`]: per sync, per batch row, a node first
/// writes everything it sends, then reads.
pub struct MeshSync<T: Transport> {
    transport: T,
}

impl<T: Transport> MeshSync<T> {
    /// A synchroniser over `transport`.
    pub fn new(transport: T) -> MeshSync<T> {
        MeshSync { transport }
    }
}

impl<T: Transport> Synchronizer for MeshSync<T> {
    fn sync(
        &mut self,
        net: &NetConfig,
        node_index: u32,
        syncs: &[SyncConfig],
        pipes: &mut [&mut [u8]],
        batch_size: usize,
    ) -> Result<(), ExecError> {
        let n_nodes = net.n_nodes as usize;
        let me = node_index as usize;
        let err = |e: String| ExecError::Sync(e);
        for s in syncs {
            let size = net
                .pipes
                .get(s.pipe_index as usize)
                .ok_or_else(|| err(format!("sync of missing pipe {}", s.pipe_index)))?
                .size;
            let row = size.row_bytes() as usize;
            let slice = row / n_nodes;
            let pipe = pipes
                .get_mut(s.pipe_index as usize)
                .ok_or_else(|| err(format!("pipe {} is not allocated", s.pipe_index)))?;
            if batch_size * row > pipe.len() || slice * n_nodes != row {
                return Err(err(format!("pipe {} cannot hold the sync", s.pipe_index)));
            }
            for b in 0..batch_size {
                let r = &mut pipe[b * row..(b + 1) * row];
                match s.sync_type {
                    SyncType::WithRoot => {
                        if me == 0 {
                            for peer in 1..n_nodes {
                                self.transport.send(peer, r).map_err(err)?;
                            }
                        } else {
                            self.transport.recv(0, r).map_err(err)?;
                        }
                    }
                    SyncType::NodeSlices => {
                        for peer in (0..n_nodes).filter(|&p| p != me) {
                            self.transport
                                .send(peer, &r[me * slice..(me + 1) * slice])
                                .map_err(err)?;
                        }
                        for peer in (0..n_nodes).filter(|&p| p != me) {
                            self.transport
                                .recv(peer, &mut r[peer * slice..(peer + 1) * slice])
                                .map_err(err)?;
                        }
                    }
                    SyncType::NodeSlicesExceptRoot => {
                        if me == 0 {
                            for peer in 1..n_nodes {
                                self.transport
                                    .recv(peer, &mut r[peer * slice..(peer + 1) * slice])
                                    .map_err(err)?;
                            }
                        } else {
                            self.transport
                                .send(0, &r[me * slice..(me + 1) * slice])
                                .map_err(err)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// An in-memory [`Transport`]: unbounded channels between every pair of nodes.
pub struct ChannelTransport {
    to: Vec<Option<Sender<Vec<u8>>>>,
    from: Vec<Option<Receiver<Vec<u8>>>>,
}

impl ChannelTransport {
    /// One transport per node of an `n`-node mesh; element `k` belongs to node `k`.
    pub fn mesh(n: usize) -> Vec<ChannelTransport> {
        let mut nodes: Vec<ChannelTransport> = (0..n)
            .map(|_| ChannelTransport {
                to: (0..n).map(|_| None).collect(),
                from: (0..n).map(|_| None).collect(),
            })
            .collect();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let (tx, rx) = channel();
                    nodes[a].to[b] = Some(tx);
                    nodes[b].from[a] = Some(rx);
                }
            }
        }
        nodes
    }
}

impl Transport for ChannelTransport {
    fn send(&mut self, node: usize, bytes: &[u8]) -> Result<(), String> {
        self.to
            .get(node)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("no link to node {node}"))?
            .send(bytes.to_vec())
            .map_err(|_| format!("node {node} has gone"))
    }

    fn recv(&mut self, node: usize, bytes: &mut [u8]) -> Result<(), String> {
        let msg = self
            .from
            .get(node)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("no link from node {node}"))?
            .recv()
            .map_err(|_| format!("node {node} has gone"))?;
        if msg.len() != bytes.len() {
            return Err(format!(
                "node {node} sent {} bytes, expected {}",
                msg.len(),
                bytes.len()
            ));
        }
        bytes.copy_from_slice(&msg);
        Ok(())
    }
}
