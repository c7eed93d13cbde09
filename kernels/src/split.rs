//! distributed-llama's rule for sharing `len` items among `n_threads` threads.

use core::ops::Range;

/// The items thread `thread_index` of `n_threads` works on: `len / n_threads` each, and the
/// first `len % n_threads` threads get one more (the peer's `SPLIT_THREADS`).
///
/// Callers validate `thread_index < n_threads`; this function only computes.
#[inline]
pub fn split(len: usize, n_threads: usize, thread_index: usize) -> Range<usize> {
    let slice = len / n_threads;
    let rest = len % n_threads;
    let start = thread_index * slice + thread_index.min(rest);
    let end = start + slice + usize::from(thread_index < rest);
    start..end
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn covers_every_item_once() {
        for len in 0..50 {
            for n in 1..9 {
                let mut next = 0;
                for t in 0..n {
                    let r = split(len, n, t);
                    assert_eq!(r.start, next);
                    assert!(r.len() == len / n || r.len() == len / n + 1);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn first_threads_take_the_rest() {
        assert_eq!(split(10, 4, 0), 0..3);
        assert_eq!(split(10, 4, 1), 3..6);
        assert_eq!(split(10, 4, 2), 6..8);
        assert_eq!(split(10, 4, 3), 8..10);
    }
}
