//! A persistent pool of `n` threads (the caller's thread is thread 0) that runs one job on all
//! threads at once, with a spin-yield-sleep barrier the job uses between ops.

use std::hint::spin_loop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Busy-wait iterations before a waiting thread starts yielding: covers the common case of
/// threads finishing an op within microseconds of each other.
const SPIN: u32 = 1 << 10;
/// Then the thread yields its core for up to this long: when there are more runnable threads
/// than cores, the thread everyone waits for gets to run (measured on a loaded 2-core machine:
/// 3–7× faster decode at 2 threads than sleeping right after the spin), and between tokens the
/// pool still goes to sleep quickly.
const YIELD_MS: u64 = 2;

/// A reusable barrier for a fixed number of threads: spins briefly, yields for a while, then
/// sleeps on a condvar.
pub(crate) struct Barrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Threads between announcing that they will sleep and waking up: the last arriver takes
    /// the lock and wakes them only when there are any (a wake-up is a system call, about
    /// 0.2 µs here, on the path of the thread every other thread waits for).
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Barrier {
    pub(crate) fn new(n: usize) -> Barrier {
        Barrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Blocks until all `n` threads have called `wait` for this generation. Everything a thread
    /// wrote before its `wait` is visible to every thread after theirs.
    pub(crate) fn wait(&self) {
        if self.n <= 1 {
            return;
        }
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            // Nobody can pass (or arrive at the next generation) before `generation` changes,
            // so resetting the count first is race-free.
            self.arrived.store(0, Ordering::Relaxed);
            // Sequentially consistent with the sleepers' announce-then-check below: either a
            // sleeper sees the new generation and does not wait, or this sees the sleeper and
            // wakes it (under the lock, so the wake-up cannot fall between its check and its
            // wait).
            self.generation.store(gen.wrapping_add(1), Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.wake.notify_all();
            }
            return;
        }
        for _ in 0..SPIN {
            if self.generation.load(Ordering::Acquire) != gen {
                return;
            }
            spin_loop();
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(YIELD_MS) {
            if self.generation.load(Ordering::Acquire) != gen {
                return;
            }
            std::thread::yield_now();
        }
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.generation.load(Ordering::SeqCst) == gen {
            g = self.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Per-thread scratch memory, owned by the thread that uses it.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) f32s: Vec<f32>,
    pub(crate) u32s: Vec<u32>,
}

/// The work of one pool run: called once on every thread with `(thread_index, barrier,
/// scratch)`. It must call `barrier.wait()` the same number of times on every thread.
pub(crate) type Job = dyn Fn(usize, &Barrier, &mut Scratch) -> Result<(), String> + Send + Sync;

struct Shared {
    n_threads: usize,
    /// Releases the workers into a job (or into shutdown), and collects them after it.
    gate: Barrier,
    /// The barrier jobs use between their steps.
    step: Barrier,
    job: Mutex<Option<Arc<Job>>>,
    shutdown: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn record(&self, r: Result<Result<(), String>, Box<dyn std::any::Any + Send>>) {
        let msg = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(p) => p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a pool thread panicked".into()),
        };
        let mut e = self.error.lock().unwrap_or_else(|e| e.into_inner());
        e.get_or_insert(msg);
    }
}

/// The thread pool. Dropping it stops and joins the workers.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    scratch: Scratch,
}

impl Pool {
    /// A pool of `n_threads ≥ 1` threads: the caller plus `n_threads − 1` workers.
    pub(crate) fn new(n_threads: usize) -> Result<Pool, String> {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads,
            gate: Barrier::new(n_threads),
            step: Barrier::new(n_threads),
            job: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let mut workers = Vec::with_capacity(n_threads - 1);
        for t in 1..n_threads {
            let s = Arc::clone(&shared);
            let h = std::thread::Builder::new()
                .name(format!("airllm-pool-{t}"))
                .spawn(move || worker(s, t))
                .map_err(|e| format!("cannot start pool thread: {e}"))?;
            workers.push(h);
        }
        Ok(Pool {
            shared,
            workers,
            scratch: Scratch::default(),
        })
    }

    /// Threads in the pool, the caller included.
    pub(crate) fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Runs `job` on every thread and returns when all are done, with the first error any
    /// thread reported (a panic inside the job is reported as an error). When this returns, no
    /// worker holds a clone of `job`.
    pub(crate) fn run(&mut self, job: Arc<Job>) -> Result<(), String> {
        let s = &*self.shared;
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&job));
        s.gate.wait();
        let r = catch_unwind(AssertUnwindSafe(|| job(0, &s.step, &mut self.scratch)));
        s.record(r);
        s.gate.wait();
        s.job.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(job);
        let mut e = s.error.lock().unwrap_or_else(|e| e.into_inner());
        match e.take() {
            Some(msg) => Err(msg),
            None => Ok(()),
        }
    }
}

fn worker(s: Arc<Shared>, t: usize) {
    let mut scratch = Scratch::default();
    loop {
        s.gate.wait();
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        let job = s.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(job) = job {
            let r = catch_unwind(AssertUnwindSafe(|| job(t, &s.step, &mut scratch)));
            s.record(r);
        }
        // The job clone is dropped before the finishing gate, so the caller can regain
        // exclusive ownership of whatever it captured.
        s.gate.wait();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.gate.wait();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every round, every thread sees all the others' arrivals once it passes the barrier;
    /// in some rounds one thread arrives after the others have given up spinning and
    /// yielding, so they sleep and must be woken. A lost wake-up fails the test after 20 s
    /// instead of hanging it.
    #[test]
    fn barrier_holds_every_thread_every_round_and_wakes_sleepers() {
        const N: usize = 4;
        const ROUNDS: usize = 300;
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let barrier = Barrier::new(N);
            let arrivals = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for t in 0..N {
                    let (barrier, arrivals) = (&barrier, &arrivals);
                    s.spawn(move || {
                        for round in 0..ROUNDS {
                            if round % 50 == 7 && t == round % N {
                                std::thread::sleep(Duration::from_millis(YIELD_MS + 3));
                            }
                            arrivals.fetch_add(1, Ordering::SeqCst);
                            barrier.wait();
                            assert!(arrivals.load(Ordering::SeqCst) >= N * (round + 1));
                            barrier.wait();
                        }
                    });
                }
            });
            let _ = done.send((
                arrivals.load(Ordering::SeqCst),
                barrier.sleepers.load(Ordering::SeqCst),
            ));
        });
        let (arrivals, sleepers) = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the barrier lost a wake-up (or a thread panicked)");
        assert_eq!(arrivals, N * ROUNDS);
        assert_eq!(sleepers, 0);
    }
}
