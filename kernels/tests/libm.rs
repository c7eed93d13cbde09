//! Our `expf`, `powf`, `sinf`, `cosf` against the platform's, bit for bit.
//!
//! Rust's `f32::{exp, powf, sin, cos}` call the C library. On x86-64 Linux with glibc ≥ 2.28
//! and a CPU with FMA and AVX2, glibc runs the FMA build of Arm's optimized-routines code,
//! which is what `airllm_kernels::math` reproduces; the comparisons run only there. The
//! special-value checks at the end hold everywhere.
//!
//! The sampled tests cover the ranges the kernels use densely (every k-th bit pattern) and
//! keep the whole file within about a minute at the test profile's opt-level 2. The
//! `exhaustive_*` tests (ignored by default; run them with
//! `cargo test --release -p airllm-kernels --test libm -- --ignored --nocapture`) check every
//! one of the 2^32 inputs of the one-argument functions and every positive finite base of
//! `powf`.

use airllm_kernels::math::{cosf, expf, powf, sinf};

/// Whether the platform functions are the ones we reproduce bit for bit.
fn platform_is_glibc_fma() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    {
        std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Equal bits, or both NaN (NaN payloads are outside the contract).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Counts of one comparison, with the first few disagreements kept for the message.
struct Tally {
    name: &'static str,
    checked: u64,
    differ: u64,
    examples: Vec<String>,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Tally {
            name,
            checked: 0,
            differ: 0,
            examples: Vec::new(),
        }
    }

    fn record(&mut self, input: &dyn Fn() -> String, ours: f32, theirs: f32) {
        self.checked += 1;
        if !same(ours, theirs) {
            self.differ += 1;
            if self.examples.len() < 8 {
                self.examples.push(format!(
                    "{}: ours {:#010x} ({ours:e}), platform {:#010x} ({theirs:e})",
                    input(),
                    ours.to_bits(),
                    theirs.to_bits()
                ));
            }
        }
    }

    /// Every input gave the platform's bits.
    fn assert_all_equal(self) {
        println!("{}: {} of {} differ", self.name, self.differ, self.checked);
        assert!(self.checked > 0, "{}: nothing checked", self.name);
        assert_eq!(
            self.differ,
            0,
            "{}: {} of {} differ, e.g.\n{}",
            self.name,
            self.differ,
            self.checked,
            self.examples.join("\n")
        );
    }
}

/// Every `stride`-th non-negative f32 bit pattern from 0 up to `max` (inclusive), and the same
/// patterns with the sign bit set.
fn patterns(max: f32, stride: u32) -> impl Iterator<Item = f32> {
    let top = max.to_bits();
    (0..=top)
        .step_by(stride as usize)
        .flat_map(|b| [f32::from_bits(b), f32::from_bits(b | 0x8000_0000)])
}

/// Splitmix64: a fixed, dependency-free stream of test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Log-uniform positive f32 in `[2^lo, 2^hi)`.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f32 {
        self.uniform(lo, hi).exp2() as f32
    }
}

const THETAS: [f32; 3] = [10_000.0, 500_000.0, 1_000_000.0];

/// The RoPE frequencies of one head size, as the llama cache computes them.
fn llama_freqs(theta: f32, head_dim: usize) -> impl Iterator<Item = f32> {
    (0..head_dim)
        .step_by(2)
        .map(move |h| 1.0 / powf(theta, h as f32 / head_dim as f32))
}

/// Inputs where the branches of the functions change, and their neighbours.
fn boundary_inputs() -> Vec<f32> {
    let mut v = vec![
        0.0,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        f32::EPSILON,
        1.0,
        2.0,
        0.5,
        0.75,
        core::f32::consts::FRAC_PI_4,
        core::f32::consts::FRAC_PI_2,
        core::f32::consts::PI,
        88.0,
        88.72283,
        103.27893,
        103.97208,
        120.0,
        126.0,
        128.0,
        150.0,
        1.0e5,
        f32::from_bits(0x3980_0000), // 2^-12
    ];
    let mut around = Vec::new();
    for &x in &v {
        let b = x.to_bits();
        for d in 1..=3u32 {
            around.push(f32::from_bits(b.wrapping_add(d)));
            around.push(f32::from_bits(b.wrapping_sub(d)));
        }
    }
    v.extend(around);
    let negated: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(negated);
    v
}

/// A one-argument f32 function: ours or the platform's.
type Unary = fn(f32) -> f32;

fn check_unary(tally: &mut Tally, ours: Unary, theirs: Unary, xs: impl Iterator<Item = f32>) {
    for x in xs {
        tally.record(
            &|| format!("x = {x:e} ({:#010x})", x.to_bits()),
            ours(x),
            theirs(x),
        );
    }
}

#[test]
fn expf_matches_glibc() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform expf is not glibc's FMA build");
        return;
    }
    let mut t = Tally::new("expf, every 17th pattern with |x| <= 88");
    check_unary(&mut t, expf, f32::exp, patterns(88.0, 17));
    t.assert_all_equal();

    // Everything else: overflow, results that underflow to subnormals and to zero, infinities
    // and NaN.
    let mut t = Tally::new("expf, every 4099th pattern of all");
    check_unary(
        &mut t,
        expf,
        f32::exp,
        patterns(f32::from_bits(0x7fff_ffff), 4099),
    );
    t.assert_all_equal();

    let mut t = Tally::new("expf, subnormal and overflow results, every pattern");
    let edges = (f32::to_bits(87.3)..=f32::to_bits(103.98))
        .map(|b| -f32::from_bits(b))
        .chain((f32::to_bits(88.0)..=f32::to_bits(88.8)).map(f32::from_bits));
    check_unary(&mut t, expf, f32::exp, edges);
    t.assert_all_equal();

    let mut t = Tally::new("expf, branch boundaries");
    check_unary(&mut t, expf, f32::exp, boundary_inputs().into_iter());
    t.assert_all_equal();
}

#[test]
fn powf_matches_glibc_on_rope_exponents() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform powf is not glibc's FMA build");
        return;
    }
    let mut t = Tally::new("powf(theta, h/head_dim) and powf(theta, 2*(j/head_dim))");
    for theta in THETAS {
        for hd in 32..=256usize {
            let hs = hd as f32;
            for h in 0..hd {
                let y = h as f32 / hs;
                let desc = || format!("powf({theta}, {h}/{hd})");
                t.record(&desc, powf(theta, y), theta.powf(y));
                let y = 2.0 * (h as f32 / hs);
                let desc = || format!("powf({theta}, 2*({h}/{hd}))");
                t.record(&desc, powf(theta, y), theta.powf(y));
            }
        }
    }
    t.assert_all_equal();
}

#[test]
fn powf_matches_glibc_on_random_arguments() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform powf is not glibc's FMA build");
        return;
    }
    let mut rng = Rng(0x0005_eed0_f90f);
    let mut t = Tally::new("powf, random x in [2^-20, 2^30), y in [-8, 8)");
    for _ in 0..3_000_000 {
        let x = rng.log_uniform(-20.0, 30.0);
        let y = rng.uniform(-8.0, 8.0) as f32;
        t.record(&|| format!("powf({x:e}, {y:e})"), powf(x, y), x.powf(y));
    }
    t.assert_all_equal();

    // Any positive x and any y that keeps x^y near or inside the f32 range: overflow,
    // underflow, subnormal results and the largest finite results.
    let mut t = Tally::new("powf, random positive x, y*log2(x) in [-160, 140]");
    for _ in 0..2_000_000 {
        let x = f32::from_bits(1 + (rng.next() as u32) % 0x7f7f_ffff);
        let l = f64::from(x).log2();
        let y = if l.abs() < 1e-9 {
            rng.uniform(-1e6, 1e6) as f32
        } else {
            (rng.uniform(-160.0, 140.0) / l) as f32
        };
        t.record(&|| format!("powf({x:e}, {y:e})"), powf(x, y), x.powf(y));
    }
    t.assert_all_equal();

    // Arbitrary bit patterns, both signs: negative bases with integer and non-integer
    // exponents, zeros, infinities, NaN.
    let mut t = Tally::new("powf, random bit patterns");
    for _ in 0..1_000_000 {
        let x = f32::from_bits(rng.next() as u32);
        let y = match rng.next() % 4 {
            0 => f32::from_bits(rng.next() as u32),
            1 => (rng.next() % 64) as f32 - 32.0,
            2 => rng.uniform(-4.0, 4.0) as f32,
            // Any sign and mantissa, |y| in [2^-27, 2^21).
            _ => f32::from_bits(
                (rng.next() as u32 & 0x807f_ffff) | ((100 + (rng.next() % 48) as u32) << 23),
            ),
        };
        t.record(&|| format!("powf({x:e}, {y:e})"), powf(x, y), x.powf(y));
    }
    t.assert_all_equal();

    let mut t = Tally::new("powf, boundary pairs");
    let b = boundary_inputs();
    let ys: Vec<f32> = b
        .iter()
        .copied()
        .chain([3.0, -3.0, 0.5, -0.5, 1.5, 1e-3, 1e30, -1e30])
        .collect();
    for &x in &b {
        for &y in &ys {
            t.record(&|| format!("powf({x:e}, {y:e})"), powf(x, y), x.powf(y));
        }
    }
    t.assert_all_equal();
}

#[test]
fn sinf_cosf_match_glibc_on_rope_angles() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform sinf/cosf are not glibc's FMA build");
        return;
    }
    let mut ts = Tally::new("sinf(pos*freq), pos < 131072, head_dim 64 and 128");
    let mut tc = Tally::new("cosf(pos*freq), pos < 131072, head_dim 64 and 128");
    for theta in THETAS {
        for hd in [64, 128] {
            for freq in llama_freqs(theta, hd) {
                for pos in 0..131_072u32 {
                    let v = pos as f32 * freq;
                    let desc = || format!("{pos} * {freq:e} = {v:e}");
                    ts.record(&desc, sinf(v), v.sin());
                    tc.record(&desc, cosf(v), v.cos());
                }
            }
        }
    }
    ts.assert_all_equal();
    tc.assert_all_equal();
}

#[test]
fn sinf_cosf_match_glibc_on_patterns() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform sinf/cosf are not glibc's FMA build");
        return;
    }
    let mut t = Tally::new("sinf, every 23rd pattern with |x| <= 1e5");
    check_unary(&mut t, sinf, f32::sin, patterns(1.0e5, 23));
    t.assert_all_equal();
    let mut t = Tally::new("cosf, every 23rd pattern with |x| <= 1e5");
    check_unary(&mut t, cosf, f32::cos, patterns(1.0e5, 23));
    t.assert_all_equal();

    // The table reduction of large arguments, infinities and NaN.
    let mut t = Tally::new("sinf, every 1021st pattern of all");
    check_unary(
        &mut t,
        sinf,
        f32::sin,
        patterns(f32::from_bits(0x7fff_ffff), 1021),
    );
    t.assert_all_equal();
    let mut t = Tally::new("cosf, every 1021st pattern of all");
    check_unary(
        &mut t,
        cosf,
        f32::cos,
        patterns(f32::from_bits(0x7fff_ffff), 1021),
    );
    t.assert_all_equal();

    let mut t = Tally::new("sinf, branch boundaries");
    check_unary(&mut t, sinf, f32::sin, boundary_inputs().into_iter());
    t.assert_all_equal();
    let mut t = Tally::new("cosf, branch boundaries");
    check_unary(&mut t, cosf, f32::cos, boundary_inputs().into_iter());
    t.assert_all_equal();
}

/// Values that follow from IEEE rules alone, so they hold on every platform.
#[test]
fn special_values() {
    let inf = f32::INFINITY;
    let cases: [(f32, f32); 10] = [
        (expf(0.0), 1.0),
        (expf(-0.0), 1.0),
        (expf(-inf), 0.0),
        (expf(inf), inf),
        (expf(89.0), inf),
        (expf(-104.0), 0.0),
        (expf(-103.5), f32::from_bits(1)),
        (sinf(-0.0), -0.0),
        (cosf(0.0), 1.0),
        (sinf(1e-30), 1e-30),
    ];
    for (i, (got, want)) in cases.iter().enumerate() {
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "case {i}: {got:e} != {want:e}"
        );
    }
    let pow_cases: [(f32, f32, f32); 10] = [
        (2.0, 10.0, 1024.0),
        (-2.0, 3.0, -8.0),
        (-2.0, 2.0, 4.0),
        (0.0, -1.0, inf),
        (-0.0, -1.0, -inf),
        (-0.0, 3.0, -0.0),
        (1.0, f32::NAN, 1.0),
        (f32::NAN, 0.0, 1.0),
        (0.5, inf, 0.0),
        (2.0, -inf, 0.0),
    ];
    for (x, y, want) in pow_cases {
        let got = powf(x, y);
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "powf({x}, {y}) = {got:e}, want {want:e}"
        );
    }
    assert!(expf(f32::NAN).is_nan());
    assert!(powf(-2.0, 0.5).is_nan());
    for x in [inf, -inf, f32::NAN] {
        assert!(sinf(x).is_nan() && cosf(x).is_nan());
    }
}

/// Every f32 input of the one-argument functions. Minutes in a release build; run by hand.
#[test]
#[ignore]
fn exhaustive_unary() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform functions are not glibc's FMA build");
        return;
    }
    let functions: [(&str, Unary, Unary); 3] = [
        ("expf", expf, f32::exp),
        ("sinf", sinf, f32::sin),
        ("cosf", cosf, f32::cos),
    ];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    for (name, ours, theirs) in functions {
        let start = std::time::Instant::now();
        let chunk = (1u64 << 32).div_ceil(threads);
        let differ: u64 = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|i| {
                    s.spawn(move || {
                        let lo = i * chunk;
                        let hi = ((i + 1) * chunk).min(1 << 32);
                        (lo..hi)
                            .filter(|&b| {
                                let x = f32::from_bits(b as u32);
                                !same(ours(x), theirs(x))
                            })
                            .count() as u64
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        println!(
            "{name}: {differ} of 4294967296 inputs differ ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(differ, 0, "{name}: {differ} inputs differ");
    }
}

/// Every positive finite base of `powf`, each with one exponent drawn so that `|x^y|` spans
/// the f32 range (`y·log2 x` in [−160, 140]) and again with `y = 1/3` (a RoPE-like fractional
/// exponent). Minutes in a release build; run by hand.
#[test]
#[ignore]
fn exhaustive_powf_bases() {
    if !platform_is_glibc_fma() {
        println!("skipped: the platform powf is not glibc's FMA build");
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let start = std::time::Instant::now();
    let chunk = 0x7f80_0000u64.div_ceil(threads);
    let differ: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    let lo = (i * chunk).max(1);
                    let hi = ((i + 1) * chunk).min(0x7f80_0000);
                    let mut rng = Rng(i);
                    let mut differ = 0u64;
                    for b in lo..hi {
                        let x = f32::from_bits(b as u32);
                        let l = f64::from(x).log2();
                        let y = if l == 0.0 {
                            rng.uniform(-1e6, 1e6) as f32
                        } else {
                            (rng.uniform(-160.0, 140.0) / l) as f32
                        };
                        for y in [y, 1.0 / 3.0] {
                            differ += u64::from(!same(powf(x, y), x.powf(y)));
                        }
                    }
                    differ
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    println!(
        "powf: {differ} of {} (x, y) pairs differ ({:.1} s)",
        2 * (0x7f80_0000u64 - 1),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(differ, 0, "powf: {differ} pairs differ");
}
