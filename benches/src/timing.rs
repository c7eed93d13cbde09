//! The report's timing loop: warm up, calibrate how many calls make one sample, then take the
//! median over samples of the time per call.

use std::time::{Duration, Instant};

/// How long and how often to measure one kernel configuration.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Samples to take the median of.
    pub samples: usize,
    /// Calls run (and discarded) before measuring: at least one, and for at least this long.
    pub warmup: Duration,
    /// Each sample repeats the call until it lasts at least this long, so the clock's
    /// resolution and overhead vanish for sub-microsecond kernels.
    pub min_sample: Duration,
}

impl Plan {
    /// The default: 15 samples of at least 2 ms after 20 ms of warm-up.
    pub const NORMAL: Plan = Plan {
        samples: 15,
        warmup: Duration::from_millis(20),
        min_sample: Duration::from_millis(2),
    };

    /// For `--quick` runs: 7 samples of at least 1 ms after 5 ms of warm-up.
    pub const QUICK: Plan = Plan {
        samples: 7,
        warmup: Duration::from_millis(5),
        min_sample: Duration::from_millis(1),
    };

    /// For the scalar baselines, which take up to a second per call on the largest shapes:
    /// one warm-up call and 3 samples of one call each (sub-millisecond kernels still repeat
    /// to 1 ms per sample).
    pub const BASELINE: Plan = Plan {
        samples: 3,
        warmup: Duration::ZERO,
        min_sample: Duration::from_millis(1),
    };
}

/// The result of [`time_calls`].
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Median seconds per call.
    pub median: f64,
    /// Fastest sample, seconds per call.
    pub min: f64,
    /// Samples taken.
    pub samples: usize,
    /// Calls per sample.
    pub calls_per_sample: usize,
}

/// The median of `v` (mean of the middle two for even lengths); sorts `v`. 0 if empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Times `call(i)` (with `i` counting every call made, warm-up included, so a streaming
/// benchmark can rotate its weights) under `plan`.
pub fn time_calls(plan: &Plan, mut call: impl FnMut(usize)) -> Timing {
    let mut i = 0;
    let start = Instant::now();
    loop {
        call(i);
        i += 1;
        if start.elapsed() >= plan.warmup {
            break;
        }
    }
    let per_call = start.elapsed().as_secs_f64() / i as f64;
    let per_sample = if per_call > 0.0 {
        ((plan.min_sample.as_secs_f64() / per_call).ceil() as usize).max(1)
    } else {
        1
    };
    let mut times: Vec<f64> = (0..plan.samples.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_sample {
                call(i);
                i += 1;
            }
            t.elapsed().as_secs_f64() / per_sample as f64
        })
        .collect();
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Timing {
        median: median(&mut times),
        min,
        samples: times.len(),
        calls_per_sample: per_sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn calls_are_counted_through_warmup_and_samples() {
        let mut seen = Vec::new();
        let plan = Plan {
            samples: 3,
            warmup: Duration::ZERO,
            min_sample: Duration::ZERO,
        };
        let t = time_calls(&plan, |i| seen.push(i));
        assert_eq!(t.samples, 3);
        assert_eq!(t.calls_per_sample, 1);
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert!(t.min <= t.median);
    }
}
