//! `kernel-report`: measures this machine's read bandwidth, then times every kernel
//! implementation that runs here (median of several samples, cache-resident and streaming
//! weights, 1 thread and all threads), and prints a markdown table, a targets section and a
//! JSON copy of the results.
//!
//! ```text
//! cargo run --release -p airllm-benches --bin kernel-report -- [--quick] [--filter TEXT]...
//!     [--json PATH] [--no-scalar] [--probe-mib N]
//! ```
//!
//! `matmul_q80_q40_packed` rows time the same mat-vecs on weights packed in groups of 16 rows;
//! their GB/s count the same Q40 bytes as the row-major rows (18 per 32 weights), so the two
//! layouts compare directly. Every packed configuration's output is checked bit for bit
//! against the row-major kernel once.
//!
//! Scalar baselines run a short plan (one warm-up call, median of 3 samples) because the
//! largest shapes take up to a second per call; batched scalar rows are measured on 4096×4096
//! only. A full run measures the single-vector matmuls (row-major and packed, every shape) and
//! the F32 matmuls in five interleaved passes of 3 samples and reports the median of the pass
//! medians: on a shared machine, load from other tenants comes in bursts of seconds that would
//! otherwise spoil every sample of the few shapes measured during one.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use airllm_benches::bandwidth::{self, Bandwidth};
use airllm_benches::data::{f32_vec, pack_q40, q40_matrix, q80_vec, Copies};
use airllm_benches::shapes::{self, MatShape};
use airllm_benches::small::{SmallOp, SmallOps};
use airllm_benches::team::{time_op, Op, Outputs};
use airllm_benches::timing::{median, time_calls, Plan, Timing};
use airllm_benches::{all_threads, thread_counts, Regime};
use airllm_kernels::{available, best, AttentionShape, BlockQ40, Impl, Kernels, PACK_ROWS, QK};

const USAGE: &str = "\
kernel-report: kernel timings against this machine's measured read bandwidth

USAGE: kernel-report [--quick] [--filter TEXT]... [--json PATH] [--no-scalar]

  --quick        fewer shapes and samples (well under a minute of measuring)
  --filter TEXT  only rows whose id contains TEXT (repeatable: all must match); ids read
                 \"KERNEL SHAPE IMPL tTHREADS REGIME\", e.g. \"matmul_q80_q40 4096x4096 avx2 t1 stream\"
  --json PATH    where to write the JSON copy (default target/kernel-report.json)
  --no-scalar    skip the scalar baselines (no speedup column)
  --probe-mib N  size of the read-bandwidth probe buffer in MiB (default 1024; smaller
                 probes fit in cache and overstate DRAM bandwidth: for smoke tests only)
";

/// Command-line options.
struct Args {
    quick: bool,
    filters: Vec<String>,
    json: PathBuf,
    scalar: bool,
    probe_bytes: usize,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        quick: false,
        filters: Vec::new(),
        json: PathBuf::from("target/kernel-report.json"),
        scalar: true,
        probe_bytes: bandwidth::PROBE_BYTES,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--no-scalar" => args.scalar = false,
            "--filter" => args
                .filters
                .push(it.next().ok_or("--filter needs a value")?),
            "--json" => args.json = PathBuf::from(it.next().ok_or("--json needs a path")?),
            "--probe-mib" => {
                let v = it.next().ok_or("--probe-mib needs a number")?;
                let mib: usize = v
                    .parse()
                    .ok()
                    .filter(|m| (1..=1 << 20).contains(m))
                    .ok_or(format!("--probe-mib: {v:?} is not a size in MiB"))?;
                args.probe_bytes = mib << 20;
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(args))
}

/// Interleaved passes over the single-vector and F32 matmul shapes in a full run (see
/// [`Report::pass`]); each takes `1 / MATVEC_PASSES` of the samples.
const MATVEC_PASSES: usize = 5;

/// One measured configuration.
struct Row {
    kernel: String,
    shape: String,
    imp: Impl,
    threads: usize,
    regime: Regime,
    timing: Timing,
    /// Weight (or KV-cache, or input) bytes one call reads.
    bytes: usize,
    /// Vectors (tokens) one call processes.
    tokens: usize,
    /// Measured with the short baseline plan.
    baseline: bool,
    /// The medians of the passes this row was measured in (see [`Report::pass`]); `timing`
    /// holds their median.
    pass_medians: Vec<f64>,
}

impl Row {
    fn gbs(&self) -> f64 {
        self.bytes as f64 / self.timing.median / 1e9
    }
}

fn id(kernel: &str, shape: &str, imp: Impl, threads: usize, regime: Regime) -> String {
    format!("{kernel} {shape} {imp} t{threads} {}", regime.name())
}

struct Report {
    args: Args,
    /// The reference read bandwidth: the higher of the two probes.
    bw: Bandwidth,
    /// The probes at the start and at the end of the run.
    probes: [Bandwidth; 2],
    /// Shorter probes at the boundaries of the interleaved mat-vec passes (before the first,
    /// then after each): pass `i` lies between `pass_probes[i]` and `pass_probes[i + 1]`.
    pass_probes: Vec<Bandwidth>,
    rows: Vec<Row>,
    /// Which of [`MATVEC_PASSES`] interleaved passes over the mat-vec shapes is running (`None`
    /// outside them): each pass takes a share of the samples, and a row's figure is the median
    /// of its passes, so a burst of load from another tenant, which lasts seconds, spoils one
    /// pass of a shape rather than the whole measurement of a few shapes.
    pass: Option<usize>,
    /// Configurations the report could not measure, and why (printed with the table).
    skipped: Vec<String>,
    started: Instant,
}

impl Report {
    fn wants(&self, id: &str) -> bool {
        self.args.filters.iter().all(|f| id.contains(f.as_str()))
    }

    fn impls(&self) -> Vec<Impl> {
        available()
            .filter(|i| self.args.scalar || *i != Impl::Scalar)
            .collect()
    }

    fn plan(&self, imp: Impl) -> Plan {
        if imp == Impl::Scalar {
            Plan::BASELINE
        } else if self.args.quick {
            Plan::QUICK
        } else if self.pass.is_some() {
            Plan {
                samples: Plan::NORMAL.samples / MATVEC_PASSES,
                ..Plan::NORMAL
            }
        } else {
            Plan::NORMAL
        }
    }

    /// The (impl, threads, regime) configurations of `kernel` on `shape` that the filters let
    /// through; `regimes` and `threads` limit them further.
    fn configs(
        &self,
        kernel: &str,
        shape: &str,
        impls: &[Impl],
        threads: &[usize],
        regimes: &[Regime],
    ) -> Vec<(Impl, usize, Regime)> {
        let mut v = Vec::new();
        for &imp in impls {
            // The scalar baselines (slow, only for the speedup column) run in the first pass.
            if imp == Impl::Scalar && self.pass.is_some_and(|p| p > 0) {
                continue;
            }
            for &t in threads {
                for &r in regimes {
                    if self.wants(&id(kernel, shape, imp, t, r)) {
                        v.push((imp, t, r));
                    }
                }
            }
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kernel: &str,
        shape: &str,
        imp: Impl,
        threads: usize,
        regime: Regime,
        timing: Timing,
        bytes: usize,
        tokens: usize,
    ) {
        let row_id = id(kernel, shape, imp, threads, regime);
        if let Some(r) = self
            .rows
            .iter_mut()
            .find(|r| id(&r.kernel, &r.shape, r.imp, r.threads, r.regime) == row_id)
        {
            // A later pass of a row: its figure becomes the median of the pass medians.
            r.pass_medians.push(timing.median);
            let mut m = r.pass_medians.clone();
            r.timing = Timing {
                median: median(&mut m),
                min: r.timing.min.min(timing.min),
                samples: r.timing.samples + timing.samples,
                calls_per_sample: r.timing.calls_per_sample.max(timing.calls_per_sample),
            };
            eprintln!(
                "[{:6.1}s] {:<60} {:>10}  (pass {})",
                self.started.elapsed().as_secs_f64(),
                row_id,
                fmt_time(timing.median),
                r.pass_medians.len()
            );
            return;
        }
        let row = Row {
            kernel: kernel.to_string(),
            shape: shape.to_string(),
            imp,
            threads,
            regime,
            timing,
            bytes,
            tokens,
            baseline: imp == Impl::Scalar,
            pass_medians: vec![timing.median],
        };
        eprintln!(
            "[{:6.1}s] {:<60} {:>10}  {:7.2} GB/s",
            self.started.elapsed().as_secs_f64(),
            id(kernel, shape, imp, threads, regime),
            fmt_time(timing.median),
            row.gbs()
        );
        self.rows.push(row);
    }

    /// Single-vector Q80×Q40 (and, with `batches`, batched) matmuls on `shapes`.
    fn matmul_q80_q40(&mut self, shapes: &[MatShape], batches: &[usize], scalar_batches: bool) {
        let threads = thread_counts();
        let impls = self.impls();
        for s in shapes {
            let name = |b: usize| {
                if b == 1 {
                    "matmul_q80_q40".to_string()
                } else {
                    format!("matmul_q80_q40_b{b}")
                }
            };
            let label = s.label();
            let todo: Vec<_> = batches
                .iter()
                .map(|&b| {
                    let impls: Vec<Impl> = impls
                        .iter()
                        .copied()
                        .filter(|i| *i != Impl::Scalar || b == 1 || scalar_batches)
                        .collect();
                    (
                        b,
                        self.configs(&name(b), &label, &impls, &threads, &Regime::ALL),
                    )
                })
                .collect();
            if todo.iter().all(|(_, c)| c.is_empty()) {
                continue;
            }
            let pool = Copies::new(q40_matrix(s.d, s.n, 11), Regime::Stream);
            let bmax = batches.iter().copied().max().unwrap_or(1);
            let x = q80_vec(s.n * bmax, 12);
            let nb = s.n / QK;
            let mut outs = Outputs::new(s.d * bmax, 0);
            for (b, configs) in todo {
                for (imp, t, regime) in configs {
                    let k = Kernels::new(imp).expect("listed as available");
                    let plan = self.plan(imp);
                    let (n, d) = (s.n, s.d);
                    let x = &x[..b * nb];
                    let timing = time_op(k, t, &plan, &mut outs, |i| Op::MatmulQ80Q40 {
                        x,
                        w: pool.get(rotation(regime, i)),
                        n,
                        d,
                        b,
                    });
                    let bytes = pool.bytes_per_copy();
                    self.push(&name(b), &label, imp, t, regime, timing, bytes, b);
                }
            }
        }
    }

    /// Single-vector Q80×Q40 matmuls on `shapes` with the weights packed in groups of
    /// [`PACK_ROWS`] rows; shapes whose `d` is not a multiple of it are skipped.
    fn matmul_q80_q40_packed(&mut self, shapes: &[MatShape]) {
        const KERNEL: &str = "matmul_q80_q40_packed";
        let threads = thread_counts();
        let impls = self.impls();
        let mut skipped = Vec::new();
        for s in shapes {
            let label = s.label();
            let configs = self.configs(KERNEL, &label, &impls, &threads, &Regime::ALL);
            if configs.is_empty() {
                continue;
            }
            if s.d % PACK_ROWS != 0 {
                skipped.push(label);
                continue;
            }
            let (n, d) = (s.n, s.d);
            let w = q40_matrix(d, n, 11);
            let x = q80_vec(n, 12);
            let mut expect = vec![0f32; d];
            Kernels::current()
                .matmul_q80_q40(&mut expect[..], &x, &w, n, d, 1, 0)
                .unwrap_or_else(|e| panic!("matmul_q80_q40 refused {label}: {e}"));
            let packed = pack_q40(&w, n, d).unwrap_or_else(|e| panic!("cannot pack {label}: {e}"));
            drop(w);
            let pool = Copies::new(packed, Regime::Stream);
            for (imp, t, regime) in configs {
                let k = Kernels::new(imp).expect("listed as available");
                let plan = self.plan(imp);
                // Fresh (zeroed) outputs: a thread that wrote nothing cannot pass the check.
                let mut outs = Outputs::new(d, 0);
                let timing = time_op(k, t, &plan, &mut outs, |i| Op::MatmulQ80Q40Packed {
                    x: &x,
                    w: pool.get(rotation(regime, i)),
                    n,
                    d,
                });
                let same = outs
                    .out(d)
                    .iter()
                    .zip(&expect)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{} differs from the row-major matmul_q80_q40",
                    id(KERNEL, &label, imp, t, regime)
                );
                // The row-major bytes (18 per 32 weights), which is also the packed size.
                let bytes = d * (n / QK) * size_of::<BlockQ40>();
                self.push(KERNEL, &label, imp, t, regime, timing, bytes, 1);
            }
        }
        if !skipped.is_empty() {
            let msg = format!(
                "{KERNEL}: skipped {} (d not a multiple of {PACK_ROWS})",
                skipped.join(", ")
            );
            eprintln!("{msg}");
            self.skipped.push(msg);
        }
    }

    fn matmul_f32(&mut self, shapes: &[MatShape]) {
        let threads = thread_counts();
        let impls = self.impls();
        for s in shapes {
            let label = s.label();
            let configs = self.configs("matmul_f32", &label, &impls, &threads, &Regime::ALL);
            if configs.is_empty() {
                continue;
            }
            let pool = Copies::new(f32_vec(s.n * s.d, 21, -0.05, 0.05), Regime::Stream);
            let x = f32_vec(s.n, 22, -1.0, 1.0);
            let mut outs = Outputs::new(s.d, 0);
            for (imp, t, regime) in configs {
                let k = Kernels::new(imp).expect("listed as available");
                let plan = self.plan(imp);
                let (n, d) = (s.n, s.d);
                let timing = time_op(k, t, &plan, &mut outs, |i| Op::MatmulF32 {
                    x: &x,
                    w: pool.get(rotation(regime, i)),
                    n,
                    d,
                    b: 1,
                });
                let bytes = pool.bytes_per_copy();
                self.push("matmul_f32", &label, imp, t, regime, timing, bytes, 1);
            }
        }
    }

    /// Llama-3-8B attention (32 query heads, 8 KV heads, head dim 128) at each of `positions`.
    fn attention(&mut self, positions: &[usize]) {
        let threads = thread_counts();
        let impls = self.impls();
        let (n_heads, n_kv_heads, head_dim) = (32, 8, 128);
        let kv_dim = n_kv_heads * head_dim;
        for &pos in positions {
            let label = format!("h32/kv8/d128 pos{pos}");
            let configs = self.configs("attention", &label, &impls, &threads, &Regime::ALL);
            if configs.is_empty() {
                continue;
            }
            let seq_len = pos + 1;
            let rows = seq_len * kv_dim;
            // K then V in one allocation per copy.
            let pool = Copies::new(f32_vec(2 * rows, 31, -1.0, 1.0), Regime::Stream);
            let q = f32_vec(n_heads * head_dim, 32, -1.0, 1.0);
            let shape = AttentionShape {
                n_heads,
                n_heads0: n_heads,
                n_kv_heads,
                head_dim,
                seq_len,
                kv_dim0: kv_dim,
            };
            let mut outs = Outputs::new(n_heads * head_dim, n_heads * seq_len);
            for (imp, t, regime) in configs {
                let k = Kernels::new(imp).expect("listed as available");
                let plan = self.plan(imp);
                let timing = time_op(k, t, &plan, &mut outs, |i| {
                    let kv = pool.get(rotation(regime, i));
                    Op::Attention {
                        q: &q,
                        k_cache: &kv[..rows],
                        v_cache: &kv[rows..],
                        pos,
                        shape,
                    }
                });
                let bytes = pool.bytes_per_copy();
                self.push("attention", &label, imp, t, regime, timing, bytes, 1);
            }
        }
    }

    /// The per-token element-wise kernels, one thread, data in cache.
    fn small_ops(&mut self) {
        let impls = self.impls();
        let mut data = SmallOps::new();
        for op in SmallOp::ALL {
            for (imp, _, _) in self.configs(op.kernel(), op.shape(), &impls, &[1], &[Regime::Cache])
            {
                let k = Kernels::new(imp).expect("listed as available");
                let plan = self.plan(imp);
                data.prepare(op);
                let timing = time_calls(&plan, |_| {
                    data.call(k, op)
                        .unwrap_or_else(|e| panic!("{} refused: {e}", op.kernel()))
                });
                self.push(
                    op.kernel(),
                    op.shape(),
                    imp,
                    1,
                    Regime::Cache,
                    timing,
                    op.bytes(),
                    1,
                );
            }
        }
    }

    fn find(
        &self,
        kernel: &str,
        shape: &str,
        imp: Impl,
        threads: usize,
        regime: Regime,
    ) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.kernel == kernel
                && r.shape == shape
                && r.imp == imp
                && r.threads == threads
                && r.regime == regime
        })
    }

    /// The row's fraction of the read bandwidth measured beside each of its passes (the
    /// better of the probes just before and just after the pass, as load only ever lowers a
    /// probe), median over the passes; `None` for rows outside the interleaved passes. The
    /// probe a whole run is judged against swings by ±20 % between runs on a shared machine
    /// while the kernels hold still; this pairs each pass with the memory it actually had.
    fn pass_fraction(&self, r: &Row) -> Option<f64> {
        let n = r.pass_medians.len();
        if n < 2 || self.pass_probes.len() < n + 1 {
            return None;
        }
        let mut f: Vec<f64> = r
            .pass_medians
            .iter()
            .zip(self.pass_probes.windows(2))
            .map(|(&t, p)| r.bytes as f64 / t / 1e9 / p[0].max(&p[1]).for_threads(r.threads))
            .collect();
        Some(median(&mut f))
    }

    fn speedup(&self, r: &Row) -> Option<f64> {
        if r.imp == Impl::Scalar {
            return None;
        }
        self.find(&r.kernel, &r.shape, Impl::Scalar, r.threads, r.regime)
            .map(|s| s.timing.median / r.timing.median)
    }

    fn targets(&self) -> Vec<Target> {
        let imp = best();
        let all = all_threads();
        let mut v = Vec::new();
        let sq = |n: usize, d: usize| {
            MatShape {
                model: "square",
                tensor: "-",
                n,
                d,
            }
            .label()
        };

        for s in [sq(4096, 4096), sq(4096, 11008)] {
            let gbs = |kernel| {
                self.find(kernel, &s, imp, 1, Regime::Stream)
                    .map(|r| r.gbs())
            };
            let one = self.bw.one_thread;
            v.push(
                Target::row_major(
                    format!("Q80×Q40 mat-vec {s}, 1 thread, stream ≥ 27 GB/s"),
                    [
                        gbs("matmul_q80_q40").map(|x| (x, format!("{x:.1} GB/s"))),
                        gbs("matmul_q80_q40_packed").map(|x| (x, format!("{x:.1} GB/s"))),
                    ],
                    27.0,
                )
                .bound(format!(
                    "one thread read {one:.1} GB/s in this run's probe (eight streams side by \
                     side), so 27 GB/s is {:.2}× what one core reads here",
                    27.0 / one
                )),
            );
        }

        let worst_fraction = |kernel: &str| {
            let rows: Vec<&Row> = self
                .rows
                .iter()
                .filter(|r| {
                    r.kernel == kernel
                        && r.imp == imp
                        && r.threads == all
                        && r.regime == Regime::Stream
                })
                .collect();
            let worst = worst_of(&rows, |r| Some(r.gbs() / self.bw.all_threads))?;
            let mut text = format!(
                "worst {:.2} ({}) of {} shapes",
                worst.0,
                worst.1,
                rows.len()
            );
            if let Some((f, shape)) = worst_of(&rows, |r| self.pass_fraction(r)) {
                let _ = write!(
                    text,
                    " [against the probes beside each pass, not judged: worst {f:.2} ({shape})]"
                );
            }
            Some((worst.0, text))
        };
        v.push(Target::row_major(
            format!(
                "Q80×Q40 mat-vec, {all} threads, stream ≥ 0.90 of read bandwidth on every shape"
            ),
            [
                worst_fraction("matmul_q80_q40"),
                worst_fraction("matmul_q80_q40_packed"),
            ],
            0.90,
        ));

        for t in [1, all] {
            let s = sq(4096, 4096);
            let b1 = self.find("matmul_q80_q40", &s, imp, t, Regime::Stream);
            let b32 = self.find("matmul_q80_q40_b32", &s, imp, t, Regime::Stream);
            let ratio = b1
                .zip(b32)
                .map(|(a, b)| a.timing.median * 32.0 / b.timing.median);
            v.push(Target::at_least(
                format!("Q80×Q40 {s}, {t} thread(s), stream: tokens/s at b=32 ≥ 4× b=1"),
                ratio,
                4.0,
                |x| format!("{x:.2}×"),
            ));
        }

        let att = self.find("attention", "h32/kv8/d128 pos4095", imp, 1, Regime::Stream);
        let mut t = Target::at_most(
            "attention h32/kv8/d128 pos 4095, 1 thread, stream ≤ 1.3 ms".to_string(),
            att.map(|r| r.timing.median * 1e3),
            1.3,
            |x| format!("{x:.3} ms"),
        );
        if let Some(r) = att {
            // The K and V rows come from DRAM once each: no faster than one thread reads.
            t = t.bound(format!(
                "reading its {:.1} MiB of K/V once at this run's 1-thread read bandwidth takes \
                 {:.3} ms",
                r.bytes as f64 / (1u64 << 20) as f64,
                r.bytes as f64 / (self.bw.one_thread * 1e9) * 1e3
            ));
        }
        v.push(t);

        let f32 = worst_fraction("matmul_f32");
        v.push(Target::at_least(
            format!("F32 matmul, {all} threads, stream ≥ 0.90 of read bandwidth on every shape"),
            f32.as_ref().map(|w| w.0),
            0.90,
            |_| f32.as_ref().map_or(String::new(), |w| w.1.clone()),
        ));

        for (op, limit_us) in [
            (SmallOp::RmsNorm, 0.5),
            (SmallOp::Softmax, 0.8),
            (SmallOp::Silu, 1.4),
            (SmallOp::QuantizeQ80, 0.5),
        ] {
            let (kernel, shape) = (op.kernel(), op.shape());
            let r = self.find(kernel, shape, imp, 1, Regime::Cache);
            v.push(Target::at_most(
                format!("{kernel} {shape}, 1 thread < {limit_us} µs"),
                r.map(|r| r.timing.median * 1e6),
                limit_us,
                |x| format!("{x:.3} µs"),
            ));
        }
        v
    }
}

/// The least of `f` over `rows` (those where it is `Some`), with its row's shape.
fn worst_of<'a>(rows: &[&'a Row], f: impl Fn(&Row) -> Option<f64>) -> Option<(f64, &'a str)> {
    rows.iter()
        .filter_map(|r| f(r).map(|v| (v, r.shape.as_str())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// Which copy call `i` uses: always the first in cache, the next in stream.
fn rotation(regime: Regime, i: usize) -> usize {
    match regime {
        Regime::Cache => 0,
        Regime::Stream => i,
    }
}

struct Target {
    name: String,
    /// `None`: not measured in this run (filtered out).
    figure: Option<String>,
    pass: Option<bool>,
}

impl Target {
    fn at_least(name: String, v: Option<f64>, limit: f64, fmt: impl Fn(f64) -> String) -> Target {
        Target {
            name,
            figure: v.map(&fmt),
            pass: v.map(|v| v >= limit),
        }
    }

    /// A lower bound on the row-major kernel (the layout the C ABI receives, which is what
    /// the target names); `figures` are the (value, text) of the row-major and the packed
    /// kernel, `None` where not measured. The packed figure is shown for comparison only.
    fn row_major(name: String, figures: [Option<(f64, String)>; 2], limit: f64) -> Target {
        fn text(f: &Option<(f64, String)>) -> &str {
            f.as_ref().map_or("–", |(_, t)| t.as_str())
        }
        let [row_major, packed] = &figures;
        Target {
            name: format!("{name} (row-major)"),
            figure: row_major.as_ref().map(|_| {
                format!(
                    "row-major: {}; packed (the Rust node's layout, not judged): {}",
                    text(row_major),
                    text(packed)
                )
            }),
            pass: row_major.as_ref().map(|(v, _)| *v >= limit),
        }
    }

    fn at_most(name: String, v: Option<f64>, limit: f64, fmt: impl Fn(f64) -> String) -> Target {
        Target {
            name,
            figure: v.map(&fmt),
            pass: v.map(|v| v <= limit),
        }
    }

    /// Appends a floor this run's own measurements put on the figure (shown, not judged).
    fn bound(mut self, text: String) -> Target {
        if let Some(f) = &mut self.figure {
            f.push_str("; bound: ");
            f.push_str(&text);
        }
        self
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "not measured",
        }
    }
}

fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} µs", s * 1e6)
    }
}

fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn markdown(rep: &Report, targets: &[Target], load: (&str, &str)) -> String {
    let mut s = String::new();
    let bw = &rep.bw;
    let [p0, p1] = &rep.probes;
    let _ = writeln!(
        s,
        "Read bandwidth (sum over {} MiB, each thread's part read as eight streams side by side, \
         median of the passes; the better of the probes at the \
         start and the end of the run): 1 thread {:.1} GB/s ({:.1} / {:.1}), {} threads {:.1} GB/s \
         ({:.1} / {:.1}).",
        bw.bytes >> 20,
        bw.one_thread,
        p0.one_thread,
        p1.one_thread,
        bw.threads,
        bw.all_threads,
        p0.all_threads,
        p1.all_threads
    );
    if rep.pass_probes.len() > 1 {
        let list = |f: fn(&Bandwidth) -> f64| {
            rep.pass_probes
                .iter()
                .map(|p| format!("{:.1}", f(p)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "Shorter probes (median of 3) before the first mat-vec pass and after each: 1 thread \
             {}; {} threads {} GB/s.",
            list(|p| p.one_thread),
            bw.threads,
            list(|p| p.all_threads)
        );
    }
    let _ = writeln!(
        s,
        "Implementations here: {}; best: {}. Load average at start {}, at end {}.",
        available().map(Impl::name).collect::<Vec<_>>().join(", "),
        best(),
        load.0,
        load.1
    );
    let _ = writeln!(s, "Scalar baselines: 1 warm-up call and the median of 3 samples; others: median of {} samples{}.", if rep.args.quick { Plan::QUICK.samples } else { Plan::NORMAL.samples }, if rep.args.quick { String::new() } else { format!(" (single-vector and F32 matmuls: the median of {MATVEC_PASSES} interleaved passes over all shapes, {} samples each)", Plan::NORMAL.samples / MATVEC_PASSES) });
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| kernel | shape | impl | threads | regime | median | GB/s | of read BW | vs scalar |"
    );
    let _ = writeln!(s, "|---|---|---|--:|---|--:|--:|--:|--:|");
    for r in &rep.rows {
        let frac = r.gbs() / bw.for_threads(r.threads);
        let speedup = rep
            .speedup(r)
            .map_or("–".to_string(), |x| format!("{x:.1}×"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
            r.kernel,
            r.shape,
            r.imp,
            r.threads,
            r.regime.name(),
            fmt_time(r.timing.median),
            r.gbs(),
            frac,
            speedup
        );
    }
    for note in &rep.skipped {
        let _ = writeln!(s);
        let _ = writeln!(s, "Not measured: {note}.");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Targets (implementation {}):", best());
    let _ = writeln!(s);
    for t in targets {
        let _ = writeln!(
            s,
            "- **{}** {}: {}",
            t.verdict(),
            t.name,
            t.figure.as_deref().unwrap_or("–")
        );
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        "null".to_string()
    }
}

fn json(rep: &Report, targets: &[Target], load: (&str, &str)) -> String {
    let bw = &rep.bw;
    let mut s = String::from("{\n");
    let impls: Vec<String> = available().map(|i| json_str(i.name())).collect();
    let _ = writeln!(s, "  \"implementations\": [{}],", impls.join(", "));
    let _ = writeln!(s, "  \"best\": {},", json_str(best().name()));
    let _ = writeln!(s, "  \"quick\": {},", rep.args.quick);
    let _ = writeln!(
        s,
        "  \"load_average\": {{\"start\": {}, \"end\": {}}},",
        json_str(load.0),
        json_str(load.1)
    );
    let probes = |list: &[Bandwidth]| {
        list.iter()
            .map(|p| {
                format!(
                    "{{\"one_thread_gbs\": {}, \"all_threads_gbs\": {}}}",
                    json_num(p.one_thread),
                    json_num(p.all_threads)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "  \"read_bandwidth\": {{\"bytes\": {}, \"one_thread_gbs\": {}, \"threads\": {}, \"all_threads_gbs\": {}, \"probes\": [{}], \"pass_probes\": [{}]}},",
        bw.bytes,
        json_num(bw.one_thread),
        bw.threads,
        json_num(bw.all_threads),
        probes(&rep.probes),
        probes(&rep.pass_probes)
    );
    s.push_str("  \"rows\": [\n");
    for (i, r) in rep.rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"kernel\": {}, \"shape\": {}, \"impl\": {}, \"threads\": {}, \"regime\": {}, \"median_s\": {}, \"min_s\": {}, \"samples\": {}, \"calls_per_sample\": {}, \"bytes\": {}, \"gbs\": {}, \"fraction_of_read_bw\": {}, \"fraction_of_pass_read_bw\": {}, \"tokens_per_s\": {}, \"speedup_vs_scalar\": {}, \"baseline_plan\": {}}}",
            json_str(&r.kernel),
            json_str(&r.shape),
            json_str(r.imp.name()),
            r.threads,
            json_str(r.regime.name()),
            json_num(r.timing.median),
            json_num(r.timing.min),
            r.timing.samples,
            r.timing.calls_per_sample,
            r.bytes,
            json_num(r.gbs()),
            json_num(r.gbs() / bw.for_threads(r.threads)),
            rep.pass_fraction(r).map_or("null".to_string(), json_num),
            json_num(r.tokens as f64 / r.timing.median),
            rep.speedup(r).map_or("null".to_string(), json_num),
            r.baseline
        );
        s.push_str(if i + 1 < rep.rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ],\n  \"targets\": [\n");
    for (i, t) in targets.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"target\": {}, \"result\": {}, \"figure\": {}}}",
            json_str(&t.name),
            json_str(t.verdict()),
            t.figure.as_deref().map_or("null".to_string(), json_str)
        );
        s.push_str(if i + 1 < targets.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let load_start = load_average().unwrap_or_else(|| "unknown".to_string());
    let started = Instant::now();
    let repeats = if args.quick { 3 } else { 5 };
    let probe_bytes = args.probe_bytes;
    let probe = move |when: &str| {
        eprintln!(
            "measuring read bandwidth over {} MiB ({when})…",
            probe_bytes >> 20
        );
        let bw = bandwidth::measure(probe_bytes, all_threads(), repeats);
        eprintln!(
            "read bandwidth: 1 thread {:.1} GB/s, {} threads {:.1} GB/s",
            bw.one_thread, bw.threads, bw.all_threads
        );
        bw
    };
    let bw = probe("start");
    let quick = args.quick;
    let mut rep = Report {
        args,
        bw,
        probes: [bw, bw],
        // The start probe directly precedes the first pass.
        pass_probes: vec![bw],
        rows: Vec::new(),
        pass: None,
        skipped: Vec::new(),
        started,
    };

    let matvec = if quick {
        shapes::standard_shapes()
    } else {
        shapes::all_shapes()
    };
    let passes = if quick { 1 } else { MATVEC_PASSES };
    for p in 0..passes {
        rep.pass = (passes > 1).then_some(p);
        rep.matmul_q80_q40(&matvec, &[1], true);
        rep.matmul_q80_q40_packed(&matvec);
        rep.matmul_f32(&shapes::standard_shapes());
        if passes > 1 {
            let bw = bandwidth::measure(probe_bytes, all_threads(), 3);
            eprintln!(
                "[{:6.1}s] read bandwidth after pass {}: 1 thread {:.1} GB/s, {} threads {:.1} GB/s",
                rep.started.elapsed().as_secs_f64(),
                p + 1,
                bw.one_thread,
                bw.threads,
                bw.all_threads
            );
            rep.pass_probes.push(bw);
        }
    }
    rep.pass = None;
    let square = shapes::standard_shapes()[..1].to_vec();
    let batches = [4, 8, 16, 32];
    rep.matmul_q80_q40(&square, &batches, true);
    if !quick {
        let w1: Vec<MatShape> = shapes::model_shapes()
            .into_iter()
            .filter(|s| s.model == "llama3-8b" && s.tensor == "w1")
            .collect();
        rep.matmul_q80_q40(&w1, &batches, false);
    }
    rep.attention(if quick { &[4095] } else { &[255, 1023, 4095] });
    rep.small_ops();

    // Load from other processes only ever lowers a probe: measure again at the end and
    // compare the kernels with the better of the two.
    let end = probe("end");
    rep.probes[1] = end;
    rep.bw = bw.max(&end);
    let targets = rep.targets();
    let load_end = load_average().unwrap_or_else(|| "unknown".to_string());
    let load = (load_start.as_str(), load_end.as_str());
    print!("{}", markdown(&rep, &targets, load));
    let json = json(&rep, &targets, load);
    if let Some(dir) = rep.args.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = std::fs::write(&rep.args.json, json) {
        eprintln!("cannot write {}: {e}", rep.args.json.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "wrote {} ({} rows, {:.0} s)",
        rep.args.json.display(),
        rep.rows.len(),
        rep.started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
