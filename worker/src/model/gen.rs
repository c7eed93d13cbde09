//! Deterministic random models for tests and benchmarks: a preset shape, an architecture, a
//! weight type and a seed give the same `.m` (and matching `.t`) bytes every time.
//!
//! Weights are uniform with the variance of `N(0, 1/fan_in)` so activations keep unit scale
//! through the layers, norms are `1 ± 0.1`, and the classifier is scaled up a little so that
//! the output distribution is peaked enough for greedy decoding to vary with the input.

use super::header::{ArchType, HeaderParams, ModelHeader, RopeScaling, RopeType};
use super::tensors::TensorKind;
use super::writer::ModelWriter;
use super::ModelError;
use crate::float_type::FloatType;
use crate::tokenizer::Tokenizer;
use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::str::FromStr;

/// Model size presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// dim 256, hidden 768, 4 layers, 8 heads, 4 KV heads, vocab 512, seq 256 (≈2.4 MB Q40).
    Tiny,
    /// dim 512, hidden 1536, 8 layers, 8 heads, 4 KV heads, vocab 4096, seq 512 (≈24 MB Q40).
    Small,
    /// dim 2048, hidden 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000, seq 2048 (≈0.85 GB Q40).
    OneB,
}

/// Architectures the generator can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenArch {
    /// Llama, interleaved RoPE, theta 10000.
    Llama,
    /// Llama with llama 3.1 RoPE scaling (factor 8, low 1, high 4, original length 8192),
    /// theta 500000.
    Llama31,
    /// Qwen3: explicit head_dim key, q/k norms, theta 1000000, epsilon 1e-6.
    Qwen3,
    /// Qwen3 MoE: as Qwen3 with 8 experts, 2 active.
    Qwen3Moe,
}

impl Preset {
    /// CLI names, in declaration order.
    pub const NAMES: [&'static str; 3] = ["tiny", "small", "1b"];
}

impl GenArch {
    /// CLI names, in declaration order.
    pub const NAMES: [&'static str; 4] = ["llama", "llama3.1", "qwen3", "qwen3-moe"];
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Preset, String> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "1b" => Ok(Preset::OneB),
            _ => Err(format!(
                "unknown preset {s:?} (expected one of {:?})",
                Preset::NAMES
            )),
        }
    }
}

impl FromStr for GenArch {
    type Err = String;
    fn from_str(s: &str) -> Result<GenArch, String> {
        match s {
            "llama" => Ok(GenArch::Llama),
            "llama3.1" => Ok(GenArch::Llama31),
            "qwen3" => Ok(GenArch::Qwen3),
            "qwen3-moe" => Ok(GenArch::Qwen3Moe),
            _ => Err(format!(
                "unknown architecture {s:?} (expected one of {:?})",
                GenArch::NAMES
            )),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Preset::NAMES[*self as usize])
    }
}

impl fmt::Display for GenArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(GenArch::NAMES[*self as usize])
    }
}

/// What to generate and where.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Shape preset.
    pub preset: Preset,
    /// Architecture.
    pub arch: GenArch,
    /// F32 or Q40 for the big matrices.
    pub weight_type: FloatType,
    /// RNG seed; the same options give the same bytes.
    pub seed: u64,
    /// `.m` output path.
    pub model_path: PathBuf,
    /// `.t` output path for the matching byte-level BPE tokenizer, if wanted.
    pub tokenizer_path: Option<PathBuf>,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSummary {
    /// The model's header, as a reader will parse it.
    pub header: ModelHeader,
    /// Size of the `.m` file.
    pub model_bytes: u64,
    /// Size of the `.t` file (0 if none was written).
    pub tokenizer_bytes: u64,
}

/// The header values of a preset and architecture.
pub fn params(preset: Preset, arch: GenArch, weight_type: FloatType) -> HeaderParams {
    let (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) = match preset {
        Preset::Tiny => (256, 768, 4, 8, 4, 512, 256),
        Preset::Small => (512, 1536, 8, 8, 4, 4096, 512),
        Preset::OneB => (2048, 5632, 22, 32, 4, 32000, 2048),
    };
    let mut p = HeaderParams {
        arch: ArchType::Llama,
        weight_type,
        dim,
        hidden_dim,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim: 0,
        n_experts: 0,
        n_active_experts: 0,
        moe_hidden_dim: 0,
        vocab_size,
        seq_len,
        rope_theta: 10000,
        rope_type: RopeType::Llama,
        rope_scaling: None,
        norm_epsilon_1e6: false,
    };
    match arch {
        GenArch::Llama => {}
        GenArch::Llama31 => {
            p.rope_theta = 500_000;
            p.rope_type = RopeType::Llama31;
            p.rope_scaling = Some(RopeScaling {
                factor: 8,
                low_freq_factor: 1,
                high_freq_factor: 4,
                orig_max_seq_len: 8192,
            });
        }
        GenArch::Qwen3 | GenArch::Qwen3Moe => {
            p.arch = if arch == GenArch::Qwen3 {
                ArchType::Qwen3
            } else {
                ArchType::Qwen3Moe
            };
            p.rope_theta = 1_000_000;
            p.rope_type = RopeType::Falcon;
            p.norm_epsilon_1e6 = true;
            // Wider heads than dim / n_heads on the small presets so q_dim != dim is exercised.
            p.head_dim = if preset == Preset::OneB {
                dim / n_heads
            } else {
                2 * dim / n_heads
            };
            if arch == GenArch::Qwen3Moe {
                p.n_experts = 8;
                p.n_active_experts = 2;
                p.moe_hidden_dim = if preset == Preset::OneB {
                    hidden_dim / 4
                } else {
                    hidden_dim / 2
                };
                p.hidden_dim = 0;
            }
        }
    }
    p
}

/// splitmix64: a small, fast, well-mixed generator; ample for random weights.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `out` with uniform values of mean 0 and standard deviation `std`.
    pub fn fill_uniform(&mut self, out: &mut [f32], std: f32) {
        // Uniform on [-a, a) has standard deviation a / sqrt(3).
        let a = std * 3f32.sqrt();
        let scale = 2.0 * a / (1u32 << 24) as f32;
        let mut chunks = out.chunks_exact_mut(2);
        for pair in &mut chunks {
            let r = self.next_u64();
            pair[0] = ((r >> 40) as u32) as f32 * scale - a;
            pair[1] = (((r >> 8) & 0xFF_FFFF) as u32) as f32 * scale - a;
        }
        for v in chunks.into_remainder() {
            *v = ((self.next_u64() >> 40) as u32) as f32 * scale - a;
        }
    }
}

/// Writes a random model to `out` (buffer it), calling `progress(done_bytes, total_bytes)` after
/// each chunk. Memory use is one chunk of about a million floats, whatever the model size.
pub fn write_model<W: std::io::Write>(
    header: &ModelHeader,
    seed: u64,
    out: W,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<W, ModelError> {
    let mut w = ModelWriter::new(out, header)?;
    let total = w.total_bytes();
    let mut rng = SplitMix64::new(seed);
    let mut buf: Vec<f32> = Vec::new();
    progress(w.bytes_written(), total);
    while let Some(info) = w.current().copied() {
        let (std, offset) = match info.id.kind {
            TensorKind::Embedding => (1.0, 0.0),
            TensorKind::QNorm
            | TensorKind::KNorm
            | TensorKind::AttnNorm
            | TensorKind::FfnNorm
            | TensorKind::FinalNorm => (0.1 / 3f32.sqrt(), 1.0),
            TensorKind::Classifier => (4.0 / (info.cols as f32).sqrt(), 0.0),
            _ => (1.0 / (info.cols as f32).sqrt(), 0.0),
        };
        let rows_per_chunk = ((1usize << 20) / info.cols).clamp(1, info.rows);
        let mut row = 0;
        while row < info.rows {
            let n = rows_per_chunk.min(info.rows - row);
            buf.resize(n * info.cols, 0.0);
            rng.fill_uniform(&mut buf, std);
            if offset != 0.0 {
                buf.iter_mut().for_each(|v| *v += offset);
            }
            w.write(&buf)?;
            row += n;
            progress(w.bytes_written(), total);
        }
    }
    w.finish()
}

/// Generates the model (and tokenizer) that `opts` describe.
pub fn generate(
    opts: &GenOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<GenSummary, ModelError> {
    let header = ModelHeader::from_params(&params(opts.preset, opts.arch, opts.weight_type))?;
    let path = &opts.model_path;
    let file = File::create(path).map_err(|e| ModelError::io(path, e))?;
    let out = write_model(
        &header,
        opts.seed,
        BufWriter::with_capacity(1 << 20, file),
        progress,
    )?;
    let file = out
        .into_inner()
        .map_err(|e| ModelError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| ModelError::io(path, e))?;
    let model_bytes = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    let mut tokenizer_bytes = 0;
    if let Some(tpath) = &opts.tokenizer_path {
        let bytes = Tokenizer::byte_level_bpe(header.vocab_size)
            .map_err(|e| ModelError::Writer(format!("tokenizer: {e}")))?
            .to_bytes();
        std::fs::write(tpath, &bytes).map_err(|e| ModelError::io(tpath, e))?;
        tokenizer_bytes = bytes.len() as u64;
    }
    Ok(GenSummary {
        header,
        model_bytes,
        tokenizer_bytes,
    })
}
