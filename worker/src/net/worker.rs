//! `airllm worker`: serves distributed-llama roots, one after another (spec §5.6).
//!
//! Everything from a socket is untrusted: the codec bounds every count, the executor checks
//! every shape before allocating, and a weight message must fit inside its op's weights. Any
//! error — malformed bytes, an unsupported op, a root or peer that disconnects or stalls — is
//! logged, every socket of that session is closed, and the worker listens for the next root.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airllm_kernels::Kernels;

use super::codec::{
    read_net_config, read_node_config, read_weight_header, Control, Handshake, Limits, ReadLe, ACK,
};
use super::tcp::{accept, connect, Links};
use super::{protocol, NetError};
use crate::exec::{Executor, MeshSync};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Kernel threads per forward pass.
    pub n_threads: usize,
    /// Bounds on what a root may send.
    pub limits: Limits,
    /// How long a read or write may stall during setup and inside a forward pass, and how long
    /// peers get to connect. Waiting for the next control packet has no limit: a root may idle.
    pub io_timeout: Duration,
    /// Stop after this many root sessions (tests); `None` serves forever.
    pub max_sessions: Option<usize>,
    /// Most bytes of buffers, pipes and weights a root may make this worker hold; a config
    /// asking for more is refused before anything is allocated.
    pub max_memory: u64,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            n_threads: 1,
            limits: Limits::default(),
            io_timeout: Duration::from_secs(60),
            max_sessions: None,
            max_memory: available_memory().unwrap_or(16 << 30),
        }
    }
}

/// How one root session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The root sent the stop packet.
    Stopped,
    /// The session failed; the worker goes back to listening.
    Failed(NetError),
}

/// Serves roots on `listener` until `stop` is set (checked between sessions) or
/// `max_sessions` have been served. Returns how each session ended.
pub fn serve(listener: &TcpListener, opts: &WorkerOptions, stop: &AtomicBool) -> Vec<SessionEnd> {
    let mut ends = Vec::new();
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    // Announce once per wait, not on every 200 ms poll of `stop`.
    let mut announce = true;
    while !stop.load(Ordering::Relaxed) && opts.max_sessions.is_none_or(|m| ends.len() < m) {
        if announce {
            println!("Listening on {addr}...");
            announce = false;
        }
        let root = match accept(listener, Duration::from_millis(200)) {
            Ok(s) => s,
            Err(NetError::Protocol(_)) => continue, // accept timed out: check `stop` again
            Err(e) => {
                eprintln!("🚨 Accept error: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        println!("⭕ The root node has connected");
        announce = true;
        let end = match session(listener, root, opts) {
            Ok(()) => {
                println!("🛑 Stop signal");
                SessionEnd::Stopped
            }
            Err(e) => {
                println!("🚨 Session error: {e}");
                SessionEnd::Failed(e)
            }
        };
        println!("⭕ Network is closed");
        ends.push(end);
    }
    ends
}

/// Binds `host:port` and serves forever (the `airllm worker` command).
pub fn run(host: &str, port: u16, opts: &WorkerOptions) -> Result<(), NetError> {
    let listener = TcpListener::bind((host, port))?;
    let stop = Arc::new(AtomicBool::new(false));
    serve(&listener, opts, &stop);
    Ok(())
}

fn session(
    listener: &TcpListener,
    root: std::net::TcpStream,
    opts: &WorkerOptions,
) -> Result<(), NetError> {
    let limits = &opts.limits;
    let mut root = root;
    root.set_read_timeout(Some(opts.io_timeout))?;
    root.set_write_timeout(Some(opts.io_timeout))?;
    let hs = Handshake::read(&mut root, limits)?;
    root.write_all(&ACK.to_le_bytes())?;
    root.ack()?;
    let w = hs.worker_index as usize;
    let n_nodes = hs.n_workers as usize + 1;
    println!("⭕ nNodes: {}", hs.n_workers - 1);
    println!("⭕ NodeIndex: {w}");
    let mut links = Links::new(n_nodes);
    links.set(0, root)?;
    // Peer entry i is worker j = (i < w ? i : i + 1), node j + 1: connect to higher workers,
    // accept lower ones, in list order (the peer's rule; accepted peers are taken in order).
    for (i, peer) in hs.peers.iter().enumerate() {
        let node = if i < w { i + 1 } else { i + 2 };
        let s = if i >= w {
            println!(
                "⭕ Socket[{}]: connecting to {}:{} worker",
                i + 1,
                peer.host,
                peer.port
            );
            connect(&peer.host, peer.port, opts.io_timeout)?
        } else {
            println!(
                "⭕ Socket[{}]: wait for {}:{} worker",
                i + 1,
                peer.host,
                peer.port
            );
            accept(listener, opts.io_timeout)?
        };
        links.set(node, s)?;
    }
    links.set_timeout(Some(opts.io_timeout))?;
    println!("⭕ Network is initialized");

    let result = run_session(&mut links, w, opts);
    links.close();
    result
}

fn run_session(links: &mut Links, w: usize, opts: &WorkerOptions) -> Result<(), NetError> {
    let limits = &opts.limits;
    let root = links.stream(0)?;
    let net = read_net_config(root, limits)?;
    root.write_all(&ACK.to_le_bytes())?;
    let node = read_node_config(root, &net, limits)?;
    root.write_all(&ACK.to_le_bytes())?;
    if node.node_index as usize != w + 1 || net.n_nodes as usize != links.len() {
        return Err(protocol(format!(
            "node config for node {} of {} does not match this worker (node {} of {})",
            node.node_index,
            net.n_nodes,
            w + 1,
            links.len()
        )));
    }
    let required = net
        .pipes
        .iter()
        .chain(&node.buffers)
        .map(|b| b.size.n_bytes())
        .chain(node.ops().map(|(_, op)| op.weight_size.n_bytes()))
        .try_fold(0u64, u64::checked_add)
        .ok_or_else(|| protocol("the configs ask for more memory than can be counted"))?;
    println!("📀 RequiredMemory: {} MB", required / (1024 * 1024));
    if required > opts.max_memory {
        return Err(protocol(format!(
            "the configs need {} MB, more than this worker may use ({} MB)",
            required / (1024 * 1024),
            opts.max_memory / (1024 * 1024)
        )));
    }
    let mut exec = Executor::new(&net, &node, opts.n_threads, Kernels::current())
        .map_err(|e| protocol(e.to_string()))?;
    println!("🧠 CPU: {}", exec.kernels().imp());

    // Weights, streamed into the executor in bounded chunks.
    let mut chunk = vec![0u8; 1 << 20];
    let root = links.stream(0)?;
    while let Some(h) = read_weight_header(root, limits)? {
        let mut done = 0u64;
        while done < h.n_bytes {
            let n = (h.n_bytes - done).min(chunk.len() as u64) as usize;
            root.read_exact(&mut chunk[..n])?;
            let offset = usize::try_from(h.offset + done)
                .map_err(|_| protocol("weight offset does not fit in memory"))?;
            exec.load_weight(&h.op_name, h.op_index, offset, &chunk[..n])
                .map_err(|e| protocol(e.to_string()))?;
            done += n as u64;
        }
        println!(
            "💿 Loaded {} {}, {} kB",
            h.op_name,
            h.op_index,
            h.n_bytes / 1024
        );
    }
    drop(chunk);
    let missing = exec.missing_weights();
    if !missing.is_empty() {
        return Err(protocol(format!(
            "the root sent no weights for {} op(s), first: {}",
            missing.len(),
            missing[0]
        )));
    }
    exec.prepare().map_err(|e| protocol(e.to_string()))?;
    root.write_all(&ACK.to_le_bytes())?;
    println!("💿 Weights loaded");

    loop {
        // A root may idle between prompts: no timeout while waiting for the next packet.
        let root = links.stream(0)?;
        root.set_read_timeout(None)?;
        let c = Control::read(root, &net)?;
        root.set_read_timeout(Some(opts.io_timeout))?;
        if c.batch_size == 0 {
            return Ok(());
        }
        let t = Instant::now();
        {
            let pos = exec
                .pipe_f32(0)
                .map_err(|e| protocol(format!("POS pipe: {e}")))?;
            if pos.len() < c.batch_size as usize {
                return Err(protocol("POS pipe is shorter than the batch"));
            }
            for (b, p) in pos.iter_mut().take(c.batch_size as usize).enumerate() {
                *p = (c.position as u64 + b as u64) as f32;
            }
        }
        links.reset_counters();
        exec.forward(c.batch_size as usize, &mut MeshSync::new(&mut *links))
            .map_err(|e| protocol(format!("execution error: {e}")))?;
        println!(
            "🔷 pos {} batch {} | {:.1} ms, sync {:.1} ms | sent {} kB, recv {} kB",
            c.position,
            c.batch_size,
            t.elapsed().as_secs_f64() * 1e3,
            links.busy.as_secs_f64() * 1e3,
            links.sent / 1024,
            links.received / 1024
        );
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (Linux); `None` elsewhere.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}
