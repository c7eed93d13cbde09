//! TCP links between nodes, the socket [`Transport`] for the sync steps, and timed connect /
//! accept so a missing peer is an error, not a hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{protocol, NetError};
use crate::exec::Transport;

/// One socket per other node, indexed by node index (`None` for this node itself), with
/// traffic counters for the per-token report.
pub struct Links {
    streams: Vec<Option<TcpStream>>,
    /// Bytes written since the counters were last reset.
    pub sent: u64,
    /// Bytes read since the counters were last reset.
    pub received: u64,
    /// Time spent inside socket reads and writes since the last reset.
    pub busy: Duration,
}

impl Links {
    /// Links of a node in an `n_nodes` cluster, all empty.
    pub fn new(n_nodes: usize) -> Links {
        Links {
            streams: (0..n_nodes).map(|_| None).collect(),
            sent: 0,
            received: 0,
            busy: Duration::ZERO,
        }
    }

    /// Nodes in the cluster (this one included).
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Sets the socket to node `node` (latency options applied).
    pub fn set(&mut self, node: usize, s: TcpStream) -> Result<(), NetError> {
        s.set_nodelay(true)?;
        *self
            .streams
            .get_mut(node)
            .ok_or_else(|| protocol(format!("no node {node} in this cluster")))? = Some(s);
        Ok(())
    }

    /// The socket to node `node`.
    pub fn stream(&mut self, node: usize) -> Result<&mut TcpStream, NetError> {
        self.streams
            .get_mut(node)
            .and_then(Option::as_mut)
            .ok_or_else(|| protocol(format!("no link to node {node}")))
    }

    /// Read timeout on every socket (`None` waits forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> Result<(), NetError> {
        for s in self.streams.iter().flatten() {
            s.set_read_timeout(t)?;
            s.set_write_timeout(t)?;
        }
        Ok(())
    }

    /// Zeroes the traffic counters.
    pub fn reset_counters(&mut self) {
        self.sent = 0;
        self.received = 0;
        self.busy = Duration::ZERO;
    }

    /// Closes every socket.
    pub fn close(&mut self) {
        for s in self.streams.iter_mut() {
            if let Some(s) = s.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Transport for &mut Links {
    fn send(&mut self, node: usize, bytes: &[u8]) -> Result<(), String> {
        let t = Instant::now();
        let r = self
            .stream(node)
            .map_err(|e| e.to_string())?
            .write_all(bytes)
            .map_err(|e| format!("send to node {node}: {e}"));
        self.busy += t.elapsed();
        self.sent += bytes.len() as u64;
        r
    }

    fn recv(&mut self, node: usize, bytes: &mut [u8]) -> Result<(), String> {
        let t = Instant::now();
        let r = self
            .stream(node)
            .map_err(|e| e.to_string())?
            .read_exact(bytes)
            .map_err(|e| format!("receive from node {node}: {e}"));
        self.busy += t.elapsed();
        self.received += bytes.len() as u64;
        r
    }
}

/// Connects to `host:port`, retrying until `timeout` (the peer may still be starting).
pub fn connect(host: &str, port: u32, timeout: Duration) -> Result<TcpStream, NetError> {
    let port = u16::try_from(port).map_err(|_| protocol(format!("port {port} is out of range")))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| protocol(format!("cannot resolve {host}:{port}: {e}")))?
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        let mut last = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, Duration::from_secs(2).min(timeout)) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        if Instant::now() >= deadline {
            return Err(protocol(format!(
                "cannot connect to {host}:{port}: {}",
                last.map_or_else(|| "no address".to_string(), |e| e.to_string())
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Accepts one connection, or fails after `timeout`.
pub fn accept(listener: &TcpListener, timeout: Duration) -> Result<TcpStream, NetError> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let r = loop {
        match listener.accept() {
            Ok((s, _)) => break Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    break Err(protocol("timed out waiting for a peer to connect"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => break Err(e.into()),
        }
    };
    listener.set_nonblocking(false)?;
    let s = r?;
    s.set_nonblocking(false)?;
    Ok(s)
}
