//! aarch64 only (natively or under qemu): the NEON implementations are the ones detected, and
//! the one Q80 case where NEON's float→int conversion differs from x86's.
#![cfg(target_arch = "aarch64")]

mod common;

use airllm_kernels::{best, BlockQ80, Impl, Kernels};
use common::vector_impls;
use proptest::prelude::*;

#[test]
fn neon_is_available_and_preferred() {
    assert!(Impl::Neon.is_available());
    assert!(matches!(best(), Impl::Neon | Impl::NeonDotprod));
    let names: Vec<Impl> = vector_impls().iter().map(|k| k.imp()).collect();
    assert!(names.contains(&Impl::Neon), "{names:?}");
}

proptest! {
    /// A block whose largest magnitude is below 127·2⁻¹²⁸ gets a denormal `d` whose reciprocal
    /// overflows to infinity, so `x·id` is ±inf (or NaN for zeros). x86's `cvtps2dq` turns all
    /// of them into 0x8000_0000, low byte 0; NEON's saturating `fcvtns` gives 0x7fff_ffff
    /// (low byte −1) for +inf unless the kernel corrects it.
    #[test]
    fn quantize_q80_with_infinite_reciprocal(m in 1u32..0x0040_0000, neg in any::<bool>()) {
        let v = if neg { -f32::from_bits(m) } else { f32::from_bits(m) };
        let x: Vec<f32> = (0..64)
            .map(|i| match i % 3 {
                0 => v,
                1 => -v * 0.5,
                _ => 0.0,
            })
            .collect();
        let mut want = vec![BlockQ80::default(); 2];
        Kernels::scalar().quantize_q80(&mut want[..], &x, 1, 0).unwrap();
        for k in vector_impls() {
            let mut got = vec![BlockQ80::default(); 2];
            k.quantize_q80(&mut got[..], &x, 1, 0).unwrap();
            prop_assert_eq!(&got, &want, "{}", k.imp());
        }
    }
}
