//! Rust root + Rust workers over TCP on 127.0.0.1 (ephemeral ports): the same bits as the
//! in-process simulation, node counts agreeing with F32 sync, and a worker that survives roots
//! that vanish mid-config, mid-weights and mid-inference. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use airllm_kernels::Kernels;
use airllm_worker::float_type::FloatType;
use airllm_worker::graph::{build_llm_net, N_BATCHES};
use airllm_worker::infer::{default_sync_type, Cluster, ClusterOptions, LocalCluster};
use airllm_worker::model::gen::{generate, GenArch, GenOptions, Preset};
use airllm_worker::model::ModelFile;
use airllm_worker::net::codec::{
    net_config_bytes, node_config_bytes, Control, Handshake, Limits, ACK,
};
use airllm_worker::net::root::{RemoteCluster, RootOptions, WorkerAddr};
use airllm_worker::net::worker::{serve, SessionEnd, WorkerOptions};
use airllm_worker::sample::argmax;

const TIMEOUT: Duration = Duration::from_secs(20);

fn model(dir: &Path, arch: GenArch, weights: FloatType) -> Arc<ModelFile> {
    let path = dir.join(format!("{arch}-{weights}.m"));
    if !path.exists() {
        let opts = GenOptions {
            preset: Preset::Tiny,
            arch,
            weight_type: weights,
            seed: 7,
            model_path: path.clone(),
            tokenizer_path: None,
        };
        generate(&opts, &mut |_, _| {}).unwrap();
    }
    Arc::new(ModelFile::open(&path, Some(64)).unwrap())
}

/// A worker serving `sessions` roots on its own thread.
struct Worker {
    addr: WorkerAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<SessionEnd>>>,
}

impl Worker {
    fn start(sessions: usize) -> Worker {
        Worker::start_with_timeout(sessions, Duration::from_secs(5))
    }

    fn start_with_timeout(sessions: usize, io_timeout: Duration) -> Worker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let opts = WorkerOptions {
            n_threads: 2,
            limits: Limits::default(),
            io_timeout,
            max_sessions: Some(sessions),
            max_memory: 1 << 30,
        };
        let handle = std::thread::spawn(move || serve(&listener, &opts, &s));
        Worker {
            addr: WorkerAddr {
                host: "127.0.0.1".into(),
                port,
            },
            stop,
            handle: Some(handle),
        }
    }

    /// Waits (bounded) for the worker to finish its sessions and returns how each ended.
    fn finish(mut self) -> Vec<SessionEnd> {
        let h = self.handle.take().unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !h.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "worker did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        h.join().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn root_opts(weights: FloatType) -> RootOptions {
    RootOptions {
        n_threads: 2,
        sync_type: default_sync_type(weights),
        kernels: Kernels::current(),
        io_timeout: TIMEOUT,
    }
}

/// Greedy decoding from token 1 for `steps` positions: the tokens and every step's logits bits.
fn run(c: &mut dyn Cluster, prompt: &[u32], steps: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let nb = c.n_batches();
    let prefill = &prompt[..prompt.len() - 1];
    for (i, chunk) in prefill.chunks(nb).enumerate() {
        c.forward(chunk, i * nb).unwrap();
    }
    let mut token = *prompt.last().unwrap();
    let (mut tokens, mut logits) = (Vec::new(), Vec::new());
    for pos in prefill.len()..prefill.len() + steps {
        c.forward(&[token], pos).unwrap();
        let l = c.logits(0).unwrap();
        logits.push(l.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        token = argmax(l);
        tokens.push(token);
    }
    (tokens, logits)
}

const PROMPT: [u32; 5] = [1, 40, 200, 7, 311];

fn local(m: &Arc<ModelFile>, n_nodes: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let w = m.header().weight_type;
    let opts = ClusterOptions {
        n_nodes,
        ..ClusterOptions::single(2, w)
    };
    let mut c = LocalCluster::new(Arc::clone(m), &opts, &mut |_, _| {}).unwrap();
    run(&mut c, &PROMPT, 12)
}

fn remote(m: &Arc<ModelFile>, n_nodes: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let workers: Vec<Worker> = (1..n_nodes).map(|_| Worker::start(1)).collect();
    let addrs: Vec<WorkerAddr> = workers.iter().map(|w| w.addr.clone()).collect();
    let opts = root_opts(m.header().weight_type);
    let mut c = RemoteCluster::connect(Arc::clone(m), &addrs, &opts, &mut |_, _| {}).unwrap();
    let out = run(&mut c, &PROMPT, 12);
    c.stop();
    for w in workers {
        let ends = w.finish();
        assert!(matches!(ends[..], [SessionEnd::Stopped]), "{ends:?}");
    }
    out
}

#[test]
fn tcp_cluster_matches_the_in_process_simulation_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for arch in [GenArch::Llama, GenArch::Qwen3Moe] {
        let m = model(dir.path(), arch, FloatType::Q40);
        for n in [2, 4] {
            let (lt, ll) = local(&m, n);
            let (rt, rl) = remote(&m, n);
            assert_eq!(rt, lt, "{arch} q40/q80, {n} nodes: tokens");
            assert!(rl == ll, "{arch} q40/q80, {n} nodes: logits bits differ");
        }
    }
}

#[test]
fn f32_sync_gives_the_single_node_tokens_on_every_node_count() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), GenArch::Llama, FloatType::F32);
    let (one, _) = local(&m, 1);
    for n in [2, 4] {
        let (tokens, _) = remote(&m, n);
        assert_eq!(tokens, one, "f32, {n} nodes");
    }
}

/// Connects as a root would and stops after `stage` steps of the protocol.
fn rogue_root(addr: &WorkerAddr, m: &ModelFile, stage: usize) {
    let mut s = TcpStream::connect((addr.host.as_str(), addr.port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let hs = Handshake {
        n_workers: 1,
        worker_index: 0,
        peers: vec![],
    };
    s.write_all(&hs.to_bytes()).unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    s.write_all(&ACK.to_le_bytes()).unwrap();
    let mut h = m.header().clone();
    if stage == 3 {
        // Configs whose KV caches alone need 2 GiB: refused before anything is allocated.
        h.seq_len = 1 << 20;
    }
    let llm = build_llm_net(&h, 2, N_BATCHES, default_sync_type(h.weight_type)).unwrap();
    let net = net_config_bytes(&llm.net);
    if stage == 0 {
        s.write_all(&net[..net.len() / 2]).unwrap(); // mid-config
        return;
    }
    s.write_all(&net).unwrap();
    s.read_exact(&mut ack).unwrap();
    s.write_all(&node_config_bytes(&llm.nodes[1])).unwrap();
    s.read_exact(&mut ack).unwrap();
    if stage == 3 {
        // The worker refuses these configs after its ACK; it closes the connection.
        let _ = s.read(&mut ack);
        return;
    }
    // One weight message, cut in the middle of its payload (mid-weights) ...
    let name = b"block_matmul_q\0";
    s.write_all(&(name.len() as u32).to_le_bytes()).unwrap();
    s.write_all(name).unwrap();
    s.write_all(&0u32.to_le_bytes()).unwrap();
    s.write_all(&0u64.to_le_bytes()).unwrap();
    s.write_all(&1000u64.to_le_bytes()).unwrap();
    s.write_all(&[0u8; 500]).unwrap();
    if stage == 1 {
        return;
    }
    // ... or a hostile one: an offset past the op's weights.
    s.write_all(&[0u8; 500]).unwrap();
    s.write_all(&(name.len() as u32).to_le_bytes()).unwrap();
    s.write_all(name).unwrap();
    s.write_all(&0u32.to_le_bytes()).unwrap();
    s.write_all(&(1u64 << 30).to_le_bytes()).unwrap();
    s.write_all(&16u64.to_le_bytes()).unwrap();
    s.write_all(&[0u8; 16]).unwrap();
}

/// A root that completes the setup with real weights, then sends one bad control packet.
fn rogue_root_control(addr: &WorkerAddr, m: &Arc<ModelFile>, bad: Control) {
    let opts = root_opts(m.header().weight_type);
    let mut c = RemoteCluster::connect(
        Arc::clone(m),
        std::slice::from_ref(addr),
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    // `forward` refuses such packets, so write the bytes straight to the worker's socket.
    c.send_raw_to_worker(1, &bad.to_bytes()).unwrap();
    c.abandon();
}

#[test]
fn worker_survives_roots_that_vanish_then_serves_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), GenArch::Llama, FloatType::Q40);
    let worker = Worker::start(8);
    for stage in 0..4 {
        rogue_root(&worker.addr, &m, stage);
    }
    // Mid-inference: a real root that disappears after one forward pass.
    {
        let opts = root_opts(FloatType::Q40);
        let mut c = RemoteCluster::connect(
            Arc::clone(&m),
            std::slice::from_ref(&worker.addr),
            &opts,
            &mut |_, _| {},
        )
        .unwrap();
        c.forward(&[1, 2, 3], 0).unwrap();
        c.abandon();
    }
    // A root that sends a control packet past the context and one with a batch above nBatches.
    for bad in [
        Control {
            position: 1 << 20,
            batch_size: 1,
        },
        Control {
            position: 0,
            batch_size: 200,
        },
    ] {
        rogue_root_control(&worker.addr, &m, bad);
    }
    // A good root afterwards gets the same bits as the simulation.
    let (lt, _) = local(&m, 2);
    let opts = root_opts(FloatType::Q40);
    let mut c = RemoteCluster::connect(
        Arc::clone(&m),
        std::slice::from_ref(&worker.addr),
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    let (rt, _) = run(&mut c, &PROMPT, 12);
    c.stop();
    assert_eq!(rt, lt);
    let ends = worker.finish();
    assert_eq!(ends.len(), 8);
    for e in &ends[..7] {
        assert!(matches!(e, SessionEnd::Failed(_)), "{ends:?}");
    }
    let SessionEnd::Failed(e) = &ends[3] else {
        unreachable!()
    };
    assert!(
        e.to_string().contains("more than this worker may use"),
        "{e}"
    );
    assert!(matches!(ends[7], SessionEnd::Stopped), "{ends:?}");
}

/// A root that connects and then says nothing, and one that stops in the middle of the
/// handshake, cost the worker one I/O timeout each, not a hang; a good root follows.
#[test]
fn stalled_roots_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), GenArch::Llama, FloatType::Q40);
    let worker = Worker::start_with_timeout(3, Duration::from_millis(500));
    let silent = TcpStream::connect((worker.addr.host.as_str(), worker.addr.port)).unwrap();
    let mut half = TcpStream::connect((worker.addr.host.as_str(), worker.addr.port)).unwrap();
    half.write_all(&1u32.to_le_bytes()).unwrap(); // W, then nothing more
    let t = std::time::Instant::now();
    let opts = root_opts(FloatType::Q40);
    let mut c = RemoteCluster::connect(
        Arc::clone(&m),
        std::slice::from_ref(&worker.addr),
        &opts,
        &mut |_, _| {},
    )
    .unwrap();
    c.forward(&[1], 0).unwrap();
    c.stop();
    assert!(
        t.elapsed() < TIMEOUT,
        "the stalled roots held the worker for {:?}",
        t.elapsed()
    );
    let ends = worker.finish();
    assert!(
        matches!(
            ends[..],
            [
                SessionEnd::Failed(_),
                SessionEnd::Failed(_),
                SessionEnd::Stopped
            ]
        ),
        "{ends:?}"
    );
    drop((silent, half));
}
