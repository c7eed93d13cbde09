//! The machine's read bandwidth: the best a weight-streaming kernel can hope for.
//!
//! A sum over a buffer far larger than any cache, with 16 independent accumulators so the
//! compiler turns it into a vector reduction with several loads in flight, on 1 thread and on
//! every thread at once (each thread its own contiguous part). Each thread reads its part as
//! eight contiguous stretches side by side, as the matmul kernels read their row slots, and on
//! x86-64 prefetches 4 KiB ahead in each, as the kernels do. A single stream understates what
//! a core can read: on the development VM one stream summed 13.3 GB/s on 1 thread and 25 on 2,
//! eight streams 16.3 and 32, and the row-major matmul streamed 15.6 and 30 GB/s.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::Instant;

use crate::timing::median;

/// The default probe buffer: 1 GiB.
pub const PROBE_BYTES: usize = 1 << 30;

/// Lanes of the reduction: 16 × 8 bytes = two cache lines per step.
const LANES: usize = 16;

/// Parts of a buffer read side by side.
const STREAMS: usize = 8;

/// Read bandwidth in GB/s (10⁹ bytes per second), median over the repeats.
#[derive(Clone, Copy, Debug)]
pub struct Bandwidth {
    /// One thread reading the whole buffer.
    pub one_thread: f64,
    /// All threads, each reading its share of the buffer.
    pub all_threads: f64,
    /// Threads used for `all_threads`.
    pub threads: usize,
    /// Size of the buffer read, in bytes.
    pub bytes: usize,
}

impl Bandwidth {
    /// The higher figure of two probes for each thread count (a shared machine's load only
    /// ever lowers a probe).
    pub fn max(&self, other: &Bandwidth) -> Bandwidth {
        Bandwidth {
            one_thread: self.one_thread.max(other.one_thread),
            all_threads: self.all_threads.max(other.all_threads),
            threads: self.threads,
            bytes: self.bytes,
        }
    }

    /// The bandwidth for `threads` (1 or the all-threads figure).
    pub fn for_threads(&self, threads: usize) -> f64 {
        if threads <= 1 {
            self.one_thread
        } else {
            self.all_threads
        }
    }
}

/// How far ahead the probe prefetches, in `u64`s (4 KiB).
const PREFETCH_AHEAD: usize = 512;

/// Asks for the cache line at `p` ahead of use.
#[inline(always)]
fn prefetch(p: *const u64) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: `prefetcht0` (SSE, enabled by the cfg) is only a hint: it never faults and has no
    // architectural effect for any address, so `p` may point anywhere, even past the buffer.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = p;
}

/// Wrapping sum of `x` (the value only keeps the loads alive), read as `STREAMS` contiguous
/// parts side by side.
pub fn sum(x: &[u64]) -> u64 {
    let per = x.len() / STREAMS / LANES * LANES;
    let mut acc = [0u64; LANES];
    for step in (0..per).step_by(LANES) {
        for part in x.chunks_exact(per).take(STREAMS) {
            let c = &part[step..step + LANES];
            // Two lines per step of 128 bytes; `wrapping_add` because the hint may point past
            // the end.
            let ahead = c.as_ptr().wrapping_add(PREFETCH_AHEAD);
            prefetch(ahead);
            prefetch(ahead.wrapping_add(8));
            for (a, v) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(*v);
            }
        }
    }
    acc.iter()
        .chain(&x[STREAMS * per..])
        .fold(0u64, |s, v| s.wrapping_add(*v))
}

/// Seconds for `threads` threads to sum `buf`, split into contiguous parts.
fn timed_sum(buf: &[u64], threads: usize) -> f64 {
    if threads <= 1 {
        let t = Instant::now();
        black_box(sum(black_box(buf)));
        return t.elapsed().as_secs_f64();
    }
    let part = buf.len().div_ceil(threads);
    let barrier = Barrier::new(threads + 1);
    let start = thread::scope(|s| {
        let mut spawned = 0;
        for chunk in buf.chunks(part) {
            let barrier = &barrier;
            spawned += 1;
            s.spawn(move || {
                barrier.wait();
                black_box(sum(black_box(chunk)));
            });
        }
        // Threads that got no chunk (tiny buffers) still have to pass the barrier.
        for _ in spawned..threads {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
            });
        }
        barrier.wait();
        Instant::now()
    });
    // The scope joined every thread before returning: the time covers the slowest one.
    start.elapsed().as_secs_f64()
}

/// Measures read bandwidth over a `bytes` buffer (rounded down to whole `u64`s), `repeats`
/// passes per thread count, on 1 thread and on `threads`.
pub fn measure(bytes: usize, threads: usize, repeats: usize) -> Bandwidth {
    let words = (bytes / 8).max(LANES);
    // Written, not just allocated, so every page is backed before the clock starts.
    let buf: Vec<u64> = (0..words as u64).collect();
    let bytes = words * 8;
    let gbs = |secs: f64| bytes as f64 / secs / 1e9;
    let run = |t: usize| {
        // One untimed pass settles page tables and clocks.
        timed_sum(&buf, t);
        let mut v: Vec<f64> = (0..repeats.max(1))
            .map(|_| gbs(timed_sum(&buf, t)))
            .collect();
        median(&mut v)
    };
    let one_thread = run(1);
    let all_threads = if threads > 1 {
        run(threads)
    } else {
        one_thread
    };
    Bandwidth {
        one_thread,
        all_threads,
        threads,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_matches_a_plain_fold() {
        let v: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for len in [0, 1, 15, 16, 17, 999, 1000] {
            let want = v[..len].iter().fold(0u64, |s, x| s.wrapping_add(*x));
            assert_eq!(sum(&v[..len]), want);
        }
    }

    #[test]
    fn small_probe_reports_positive_bandwidth() {
        let b = measure(1 << 20, 3, 2);
        assert!(b.one_thread > 0.0 && b.all_threads > 0.0);
        assert_eq!(b.threads, 3);
    }
}
