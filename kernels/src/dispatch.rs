//! The one dispatch point: which implementation runs, chosen once and cached.
//!
//! Each implementation is a static [`Table`] of function pointers that work on one thread's
//! already-validated share of the data. [`Kernels`] pairs an [`Impl`] with its table and holds
//! the safe, checked API. `Kernels::current()` is the detected best implementation (or the one
//! set by [`force`]); `Kernels::new(imp)` gives any available one, which is how tests and
//! benches compare implementations side by side without touching the global choice.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::api::packed::PackedQ40;
use crate::block::{BlockQ40, BlockQ80};
use crate::scalar::attention::AttHeads;
use crate::KernelError;

/// Function pointers for one implementation, each on one thread's share (sizes already
/// checked by the callers in `api/`).
pub(crate) struct Table {
    pub quantize_q80: fn(x: &[f32], out: &mut [BlockQ80]),
    pub quantize_q40: fn(x: &[f32], out: &mut [BlockQ40]),
    pub dequantize_q80: fn(x: &[BlockQ80], out: &mut [f32]),
    pub dequantize_q40: fn(x: &[BlockQ40], out: &mut [f32]),
    /// `out[r]` for `r < out.len()`; `w` holds `out.len()` rows of `x.len()` blocks.
    pub matmul_q80_q40: fn(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40]),
    /// `out` is `b × rows` (batch-major), `x` is `b × nb`, `w` is `rows × nb`.
    pub matmul_q80_q40_batch: fn(out: &mut [f32], x: &[BlockQ80], w: &[BlockQ40], b: usize),
    /// `out` is whole groups of `PACK_ROWS` rows; `w` holds `out.len() / PACK_ROWS` groups of
    /// `x.len()` packed blocks.
    pub matmul_q80_q40_packed: fn(out: &mut [f32], x: &[BlockQ80], w: &[PackedQ40]),
    /// `out[r] = dot8(x, w[r])`; `w` holds `out.len()` rows of `x.len()` floats.
    pub matmul_f32: fn(out: &mut [f32], x: &[f32], w: &[f32]),
    /// `out` is `b × rows`, `x` is `b × n`, `w` is `rows × n`.
    pub matmul_f32_batch: fn(out: &mut [f32], x: &[f32], w: &[f32], b: usize),
    /// `out.len()` equal column groups of `x`.
    pub inv_rms: fn(out: &mut [f32], x: &[f32], eps: f32),
    pub rms_norm: fn(out: &mut [f32], x: &[f32], w: &[f32], inv: f32),
    pub rms_norm_q80: fn(out: &mut [f32], x: &[BlockQ80], w: &[f32], inv: f32),
    /// `x` and `cache` are whole (cos, sin) pairs of the same length.
    pub rope_llama: fn(x: &mut [f32], cache: &[f32]),
    /// `x` is whole heads of `cache.len()` floats; `cache` = cos half then sin half.
    pub rope_falcon: fn(x: &mut [f32], cache: &[f32]),
    /// `y`: heads × head_dim; `att`: heads × stride scratch.
    pub attention: fn(y: &mut [f32], att: &mut [f32], att_stride: usize, a: &AttHeads<'_>),
    pub softmax: fn(x: &mut [f32]),
    /// The first `n_poly` elements use the exp polynomial, the rest `expf`.
    pub silu: fn(x: &mut [f32], n_poly: usize),
    pub gelu: fn(x: &mut [f32]),
    /// `x *= m`.
    pub mul: fn(x: &mut [f32], m: &[f32]),
    /// `out += x`.
    pub add: fn(out: &mut [f32], x: &[f32]),
    /// `out = fma(d, q, out)`.
    pub add_q80: fn(out: &mut [f32], x: &[BlockQ80]),
    /// `x *= s`.
    pub scale: fn(x: &mut [f32], s: f32),
}

/// A kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Impl {
    /// The portable reference; defines the numerical contract.
    Scalar = 1,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2 = 2,
    /// x86-64 AVX-512 F/BW/VL/DQ (plus AVX2, FMA, F16C).
    Avx512 = 3,
    /// AVX-512 with VNNI (`vpdpbusd`) for the integer block dot products.
    Avx512Vnni = 4,
    /// aarch64 Advanced SIMD.
    Neon = 5,
    /// aarch64 Advanced SIMD with the dot-product extension (`sdot`).
    NeonDotprod = 6,
}

impl Impl {
    /// Every implementation this crate knows, whether or not it can run here.
    pub const ALL: [Impl; 6] = [
        Impl::Scalar,
        Impl::Avx2,
        Impl::Avx512,
        Impl::Avx512Vnni,
        Impl::Neon,
        Impl::NeonDotprod,
    ];

    /// Short lowercase name: `scalar`, `avx2`, `avx512`, `avx512vnni`, `neon`, `neon-dotprod`.
    pub const fn name(self) -> &'static str {
        match self {
            Impl::Scalar => "scalar",
            Impl::Avx2 => "avx2",
            Impl::Avx512 => "avx512",
            Impl::Avx512Vnni => "avx512vnni",
            Impl::Neon => "neon",
            Impl::NeonDotprod => "neon-dotprod",
        }
    }

    /// The implementation with this [`name`](Impl::name), if any.
    pub fn from_name(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Whether this implementation is compiled in and the CPU supports it.
    pub fn is_available(self) -> bool {
        self.table().is_some()
    }

    pub(crate) fn table(self) -> Option<&'static Table> {
        if self.cpu_supports() {
            self.compiled_table()
        } else {
            None
        }
    }

    /// Whether the CPU has what this implementation needs (run-time detection with `std`).
    fn cpu_supports(self) -> bool {
        match self {
            Impl::Scalar => true,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Impl::Avx2 => crate::arch::x86_64::has_avx2(),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Impl::Avx512 => crate::arch::x86_64::has_avx512(),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Impl::Avx512Vnni => crate::arch::x86_64::has_avx512vnni(),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Impl::Neon => true,
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Impl::NeonDotprod => crate::arch::aarch64::has_dotprod(),
            _ => false,
        }
    }

    /// This implementation's table if it is compiled in, without asking the CPU. Reached
    /// directly only for the implementation stored in `CURRENT`, which passed the CPU check
    /// when it was stored; everything else goes through [`Impl::table`].
    fn compiled_table(self) -> Option<&'static Table> {
        match self {
            Impl::Scalar => Some(&crate::scalar::TABLE),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Impl::Avx2 => Some(&crate::arch::x86_64::avx2::TABLE),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Impl::Avx512 => Some(&crate::arch::x86_64::avx512::TABLE),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Impl::Avx512Vnni => Some(&crate::arch::x86_64::avx512::TABLE_VNNI),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Impl::Neon => Some(&crate::arch::aarch64::neon::TABLE),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Impl::NeonDotprod => Some(&crate::arch::aarch64::dotprod::TABLE),
            _ => None,
        }
    }
}

impl core::fmt::Display for Impl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The implementations that can run on this CPU, reference first, fastest last.
pub fn available() -> impl Iterator<Item = Impl> {
    Impl::ALL.into_iter().filter(|i| i.is_available())
}

/// The fastest implementation this CPU supports.
pub fn best() -> Impl {
    // `ALL` lists each architecture's implementations from slowest to fastest.
    available().last().unwrap_or(Impl::Scalar)
}

/// 0 = not chosen yet; otherwise `Impl as u8` of an implementation that passed the CPU check
/// (only `current`, `force` and `reset` store here), so readers need not detect again.
static CURRENT: AtomicU8 = AtomicU8::new(0);

fn from_u8(v: u8) -> Option<Impl> {
    Impl::ALL.into_iter().find(|i| *i as u8 == v)
}

/// The implementation the free-standing API uses: detected once, then cached (or forced).
pub fn current() -> Impl {
    if let Some(imp) = from_u8(CURRENT.load(Ordering::Relaxed)) {
        return imp;
    }
    // Racing first calls all detect the same answer, so the last store is as good as the first.
    let imp = best();
    CURRENT.store(imp as u8, Ordering::Relaxed);
    imp
}

/// Make every later [`current`] call use `imp` (tests, benches, the C ABI). Fails, leaving the
/// choice unchanged, if `imp` cannot run here.
pub fn force(imp: Impl) -> Result<(), KernelError> {
    if !imp.is_available() {
        return Err(KernelError::Unsupported(imp));
    }
    CURRENT.store(imp as u8, Ordering::Relaxed);
    Ok(())
}

/// Go back to the detected best implementation.
pub fn reset() {
    CURRENT.store(best() as u8, Ordering::Relaxed);
}

/// A handle on one implementation; all kernels are methods of it (see the `api` modules).
#[derive(Clone, Copy)]
pub struct Kernels {
    imp: Impl,
    pub(crate) table: &'static Table,
}

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Kernels").field(&self.imp).finish()
    }
}

impl Kernels {
    /// The given implementation, if it can run on this CPU.
    pub fn new(imp: Impl) -> Result<Kernels, KernelError> {
        imp.table()
            .map(|table| Kernels { imp, table })
            .ok_or(KernelError::Unsupported(imp))
    }

    /// The implementation chosen by [`current`]: an atomic load and a table lookup, no CPU
    /// detection after the first call.
    pub fn current() -> Kernels {
        let imp = current();
        match imp.compiled_table() {
            Some(table) => Kernels { imp, table },
            None => Kernels::scalar(),
        }
    }

    /// The scalar reference.
    pub fn scalar() -> Kernels {
        Kernels {
            imp: Impl::Scalar,
            table: &crate::scalar::TABLE,
        }
    }

    /// Which implementation this handle runs.
    pub fn imp(&self) -> Impl {
        self.imp
    }
}
