//! The bytes of every message (spec §5.2–§5.5), little-endian, in the peer's 64-bit layouts.
//!
//! Readers take any [`Read`] and a [`Limits`]; each count is checked against its limit before a
//! vector is reserved, each string length before it is read, so a hostile peer can make a
//! reader fail but never allocate without bound or panic.

use std::io::{Read, Write};

use super::{protocol, NetError};
use crate::graph::{
    NamedSize, NetConfig, NodeConfig, OpCode, OpConfig, OpParams, PointerConfig, SegmentConfig,
    Size3D, SyncConfig, SyncType,
};

/// The acknowledgement word, `0x0167AAAA`.
pub const ACK: u32 = 23_571_114;

/// Upper bounds on what a peer may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Workers in a cluster (handshake `W`).
    pub max_workers: u32,
    /// Bytes of a host name or op/pipe/buffer name, NUL included.
    pub max_name: u32,
    /// Pipes in the net config.
    pub max_pipes: u32,
    /// Pre-sync entries in the net config.
    pub max_pre_syncs: u32,
    /// Buffers in a node config.
    pub max_buffers: u32,
    /// Segments in a node config.
    pub max_segments: u32,
    /// Ops in one segment.
    pub max_ops: u32,
    /// Syncs in one segment.
    pub max_syncs: u32,
    /// Bytes of one pipe, buffer or op weight.
    pub max_tensor_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_workers: 1023,
            max_name: 256,
            max_pipes: 64,
            max_pre_syncs: 64,
            max_buffers: 8192,
            max_segments: 8192,
            max_ops: 1024,
            max_syncs: 64,
            max_tensor_bytes: 1 << 40,
        }
    }
}

/// Little-endian reads on any byte source.
pub trait ReadLe: Read {
    /// One `u32`.
    fn u32_le(&mut self) -> Result<u32, NetError> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// One `u64`.
    fn u64_le(&mut self) -> Result<u64, NetError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A count, refused when above `max`.
    fn count(&mut self, what: &str, max: u32) -> Result<u32, NetError> {
        let n = self.u32_le()?;
        if n > max {
            return Err(protocol(format!("{what} {n} is above the limit {max}")));
        }
        Ok(n)
    }

    /// The ACK word.
    fn ack(&mut self) -> Result<(), NetError> {
        match self.u32_le()? {
            ACK => Ok(()),
            v => Err(protocol(format!("invalid ack packet {v:#010x}"))),
        }
    }

    /// A wire string: `u32` length including the NUL, then the bytes, the last one NUL.
    fn string(&mut self, max: u32) -> Result<String, NetError> {
        let len = self.u32_le()?;
        if len == 0 || len > max {
            return Err(protocol(format!("string length {len} is not in 1..={max}")));
        }
        let mut b = vec![0u8; len as usize];
        self.read_exact(&mut b)?;
        string_from_nul_terminated(b)
    }

    /// A 40-byte `NnSize3D`, with its derived fields checked and its byte count bounded.
    fn size3d(&mut self, limits: &Limits) -> Result<Size3D, NetError> {
        let mut b = [0u8; 40];
        self.read_exact(&mut b)?;
        let s = Size3D::from_bytes(&b)?;
        if s.n_bytes() > limits.max_tensor_bytes {
            return Err(protocol(format!(
                "a tensor of {} bytes is above the limit {}",
                s.n_bytes(),
                limits.max_tensor_bytes
            )));
        }
        Ok(s)
    }

    /// A 12-byte `NnPointerConfig`.
    fn pointer(&mut self) -> Result<PointerConfig, NetError> {
        let mut b = [0u8; 12];
        self.read_exact(&mut b)?;
        Ok(PointerConfig::from_bytes(&b)?)
    }
}

impl<R: Read + ?Sized> ReadLe for R {}

/// Checks the terminating NUL (and that there is no other) and the UTF-8.
fn string_from_nul_terminated(mut b: Vec<u8>) -> Result<String, NetError> {
    if b.pop() != Some(0) || b.contains(&0) {
        return Err(protocol("string is not NUL-terminated"));
    }
    String::from_utf8(b).map_err(|_| protocol("string is not UTF-8"))
}

fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Appends a wire string (length with NUL, bytes, NUL).
pub fn put_string(v: &mut Vec<u8>, s: &str) {
    put_u32(v, s.len() as u32 + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}

/// One entry of the handshake's peer list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// Host as the root wrote it in `--workers`.
    pub host: String,
    /// TCP port.
    pub port: u32,
}

/// What the root tells worker `w` when it connects (spec §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Number of workers `W` (the worker will own `W` sockets: root + `W − 1` peers).
    pub n_workers: u32,
    /// This worker's 0-based position in `--workers`; its node index is `w + 1`.
    pub worker_index: u32,
    /// The other workers, in `--workers` order without this one.
    pub peers: Vec<PeerAddr>,
}

impl Handshake {
    /// The root → worker bytes (without the ACKs that follow).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        put_u32(&mut v, self.n_workers);
        put_u32(&mut v, self.worker_index);
        for p in &self.peers {
            put_string(&mut v, &p.host);
            put_u32(&mut v, p.port);
        }
        v
    }

    /// Reads the handshake, bounded by `limits`.
    pub fn read(r: &mut impl Read, limits: &Limits) -> Result<Handshake, NetError> {
        let n_workers = r.count("number of workers", limits.max_workers)?;
        let worker_index = r.u32_le()?;
        if n_workers == 0 || worker_index >= n_workers {
            return Err(protocol(format!(
                "worker index {worker_index} is not below the worker count {n_workers}"
            )));
        }
        let mut peers = Vec::with_capacity(n_workers as usize - 1);
        for _ in 1..n_workers {
            let host = r.string(limits.max_name)?;
            let port = r.u32_le()?;
            if port == 0 || port > u32::from(u16::MAX) {
                return Err(protocol(format!("peer port {port} is not a TCP port")));
            }
            peers.push(PeerAddr { host, port });
        }
        Ok(Handshake {
            n_workers,
            worker_index,
            peers,
        })
    }
}

/// `NnNetConfig` bytes, starting with its ACK (spec §5.3).
pub fn net_config_bytes(c: &NetConfig) -> Vec<u8> {
    let mut v = Vec::new();
    put_u32(&mut v, ACK);
    put_u32(&mut v, c.n_batches);
    put_u32(&mut v, c.n_nodes);
    put_u32(&mut v, c.pipes.len() as u32);
    for p in &c.pipes {
        v.extend_from_slice(&p.size.to_bytes());
        put_string(&mut v, &p.name);
    }
    put_u32(&mut v, c.pre_syncs.len() as u32);
    for &p in &c.pre_syncs {
        put_u32(&mut v, p);
    }
    v
}

/// Reads an `NnNetConfig` (its leading ACK included) and checks its indices.
pub fn read_net_config(r: &mut impl Read, limits: &Limits) -> Result<NetConfig, NetError> {
    r.ack()?;
    let n_batches = r.u32_le()?;
    if !(1..=255).contains(&n_batches) {
        return Err(protocol(format!("nBatches {n_batches} is not in 1..=255")));
    }
    let n_nodes = r.count("nNodes", limits.max_workers + 1)?;
    if n_nodes == 0 {
        return Err(protocol("nNodes is 0"));
    }
    let n_pipes = r.count("nPipes", limits.max_pipes)?;
    let pipes = read_named(r, n_pipes, limits)?;
    let n_pre = r.count("nPreSyncs", limits.max_pre_syncs)?;
    let mut pre_syncs = Vec::with_capacity(n_pre as usize);
    for _ in 0..n_pre {
        let p = r.u32_le()?;
        if p >= n_pipes {
            return Err(protocol(format!("pre-sync pipe {p} does not exist")));
        }
        pre_syncs.push(p);
    }
    Ok(NetConfig {
        n_batches,
        n_nodes,
        pipes,
        pre_syncs,
    })
}

fn read_named(r: &mut impl Read, n: u32, limits: &Limits) -> Result<Vec<NamedSize>, NetError> {
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let size = r.size3d(limits)?;
        let name = r.string(limits.max_name)?;
        v.push(NamedSize { name, size });
    }
    Ok(v)
}

/// `NnNodeConfig` bytes, starting with its ACK (spec §5.3).
pub fn node_config_bytes(c: &NodeConfig) -> Vec<u8> {
    let mut v = Vec::new();
    put_u32(&mut v, ACK);
    put_u32(&mut v, c.node_index);
    put_u32(&mut v, c.buffers.len() as u32);
    put_u32(&mut v, c.segments.len() as u32);
    for b in &c.buffers {
        v.extend_from_slice(&b.size.to_bytes());
        put_string(&mut v, &b.name);
    }
    for s in &c.segments {
        put_u32(&mut v, s.syncs.len() as u32);
        put_u32(&mut v, s.ops.len() as u32);
        for sync in &s.syncs {
            put_u32(&mut v, sync.pipe_index);
            put_u32(&mut v, sync.sync_type as u32);
        }
        for op in &s.ops {
            let cfg = op.params.to_bytes();
            put_u32(&mut v, op.code.code());
            put_u32(&mut v, op.index);
            v.extend_from_slice(&op.weight_size.to_bytes());
            put_u32(&mut v, cfg.len() as u32);
            put_string(&mut v, &op.name);
            v.extend_from_slice(&op.input.to_bytes());
            v.extend_from_slice(&op.output.to_bytes());
            v.extend_from_slice(&cfg);
        }
    }
    v
}

/// Reads an `NnNodeConfig` (its leading ACK included). Pipe indices are checked against
/// `net`; buffer indices against the config's own buffers; each op config must have its op's
/// struct size. Deeper checks (shapes an op needs) belong to the executor that runs it.
pub fn read_node_config(
    r: &mut impl Read,
    net: &NetConfig,
    limits: &Limits,
) -> Result<NodeConfig, NetError> {
    r.ack()?;
    let node_index = r.u32_le()?;
    if node_index >= net.n_nodes {
        return Err(protocol(format!(
            "node index {node_index} is not below nNodes {}",
            net.n_nodes
        )));
    }
    let n_buffers = r.count("nBuffers", limits.max_buffers)?;
    let n_segments = r.count("nSegments", limits.max_segments)?;
    let buffers = read_named(r, n_buffers, limits)?;
    let n_pipes = net.pipes.len() as u32;
    let mut segments = Vec::with_capacity(n_segments as usize);
    for _ in 0..n_segments {
        let n_syncs = r.count("nSyncs", limits.max_syncs)?;
        let n_ops = r.count("nOps", limits.max_ops)?;
        let mut syncs = Vec::with_capacity(n_syncs as usize);
        for _ in 0..n_syncs {
            let pipe_index = r.u32_le()?;
            if pipe_index >= n_pipes {
                return Err(protocol(format!("sync pipe {pipe_index} does not exist")));
            }
            let sync_type = SyncType::from_code(r.u32_le()?)?;
            syncs.push(SyncConfig {
                pipe_index,
                sync_type,
            });
        }
        let mut ops = Vec::with_capacity(n_ops as usize);
        for _ in 0..n_ops {
            ops.push(read_op(r, n_pipes, n_buffers, limits)?);
        }
        segments.push(SegmentConfig { ops, syncs });
    }
    Ok(NodeConfig {
        node_index,
        buffers,
        segments,
    })
}

fn read_op(
    r: &mut impl Read,
    n_pipes: u32,
    n_buffers: u32,
    limits: &Limits,
) -> Result<OpConfig, NetError> {
    let code = OpCode::from_code(r.u32_le()?)?;
    let index = r.u32_le()?;
    let weight_size = r.size3d(limits)?;
    let config_size = r.u32_le()?;
    let expected = OpParams::wire_size(code);
    if config_size as usize != expected {
        return Err(protocol(format!(
            "{code} config has {config_size} bytes, expected {expected}"
        )));
    }
    let name = r.string(limits.max_name)?;
    let input = r.pointer()?;
    let output = r.pointer()?;
    for p in [&input, &output] {
        let (n, what) = match p.source {
            crate::graph::PointerSource::Pipe => (n_pipes, "pipe"),
            crate::graph::PointerSource::Buffer => (n_buffers, "buffer"),
        };
        if p.index >= n {
            return Err(protocol(format!(
                "op {name}: {what} {} does not exist",
                p.index
            )));
        }
    }
    let mut cfg = [0u8; 128];
    let cfg = &mut cfg[..expected];
    r.read_exact(cfg)?;
    let params = OpParams::from_bytes(code, cfg)?;
    Ok(OpConfig {
        code,
        name,
        index,
        input,
        output,
        weight_size,
        params,
    })
}

/// The header of one weight message (spec §5.4); its `n_bytes` payload follows on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightHeader {
    /// Op name.
    pub op_name: String,
    /// Op (layer) index.
    pub op_index: u32,
    /// Byte offset inside the op's weight buffer.
    pub offset: u64,
    /// Payload bytes.
    pub n_bytes: u64,
}

/// The bytes before a weight message's payload.
pub fn weight_header_bytes(h: &WeightHeader) -> Vec<u8> {
    let mut v = Vec::new();
    put_string(&mut v, &h.op_name);
    put_u32(&mut v, h.op_index);
    put_u64(&mut v, h.offset);
    put_u64(&mut v, h.n_bytes);
    v
}

/// The end-of-weights marker, `u32 0`.
pub const END_OF_WEIGHTS: [u8; 4] = [0; 4];

/// Reads the next weight message header, or `None` at the end marker. The caller checks
/// `offset + n_bytes` against the op's weight size before reading the payload.
pub fn read_weight_header(
    r: &mut impl Read,
    limits: &Limits,
) -> Result<Option<WeightHeader>, NetError> {
    let name_size = r.u32_le()?;
    if name_size == 0 {
        return Ok(None);
    }
    if name_size > limits.max_name {
        return Err(protocol(format!(
            "weight name of {name_size} bytes is too long"
        )));
    }
    let mut b = vec![0u8; name_size as usize];
    r.read_exact(&mut b)?;
    let op_name = string_from_nul_terminated(b)?;
    let op_index = r.u32_le()?;
    let offset = r.u64_le()?;
    let n_bytes = r.u64_le()?;
    if n_bytes > limits.max_tensor_bytes || offset > limits.max_tensor_bytes {
        return Err(protocol(format!(
            "weight {op_name} {op_index}: offset {offset} + {n_bytes} bytes is above the limit"
        )));
    }
    Ok(Some(WeightHeader {
        op_name,
        op_index,
        offset,
        n_bytes,
    }))
}

/// A forward-pass control packet (spec §5.5); `batch_size == 0` means stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Position of batch row 0.
    pub position: u32,
    /// Rows in this pass.
    pub batch_size: u32,
}

impl Control {
    /// The 8 wire bytes.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.position.to_le_bytes());
        b[4..].copy_from_slice(&self.batch_size.to_le_bytes());
        b
    }

    /// Reads a packet and checks it against the net config: `batch_size ≤ nBatches`, and the
    /// positions must fit `seq_len` (checked by the caller, which knows it).
    pub fn read(r: &mut impl Read, net: &NetConfig) -> Result<Control, NetError> {
        let position = r.u32_le()?;
        let batch_size = r.u32_le()?;
        if batch_size > net.n_batches {
            return Err(protocol(format!(
                "batch size {batch_size} is above nBatches {}",
                net.n_batches
            )));
        }
        Ok(Control {
            position,
            batch_size,
        })
    }
}

/// Writes all of `bytes`, for symmetry with the readers.
pub fn write_all(w: &mut impl Write, bytes: &[u8]) -> Result<(), NetError> {
    w.write_all(bytes)?;
    Ok(())
}
