//! A small thread team that runs one kernel call on every thread at once, each with its own
//! `thread_index`, the way a node's executor drives the kernels.
//!
//! [`with_team`] starts `n_threads − 1` workers for the duration of a closure; the calling
//! thread is thread 0. Each [`Team::run`] publishes an [`Op`], bumps a generation counter and
//! waits until every worker has reported back, so the cost per run is a few cache-line
//! transfers, not a thread start. Idle workers spin briefly, then park.
//!
//! Every thread writes its share into one output buffer. The buffers live in [`Outputs`] as
//! atomic cells (so threads may hold shared references to them) and are lent to the kernels
//! as [`Out`]s by [`share`], the one `unsafe` block of the harness.

use std::hint::spin_loop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use airllm_kernels::{AttentionShape, BlockQ40, BlockQ80, KernelError, Kernels, Out, PackedQ40};

use crate::timing::{time_calls, Plan, Timing};

/// Spins (each one `pause`) an idle worker waits before parking.
const IDLE_SPINS: u32 = 1 << 12;

/// One kernel call: the kernel and its inputs. The outputs are the [`Outputs`] of the team.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    /// [`Kernels::matmul_q80_q40_batch`] into `out` (`b × d`).
    MatmulQ80Q40 {
        /// `b × n/32` blocks.
        x: &'a [BlockQ80],
        /// `d × n/32` blocks.
        w: &'a [BlockQ40],
        /// Inputs.
        n: usize,
        /// Outputs.
        d: usize,
        /// Batch rows.
        b: usize,
    },
    /// [`Kernels::matmul_q80_q40_packed`] into `out` (`d`): one vector, weights packed in
    /// groups of 16 rows (threads split the `d / 16` groups, not the rows).
    MatmulQ80Q40Packed {
        /// `n/32` blocks.
        x: &'a [BlockQ80],
        /// `packed_q40_len(n, d)` groups of blocks.
        w: &'a [PackedQ40],
        /// Inputs.
        n: usize,
        /// Outputs, a multiple of 16.
        d: usize,
    },
    /// [`Kernels::matmul_f32_batch`] into `out` (`b × d`).
    MatmulF32 {
        /// `b × n`.
        x: &'a [f32],
        /// `d × n`.
        w: &'a [f32],
        /// Inputs.
        n: usize,
        /// Outputs.
        d: usize,
        /// Batch rows.
        b: usize,
    },
    /// [`Kernels::multihead_attention`] into `out` (`y`) with `att` as the score scratch.
    Attention {
        /// `n_heads0 × head_dim` query.
        q: &'a [f32],
        /// At least `(pos + 1) × kv_dim0`.
        k_cache: &'a [f32],
        /// At least `(pos + 1) × kv_dim0`.
        v_cache: &'a [f32],
        /// Position of the query.
        pos: usize,
        /// Heads and sizes.
        shape: AttentionShape,
    },
}

impl Op<'_> {
    /// Floats of `out` the op writes.
    pub fn out_len(&self) -> usize {
        match *self {
            Op::MatmulQ80Q40 { d, b, .. } | Op::MatmulF32 { d, b, .. } => d.saturating_mul(b),
            Op::MatmulQ80Q40Packed { d, .. } => d,
            Op::Attention { q, .. } => q.len(),
        }
    }

    /// Floats of `att` scratch the op uses.
    pub fn att_len(&self) -> usize {
        match *self {
            Op::Attention { shape, .. } => shape.n_heads0.saturating_mul(shape.seq_len),
            _ => 0,
        }
    }
}

/// The output buffers of a team: `out` (every op) and `att` (attention scratch), as atomic
/// cells holding `f32` bits so that all threads of a run can share them.
pub struct Outputs {
    out: Vec<AtomicU32>,
    att: Vec<AtomicU32>,
}

impl Outputs {
    /// Zeroed buffers of `out_len` and `att_len` floats.
    pub fn new(out_len: usize, att_len: usize) -> Outputs {
        let cells = |n| (0..n).map(|_| AtomicU32::new(0)).collect();
        Outputs {
            out: cells(out_len),
            att: cells(att_len),
        }
    }

    /// Buffers big enough for `op`.
    pub fn for_op(op: &Op<'_>) -> Outputs {
        Outputs::new(op.out_len(), op.att_len())
    }

    /// A copy of the first `len` floats of `out`.
    pub fn out(&self, len: usize) -> Vec<f32> {
        self.out[..len]
            .iter()
            .map(|c| f32::from_bits(c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Runs `op` whole on the calling thread (`n_threads = 1`), with no team overhead.
    pub fn run_alone(&mut self, k: Kernels, op: &Op<'_>) -> Result<(), KernelError> {
        // `&mut self`: nothing else can touch the buffers while the kernel writes them.
        exec(k, op, self, 1, 0)
    }
}

/// Lends the first `len` cells of `cells` to a kernel as an [`Out`].
///
/// Only [`exec`] calls this, and [`exec`] is only called (a) by [`Outputs::run_alone`], which
/// holds the buffers exclusively, or (b) by the threads of one [`Team::run`], which all call it
/// with the same op, the same `n_threads` and distinct thread indices while [`with_team`]
/// holds the buffers exclusively.
fn share(cells: &[AtomicU32], len: usize) -> Result<Out<'_, f32>, KernelError> {
    if len > cells.len() {
        return Err(KernelError::BadArgument("team output buffer too small"));
    }
    let ptr = cells.as_ptr().cast::<f32>().cast_mut();
    // SAFETY: `ptr` comes from a live `Vec` (non-null, even when empty) and `AtomicU32` has the
    // size and alignment of `f32`, so it is valid and aligned for `len <= cells.len()` floats
    // for the borrow of `cells`; every bit pattern is a valid `f32`. The cells are `UnsafeCell`s,
    // so writing through a pointer derived from a shared reference is allowed. `Out::shared`'s
    // contract holds by the calling discipline above: concurrent `Out`s over these cells exist
    // only inside one `Team::run`, where every thread passes them to the same kernel call (one
    // `Op`, one `n_threads`) with its own `thread_index`, the kernels write only their own
    // share, and the caller of `with_team` cannot reach the cells because `with_team` borrows
    // the `Outputs` mutably. Runs are ordered by the generation counter (release) and the done
    // counter (acquire), so the shares of consecutive runs never overlap in time.
    Ok(unsafe { Out::shared(ptr, len) })
}

/// Runs `op` as thread `thread_index` of `n_threads`.
fn exec(
    k: Kernels,
    op: &Op<'_>,
    outs: &Outputs,
    n_threads: usize,
    thread_index: usize,
) -> Result<(), KernelError> {
    let out = share(&outs.out, op.out_len())?;
    match *op {
        Op::MatmulQ80Q40 { x, w, n, d, b } => {
            k.matmul_q80_q40_batch(out, x, w, n, d, b, n_threads, thread_index)
        }
        Op::MatmulQ80Q40Packed { x, w, n, d } => {
            k.matmul_q80_q40_packed(out, x, w, n, d, n_threads, thread_index)
        }
        Op::MatmulF32 { x, w, n, d, b } => {
            k.matmul_f32_batch(out, x, w, n, d, b, n_threads, thread_index)
        }
        Op::Attention {
            q,
            k_cache,
            v_cache,
            pos,
            shape,
        } => {
            let att = share(&outs.att, op.att_len())?;
            k.multihead_attention(
                out,
                att,
                q,
                k_cache,
                v_cache,
                pos,
                &shape,
                n_threads,
                thread_index,
            )
        }
    }
}

/// What the threads of a team share.
struct Ctl<'d> {
    /// Bumped by thread 0 to start a run.
    generation: AtomicUsize,
    /// Workers finished with the current run.
    done: AtomicUsize,
    stop: AtomicBool,
    op: Mutex<Option<Op<'d>>>,
    /// The first failure a worker saw in the current run.
    error: Mutex<Option<KernelError>>,
}

/// A running team; see [`with_team`].
pub struct Team<'t, 'd> {
    ctl: &'t Ctl<'d>,
    outs: &'t Outputs,
    k: Kernels,
    n_threads: usize,
    workers: Vec<Thread>,
}

/// Runs `body` with a team of `n_threads` threads (the caller is thread 0) running `k`'s
/// kernels into `outs`. The workers stop when `body` returns or panics.
pub fn with_team<'d, R>(
    k: Kernels,
    n_threads: usize,
    outs: &mut Outputs,
    body: impl FnOnce(&mut Team<'_, 'd>) -> R,
) -> R {
    let n_threads = n_threads.max(1);
    let ctl = Ctl {
        generation: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        op: Mutex::new(None),
        error: Mutex::new(None),
    };
    let outs: &Outputs = outs;
    thread::scope(|s| {
        let ctl = &ctl;
        let workers = (1..n_threads)
            .map(|ti| {
                s.spawn(move || worker(ctl, k, outs, n_threads, ti))
                    .thread()
                    .clone()
            })
            .collect();
        let mut team = Team {
            ctl,
            outs,
            k,
            n_threads,
            workers,
        };
        body(&mut team)
    })
}

fn worker(ctl: &Ctl<'_>, k: Kernels, outs: &Outputs, n_threads: usize, ti: usize) {
    let mut seen = 0;
    loop {
        let mut spins = 0;
        loop {
            if ctl.stop.load(Ordering::Acquire) {
                return;
            }
            let g = ctl.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if spins < IDLE_SPINS {
                spins += 1;
                spin_loop();
            } else {
                // `Team::run` unparks after bumping the generation, so no wake-up is lost.
                thread::park();
            }
        }
        let op = *ctl.op.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(op) = op {
            // A panicking worker must still report back, or thread 0 would wait forever.
            let r = catch_unwind(AssertUnwindSafe(|| exec(k, &op, outs, n_threads, ti)))
                .unwrap_or(Err(KernelError::BadArgument("a team thread panicked")));
            if let Err(e) = r {
                ctl.error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        }
        ctl.done.fetch_add(1, Ordering::Release);
    }
}

impl<'d> Team<'_, 'd> {
    /// Threads in the team, the caller included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `op` on every thread, each on its share, and returns when all are done.
    pub fn run(&mut self, op: Op<'d>) -> Result<(), KernelError> {
        if self.n_threads == 1 {
            return exec(self.k, &op, self.outs, 1, 0);
        }
        *self.ctl.op.lock().unwrap_or_else(PoisonError::into_inner) = Some(op);
        // Every worker reported back for the previous run, so none can count this reset.
        self.ctl.done.store(0, Ordering::Relaxed);
        self.ctl.generation.fetch_add(1, Ordering::Release);
        for w in &self.workers {
            w.unpark();
        }
        let mine = exec(self.k, &op, self.outs, self.n_threads, 0);
        let mut spins = 0u32;
        while self.ctl.done.load(Ordering::Acquire) != self.n_threads - 1 {
            spins = spins.saturating_add(1);
            if spins < IDLE_SPINS {
                spin_loop();
            } else {
                // A descheduled worker on a busy machine: give it the core.
                thread::yield_now();
            }
        }
        let theirs = self
            .ctl
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        mine.and(theirs.map_or(Ok(()), Err))
    }
}

impl Drop for Team<'_, '_> {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::Release);
        for w in &self.workers {
            w.unpark();
        }
    }
}

/// Times `make(i)` (the op for call `i`) under `plan` on `n_threads` threads: directly on the
/// calling thread for 1, else on a [`with_team`] team started once for the whole measurement.
/// Panics if a kernel refuses its arguments (a harness bug).
pub fn time_op<'d>(
    k: Kernels,
    n_threads: usize,
    plan: &Plan,
    outs: &mut Outputs,
    make: impl Fn(usize) -> Op<'d>,
) -> Timing {
    if n_threads <= 1 {
        return time_calls(plan, |i| {
            outs.run_alone(k, &make(i))
                .unwrap_or_else(|e| panic!("kernel call refused: {e}"))
        });
    }
    with_team(k, n_threads, outs, |team| {
        time_calls(plan, |i| {
            team.run(make(i))
                .unwrap_or_else(|e| panic!("kernel call refused: {e}"))
        })
    })
}

/// Runs `make(first)`, …, `make(first + iters − 1)` on `n_threads` threads and returns the
/// time they took (the team start-up is not timed): the body of a criterion `iter_custom`.
/// Panics if a kernel refuses its arguments.
pub fn run_many<'d>(
    k: Kernels,
    n_threads: usize,
    outs: &mut Outputs,
    first: usize,
    iters: u64,
    make: impl Fn(usize) -> Op<'d>,
) -> Duration {
    let calls = first..first + iters as usize;
    if n_threads <= 1 {
        let t = Instant::now();
        for i in calls {
            outs.run_alone(k, &make(i))
                .unwrap_or_else(|e| panic!("kernel call refused: {e}"));
        }
        return t.elapsed();
    }
    with_team(k, n_threads, outs, |team| {
        let t = Instant::now();
        for i in calls {
            team.run(make(i))
                .unwrap_or_else(|e| panic!("kernel call refused: {e}"));
        }
        t.elapsed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{f32_vec, pack_q40, q40_matrix, q80_vec};
    use airllm_kernels::available;

    #[test]
    fn team_output_equals_one_thread_for_every_impl() {
        let (n, d) = (256, 203);
        let w = q40_matrix(d, n, 3);
        let wf = f32_vec(n * d, 4, -1.0, 1.0);
        // 13 groups of 16 rows: thread shares of 2, 3 and 5 are uneven.
        let dp = 208;
        let wp = pack_q40(&q40_matrix(dp, n, 7), n, dp).unwrap();
        for b in [1, 3] {
            let x = q80_vec(n * b, 5);
            let xf = f32_vec(n * b, 6, -1.0, 1.0);
            let ops = [
                Op::MatmulQ80Q40 {
                    x: &x,
                    w: &w,
                    n,
                    d,
                    b,
                },
                Op::MatmulQ80Q40Packed {
                    x: &x[..n / 32],
                    w: &wp,
                    n,
                    d: dp,
                },
                Op::MatmulF32 {
                    x: &xf,
                    w: &wf,
                    n,
                    d,
                    b,
                },
            ];
            for imp in available() {
                let k = Kernels::new(imp).unwrap();
                for op in ops {
                    let mut alone = Outputs::for_op(&op);
                    alone.run_alone(k, &op).unwrap();
                    for threads in [2, 3, 5] {
                        let mut outs = Outputs::for_op(&op);
                        with_team(k, threads, &mut outs, |t| {
                            for _ in 0..3 {
                                t.run(op).unwrap();
                            }
                        });
                        assert_eq!(outs.out(op.out_len()), alone.out(op.out_len()), "{imp}");
                    }
                }
            }
        }
    }

    #[test]
    fn team_attention_equals_one_thread() {
        let shape = AttentionShape {
            n_heads: 8,
            n_heads0: 8,
            n_kv_heads: 2,
            head_dim: 64,
            seq_len: 40,
            kv_dim0: 128,
        };
        let q = f32_vec(8 * 64, 1, -1.0, 1.0);
        let kc = f32_vec(40 * 128, 2, -1.0, 1.0);
        let vc = f32_vec(40 * 128, 3, -1.0, 1.0);
        let op = Op::Attention {
            q: &q,
            k_cache: &kc,
            v_cache: &vc,
            pos: 37,
            shape,
        };
        let k = Kernels::current();
        let mut alone = Outputs::for_op(&op);
        alone.run_alone(k, &op).unwrap();
        let mut outs = Outputs::for_op(&op);
        with_team(k, 3, &mut outs, |t| t.run(op).unwrap());
        assert_eq!(outs.out(op.out_len()), alone.out(op.out_len()));
    }

    #[test]
    fn kernel_errors_from_workers_are_reported() {
        let x = q80_vec(64, 1);
        let w = q40_matrix(4, 64, 2);
        // `d` disagrees with `w`: every thread's call is refused.
        let op = Op::MatmulQ80Q40 {
            x: &x,
            w: &w,
            n: 64,
            d: 5,
            b: 1,
        };
        let mut outs = Outputs::for_op(&op);
        let r = with_team(Kernels::scalar(), 2, &mut outs, |t| t.run(op));
        assert!(matches!(r, Err(KernelError::BadSize { .. })));
    }
}
