//! # airllm-ffi
//!
//! A C ABI over the `airllm-kernels` crate, so that distributed-llama's C++ root and worker (or any C99
//! or C++11 program) can link `libairllm_kernels.a` and call the kernels in place of their own.
//! The header is `include/airllm_kernels.h`, generated from this crate by cbindgen.
//!
//! ## Shape of the calls
//! Every kernel is `airllm_<name>(outputs…, inputs…, weights…, scalars, sizes (uint32_t)…,
//! n_threads, thread_index)` and returns an [`airllm_status`]. Each call computes only the share
//! of `thread_index` out of `n_threads` (the peer's `SPLIT_THREADS` rule), so a pool of threads
//! calls the same function on the same buffers, each with its own index.
//!
//! ## Contract for the caller
//! - Every pointer is non-NULL (even when a size is 0), aligned for its type, and valid for the
//!   number of elements the function's documentation gives.
//! - Outputs do not overlap inputs or each other (checked: [`airllm_status::Overlap`]).
//! - While calls run concurrently on overlapping output memory, they are calls of the same
//!   function with the same sizes and `n_threads` and distinct `thread_index` values, and
//!   nothing else touches that memory; inputs are not written while any call reads them.
//!
//! Under that contract concurrent calls are safe. No initialisation call is needed: the CPU
//! detection runs on first use, is idempotent and thread-safe. Every size and the thread split
//! are checked before anything is written; a refused call writes nothing. No panic crosses the
//! ABI (a caught one is reported as [`airllm_status::Panic`]); the library must be built with
//! `panic = "unwind"` (the default) for that.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

mod raw;
mod types;

use core::ffi::{c_char, c_int, CStr};
use std::ffi::CString;
use std::sync::OnceLock;

use kernels::{AttentionShape, Impl, KernelError, Kernels, Out, RopeSlice};

use raw::{blocks, guard, mul, Raw, Regions};
pub use types::{
    airllm_block_q40, airllm_block_q80, airllm_rope_scaling, airllm_rope_slice, airllm_status,
};

/// Elements per Q40 or Q80 block.
pub const AIRLLM_QK: u32 = 32;

fn current() -> Kernels {
    Kernels::current()
}

fn impl_cstr(imp: Impl) -> &'static CStr {
    match imp {
        Impl::Scalar => c"scalar",
        Impl::Avx2 => c"avx2",
        Impl::Avx512 => c"avx512",
        Impl::Avx512Vnni => c"avx512vnni",
        Impl::Neon => c"neon",
        Impl::NeonDotprod => c"neon-dotprod",
    }
}

// ---------------------------------------------------------------------------------------------
// Library information and implementation choice.

/// The library version, e.g. `"0.1.0"` (a static NUL-terminated string).
#[no_mangle]
pub extern "C" fn airllm_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("the package version contains a NUL byte"),
        };
    VERSION.as_ptr()
}

/// A short English description of a status code (a static NUL-terminated string); unknown
/// codes give `"unknown status"`.
#[no_mangle]
pub extern "C" fn airllm_status_str(status: c_int) -> *const c_char {
    let s: &CStr = match status {
        0 => c"ok",
        1 => c"null pointer",
        2 => c"misaligned pointer",
        3 => c"output overlaps another buffer",
        4 => c"bad size",
        5 => c"bad thread split",
        6 => c"bad argument",
        7 => c"unsupported implementation",
        8 => c"internal error (panic caught)",
        _ => c"unknown status",
    };
    s.as_ptr()
}

/// Name of the implementation the kernels use now: `"scalar"`, `"avx2"`, `"avx512"`,
/// `"avx512vnni"`, `"neon"` or `"neon-dotprod"` (a static NUL-terminated string). The fastest
/// one the CPU supports unless changed by `airllm_force_impl`.
#[no_mangle]
pub extern "C" fn airllm_impl_name() -> *const c_char {
    impl_cstr(current().imp()).as_ptr()
}

/// The implementations that can run on this CPU, comma-separated, slowest (`"scalar"`) first
/// and the default last, e.g. `"scalar,avx2,avx512,avx512vnni"` (a static NUL-terminated
/// string, built on the first call).
#[no_mangle]
pub extern "C" fn airllm_list_impls() -> *const c_char {
    static LIST: OnceLock<CString> = OnceLock::new();
    LIST.get_or_init(|| {
        let names: Vec<&str> = kernels::available().map(Impl::name).collect();
        // Implementation names never contain NUL; fall back to the always-present reference.
        CString::new(names.join(",")).unwrap_or_else(|_| c"scalar".to_owned())
    })
    .as_ptr()
}

/// Makes every later call (from any thread) use the implementation called `name` (one of the
/// names of `airllm_impl_name`), or the detected default for `"auto"`. Meant for tests and
/// benchmarks; calls already running finish with the implementation they started with.
///
/// Returns `AIRLLM_STATUS_BAD_ARGUMENT` for an unknown name and `AIRLLM_STATUS_UNSUPPORTED`
/// for one this CPU cannot run; the choice is then unchanged.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn airllm_force_impl(name: *const c_char) -> airllm_status {
    guard(|| {
        if name.is_null() {
            return Err(airllm_status::NullPointer);
        }
        // SAFETY: non-null and NUL-terminated by the function's contract.
        let name = unsafe { CStr::from_ptr(name) };
        let name = name.to_str().map_err(|_| airllm_status::BadArgument)?;
        if name == "auto" {
            kernels::reset();
            return Ok(());
        }
        let imp = Impl::from_name(name).ok_or(airllm_status::BadArgument)?;
        kernels::force(imp)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Quantisation.

/// F32 -> Q80: `input` (`n` floats) into `output` (`n/32` blocks). `n` is a multiple of 32.
/// Threads split the blocks. Bit-exact with distributed-llama's x86 `quantizeF32toQ80`.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_quantize_q80(
    output: *mut airllm_block_q80,
    input: *const f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(n)?;
        let out = Raw::output(output, nb)?;
        let x = Raw::input(input, n as usize)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.blocks().out(), x.slice()) };
        current().quantize_q80(out, x, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// F32 -> Q40: `input` (`n` floats) into `output` (`n/32` blocks), the model writer's encoder.
/// `n` is a multiple of 32. Threads split the blocks.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_quantize_q40(
    output: *mut airllm_block_q40,
    input: *const f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(n)?;
        let out = Raw::output(output, nb)?;
        let x = Raw::input(input, n as usize)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.blocks().out(), x.slice()) };
        current().quantize_q40(out, x, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// Q80 -> F32: `input` (`n/32` blocks) into `output` (`n` floats). `n` is a multiple of 32.
/// Threads split the blocks.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_dequantize_q80(
    output: *mut f32,
    input: *const airllm_block_q80,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(n)?;
        let out = Raw::output(output, n as usize)?;
        let x = Raw::input(input, nb)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.out(), x.blocks().slice()) };
        current().dequantize_q80(out, x, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// Q40 -> F32: `input` (`n/32` blocks) into `output` (`n` floats). `n` is a multiple of 32.
/// Threads split the blocks.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_dequantize_q40(
    output: *mut f32,
    input: *const airllm_block_q40,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(n)?;
        let out = Raw::output(output, n as usize)?;
        let x = Raw::input(input, nb)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.out(), x.blocks().slice()) };
        current().dequantize_q40(out, x, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Matrix multiplication.

/// `output[r] = sum_j weight[r][j] * input[j]` for a Q80 `input` of `n` elements (`n/32`
/// blocks) and Q40 `weight` stored as `d` rows of `n/32` blocks; `output` has `d` floats.
/// `n` is a multiple of 32. Threads split the rows `d`. Per row:
/// `acc = fmaf((float)blockdot_j, f32(dW_j) * f32(dX_j), acc)` over the blocks in order.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_matmul_q80_q40(
    output: *mut f32,
    input: *const airllm_block_q80,
    weight: *const airllm_block_q40,
    n: u32,
    d: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    // SAFETY: the same contract, with a batch of one.
    unsafe { airllm_matmul_q80_q40_batch(output, input, weight, n, d, 1, n_threads, thread_index) }
}

/// Batched `airllm_matmul_q80_q40`: `input` is `batch` vectors of `n/32` blocks, `output` is
/// `batch` rows of `d` floats (batch-major). The same bits as `batch` single calls; threads
/// split the rows `d`.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn airllm_matmul_q80_q40_batch(
    output: *mut f32,
    input: *const airllm_block_q80,
    weight: *const airllm_block_q40,
    n: u32,
    d: u32,
    batch: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(n)?;
        let (d_, b) = (d as usize, batch as usize);
        let out = Raw::output(output, mul(b, d_)?)?;
        let x = Raw::input(input, mul(b, nb)?)?;
        let w = Raw::input(weight, mul(d_, nb)?)?;
        Regions::default()
            .output(&out)
            .input(&x)
            .input(&w)
            .check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x, w) = unsafe { (out.out(), x.blocks().slice(), w.blocks().slice()) };
        current().matmul_q80_q40_batch(
            out,
            x,
            w,
            n as usize,
            d_,
            b,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

/// `output[r] = dot8(input, weight[r])` for an F32 `input` of `n` floats and `weight` stored as
/// `d` rows of `n` floats; `output` has `d` floats. Threads split the rows `d`. The dot product
/// uses 8 FMA lanes (element `i` into lane `i mod 8`) reduced as
/// `((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7))`.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_matmul_f32(
    output: *mut f32,
    input: *const f32,
    weight: *const f32,
    n: u32,
    d: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    // SAFETY: the same contract, with a batch of one.
    unsafe { airllm_matmul_f32_batch(output, input, weight, n, d, 1, n_threads, thread_index) }
}

/// Batched `airllm_matmul_f32`: `input` is `batch x n`, `output` is `batch x d`. The same bits
/// as `batch` single calls; threads split the rows `d`.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn airllm_matmul_f32_batch(
    output: *mut f32,
    input: *const f32,
    weight: *const f32,
    n: u32,
    d: u32,
    batch: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let (n_, d_, b) = (n as usize, d as usize, batch as usize);
        let out = Raw::output(output, mul(b, d_)?)?;
        let x = Raw::input(input, mul(b, n_)?)?;
        let w = Raw::input(weight, mul(d_, n_)?)?;
        Regions::default()
            .output(&out)
            .input(&x)
            .input(&w)
            .check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x, w) = unsafe { (out.out(), x.slice(), w.slice()) };
        current().matmul_f32_batch(
            out,
            x,
            w,
            n_,
            d_,
            b,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Normalisation.

/// Inverse RMS of `n_columns` equal column groups of `input` (`size` floats, a multiple of
/// `n_columns`): `output[c] = 1 / sqrtf(dot8(g, g) / len(g) + epsilon)`; `output` has
/// `n_columns` floats. Threads split the groups. (The peer computes this inside its
/// `invRmsForward`, one `invRms_F32` per column.)
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_inv_rms(
    output: *mut f32,
    input: *const f32,
    epsilon: f32,
    size: u32,
    n_columns: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let out = Raw::output(output, n_columns as usize)?;
        let x = Raw::input(input, size as usize)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.out(), x.slice()) };
        current().inv_rms(out, x, epsilon, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// `output[i] = (input[i] * inv_rms) * weight[i]` over `size` floats (all three buffers).
/// Threads split the elements.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_rms_norm(
    output: *mut f32,
    input: *const f32,
    inv_rms: f32,
    weight: *const f32,
    size: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let len = size as usize;
        let out = Raw::output(output, len)?;
        let x = Raw::input(input, len)?;
        let w = Raw::input(weight, len)?;
        Regions::default()
            .output(&out)
            .input(&x)
            .input(&w)
            .check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x, w) = unsafe { (out.out(), x.slice(), w.slice()) };
        current().rms_norm(
            out,
            x,
            w,
            inv_rms,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

/// RMS norm of a Q80 input: `output[i] = weight[i] * ((inv_rms * d) * q[i])` over `size`
/// elements (`size/32` input blocks, `size` floats of weight and output). `size` is a multiple
/// of 32. Threads split the blocks.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_rms_norm_q80(
    output: *mut f32,
    input: *const airllm_block_q80,
    inv_rms: f32,
    weight: *const f32,
    size: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(size)?;
        let out = Raw::output(output, size as usize)?;
        let x = Raw::input(input, nb)?;
        let w = Raw::input(weight, size as usize)?;
        Regions::default()
            .output(&out)
            .input(&x)
            .input(&w)
            .check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x, w) = unsafe { (out.out(), x.blocks().slice(), w.slice()) };
        current().rms_norm_q80(
            out,
            x,
            w,
            inv_rms,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding.

/// Reads the caller's slice description.
///
/// # Safety
/// `slice` is NULL or points to a valid `airllm_rope_slice`.
unsafe fn read_slice(slice: *const airllm_rope_slice) -> Result<RopeSlice, airllm_status> {
    let r = Raw::input(slice, 1)?;
    // SAFETY: non-null and aligned (checked); valid for one read by the function's contract.
    Ok(unsafe { r.slice() }[0].to_kernels())
}

/// The checks shared by the two RoPE entry points: `x` holds the node's q (`is_q`) or k floats,
/// `cache` holds `seq_len` rows of `row(slice)` floats; then `run` on the checked views.
///
/// # Safety
/// As for the entry points: valid, aligned, non-overlapping buffers of those sizes; `slice`
/// NULL or valid for one read.
unsafe fn rope(
    x: *mut f32,
    cache: *const f32,
    is_q: bool,
    slice: *const airllm_rope_slice,
    row: impl FnOnce(&RopeSlice) -> usize,
    run: impl FnOnce(&Kernels, Out<'_, f32>, &[f32], &RopeSlice) -> Result<(), KernelError>,
) -> airllm_status {
    guard(|| {
        // SAFETY: the function's contract covers `slice`.
        let s = unsafe { read_slice(slice) }?;
        let dim0 = if is_q { s.q_dim0 } else { s.kv_dim0 };
        let xs = Raw::output(x, dim0)?;
        let c = Raw::input(cache, mul(s.seq_len, row(&s))?)?;
        Regions::default().output(&xs).input(&c).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (xs, c) = unsafe { (xs.out(), c.slice()) };
        run(&current(), xs, c, &s)?;
        Ok(())
    })
}

/// Fills `slice` with node `node`'s share (of `n_nodes`) of a model's rotary embedding, as
/// distributed-llama's `sliceRope` does. `q_dim = n_heads * head_dim`, `kv_dim = n_kv_heads *
/// head_dim`. `AIRLLM_STATUS_BAD_ARGUMENT` unless `node < n_nodes`, `kv_dim <= q_dim`, and
/// `n_nodes` divides both dimensions into even shares.
///
/// # Safety
/// `slice` is NULL or valid for writing one `airllm_rope_slice`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn airllm_rope_slice_for_node(
    slice: *mut airllm_rope_slice,
    q_dim: u32,
    kv_dim: u32,
    n_kv_heads: u32,
    n_nodes: u32,
    seq_len: u32,
    head_dim: u32,
    theta: f32,
    node: u32,
) -> airllm_status {
    guard(|| {
        Raw::output(slice, 1)?;
        if n_nodes == 0 || node >= n_nodes || kv_dim > q_dim {
            return Err(airllm_status::BadArgument);
        }
        // The peer's own preconditions: whole, even shares of both dimensions on every node.
        let (q_dim0, kv_dim0) = (q_dim / n_nodes, kv_dim / n_nodes);
        let whole = q_dim.is_multiple_of(n_nodes) && kv_dim.is_multiple_of(n_nodes);
        if !whole || !q_dim0.is_multiple_of(2) || !kv_dim0.is_multiple_of(2) {
            return Err(airllm_status::BadArgument);
        }
        let s = RopeSlice::for_node(
            q_dim as usize,
            kv_dim as usize,
            n_kv_heads as usize,
            n_nodes as usize,
            seq_len as usize,
            head_dim as usize,
            theta,
            node as usize,
        );
        // Every field is at most `q_dim` (or a copied argument), so it fits u32.
        let u = |v: usize| v as u32;
        let c = airllm_rope_slice {
            q_dim0: u(s.q_dim0),
            q_dim_start: u(s.q_dim_start),
            q_dim_end: u(s.q_dim_end),
            q_shift: u(s.q_shift),
            kv_dim: u(s.kv_dim),
            kv_dim0: u(s.kv_dim0),
            kv_dim_start: u(s.kv_dim_start),
            slice_dim: u(s.slice_dim),
            seq_len: u(s.seq_len),
            head_dim: u(s.head_dim),
            n_kv_heads: u(s.n_kv_heads),
            theta: s.theta,
        };
        // SAFETY: `slice` is non-null and aligned (checked above) and valid for one write by
        // the function's contract; the struct is plain data, so nothing is dropped.
        unsafe { slice.write(c) };
        Ok(())
    })
}

/// Llama (interleaved-pair) RoPE in place on this node's query (`is_q`: `x` has
/// `slice->q_dim0` floats) or key (`slice->kv_dim0` floats) at position `pos`, reading row
/// `pos` of `cache` (`slice->seq_len x slice->slice_dim` floats, filled by
/// `airllm_fill_rope_llama_cache`). Per pair: `x0' = x0 * c - x1 * s`,
/// `x1' = x0 * s + x1 * c`, every product rounded (no FMA). Threads split the pairs.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_rope_llama(
    x: *mut f32,
    cache: *const f32,
    is_q: bool,
    pos: u32,
    slice: *const airllm_rope_slice,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    // SAFETY: this function's contract is `rope`'s.
    unsafe {
        rope(
            x,
            cache,
            is_q,
            slice,
            |s| s.slice_dim,
            |k, xs, c, s| {
                k.rope_llama(
                    xs,
                    c,
                    is_q,
                    pos as usize,
                    s,
                    n_threads as usize,
                    thread_index as usize,
                )
            },
        )
    }
}

/// Falcon/NeoX (half-split) RoPE in place on whole heads of this node's query (`is_q`:
/// `slice->q_dim0` floats) or key (`slice->kv_dim0` floats) at position `pos`, reading row
/// `pos` of `cache` (`slice->seq_len x slice->head_dim` floats, filled by
/// `airllm_fill_rope_falcon_cache`). Per head, `x[j]` pairs with `x[j + head_dim/2]`:
/// `x0' = fmaf(x0, c, -(x1 * s))`, `x1' = fmaf(x0, s, x1 * c)`. Threads split the heads.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_rope_falcon(
    x: *mut f32,
    cache: *const f32,
    is_q: bool,
    pos: u32,
    slice: *const airllm_rope_slice,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    // SAFETY: this function's contract is `rope`'s.
    unsafe {
        rope(
            x,
            cache,
            is_q,
            slice,
            |s| s.head_dim,
            |k, xs, c, s| {
                k.rope_falcon(
                    xs,
                    c,
                    is_q,
                    pos as usize,
                    s,
                    n_threads as usize,
                    thread_index as usize,
                )
            },
        )
    }
}

/// Fills the llama RoPE cache `cache` (`slice->seq_len x slice->slice_dim` floats): pair `i` of
/// row `pos` (global feature `g = kv_dim_start + 2i`, `h = g mod head_dim`) holds `cos(pos*f)`,
/// `sin(pos*f)` with `f = 1 / powf(theta, h / head_dim)`, llama 3.1-scaled when `scaling` is
/// non-NULL with a factor other than 1. The same bits on every CPU. Threads split the
/// positions.
///
/// # Safety
/// The caller's contract (crate docs, header preamble); `scaling` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn airllm_fill_rope_llama_cache(
    cache: *mut f32,
    slice: *const airllm_rope_slice,
    scaling: *const airllm_rope_scaling,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        // SAFETY: the function's contract covers `slice`.
        let s = unsafe { read_slice(slice) }?;
        let scaling = if scaling.is_null() {
            None
        } else {
            let r = Raw::input(scaling, 1)?;
            // SAFETY: non-null, aligned, valid for one read by the contract.
            Some(unsafe { r.slice() }[0].to_kernels())
        };
        let c = Raw::output(cache, mul(s.seq_len, s.slice_dim)?)?;
        // SAFETY: checked pointer; validity and the sharing rules are the caller's contract.
        let c = unsafe { c.out() };
        kernels::rope::fill_llama_cache(
            c,
            &s,
            scaling.as_ref(),
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

/// Fills the falcon RoPE cache `cache` (`slice->seq_len x slice->head_dim` floats): row `pos`
/// holds `cos(pos*f_j)` at `j` and `sin(pos*f_j)` at `j + head_dim/2`, with
/// `f_j = 1 / powf(theta, 2 * (j / head_dim))`. The same bits on every CPU. Threads split the
/// positions.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_fill_rope_falcon_cache(
    cache: *mut f32,
    slice: *const airllm_rope_slice,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        // SAFETY: the function's contract covers `slice`.
        let s = unsafe { read_slice(slice) }?;
        let c = Raw::output(cache, mul(s.seq_len, s.head_dim)?)?;
        // SAFETY: checked pointer; validity and the sharing rules are the caller's contract.
        let c = unsafe { c.out() };
        kernels::rope::fill_falcon_cache(c, &s, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Attention.

/// Multi-head attention with grouped-query heads at position `pos` (`pos < seq_len`).
///
/// `y` and `q`: `n_heads0 x head_dim` floats; `att`: `n_heads0 x seq_len` floats of scratch
/// (left unspecified); `k_cache`, `v_cache`: `seq_len x kv_dim0` floats, row `t` = position `t`
/// (rows past `pos` are not read). Local head `h` reads KV head `h / (n_heads / n_kv_heads)`.
/// Per head: `score_t = dot8(q, K_t) / sqrtf(head_dim)`, softmax over `t <= pos`, then
/// `y = fmaf(a_t, V_t, y)` for `t` in order. Threads split the heads.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn airllm_multihead_attention(
    y: *mut f32,
    att: *mut f32,
    q: *const f32,
    k_cache: *const f32,
    v_cache: *const f32,
    pos: u32,
    n_heads: u32,
    n_heads0: u32,
    n_kv_heads: u32,
    kv_dim0: u32,
    head_dim: u32,
    seq_len: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let shape = AttentionShape {
            n_heads: n_heads as usize,
            n_heads0: n_heads0 as usize,
            n_kv_heads: n_kv_heads as usize,
            head_dim: head_dim as usize,
            seq_len: seq_len as usize,
            kv_dim0: kv_dim0 as usize,
        };
        let qlen = mul(shape.n_heads0, shape.head_dim)?;
        let cache_len = mul(shape.seq_len, shape.kv_dim0)?;
        let ys = Raw::output(y, qlen)?;
        let a = Raw::output(att, mul(shape.n_heads0, shape.seq_len)?)?;
        let qs = Raw::input(q, qlen)?;
        let k = Raw::input(k_cache, cache_len)?;
        let v = Raw::input(v_cache, cache_len)?;
        Regions::default()
            .output(&ys)
            .output(&a)
            .input(&qs)
            .input(&k)
            .input(&v)
            .check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (ys, a, qs, k, v) = unsafe { (ys.out(), a.out(), qs.slice(), k.slice(), v.slice()) };
        current().multihead_attention(
            ys,
            a,
            qs,
            k,
            v,
            pos as usize,
            &shape,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Activations and element-wise kernels.

/// Softmax in place over each of `n_rows` rows of `row_len` floats of `x` (`row_len > 0`).
/// Per row: max (a NaN is never a new maximum; a NaN first element stays the maximum); `e =
/// exp(x - max)` (the peer's AVX2 polynomial on full groups of 8, `expf` on the last `row_len
/// mod 8`); a zero sum becomes 1e-6; every element times `1/sum`. Threads split the rows.
/// On x86-64 with AVX-512 (also inside `airllm_multihead_attention`) it reads MXCSR and uses
/// its denormal-operand flag to detect underflowing exps; a flag the caller had set is set
/// again on return, and with non-default MXCSR controls (flush-to-zero, denormals-are-zero,
/// unmasked exceptions, other rounding) it takes a path that does not rely on the flag.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): a valid, aligned buffer of the size given.
#[no_mangle]
pub unsafe extern "C" fn airllm_softmax(
    x: *mut f32,
    row_len: u32,
    n_rows: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let xs = Raw::output(x, mul(row_len as usize, n_rows as usize)?)?;
        // SAFETY: checked pointer; validity and the sharing rules are the caller's contract.
        let xs = unsafe { xs.out() };
        current().softmax(
            xs,
            row_len as usize,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

/// SiLU in place over `n` floats: `v / (1 + exp(0 - v))`, the exp polynomial for the elements
/// before `n - n mod 8` and `expf` after. Threads split the elements.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): a valid, aligned buffer of the size given.
#[no_mangle]
pub unsafe extern "C" fn airllm_silu(
    x: *mut f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let xs = Raw::output(x, n as usize)?;
        // SAFETY: checked pointer; validity and the sharing rules are the caller's contract.
        let xs = unsafe { xs.out() };
        current().silu(xs, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// Tanh-form GELU in place over `n` floats:
/// `0.5 v (1 + tanh(sqrt(2/pi) v (1 + 0.044715 v^2)))`. Threads split the elements.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): a valid, aligned buffer of the size given.
#[no_mangle]
pub unsafe extern "C" fn airllm_gelu(
    x: *mut f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let xs = Raw::output(x, n as usize)?;
        // SAFETY: checked pointer; validity and the sharing rules are the caller's contract.
        let xs = unsafe { xs.out() };
        current().gelu(xs, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// `x[i] *= m[i]` in place over `n` floats. Threads split the elements.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_mul(
    x: *mut f32,
    m: *const f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let xs = Raw::output(x, n as usize)?;
        let ms = Raw::input(m, n as usize)?;
        Regions::default().output(&xs).input(&ms).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (xs, ms) = unsafe { (xs.out(), ms.slice()) };
        current().mul(xs, ms, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// `output[i] += input[i]` over `n` floats (merge-add of an F32 slice). Threads split the
/// elements.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_add(
    output: *mut f32,
    input: *const f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let out = Raw::output(output, n as usize)?;
        let x = Raw::input(input, n as usize)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.out(), x.slice()) };
        current().add(out, x, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// `output[i] = fmaf(d, q[i], output[i])` over `n` elements (merge-add of a Q80 slice of
/// `n/32` blocks into `n` floats). `n` is a multiple of 32. Threads split the blocks.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_add_q80(
    output: *mut f32,
    input: *const airllm_block_q80,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let nb = blocks(n)?;
        let out = Raw::output(output, n as usize)?;
        let x = Raw::input(input, nb)?;
        Regions::default().output(&out).input(&x).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (out, x) = unsafe { (out.out(), x.blocks().slice()) };
        current().add_q80(out, x, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

/// `x[i] *= s` in place over `n` floats. Threads split the elements (contiguous shares).
///
/// # Safety
/// The caller's contract (crate docs, header preamble): a valid, aligned buffer of the size given.
#[no_mangle]
pub unsafe extern "C" fn airllm_scale(
    x: *mut f32,
    s: f32,
    n: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let xs = Raw::output(x, n as usize)?;
        // SAFETY: checked pointer; validity and the sharing rules are the caller's contract.
        let xs = unsafe { xs.out() };
        current().scale(xs, s, n_threads as usize, thread_index as usize)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Mixture of experts and the KV cache.

/// MoE top-k gate over `n_rows` rows of `n_experts` probabilities `probs` (the softmax output).
/// Per row: the `k` largest values, largest first (equal values: lower expert index first);
/// their expert indices go to `indices` and their weights to `weights` (both `n_rows x k`).
/// With `normalize` the weights are `p / sum(top-k p)` (summed in order), else `p`.
/// `0 < k <= n_experts`. Threads split the rows.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn airllm_moe_gate(
    weights: *mut f32,
    indices: *mut u32,
    probs: *const f32,
    normalize: bool,
    n_experts: u32,
    n_rows: u32,
    k: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let out_len = mul(n_rows as usize, k as usize)?;
        let w = Raw::output(weights, out_len)?;
        let ix = Raw::output(indices, out_len)?;
        let p = Raw::input(probs, mul(n_rows as usize, n_experts as usize)?)?;
        Regions::default()
            .output(&w)
            .output(&ix)
            .input(&p)
            .check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (w, ix, p) = unsafe { (w.out(), ix.out(), p.slice()) };
        current().moe_gate(
            w,
            ix,
            p,
            n_experts as usize,
            k as usize,
            normalize,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

/// Copies `row` (`row_len` floats) into row `pos` of `cache` (`seq_len x row_len` floats;
/// `pos < seq_len`), the peer's SHIFT op. Threads split the elements of the row.
///
/// # Safety
/// The caller's contract (crate docs, header preamble): valid, aligned, non-overlapping buffers of the sizes given.
#[no_mangle]
pub unsafe extern "C" fn airllm_kv_write(
    cache: *mut f32,
    row: *const f32,
    pos: u32,
    row_len: u32,
    seq_len: u32,
    n_threads: u32,
    thread_index: u32,
) -> airllm_status {
    guard(|| {
        let c = Raw::output(cache, mul(row_len as usize, seq_len as usize)?)?;
        let r = Raw::input(row, row_len as usize)?;
        Regions::default().output(&c).input(&r).check()?;
        // SAFETY: checked pointers; validity and the sharing rules are the caller's contract.
        let (c, r) = unsafe { (c.out(), r.slice()) };
        current().kv_write(
            c,
            r,
            pos as usize,
            n_threads as usize,
            thread_index as usize,
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod names {
    use super::*;

    #[test]
    fn impl_names_match_the_kernels() {
        for imp in Impl::ALL {
            assert_eq!(impl_cstr(imp).to_str().unwrap(), imp.name());
        }
    }
}
