//! Dispatch: listing, naming, forcing, and (under qemu in CI) which implementation runs.

use airllm_kernels::{available, best, current, force, reset, Impl, KernelError, Kernels};

#[test]
fn scalar_is_always_available() {
    assert!(Impl::Scalar.is_available());
    assert_eq!(available().next(), Some(Impl::Scalar));
}

#[test]
fn names_round_trip() {
    for imp in Impl::ALL {
        assert_eq!(Impl::from_name(imp.name()), Some(imp));
    }
    assert_eq!(Impl::from_name("sse9"), None);
}

#[test]
fn force_and_reset() {
    // Other tests use explicit `Kernels::new` handles, so changing the global choice is safe.
    force(Impl::Scalar).unwrap();
    assert_eq!(current(), Impl::Scalar);
    assert_eq!(Kernels::current().imp(), Impl::Scalar);
    reset();
    assert_eq!(current(), best());
    for imp in Impl::ALL {
        if !imp.is_available() {
            assert_eq!(force(imp), Err(KernelError::Unsupported(imp)));
            assert!(Kernels::new(imp).is_err());
        }
    }
    assert_eq!(current(), best());
}

/// CI runs the aarch64 suite under qemu with different CPUs and says which implementation the
/// detection must pick (`AIRLLM_EXPECT_IMPL`), so a silently-scalar run cannot pass.
#[test]
fn expected_implementation_is_detected() {
    if let Ok(name) = std::env::var("AIRLLM_EXPECT_IMPL") {
        let want = Impl::from_name(&name).expect("AIRLLM_EXPECT_IMPL names no implementation");
        assert_eq!(
            best(),
            want,
            "available: {:?}",
            available().collect::<Vec<_>>()
        );
    }
}

#[test]
fn native_x86_detection_prefers_vector_code() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(Impl::Avx2.is_available());
        assert_ne!(best(), Impl::Scalar);
    }
}
