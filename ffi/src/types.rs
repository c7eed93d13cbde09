//! The C types of the ABI: the status code, the two block formats and the RoPE structs.

use core::mem::{align_of, offset_of, size_of};

use kernels::rope::RopeScaling;
use kernels::{BlockQ40, BlockQ80, KernelError, RopeSlice};

/// Result of every kernel call. `AIRLLM_STATUS_OK` is 0; anything else means the call was
/// refused and wrote nothing.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum airllm_status {
    /// The call succeeded.
    Ok = 0,
    /// A required pointer was NULL (pointers are required even for zero lengths).
    NullPointer = 1,
    /// A pointer is not aligned for its element type.
    Misaligned = 2,
    /// An output buffer overlaps an input buffer or another output buffer.
    Overlap = 3,
    /// A size is wrong: not a multiple of 32 where blocks are involved, inconsistent with the
    /// other sizes, or too large to address.
    BadSize = 4,
    /// `n_threads` is 0 or `thread_index >= n_threads`.
    BadThreadSplit = 5,
    /// A scalar argument is out of range (position past the cache, zero heads, k > experts,
    /// an unknown implementation name, ...).
    BadArgument = 6,
    /// The requested implementation cannot run on this CPU.
    Unsupported = 7,
    /// An internal error (a Rust panic) was caught at the boundary. This is a bug in the
    /// library; the output may be partly written.
    Panic = 8,
}

impl From<KernelError> for airllm_status {
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::BadSize { .. } | KernelError::NotMultiple { .. } => airllm_status::BadSize,
            KernelError::BadThreadSplit { .. } => airllm_status::BadThreadSplit,
            KernelError::Unsupported(_) => airllm_status::Unsupported,
            // `BadArgument` and any error kind added to the kernels later.
            _ => airllm_status::BadArgument,
        }
    }
}

/// 32 weights in 18 bytes, the layout of distributed-llama's `NnBlockQ40` (and ggml's
/// `block_q4_0`): an IEEE binary16 scale `d`, then 16 bytes of nibbles. Byte `j` holds element
/// `j` in its low nibble and element `j + 16` in its high nibble; a nibble `q` stands for
/// `(q - 8) * d`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct airllm_block_q40 {
    /// Scale, binary16 bits.
    pub d: u16,
    /// Packed nibbles.
    pub qs: [u8; 16],
}

/// 32 activations in 34 bytes, the layout of distributed-llama's `NnBlockQ80` (and ggml's
/// `block_q8_0`): an IEEE binary16 scale `d`, then 32 signed bytes; element `j` is `qs[j] * d`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct airllm_block_q80 {
    /// Scale, binary16 bits.
    pub d: u16,
    /// Quantised values.
    pub qs: [i8; 32],
}

// The kernels see the C blocks through pointer casts, which is sound only while both sides
// have exactly the same layout.
const _: () = {
    assert!(size_of::<airllm_block_q40>() == 18);
    assert!(size_of::<airllm_block_q40>() == size_of::<BlockQ40>());
    assert!(align_of::<airllm_block_q40>() == align_of::<BlockQ40>());
    assert!(offset_of!(airllm_block_q40, d) == offset_of!(BlockQ40, d));
    assert!(offset_of!(airllm_block_q40, qs) == offset_of!(BlockQ40, qs));
    assert!(size_of::<airllm_block_q80>() == 34);
    assert!(size_of::<airllm_block_q80>() == size_of::<BlockQ80>());
    assert!(align_of::<airllm_block_q80>() == align_of::<BlockQ80>());
    assert!(offset_of!(airllm_block_q80, d) == offset_of!(BlockQ80, d));
    assert!(offset_of!(airllm_block_q80, qs) == offset_of!(BlockQ80, qs));
};

/// One node's slice of the rotary embedding: distributed-llama's `NnRopeSlice` without its
/// `cacheSize` (the cache sizes follow from the fields). Fill it with
/// `airllm_rope_slice_for_node` or copy the fields from the peer's slice one by one.
///
/// Llama caches are `seq_len` rows of `slice_dim` floats (cos, sin pairs); falcon caches are
/// `seq_len` rows of `head_dim` floats (cos half, then sin half).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct airllm_rope_slice {
    /// Query features on this node.
    pub q_dim0: u32,
    /// First global query feature of this node.
    pub q_dim_start: u32,
    /// One past the last global query feature of this node.
    pub q_dim_end: u32,
    /// `q_dim_start - kv_dim_start`: where the query pairs start in a llama cache row.
    pub q_shift: u32,
    /// KV features of the whole model.
    pub kv_dim: u32,
    /// KV features on this node.
    pub kv_dim0: u32,
    /// First global KV feature of this node.
    pub kv_dim_start: u32,
    /// Floats per llama cache row: `q_dim_end - kv_dim_start`.
    pub slice_dim: u32,
    /// Positions in the cache.
    pub seq_len: u32,
    /// Floats per head.
    pub head_dim: u32,
    /// KV heads of the whole model.
    pub n_kv_heads: u32,
    /// RoPE base theta.
    pub theta: f32,
}

impl airllm_rope_slice {
    pub(crate) fn to_kernels(self) -> RopeSlice {
        RopeSlice {
            q_dim0: self.q_dim0 as usize,
            q_dim_start: self.q_dim_start as usize,
            q_dim_end: self.q_dim_end as usize,
            q_shift: self.q_shift as usize,
            kv_dim: self.kv_dim as usize,
            kv_dim0: self.kv_dim0 as usize,
            kv_dim_start: self.kv_dim_start as usize,
            slice_dim: self.slice_dim as usize,
            seq_len: self.seq_len as usize,
            head_dim: self.head_dim as usize,
            n_kv_heads: self.n_kv_heads as usize,
            theta: self.theta,
        }
    }
}

/// Llama 3.1 RoPE frequency scaling (the model header's `rope_scaling_*` values). A factor of
/// exactly 1 means no scaling.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct airllm_rope_scaling {
    /// `rope_scaling_factor`.
    pub factor: f32,
    /// `rope_scaling_low_freq_factor`.
    pub low_freq_factor: f32,
    /// `rope_scaling_high_freq_factor`.
    pub high_freq_factor: f32,
    /// `rope_scaling_orig_max_seq_len`.
    pub orig_max_seq_len: u32,
}

impl airllm_rope_scaling {
    pub(crate) fn to_kernels(self) -> RopeScaling {
        RopeScaling {
            factor: self.factor,
            low_freq_factor: self.low_freq_factor,
            high_freq_factor: self.high_freq_factor,
            orig_max_seq_len: self.orig_max_seq_len,
        }
    }
}
