//! The exported functions called from Rust the way C calls them: raw pointers, several threads
//! on one output buffer. Small sizes so that Miri can check the pointer handling
//! (`cargo +nightly miri test -p airllm-ffi --lib`); the full numerical comparison is the C++
//! suite in `cpp-tests`.

use std::ffi::CStr;
use std::thread;

use crate::*;

/// The pointer of a shared output, movable into threads (C++ threads just share it).
#[derive(Clone, Copy)]
struct SharedPtr<T>(*mut T);
// SAFETY: the pointer is only handed to the exported functions, whose contract makes
// concurrent calls with distinct thread indices sound.
unsafe impl<T> Send for SharedPtr<T> {}
unsafe impl<T> Sync for SharedPtr<T> {}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 500.0 - 2.0
        })
        .collect()
}

#[test]
fn threads_share_one_output_and_match_one_thread() {
    let (n, d) = (64u32, 5u32);
    let x = values(n as usize, 1);
    let w = values((n * d) as usize, 2);
    let mut one = vec![0.0f32; d as usize];
    // SAFETY: buffers of the documented sizes, no overlap, a single caller.
    let st = unsafe { airllm_matmul_f32(one.as_mut_ptr(), x.as_ptr(), w.as_ptr(), n, d, 1, 0) };
    assert_eq!(st, airllm_status::Ok);

    for nt in [2u32, 3, 7] {
        let mut out = vec![f32::NAN; d as usize];
        let p = SharedPtr(out.as_mut_ptr());
        thread::scope(|s| {
            for ti in 0..nt {
                let (x, w) = (&x, &w);
                s.spawn(move || {
                    let p = p;
                    // SAFETY: every thread calls the same kernel with the same sizes and
                    // n_threads and its own index, and nothing else touches `out` meanwhile.
                    let st =
                        unsafe { airllm_matmul_f32(p.0, x.as_ptr(), w.as_ptr(), n, d, nt, ti) };
                    assert_eq!(st, airllm_status::Ok);
                });
            }
        });
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out), bits(&one), "{nt} threads");
    }
}

#[test]
fn blocks_round_trip_through_the_c_types() {
    let n = 64u32;
    let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut q = vec![airllm_block_q80::default(); 2];
    let mut back = vec![0.0f32; n as usize];
    // SAFETY: buffers of the documented sizes, no overlap, a single caller.
    unsafe {
        assert_eq!(
            airllm_quantize_q80(q.as_mut_ptr(), x.as_ptr(), n, 1, 0),
            airllm_status::Ok
        );
        assert_eq!(
            airllm_dequantize_q80(back.as_mut_ptr(), q.as_ptr(), n, 1, 0),
            airllm_status::Ok
        );
    }
    // |x| <= 3 in every block: d = 3/127 and each small integer comes back within d/2.
    for (a, b) in x.iter().zip(&back) {
        assert!((a - b).abs() <= 3.0 / 127.0 / 2.0 + 1e-6, "{a} vs {b}");
    }
}

#[test]
fn refusals_have_their_status_and_write_nothing() {
    let x = values(64, 3);
    let mut out = vec![7.0f32; 64];
    let o = out.as_mut_ptr();
    // SAFETY: every pointer is valid or NULL (which must be refused before any access).
    unsafe {
        assert_eq!(
            airllm_silu(std::ptr::null_mut(), 4, 1, 0),
            airllm_status::NullPointer
        );
        assert_eq!(
            airllm_add(o, x.as_ptr(), 64, 2, 2),
            airllm_status::BadThreadSplit
        );
        assert_eq!(
            airllm_add(o, x.as_ptr(), 64, 0, 0),
            airllm_status::BadThreadSplit
        );
        assert_eq!(airllm_add(o, o, 64, 1, 0), airllm_status::Overlap);
        let q = [airllm_block_q80::default(); 2];
        assert_eq!(
            airllm_add_q80(o, q.as_ptr(), 48, 1, 0),
            airllm_status::BadSize
        );
        let odd = o.cast::<u8>().wrapping_add(1).cast::<f32>();
        assert_eq!(airllm_scale(odd, 2.0, 4, 1, 0), airllm_status::Misaligned);
        assert_eq!(airllm_softmax(o, 0, 1, 1, 0), airllm_status::BadArgument);
    }
    assert!(out.iter().all(|&v| v == 7.0));
}

#[test]
fn names_and_forcing() {
    // SAFETY: the returned pointers are static NUL-terminated strings.
    let s = |p: *const std::ffi::c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    assert_eq!(s(airllm_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(s(airllm_status_str(airllm_status::Ok as i32)), "ok");
    assert_eq!(s(airllm_status_str(1000)), "unknown status");
    let list = s(airllm_list_impls());
    assert!(list.starts_with("scalar"));
    assert!(list.split(',').any(|n| n == s(airllm_impl_name())));
    // SAFETY: NUL-terminated literals and NULL.
    unsafe {
        assert_eq!(
            airllm_force_impl(std::ptr::null()),
            airllm_status::NullPointer
        );
        assert_eq!(
            airllm_force_impl(c"sse9".as_ptr()),
            airllm_status::BadArgument
        );
        assert_eq!(airllm_force_impl(c"auto".as_ptr()), airllm_status::Ok);
    }
}
