//! `airllm worker` processes driven by `airllm inference --workers` on 127.0.0.1: the text of a
//! 3-node TCP cluster equals the in-process 3-node simulation, and the workers, killed by pid at
//! the end, keep serving one root after another. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn airllm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airllm"))
        .args(args)
        .output()
        .expect("airllm runs")
}

/// A worker process, killed on drop.
struct WorkerProc {
    child: Child,
    port: u16,
}

impl WorkerProc {
    /// Starts `airllm worker` on a free port and waits (bounded) until it prints that it listens.
    /// Readiness is read from its output: a TCP probe would be taken for a root.
    fn start() -> WorkerProc {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_airllm"))
            .args([
                "worker",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--nthreads",
                "1",
                "--io-timeout",
                "10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("Listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20));
        let w = WorkerProc { child, port };
        ready.expect("worker did not start listening");
        w
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn generated_text(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn workers_over_tcp_give_the_simulated_cluster_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = airllm(&[
        "gen-model",
        "--preset",
        "tiny",
        "--arch",
        "llama",
        "--weights",
        "q40",
        "--seed",
        "5",
        "--out",
        d,
    ]);
    assert!(out.status.success());
    let m = format!("{d}/tiny-llama-q40.m");
    let t = format!("{d}/tiny-llama-q40.t");
    let common = [
        "inference",
        "--model",
        &m,
        "--tokenizer",
        &t,
        "--prompt",
        "The quick brown fox",
        "--steps",
        "48",
        "--temperature",
        "0",
        "--nthreads",
        "1",
    ];
    let mut sim = common.to_vec();
    sim.extend(["--nodes", "4"]);
    let want = generated_text(&airllm(&sim));
    assert!(
        want.len() > "The quick brown fox".len(),
        "no text generated: {want:?}"
    );

    let workers: Vec<WorkerProc> = (0..3).map(|_| WorkerProc::start()).collect();
    let addrs: Vec<String> = workers.iter().map(WorkerProc::addr).collect();
    for round in 0..2 {
        let mut root = common.to_vec();
        root.push("--workers");
        root.extend(addrs.iter().map(String::as_str));
        let got = generated_text(&airllm(&root));
        assert_eq!(
            got, want,
            "round {round}: TCP cluster text differs from the simulation"
        );
    }
}
