//! The sampler: greedy, temperature, top-p, and the seeded xorshift* generator.

use airllm_worker::sample::{argmax, sample_mult, Sampler, XorShiftRng};

#[test]
fn greedy_is_argmax_first_on_ties() {
    let mut s = Sampler::new(0.0, 0.9, 1);
    let mut logits = vec![0.5, 3.0, -1.0, 3.0];
    assert_eq!(s.sample(&mut logits), 1);
    assert_eq!(logits, vec![0.5, 3.0, -1.0, 3.0]);
    assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), 1);
    assert_eq!(argmax(&[2.0]), 0);
}

#[test]
fn rng_is_deterministic_and_in_range() {
    let mut a = XorShiftRng::new(42);
    let mut b = XorShiftRng::new(42);
    let mut c = XorShiftRng::new(43);
    let xs: Vec<u32> = (0..100).map(|_| a.next_u32()).collect();
    let ys: Vec<u32> = (0..100).map(|_| b.next_u32()).collect();
    let zs: Vec<u32> = (0..100).map(|_| c.next_u32()).collect();
    assert_eq!(xs, ys);
    assert_ne!(xs, zs);
    let mut r = XorShiftRng::new(7);
    let fs: Vec<f32> = (0..10_000).map(|_| r.next_f32()).collect();
    assert!(fs.iter().all(|&f| (0.0..1.0).contains(&f)));
    let mean = fs.iter().sum::<f32>() / fs.len() as f32;
    assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    // The peer's generator is stuck at zero for seed 0.
    let mut z = XorShiftRng::new(0);
    assert_eq!((z.next_u32(), z.next_f32()), (0, 0.0));
}

#[test]
fn multinomial_follows_the_cdf() {
    let p = [0.25, 0.25, 0.5];
    assert_eq!(sample_mult(&p, 0.0), 0);
    assert_eq!(sample_mult(&p, 0.3), 1);
    assert_eq!(sample_mult(&p, 0.99), 2);
    assert_eq!(sample_mult(&[0.1, 0.1], 0.5), 1);
}

fn draws(temperature: f32, topp: f32, seed: u64, logits: &[f32], n: usize) -> Vec<u32> {
    let mut s = Sampler::new(temperature, topp, seed);
    (0..n)
        .map(|_| {
            let mut l = logits.to_vec();
            s.sample(&mut l)
        })
        .collect()
}

#[test]
fn sampling_is_reproducible_for_a_seed() {
    let logits: Vec<f32> = (0..50).map(|i| ((i * 37 % 11) as f32) * 0.3).collect();
    let a = draws(0.8, 0.9, 1234, &logits, 200);
    assert_eq!(a, draws(0.8, 0.9, 1234, &logits, 200));
    assert_ne!(a, draws(0.8, 0.9, 1235, &logits, 200));
    let mut s = Sampler::new(0.8, 0.9, 1);
    s.set_seed(1234);
    let b: Vec<u32> = (0..200)
        .map(|_| {
            let mut l = logits.clone();
            s.sample(&mut l)
        })
        .collect();
    assert_eq!(a, b);
}

#[test]
fn top_p_keeps_only_the_nucleus() {
    // Probabilities 0.5, 0.3, 0.15, 0.05: with p = 0.7 the nucleus is {0, 1} (0.5 + 0.3 > 0.7),
    // sampled in proportion 5:3.
    let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
    let d = draws(1.0, 0.7, 99, &logits, 4000);
    assert!(d.iter().all(|&t| t < 2));
    let share0 = d.iter().filter(|&&t| t == 0).count() as f32 / d.len() as f32;
    assert!((share0 - 0.625).abs() < 0.03, "share {share0}");
    // Without top-p every token appears, in proportion.
    let d = draws(1.0, 1.0, 99, &logits, 4000);
    let share3 = d.iter().filter(|&&t| t == 3).count() as f32 / d.len() as f32;
    assert!((share3 - 0.05).abs() < 0.015, "share {share3}");
    // A token holding more than p alone is always chosen.
    let peaked: Vec<f32> = [0.95f32, 0.03, 0.02].iter().map(|p| p.ln()).collect();
    assert!(draws(1.0, 0.9, 5, &peaked, 500).iter().all(|&t| t == 0));
    // A single-token vocabulary.
    assert_eq!(draws(1.0, 0.9, 5, &[1.0], 3), vec![0, 0, 0]);
}

#[test]
fn low_temperature_concentrates_on_the_maximum() {
    let logits = [1.0f32, 2.0, 1.5];
    assert!(draws(0.01, 0.0, 3, &logits, 200).iter().all(|&t| t == 1));
}
