//! Multi-head attention: every implementation against the scalar reference bit for bit, for
//! random head counts (grouped-query and not), head sizes (multiples of 8 and odd ones),
//! positions and thread splits; small cases by hand; error paths. Test names carry the
//! implementation (`avx512::attention`, …).

mod common;

use common::handle;

use airllm_kernels::{AttentionShape, Impl, KernelError, Kernels};
use common::{bits, each_thread, moderate_vec};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(128)
}

#[derive(Clone, Debug)]
struct Case {
    shape: AttentionShape,
    pos: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

/// One node of `n_nodes` of a model with `n_kv_heads · kv_mul` query heads; caches hold
/// `seq_len` rows (only `pos + 1` are read).
fn case(max_seq: usize) -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1usize), Just(2)],
        1usize..=3,
        1usize..=5,
        prop_oneof![
            Just(1usize),
            Just(3),
            Just(7),
            Just(8),
            Just(9),
            Just(16),
            Just(17),
            Just(24),
            Just(64),
            Just(72),
            Just(128)
        ],
        1usize..max_seq,
    )
        .prop_flat_map(|(n_nodes, kv_per_node, kv_mul, hd, seq_len)| {
            let n_kv = kv_per_node * n_nodes;
            let shape = AttentionShape {
                n_heads: n_kv * kv_mul,
                n_heads0: kv_per_node * kv_mul,
                n_kv_heads: n_kv,
                head_dim: hd,
                seq_len,
                kv_dim0: kv_per_node * hd,
            };
            let cache = seq_len * shape.kv_dim0;
            (
                Just(shape),
                0..seq_len,
                moderate_vec(shape.n_heads0 * hd),
                moderate_vec(cache),
                moderate_vec(cache),
            )
        })
        .prop_map(|(shape, pos, q, k, v)| Case {
            shape,
            pos,
            q,
            k,
            v,
        })
}

fn check(imp: Impl, c: &Case, n_threads: usize) -> Result<(), TestCaseError> {
    let Some(k) = handle(imp) else { return Ok(()) };
    let s = &c.shape;
    let n = s.n_heads0 * s.head_dim;
    let mut want = vec![0.0f32; n];
    let mut att = vec![0.0f32; s.n_heads0 * s.seq_len];
    Kernels::scalar()
        .multihead_attention(
            &mut want[..],
            &mut att[..],
            &c.q,
            &c.k,
            &c.v,
            c.pos,
            s,
            1,
            0,
        )
        .unwrap();
    // Garbage in the outputs must not leak into the result.
    let mut got = vec![f32::NAN; n];
    let mut att = vec![1.0e30f32; s.n_heads0 * s.seq_len];
    each_thread(n_threads, |nt, t| {
        k.multihead_attention(
            &mut got[..],
            &mut att[..],
            &c.q,
            &c.k,
            &c.v,
            c.pos,
            s,
            nt,
            t,
        )
        .unwrap()
    });
    prop_assert_eq!(
        bits(&got),
        bits(&want),
        "{} {:?} pos {} threads {}",
        imp,
        s,
        c.pos,
        n_threads
    );
    Ok(())
}

macro_rules! impl_tests {
    ($m:ident, $imp:expr) => {
        mod $m {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn attention(c in case(40), n_threads in 1usize..=9) {
                    check($imp, &c, n_threads)?;
                }

                #[test]
                fn attention_long(c in case(300), n_threads in 1usize..=4) {
                    check($imp, &c, n_threads)?;
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl_tests!(avx2, Impl::Avx2);
#[cfg(target_arch = "x86_64")]
impl_tests!(avx512, Impl::Avx512);
#[cfg(target_arch = "x86_64")]
impl_tests!(avx512vnni, Impl::Avx512Vnni);
#[cfg(target_arch = "aarch64")]
impl_tests!(neon, Impl::Neon);
#[cfg(target_arch = "aarch64")]
impl_tests!(neon_dotprod, Impl::NeonDotprod);

fn shape(n_heads: usize, n_kv_heads: usize, head_dim: usize, seq_len: usize) -> AttentionShape {
    AttentionShape {
        n_heads,
        n_heads0: n_heads,
        n_kv_heads,
        head_dim,
        seq_len,
        kv_dim0: n_kv_heads * head_dim,
    }
}

/// Every implementation, the reference included, on cases worked out by hand.
#[test]
fn golden_cases() {
    for imp in airllm_kernels::available() {
        let kern = Kernels::new(imp).unwrap();
        // One position: the softmax is [1], so y is V_0 exactly.
        let s = shape(2, 1, 3, 4);
        let (q, k, v) = (
            [0.3f32, -1.0, 2.0, 5.0, 0.0, -0.5],
            [1.0f32, 2.0, 3.0],
            [7.0f32, -8.0, 0.25],
        );
        let mut y = [0.0f32; 6];
        let mut att = [0.0f32; 8];
        kern.multihead_attention(&mut y[..], &mut att[..], &q, &k, &v, 0, &s, 1, 0)
            .unwrap();
        assert_eq!(y, [7.0, -8.0, 0.25, 7.0, -8.0, 0.25], "{imp}");
        // Two positions with equal keys: weights ½, ½, so y = ½·V_0 + ½·V_1.
        let s = shape(1, 1, 2, 2);
        let (q, k, v) = (
            [1.0f32, -2.0],
            [0.5f32, 0.5, 0.5, 0.5],
            [2.0f32, 4.0, 6.0, -8.0],
        );
        let mut y = [0.0f32; 2];
        let mut att = [0.0f32; 2];
        kern.multihead_attention(&mut y[..], &mut att[..], &q, &k, &v, 1, &s, 1, 0)
            .unwrap();
        assert_eq!(y, [4.0, -2.0], "{imp}");
        // Grouped query: heads 0, 1 read KV head 0, heads 2, 3 read KV head 1 (pos 0: y = V).
        let s = shape(4, 2, 1, 1);
        let mut y = [0.0f32; 4];
        let mut att = [0.0f32; 4];
        kern.multihead_attention(
            &mut y[..],
            &mut att[..],
            &[1.0; 4],
            &[1.0, 1.0],
            &[10.0, 20.0],
            0,
            &s,
            1,
            0,
        )
        .unwrap();
        assert_eq!(y, [10.0, 10.0, 20.0, 20.0], "{imp}");
    }
}

#[test]
fn error_paths() {
    for imp in airllm_kernels::available() {
        let kern = Kernels::new(imp).unwrap();
        let s = shape(4, 2, 8, 4);
        let q = vec![0.0f32; 32];
        let cache = vec![0.0f32; 4 * 16];
        let mut y = [0.0f32; 32];
        let mut att = [0.0f32; 16];
        let mut run = |s: &AttentionShape,
                       pos: usize,
                       att_len: usize,
                       cache_len: usize,
                       n: usize,
                       t: usize| {
            kern.multihead_attention(
                &mut y[..],
                &mut att[..att_len],
                &q,
                &cache[..cache_len],
                &cache,
                pos,
                s,
                n,
                t,
            )
        };
        assert!(matches!(
            run(&s, 4, 16, 64, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            run(&AttentionShape { n_kv_heads: 3, ..s }, 0, 16, 64, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            run(&AttentionShape { head_dim: 0, ..s }, 0, 16, 64, 1, 0),
            Err(KernelError::BadArgument(_))
        ));
        assert!(matches!(
            run(&AttentionShape { kv_dim0: 8, ..s }, 0, 16, 64, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert!(matches!(
            run(&s, 0, 15, 64, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert!(matches!(
            run(&s, 3, 16, 63, 1, 0),
            Err(KernelError::BadSize { .. })
        ));
        assert!(matches!(
            run(&s, 0, 16, 64, 2, 2),
            Err(KernelError::BadThreadSplit { .. })
        ));
        assert!(y.iter().all(|&v| v == 0.0));
    }
}
