//! Shared harness for the kernel benchmarks (`cargo bench -p airllm-benches`) and the
//! `kernel-report` tool: synthetic weights, the benchmarked shapes, a small thread team that
//! drives `(n_threads, thread_index)` like a node's executor, a read-bandwidth probe and a
//! median timing loop.
//!
//! Two memory regimes are measured for every weight-bound kernel:
//! - **cache**: the same weights on every call, so they stay in the last-level cache when they
//!   fit (this is what a micro-benchmark usually measures);
//! - **stream**: every call uses the next of several copies of the weights, together at least
//!   [`STREAM_POOL_BYTES`], so each call reads its weights from DRAM as a node does when it
//!   walks through a model's layers.

pub mod bandwidth;
pub mod data;
pub mod shapes;
pub mod small;
pub mod team;
pub mod timing;

/// The least total size of a streaming pool of weight copies, in bytes. Twice the largest
/// last-level caches of current server parts is not needed: rotating through a pool this
/// size evicts each copy long before it is used again on the machines we measure.
pub const STREAM_POOL_BYTES: usize = 512 << 20;

/// The memory regime of a measurement (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Regime {
    /// The same data on every call.
    Cache,
    /// Each call reads the next copy of a pool of at least [`STREAM_POOL_BYTES`].
    Stream,
}

impl Regime {
    /// Both regimes, cache first.
    pub const ALL: [Regime; 2] = [Regime::Cache, Regime::Stream];

    /// `cache` or `stream`.
    pub const fn name(self) -> &'static str {
        match self {
            Regime::Cache => "cache",
            Regime::Stream => "stream",
        }
    }
}

/// Logical CPUs this process may use (at least 1).
pub fn all_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The thread counts benchmarked: 1 and every CPU (just `[1]` on a single-CPU machine).
pub fn thread_counts() -> Vec<usize> {
    let all = all_threads();
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}
