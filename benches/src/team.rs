//! A small thread team that runs one kernel call on every thread at once, each with its own
//! `thread_index`, the way a node's executor drives the kernels.
//!
//! [`with_team`] starts `n_threads − 1` workers for the duration of a closure; the calling
//! thread is thread 0. Each [`Team::call`] publishes the index of a call, every thread builds
//! that call's [`Op`] itself and the caller waits until every worker has reported back, so the
//! cost per call is two cache-line hand-overs, not a thread start. Idle workers spin briefly,
//! then park.
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

    /// Everything that decides which output cells each thread of a split writes: the kernel
    /// and its sizes, not the input data. Threads whose ops share a layout write disjoint
    /// shares.
    fn layout(&self) -> [usize; 10] {
        match *self {
            Op::MatmulQ80Q40 { x, w, n, d, b } => [1, n, d, b, x.len(), w.len(), 0, 0, 0, 0],
            Op::MatmulQ80Q40Packed { x, w, n, d } => [2, n, d, 1, x.len(), w.len(), 0, 0, 0, 0],
            Op::MatmulF32 { x, w, n, d, b } => [3, n, d, b, x.len(), w.len(), 0, 0, 0, 0],
            Op::Attention { q, pos, shape, .. } => [
                4,
                q.len(),
                pos,
                shape.n_heads,
                shape.n_heads0,
                shape.n_kv_heads,
                shape.head_dim,
                shape.seq_len,
                shape.kv_dim0,
                0,
            ],
        }
    }
}

/// The output buffers of a team: `out` (every op) and `att` (attention scratch), as atomic
/// cells holding `f32` bits so that all threads of a run can share them.
pub struct Outputs {
    out: Aligned,
    att: Aligned,
}

/// Cells whose first one starts a 128-byte line pair, as a node's buffers do: a thread's share
/// that starts on a line boundary then shares no line with its neighbour's, so a call's time
/// is the kernel's and not the bench buffer's false sharing. (A plain `Vec` is 16-byte
/// aligned; for 2 threads on 4096×128 the difference measured within the noise.)
struct Aligned {
    cells: Vec<AtomicU32>,
    first: usize,
}

impl Aligned {
    fn zeroed(len: usize) -> Aligned {
        const LINE_CELLS: usize = 128 / core::mem::size_of::<AtomicU32>();
        let cells: Vec<AtomicU32> = (0..len + LINE_CELLS).map(|_| AtomicU32::new(0)).collect();
        let first = cells.as_ptr().align_offset(128).min(LINE_CELLS);
        Aligned { cells, first }
    }

    fn get(&self) -> &[AtomicU32] {
        &self.cells[self.first..]
    }
}

impl Outputs {
    /// Zeroed buffers of `out_len` and `att_len` floats.
    pub fn new(out_len: usize, att_len: usize) -> Outputs {
        Outputs {
            out: Aligned::zeroed(out_len),
            att: Aligned::zeroed(att_len),
        }
    }

    /// Buffers big enough for `op`.
    pub fn for_op(op: &Op<'_>) -> Outputs {
        Outputs::new(op.out_len(), op.att_len())
    }

    /// A copy of the first `len` floats of `out`.
    pub fn out(&self, len: usize) -> Vec<f32> {
        self.out.get()[..len]
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
/// holds the buffers exclusively, or (b) by the threads of one [`Team::call`], which all call
/// it with ops of the team's layout, the same `n_threads` and distinct thread indices while
/// [`with_team`] holds the buffers exclusively.
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
    // only inside one `Team::call`, where every thread passes them to a kernel call of the
    // same layout (same kernel and sizes, checked in `exec_call`; one `n_threads`) with its own
    // `thread_index`, the kernels write only their own share, and the caller of `with_team`
    // cannot reach the cells because `with_team` borrows the `Outputs` mutably. Calls are
    // ordered by the `go` word (release) and each worker's `done` word (acquire), so the
    // shares of consecutive calls never overlap in time.
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
    let out = share(outs.out.get(), op.out_len())?;
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
            let att = share(outs.att.get(), op.att_len())?;
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

/// A value alone in its cache line pair, so the lines the threads hand each other carry
/// nothing else (the adjacent-line prefetcher pulls lines in pairs).
#[repr(align(128))]
struct Padded<T>(T);

/// What the threads of a team share.
struct Ctl<'m, 'd> {
    /// The number of calls started so far; a worker runs call `index` when it changes.
    go: Padded<(AtomicUsize, AtomicUsize)>,
    /// Per worker: the last call it finished (its own line, written only by that worker).
    done: Vec<Padded<AtomicUsize>>,
    stop: AtomicBool,
    /// The op of call `i`; every thread builds it for itself, so no op crosses threads.
    make: &'m (dyn Fn(usize) -> Op<'d> + Sync),
    /// The layout of `make(0)`: a thread runs an op only if it has this layout, so the
    /// threads of a call write disjoint shares whatever `make` returns.
    layout: [usize; 10],
    /// The first failure a worker saw in the current call (a worker's `done` word says when
    /// there is one, so the caller does not touch this line on every call).
    error: Padded<Mutex<Option<KernelError>>>,
}

/// A worker's `done` word for call `g`: `g` shifted left, the low bit set if it failed.
fn done_word(g: usize, failed: bool) -> usize {
    (g << 1) | usize::from(failed)
}

/// A running team; see [`with_team`].
pub struct Team<'t, 'm, 'd> {
    ctl: &'t Ctl<'m, 'd>,
    outs: &'t Outputs,
    k: Kernels,
    n_threads: usize,
    calls: usize,
    workers: Vec<Thread>,
}

/// Runs `body` with a team of `n_threads` threads (the caller is thread 0) running `k`'s
/// kernels on the ops `make(i)` into `outs`. The workers stop when `body` returns or panics.
///
/// A call ([`Team::call`]) costs two cache-line hand-overs besides the work: the caller
/// publishes the call's index in one line, each worker builds `make(index)` itself and reports
/// in a line of its own (measured ping-pong on the development machine: about 0.26 µs).
pub fn with_team<'m, 'd, R>(
    k: Kernels,
    n_threads: usize,
    outs: &mut Outputs,
    make: &'m (dyn Fn(usize) -> Op<'d> + Sync),
    body: impl FnOnce(&mut Team<'_, 'm, 'd>) -> R,
) -> R {
    let n_threads = n_threads.max(1);
    let ctl = Ctl {
        go: Padded((AtomicUsize::new(0), AtomicUsize::new(0))),
        done: (1..n_threads)
            .map(|_| Padded(AtomicUsize::new(0)))
            .collect(),
        stop: AtomicBool::new(false),
        make,
        layout: make(0).layout(),
        error: Padded(Mutex::new(None)),
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
            calls: 0,
            workers,
        };
        body(&mut team)
    })
}

/// Runs call `index` as thread `ti` of the team, if its op has the team's layout.
fn exec_call(
    ctl: &Ctl<'_, '_>,
    k: Kernels,
    outs: &Outputs,
    n_threads: usize,
    ti: usize,
    index: usize,
) -> Result<(), KernelError> {
    let op = (ctl.make)(index);
    if op.layout() != ctl.layout {
        return Err(KernelError::BadArgument(
            "a team's ops must all have the same kernel and sizes",
        ));
    }
    exec(k, &op, outs, n_threads, ti)
}

fn worker(ctl: &Ctl<'_, '_>, k: Kernels, outs: &Outputs, n_threads: usize, ti: usize) {
    let mut seen = 0;
    loop {
        let mut spins = 0;
        loop {
            if ctl.stop.load(Ordering::Acquire) {
                return;
            }
            let g = ctl.go.0 .0.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if spins < IDLE_SPINS {
                spins += 1;
                spin_loop();
            } else {
                // `Team::call` unparks after publishing the call, so no wake-up is lost.
                thread::park();
            }
        }
        let index = ctl.go.0 .1.load(Ordering::Relaxed);
        // A panicking worker must still report back, or thread 0 would wait forever.
        let r = catch_unwind(AssertUnwindSafe(|| {
            exec_call(ctl, k, outs, n_threads, ti, index)
        }))
        .unwrap_or(Err(KernelError::BadArgument("a team thread panicked")));
        let failed = r.is_err();
        if let Err(e) = r {
            ctl.error
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(e);
        }
        ctl.done[ti - 1]
            .0
            .store(done_word(seen, failed), Ordering::Release);
    }
}

impl Team<'_, '_, '_> {
    /// Threads in the team, the caller included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `make(index)` on every thread, each on its share, and returns when all are done.
    pub fn call(&mut self, index: usize) -> Result<(), KernelError> {
        if self.n_threads == 1 {
            return exec(self.k, &(self.ctl.make)(index), self.outs, 1, 0);
        }
        self.calls += 1;
        let g = self.calls;
        // The index is read by the workers after they see `g` (release/acquire on `go`).
        self.ctl.go.0 .1.store(index, Ordering::Relaxed);
        self.ctl.go.0 .0.store(g, Ordering::Release);
        for w in &self.workers {
            w.unpark();
        }
        let mine = exec_call(self.ctl, self.k, self.outs, self.n_threads, 0, index);
        let mut failed = false;
        for d in &self.ctl.done {
            let mut spins = 0u32;
            loop {
                let w = d.0.load(Ordering::Acquire);
                if w >> 1 == g {
                    failed |= w & 1 == 1;
                    break;
                }
                spins = spins.saturating_add(1);
                if spins < IDLE_SPINS {
                    spin_loop();
                } else {
                    // A descheduled worker on a busy machine: give it the core.
                    thread::yield_now();
                }
            }
        }
        let theirs = if failed {
            self.ctl
                .error
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        } else {
            None
        };
        mine.and(theirs.map_or(Ok(()), Err))
    }
}

impl Drop for Team<'_, '_, '_> {
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
    make: impl Fn(usize) -> Op<'d> + Sync,
) -> Timing {
    if n_threads <= 1 {
        return time_calls(plan, |i| {
            outs.run_alone(k, &make(i))
                .unwrap_or_else(|e| panic!("kernel call refused: {e}"))
        });
    }
    with_team(k, n_threads, outs, &make, |team| {
        time_calls(plan, |i| {
            team.call(i)
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
    make: impl Fn(usize) -> Op<'d> + Sync,
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
    with_team(k, n_threads, outs, &make, |team| {
        let t = Instant::now();
        for i in calls {
            team.call(i)
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
                        with_team(k, threads, &mut outs, &|_| op, |t| {
                            for i in 0..3 {
                                t.call(i).unwrap();
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
        with_team(k, 3, &mut outs, &|_| op, |t| t.call(0).unwrap());
        assert_eq!(outs.out(op.out_len()), alone.out(op.out_len()));
    }

    #[test]
    fn ops_of_another_layout_are_refused() {
        let x = q80_vec(64, 1);
        let w = q40_matrix(8, 64, 2);
        let op = |d| Op::MatmulQ80Q40 {
            x: &x,
            w: &w[..d * 2],
            n: 64,
            d,
            b: 1,
        };
        let mut outs = Outputs::new(8, 0);
        // Call 0 fixes the layout (d = 8); call 1 asks for d = 4 on every thread.
        let make = |i: usize| op(if i == 0 { 8 } else { 4 });
        with_team(Kernels::scalar(), 2, &mut outs, &make, |t| {
            t.call(0).unwrap();
            assert!(matches!(t.call(1), Err(KernelError::BadArgument(_))));
            t.call(2).unwrap_err();
        });
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
        let r = with_team(Kernels::scalar(), 2, &mut outs, &|_| op, |t| t.call(0));
        assert!(matches!(r, Err(KernelError::BadSize { .. })));
    }
}
