//! aarch64: NEON, and NEON with the dot-product extension.

pub(crate) mod dotprod;
pub(crate) mod neon;

/// The dot-product extension (`sdot`), at run time with `std`.
#[inline]
pub(crate) fn has_dotprod() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "dotprod")
    }
}
