//! x86-64: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL, optionally VNNI).

pub(crate) mod avx2;
pub(crate) mod avx512;

/// AVX2 + FMA + F16C, at run time with `std`, else from the compile-time target features.
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))
    }
}

/// AVX-512 F/BW/VL on top of [`has_avx2`].
#[inline]
pub(crate) fn has_avx512() -> bool {
    #[cfg(feature = "std")]
    {
        has_avx2()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(feature = "std"))]
    {
        has_avx2()
            && cfg!(all(
                target_feature = "avx512f",
                target_feature = "avx512bw",
                target_feature = "avx512vl"
            ))
    }
}

/// AVX-512 VNNI on top of [`has_avx512`].
#[inline]
pub(crate) fn has_avx512vnni() -> bool {
    #[cfg(feature = "std")]
    {
        has_avx512() && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        has_avx512() && cfg!(target_feature = "avx512vnni")
    }
}
