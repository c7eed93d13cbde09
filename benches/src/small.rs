//! The per-token element-wise kernels at Llama-3-8B sizes, with inputs that stay benign
//! however many times a kernel runs in place on them.

use airllm_kernels::rope::fill_llama_cache;
use airllm_kernels::{BlockQ80, KernelError, Kernels, RopeSlice, QK};

use crate::data::{f32_vec, q80_vec};

/// Model dimension.
const DIM: usize = 4096;
/// Hidden FFN dimension of the SiLU case.
const FFN: usize = 11008;
/// Position of the RoPE case.
const ROPE_POS: usize = 100;

/// One small kernel case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmallOp {
    /// F32 → Q80 of 4096 floats.
    QuantizeQ80,
    /// `inv_rms` then `rms_norm` of 4096 floats (one node's pre-attention norm).
    RmsNorm,
    /// Llama RoPE on a 4096-float query at position 100.
    RopeLlama,
    /// Softmax of one row of 4096.
    Softmax,
    /// SiLU of 11008 floats.
    Silu,
    /// F32 merge-add of 4096 floats.
    Add,
    /// Q80 merge-add of 4096 values.
    AddQ80,
}

impl SmallOp {
    /// Every case.
    pub const ALL: [SmallOp; 7] = [
        SmallOp::QuantizeQ80,
        SmallOp::RmsNorm,
        SmallOp::RopeLlama,
        SmallOp::Softmax,
        SmallOp::Silu,
        SmallOp::Add,
        SmallOp::AddQ80,
    ];

    /// The kernel's name.
    pub const fn kernel(self) -> &'static str {
        match self {
            SmallOp::QuantizeQ80 => "quantize_q80",
            SmallOp::RmsNorm => "rms_norm",
            SmallOp::RopeLlama => "rope_llama",
            SmallOp::Softmax => "softmax",
            SmallOp::Silu => "silu",
            SmallOp::Add => "add",
            SmallOp::AddQ80 => "add_q80",
        }
    }

    /// The size, as the report prints it.
    pub const fn shape(self) -> &'static str {
        match self {
            SmallOp::QuantizeQ80 | SmallOp::Softmax => "4096",
            SmallOp::RmsNorm => "4096 (inv_rms + norm)",
            SmallOp::RopeLlama => "q 4096 pos 100",
            SmallOp::Silu => "11008",
            SmallOp::Add => "f32 4096",
            SmallOp::AddQ80 => "q80 4096",
        }
    }

    /// Bytes one call reads (inputs, weights and cache rows; in-place buffers once).
    pub const fn bytes(self) -> usize {
        let f = size_of::<f32>();
        match self {
            SmallOp::QuantizeQ80 | SmallOp::Softmax => DIM * f,
            // x twice (sum of squares, then the norm) and the weights.
            SmallOp::RmsNorm => 3 * DIM * f,
            SmallOp::RopeLlama | SmallOp::Add => 2 * DIM * f,
            SmallOp::Silu => FFN * f,
            SmallOp::AddQ80 => DIM * f + DIM / QK * size_of::<BlockQ80>(),
        }
    }
}

/// Inputs and outputs for every [`SmallOp`].
pub struct SmallOps {
    x: Vec<f32>,
    w: Vec<f32>,
    xq: Vec<BlockQ80>,
    silu_in: Vec<f32>,
    slice: RopeSlice,
    rope_cache: Vec<f32>,
    out: Vec<f32>,
    outq: Vec<BlockQ80>,
    y: Vec<f32>,
}

impl Default for SmallOps {
    fn default() -> Self {
        SmallOps::new()
    }
}

impl SmallOps {
    /// Fresh inputs (deterministic).
    pub fn new() -> SmallOps {
        let slice = RopeSlice::for_node(DIM, 1024, 8, 1, ROPE_POS + 1, 128, 500000.0, 0);
        let mut rope_cache = vec![0.0f32; slice.seq_len * slice.slice_dim];
        fill_llama_cache(&mut rope_cache[..], &slice, None, 1, 0)
            .expect("the rope slice of one node is valid");
        let x = f32_vec(DIM, 41, -2.0, 2.0);
        SmallOps {
            w: f32_vec(DIM, 42, 0.5, 1.5),
            xq: q80_vec(DIM, 43),
            // SiLU runs in place: from 17 up e^-x < 2^-24, so silu(x) == x in f32 and the input
            // never decays towards zero (and denormals) however often the kernel runs.
            silu_in: f32_vec(FFN, 44, 17.0, 80.0),
            slice,
            rope_cache,
            out: vec![0.0; FFN],
            outq: vec![BlockQ80::default(); DIM / QK],
            y: x.clone(),
            x,
        }
    }

    /// Resets the in-place buffers before measuring `op`. Softmax converges to the uniform
    /// row, RoPE rotates, and merge-add grows `y` by at most 1 per call, so none of them needs
    /// resetting between calls.
    pub fn prepare(&mut self, op: SmallOp) {
        match op {
            SmallOp::Silu => self.out.copy_from_slice(&self.silu_in),
            _ => self.y.copy_from_slice(&self.x),
        }
    }

    /// One call of `op` with `k` on one thread.
    pub fn call(&mut self, k: Kernels, op: SmallOp) -> Result<(), KernelError> {
        match op {
            SmallOp::QuantizeQ80 => k.quantize_q80(&mut self.outq[..], &self.x, 1, 0),
            SmallOp::RmsNorm => {
                let mut inv = [0.0f32];
                k.inv_rms(&mut inv[..], &self.x, 1e-5, 1, 0)?;
                k.rms_norm(&mut self.out[..DIM], &self.x, &self.w, inv[0], 1, 0)
            }
            SmallOp::RopeLlama => k.rope_llama(
                &mut self.y[..],
                &self.rope_cache,
                true,
                ROPE_POS,
                &self.slice,
                1,
                0,
            ),
            SmallOp::Softmax => k.softmax(&mut self.y[..], DIM, 1, 0),
            SmallOp::Silu => k.silu(&mut self.out[..], 1, 0),
            SmallOp::Add => k.add(&mut self.y[..], &self.w, 1, 0),
            SmallOp::AddQ80 => k.add_q80(&mut self.y[..], &self.xq, 1, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airllm_kernels::available;

    #[test]
    fn every_case_runs_on_every_impl_and_silu_input_is_a_fixed_point() {
        let mut s = SmallOps::new();
        for imp in available() {
            let k = Kernels::new(imp).unwrap();
            for op in SmallOp::ALL {
                s.prepare(op);
                for _ in 0..3 {
                    s.call(k, op).unwrap();
                }
            }
            s.prepare(SmallOp::Silu);
            s.call(k, SmallOp::Silu).unwrap();
            assert_eq!(s.out, s.silu_in, "{imp}");
        }
    }
}
