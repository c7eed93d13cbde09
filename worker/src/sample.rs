//! The peer's sampler (spec §8): greedy argmax at temperature 0; otherwise softmax of the
//! logits divided by the temperature, then either plain multinomial sampling or top-p
//! (nucleus) sampling, driven by an xorshift* generator seeded with `--seed`.

use airllm_kernels::Kernels;

/// The peer's xorshift* generator (64-bit state, 32-bit outputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XorShiftRng {
    state: u64,
}

impl XorShiftRng {
    /// A generator with `seed` as its state. A zero seed stays zero and yields only zeros,
    /// as in the peer.
    pub fn new(seed: u64) -> XorShiftRng {
        XorShiftRng { state: seed }
    }

    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let mut s = self.state;
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        self.state = s;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Uniform in `[0, 1)` with 24 bits of resolution.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }
}

/// Sampling settings and RNG state.
#[derive(Clone)]
pub struct Sampler {
    temperature: f32,
    topp: f32,
    rng: XorShiftRng,
    kernels: Kernels,
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler. `temperature == 0` is greedy; `topp` outside `(0, 1)` disables the nucleus
    /// cut-off.
    pub fn new(temperature: f32, topp: f32, seed: u64) -> Sampler {
        Sampler {
            temperature,
            topp,
            rng: XorShiftRng::new(seed),
            kernels: Kernels::current(),
            candidates: Vec::new(),
        }
    }

    /// Changes the temperature.
    pub fn set_temperature(&mut self, temperature: f32) {
        self.temperature = temperature;
    }

    /// Restarts the RNG from `seed`.
    pub fn set_seed(&mut self, seed: u64) {
        self.rng = XorShiftRng::new(seed);
    }

    /// Picks the next token from `logits` (one per vocabulary entry; must not be empty). The
    /// logits are overwritten with the probabilities when the temperature is not 0.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        assert!(!logits.is_empty(), "sampling needs at least one logit");
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        for v in logits.iter_mut() {
            *v /= self.temperature;
        }
        let n = logits.len();
        // One row of n floats, one thread: the checks cannot fail.
        if self.kernels.softmax(&mut *logits, n, 1, 0).is_err() {
            return argmax(logits);
        }
        let coin = self.rng.next_f32();
        if self.topp <= 0.0 || self.topp >= 1.0 {
            sample_mult(logits, coin)
        } else {
            self.sample_topp(logits, coin)
        }
    }

    fn sample_topp(&mut self, probs: &[f32], coin: f32) -> u32 {
        let n = probs.len();
        // A token below (1 - p) / (n - 1) can never be inside the nucleus: even if all others
        // were that small the rest would already exceed p. Dropping them first keeps the sort
        // short. (For n == 1 the cut-off is infinite, so the lone token is kept explicitly.)
        let cutoff = if n > 1 {
            (1.0 - self.topp) / (n - 1) as f32
        } else {
            f32::NEG_INFINITY
        };
        self.candidates.clear();
        self.candidates.extend(
            probs
                .iter()
                .enumerate()
                .filter(|(_, &p)| p >= cutoff)
                .map(|(i, &p)| (p, i as u32)),
        );
        if self.candidates.is_empty() {
            return argmax(probs);
        }
        self.candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut cumulative = 0.0f32;
        let mut last = self.candidates.len() - 1;
        for (i, &(p, _)) in self.candidates.iter().enumerate() {
            cumulative += p;
            if cumulative > self.topp {
                last = i;
                break;
            }
        }
        let r = coin * cumulative;
        let mut cdf = 0.0f32;
        for &(p, id) in &self.candidates[..=last] {
            cdf += p;
            if r < cdf {
                return id;
            }
        }
        self.candidates[last].1
    }
}

/// Index of the largest value; the first one on ties.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Samples from probabilities summing to about 1 with `coin` in `[0, 1)`; the last index if
/// rounding leaves the sum below the coin.
pub fn sample_mult(probs: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0f32;
    for (i, &p) in probs.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i as u32;
        }
    }
    (probs.len() - 1) as u32
}
