//! `airllm`: run a distributed-llama model file locally or as the root of a cluster, serve as a
//! worker for distributed-llama roots, generate test models, or try a demo.
//!
//! Flags follow the peer's `dllama` where they overlap.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airllm_kernels::{Impl, Kernels};
use airllm_worker::float_type::FloatType;
use airllm_worker::infer::{default_sync_type, generate, Cluster, ClusterOptions, LocalCluster};
use airllm_worker::model::gen::{self, GenArch, GenOptions, Preset};
use airllm_worker::model::ModelFile;
use airllm_worker::net::root::{RemoteCluster, RootOptions, WorkerAddr};
use airllm_worker::net::worker::{self as net_worker, WorkerOptions};
use airllm_worker::sample::Sampler;
use airllm_worker::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "airllm",
    version,
    about = "distributed-llama compatible LLM inference in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt and print prefill/decode speed.
    Inference(InferenceArgs),
    /// Write a random model (and its byte-level tokenizer) for tests and benchmarks.
    GenModel(GenModelArgs),
    /// Generate a small model into a cache folder (once) and run inference on it.
    Demo(DemoArgs),
    /// Serve distributed-llama roots (C++ `dllama` or `airllm inference --workers`) as a worker.
    Worker(WorkerArgs),
}

#[derive(Args)]
struct WorkerArgs {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 9990)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Kernel threads [default: all cores].
    #[arg(long)]
    nthreads: Option<usize>,
    /// Kernel implementation [default: the fastest this CPU supports].
    #[arg(long)]
    kernels: Option<String>,
    /// Seconds a read or write may stall during setup and inside a forward pass before the
    /// session is dropped (waiting for the next token has no limit).
    #[arg(long, default_value_t = 60)]
    io_timeout: u64,
    /// Most memory (MB) a root's configs may ask for [default: the memory available now].
    #[arg(long)]
    max_memory_mb: Option<u64>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Top-p (nucleus) cut-off; outside (0, 1) disables it.
    #[arg(long, default_value_t = 0.9)]
    topp: f32,
    /// Sampler seed [default: the current time].
    #[arg(long)]
    seed: Option<u64>,
    /// Threads per node [default: all cores].
    #[arg(long)]
    nthreads: Option<usize>,
    /// Lower the model's context length (smaller KV cache and RoPE tables).
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Type of the exchanged partial sums: q80 or f32 [default: q80 for Q40 weights, else f32].
    #[arg(long, value_parser = parse_sync_type)]
    buffer_float_type: Option<FloatType>,
    /// Nodes to simulate in this process (the model is split as over a cluster).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Kernel implementation (scalar, avx2, avx512, avx512vnni, neon, neon-dotprod)
    /// [default: the fastest this CPU supports].
    #[arg(long)]
    kernels: Option<String>,
}

#[derive(Args)]
struct InferenceArgs {
    /// The `.m` model file.
    #[arg(long)]
    model: PathBuf,
    /// The `.t` tokenizer file.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Prompt text.
    #[arg(long)]
    prompt: String,
    /// Last position to generate up to (prompt tokens included), as the peer's `--steps`.
    #[arg(long)]
    steps: usize,
    /// Worker nodes (`host:port`, C++ `dllama worker` or `airllm worker`); this process is the
    /// root, node 0, and worker `k` is node `k + 1`.
    #[arg(long, num_args = 1..)]
    workers: Vec<WorkerAddr>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct GenModelArgs {
    /// Shape: tiny, small or 1b.
    #[arg(long)]
    preset: Preset,
    /// Weight type of the big matrices: q40 or f32.
    #[arg(long, default_value = "q40", value_parser = parse_weight_type)]
    weights: FloatType,
    /// Architecture: llama, llama3.1, qwen3 or qwen3-moe.
    #[arg(long, default_value = "llama")]
    arch: GenArch,
    /// RNG seed; the same options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Cache folder for the demo model [default: $XDG_CACHE_HOME/airllm, ~/.cache/airllm, or
    /// ./target/airllm-demo].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Model shape.
    #[arg(long, default_value = "small")]
    preset: Preset,
    /// Architecture.
    #[arg(long, default_value = "llama")]
    arch: GenArch,
    /// Prompt text.
    #[arg(long, default_value = "Hello, world")]
    prompt: String,
    /// Last position to generate up to.
    #[arg(long, default_value_t = 128)]
    steps: usize,
    #[command(flatten)]
    run: RunArgs,
}

fn parse_sync_type(s: &str) -> Result<FloatType, String> {
    match s {
        "q80" => Ok(FloatType::Q80),
        "f32" => Ok(FloatType::F32),
        _ => Err(format!("expected q80 or f32, got {s:?}")),
    }
}

fn parse_weight_type(s: &str) -> Result<FloatType, String> {
    match s {
        "q40" => Ok(FloatType::Q40),
        "f32" => Ok(FloatType::F32),
        _ => Err(format!("expected q40 or f32, got {s:?}")),
    }
}

/// A progress bar that appears only once the work has taken more than a second.
struct LazyBar {
    start: Instant,
    label: &'static str,
    bar: Option<ProgressBar>,
}

impl LazyBar {
    fn new(label: &'static str) -> LazyBar {
        LazyBar {
            start: Instant::now(),
            label,
            bar: None,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if self.bar.is_none() && self.start.elapsed() > Duration::from_secs(1) {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(self.label);
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
        }
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Inference(a) => inference(
            &a.model,
            &a.tokenizer,
            &a.prompt,
            a.steps,
            &a.workers,
            &a.run,
        ),
        Command::Worker(a) => worker(&a),
        Command::GenModel(a) => gen_model(&a).map(|_| ()),
        Command::Demo(a) => demo(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Library errors often repeat their source in their own message; print each
            // cause only once.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn kernels(name: Option<&str>) -> Result<Kernels> {
    match name {
        None => Ok(Kernels::current()),
        Some(n) => {
            let imp = Impl::from_name(n).with_context(|| format!("unknown kernels {n:?}"))?;
            Kernels::new(imp).map_err(|e| anyhow::anyhow!("kernels {n}: {e}"))
        }
    }
}

fn inference(
    model: &Path,
    tokenizer: &Path,
    prompt: &str,
    steps: usize,
    workers: &[WorkerAddr],
    a: &RunArgs,
) -> Result<()> {
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let tok = Tokenizer::open(tokenizer)
        .with_context(|| format!("cannot read tokenizer {}", tokenizer.display()))?;
    let file = Arc::new(
        ModelFile::open(model, a.max_seq_len.filter(|&n| n > 0))
            .with_context(|| format!("cannot read model {}", model.display()))?,
    );
    let h = file.header().clone();
    if tok.vocab_size() != h.vocab_size {
        eprintln!(
            "warning: the tokenizer has {} tokens, the model {}",
            tok.vocab_size(),
            h.vocab_size
        );
    }
    let n_threads = a
        .nthreads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = ClusterOptions {
        n_nodes: a.nodes,
        n_threads,
        sync_type: a
            .buffer_float_type
            .unwrap_or_else(|| default_sync_type(h.weight_type)),
        kernels: kernels(a.kernels.as_deref())?,
    };
    eprintln!(
        "model: {:?} dim {} layers {} heads {}/{} vocab {} context {}, {} weights, {:.1} MB",
        h.arch,
        h.dim,
        h.n_layers,
        h.n_heads,
        h.n_kv_heads,
        h.vocab_size,
        h.seq_len,
        h.weight_type,
        file.bytes().len() as f64 / 1e6
    );
    if !workers.is_empty() && a.nodes != 1 {
        bail!("--nodes simulates a cluster in this process; it cannot be combined with --workers");
    }
    eprintln!(
        "run: {} node(s) × {} thread(s), {} kernels, {} sync{}",
        opts.n_nodes.max(workers.len() + 1),
        opts.n_threads,
        opts.kernels.imp(),
        opts.sync_type,
        if workers.is_empty() {
            ""
        } else {
            ", workers over TCP"
        }
    );
    let mut bar = LazyBar::new("loading");
    let mut cluster: Box<dyn Cluster> = if workers.is_empty() {
        Box::new(LocalCluster::new(Arc::clone(&file), &opts, &mut |d, t| {
            bar.update(d, t)
        })?)
    } else {
        let root = RootOptions {
            n_threads: opts.n_threads,
            sync_type: opts.sync_type,
            kernels: opts.kernels,
            io_timeout: Duration::from_secs(120),
        };
        Box::new(RemoteCluster::connect(
            Arc::clone(&file),
            workers,
            &root,
            &mut |d, t| bar.update(d, t),
        )?)
    };
    bar.finish();

    let seed = a.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let mut sampler = Sampler::new(a.temperature, a.topp, seed);
    let mut out = std::io::stdout();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let (_, stats) = generate(&mut *cluster, &tok, &mut sampler, prompt, steps, &mut |s| {
        let _ = write!(out, "{s}");
        let _ = out.flush();
    })?;
    println!();
    println!();
    if stats.prefill_tokens > 0 {
        println!(
            "Prefill: {} tokens in {:.1} ms: {:.2} tokens/s ({:.2} ms/token)",
            stats.prefill_tokens,
            stats.prefill_secs * 1e3,
            stats.prefill_tps(),
            stats.prefill_secs * 1e3 / stats.prefill_tokens as f64
        );
    }
    if stats.decode_tokens > 0 {
        let per_token = stats.decode_secs / stats.decode_tokens as f64;
        let bytes = cluster.weight_bytes_per_token() as f64;
        println!(
            "Decode:  {} tokens in {:.1} ms: {:.2} tokens/s ({:.2} ms/token), weights {:.2} GB/s ({:.1} MB/token)",
            stats.decode_tokens,
            stats.decode_secs * 1e3,
            stats.decode_tps(),
            per_token * 1e3,
            bytes / per_token / 1e9,
            bytes / 1e6
        );
    }
    Ok(())
}

/// Generates a model and tokenizer into `dir`; returns their paths.
fn gen_into(
    dir: &Path,
    preset: Preset,
    arch: GenArch,
    weights: FloatType,
    seed: u64,
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stem = format!("{preset}-{arch}-{weights}");
    let model = dir.join(format!("{stem}.m"));
    let tokenizer = dir.join(format!("{stem}.t"));
    // Written under temporary names and renamed at the end, so an interrupted run never
    // leaves a truncated model where the demo would find it.
    let tmp_model = dir.join(format!(".{stem}.m.partial"));
    let tmp_tok = dir.join(format!(".{stem}.t.partial"));
    let opts = GenOptions {
        preset,
        arch,
        weight_type: weights,
        seed,
        model_path: tmp_model.clone(),
        tokenizer_path: Some(tmp_tok.clone()),
    };
    let mut bar = LazyBar::new("generating");
    let summary = gen::generate(&opts, &mut |d, t| bar.update(d, t));
    bar.finish();
    let summary = summary.with_context(|| format!("cannot generate {stem}"))?;
    std::fs::rename(&tmp_tok, &tokenizer)
        .with_context(|| format!("cannot write {}", tokenizer.display()))?;
    std::fs::rename(&tmp_model, &model)
        .with_context(|| format!("cannot write {}", model.display()))?;
    eprintln!(
        "wrote {} ({:.1} MB) and {}",
        model.display(),
        summary.model_bytes as f64 / 1e6,
        tokenizer.display()
    );
    Ok((model, tokenizer))
}

fn gen_model(a: &GenModelArgs) -> Result<(PathBuf, PathBuf)> {
    gen_into(&a.out, a.preset, a.arch, a.weights, a.seed)
}

fn demo_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("airllm");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".cache").join("airllm");
    }
    PathBuf::from("target").join("airllm-demo")
}

fn demo(a: &DemoArgs) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(demo_dir);
    let stem = format!("{}-{}-{}", a.preset, a.arch, FloatType::Q40);
    let model = dir.join(format!("{stem}.m"));
    let tokenizer = dir.join(format!("{stem}.t"));
    let (model, tokenizer) = if model.is_file() && tokenizer.is_file() {
        eprintln!("using {}", model.display());
        (model, tokenizer)
    } else {
        gen_into(&dir, a.preset, a.arch, FloatType::Q40, 1)?
    };
    inference(&model, &tokenizer, &a.prompt, a.steps, &[], &a.run)
}

fn worker(a: &WorkerArgs) -> Result<()> {
    let k = kernels(a.kernels.as_deref())?;
    airllm_kernels::force(k.imp()).map_err(|e| anyhow::anyhow!("kernels: {e}"))?;
    let opts = WorkerOptions {
        n_threads: a
            .nthreads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        io_timeout: Duration::from_secs(a.io_timeout.max(1)),
        ..WorkerOptions::default()
    };
    let opts = WorkerOptions {
        max_memory: a
            .max_memory_mb
            .map_or(opts.max_memory, |mb| mb.saturating_mul(1 << 20)),
        ..opts
    };
    net_worker::run(&a.host, a.port, &opts)
        .with_context(|| format!("cannot serve on {}:{}", a.host, a.port))
}
