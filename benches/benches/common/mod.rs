//! Criterion settings shared by the bench targets.
#![allow(dead_code)]

use std::time::Duration;

use airllm_kernels::{available, Impl};
use criterion::Criterion;

/// Short warm-up and measurement, 10 samples: the default run covers ~290 configurations and
/// must stay within minutes on a small machine (`criterion_group!` applies the command-line
/// options on top). `AIRLLM_BENCH_FULL=1` selects the full shape
/// matrix (every model shape and regime); criterion's own filter (`cargo bench -- TEXT`)
/// narrows either.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(10)
        .without_plots()
}

/// Whether `AIRLLM_BENCH_FULL` asks for the full matrix.
pub fn full() -> bool {
    std::env::var("AIRLLM_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The implementations to benchmark: every available one, or those named in
/// `AIRLLM_BENCH_IMPLS` (comma-separated, e.g. `scalar,avx2`).
pub fn impls() -> Vec<Impl> {
    let wanted = std::env::var("AIRLLM_BENCH_IMPLS").ok();
    available()
        .filter(|i| {
            wanted
                .as_deref()
                .is_none_or(|w| w.split(',').any(|n| n.trim() == i.name()))
        })
        .collect()
}

/// A benchmark id part without spaces (criterion turns them into underscores anyway).
pub fn slug(s: &str) -> String {
    s.replace(' ', "_")
}
