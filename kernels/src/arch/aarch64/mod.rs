//! aarch64: NEON, and NEON with the dot-product extension.

pub(crate) mod dotprod;
pub(crate) mod neon;

/// The dot-product extension (`sdot`), at run time with `std`.
#[inline]
pub(crate) fn has_dotprod() -> bool {
    #[cfg(all(feature = "std", not(miri)))]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(any(not(feature = "std"), miri))]
    {
        cfg!(target_feature = "dotprod")
    }
}
