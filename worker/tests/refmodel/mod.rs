//! An independent reference forward pass, written from the math of the model (spec §6) with
//! plain loops: weights dequantised to f32, dot products and norms accumulated in f64, RoPE
//! angles in f64. It shares no code with the kernels or the executor; only the model file reader
//! is used to find the tensors.

#![allow(dead_code)]

use airllm_worker::float_type::FloatType;
use airllm_worker::model::gen::{params, write_model, GenArch, Preset};
use airllm_worker::model::{ArchType, ModelFile, ModelHeader, RopeType, TensorId, TensorKind};
use half::f16;

/// A `[rows][cols]` f32 matrix.
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Mat {
    fn mul(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.cols);
        self.data
            .chunks_exact(self.cols)
            .map(|row| dot(row, x) as f32)
            .collect()
    }

    /// The products of each of `n` equal column slices: what `n` nodes compute before their
    /// partial sums are exchanged (spec §3).
    fn partials(&self, x: &[f32], n: usize) -> Vec<Vec<f32>> {
        assert_eq!(x.len(), self.cols);
        let c0 = self.cols / n;
        (0..n)
            .map(|k| {
                self.data
                    .chunks_exact(self.cols)
                    .map(|row| dot(&row[k * c0..(k + 1) * c0], &x[k * c0..(k + 1) * c0]) as f32)
                    .collect()
            })
            .collect()
    }
}

/// How the reference treats activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything in f32/f64: the model's math.
    F32,
    /// The protocol's Q80 activations (spec §6.1, §6.11) on `n_nodes` nodes: the input of
    /// every quantised matmul and every node's partial sum are rounded through Q80.
    Q80 {
        /// Nodes whose partial sums are quantised separately.
        n_nodes: usize,
    },
}

/// Q80 round trip of `x` (blocks of 32): `d = amax/127`, `q = round-half-even(x/d)`, value
/// `q · f16(d)`.
pub fn q80(x: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for blk in x.chunks(32) {
        let amax = blk.iter().fold(0f32, |m, &v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let ds = f16::from_f32(d).to_f32();
        out.extend(blk.iter().map(|&v| (v * id).round_ties_even() * ds));
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Decodes a tensor of the file to f32 (F32 as is, Q40 from its blocks).
fn decode(ft: FloatType, bytes: &[u8]) -> Vec<f32> {
    match ft {
        FloatType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        FloatType::Q40 => {
            let mut out = Vec::with_capacity(bytes.len() / 18 * 32);
            for blk in bytes.chunks_exact(18) {
                let d = f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f32();
                let qs = &blk[2..];
                let mut vals = [0f32; 32];
                for j in 0..16 {
                    vals[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
                    vals[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
                }
                out.extend_from_slice(&vals);
            }
            out
        }
        other => panic!("reference cannot decode {other}"),
    }
}

fn mat(file: &ModelFile, id: TensorId) -> Mat {
    let info = *file.index().require(id).expect("tensor exists");
    let data = decode(info.float_type, file.tensor(id).expect("tensor bytes"));
    assert_eq!(data.len(), info.rows * info.cols);
    Mat {
        rows: info.rows,
        cols: info.cols,
        data,
    }
}

fn vecf(file: &ModelFile, id: TensorId) -> Vec<f32> {
    mat(file, id).data
}

enum Ffn {
    Dense {
        w1: Mat,
        w2: Mat,
        w3: Mat,
    },
    Moe {
        gate: Mat,
        experts: Vec<(Mat, Mat, Mat)>,
    },
}

struct Layer {
    wq: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    ffn: Ffn,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
}

/// The whole model in f32.
pub struct RefModel {
    pub h: ModelHeader,
    emb: Mat,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    cls: Mat,
}

/// The KV cache of one sequence.
pub struct RefState {
    k: Vec<Vec<Vec<f32>>>,
    v: Vec<Vec<Vec<f32>>>,
    /// Smallest relative lead of the last chosen expert over the first unchosen one, over the
    /// layers of the last forward pass (1 for dense models).
    pub gate_margin: f64,
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps as f64).sqrt();
    x.iter()
        .zip(w)
        .map(|(&v, &g)| (v as f64 * inv * g as f64) as f32)
        .collect()
}

fn silu(v: f32) -> f64 {
    let v = v as f64;
    v / (1.0 + (-v).exp())
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

impl RefModel {
    /// Decodes every tensor of `file`.
    pub fn load(file: &ModelFile) -> RefModel {
        let h = file.header().clone();
        let g = |k| TensorId::global(k);
        let layers = (0..h.n_layers)
            .map(|l| {
                let t = |k| TensorId::layer(k, l);
                let ffn = if h.arch == ArchType::Qwen3Moe {
                    Ffn::Moe {
                        gate: mat(file, t(TensorKind::MoeGate)),
                        experts: (0..h.n_experts)
                            .map(|e| {
                                let x = |k| mat(file, TensorId::expert(k, l, e));
                                (x(TensorKind::W1), x(TensorKind::W2), x(TensorKind::W3))
                            })
                            .collect(),
                    }
                } else {
                    Ffn::Dense {
                        w1: mat(file, t(TensorKind::W1)),
                        w2: mat(file, t(TensorKind::W2)),
                        w3: mat(file, t(TensorKind::W3)),
                    }
                };
                let qwen = h.arch != ArchType::Llama;
                Layer {
                    wq: mat(file, t(TensorKind::Q)),
                    wk: mat(file, t(TensorKind::K)),
                    wv: mat(file, t(TensorKind::V)),
                    wo: mat(file, t(TensorKind::Wo)),
                    ffn,
                    q_norm: qwen.then(|| vecf(file, t(TensorKind::QNorm))),
                    k_norm: qwen.then(|| vecf(file, t(TensorKind::KNorm))),
                    attn_norm: vecf(file, t(TensorKind::AttnNorm)),
                    ffn_norm: vecf(file, t(TensorKind::FfnNorm)),
                }
            })
            .collect();
        RefModel {
            emb: mat(file, g(TensorKind::Embedding)),
            final_norm: vecf(file, g(TensorKind::FinalNorm)),
            cls: mat(file, g(TensorKind::Classifier)),
            layers,
            h,
        }
    }

    /// An empty KV cache.
    pub fn state(&self) -> RefState {
        RefState {
            k: vec![Vec::new(); self.h.n_layers],
            v: vec![Vec::new(); self.h.n_layers],
            gate_margin: 1.0,
        }
    }

    /// The rotation frequency of pair `m` of a head (llama: features 2m, 2m+1; falcon: m and
    /// m + head_dim/2), with the llama 3.1 scaling when the factor is not 1.
    fn freq(&self, m: usize) -> f64 {
        let h = &self.h;
        let hd = h.head_dim as f64;
        let mut f = (h.rope_theta as f64).powf(-((2 * m) as f64) / hd);
        if h.rope_type != RopeType::Falcon && h.rope_scaling_factor != 1.0 {
            let factor = h.rope_scaling_factor as f64;
            let low = h.rope_scaling_low_freq_factor as f64;
            let high = h.rope_scaling_high_freq_factor as f64;
            let orig = h.rope_scaling_orig_max_seq_len as f64;
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < orig / high {
            } else if wavelen > orig / low {
                f /= factor;
            } else {
                let s = (orig / wavelen - low) / (high - low);
                f = (1.0 - s) * f / factor + s * f;
            }
        }
        f
    }

    fn rope(&self, x: &mut [f32], pos: usize) {
        let hd = self.h.head_dim;
        for head in x.chunks_exact_mut(hd) {
            for m in 0..hd / 2 {
                let a = pos as f64 * self.freq(m);
                let (s, c) = a.sin_cos();
                let (i, j) = if self.h.rope_type == RopeType::Falcon {
                    (m, m + hd / 2)
                } else {
                    (2 * m, 2 * m + 1)
                };
                let (x0, x1) = (head[i] as f64, head[j] as f64);
                head[i] = (x0 * c - x1 * s) as f32;
                head[j] = (x0 * s + x1 * c) as f32;
            }
        }
    }

    /// Logits for `token` at `pos` (the previous positions must have been fed to `st`).
    pub fn forward(&self, st: &mut RefState, token: u32, pos: usize, mode: Mode) -> Vec<f32> {
        let h = &self.h;
        let (quant, n_nodes) = match mode {
            Mode::F32 => (false, 1),
            Mode::Q80 { n_nodes } => (true, n_nodes),
        };
        let qa = |v: Vec<f32>| if quant { q80(&v) } else { v };
        // x += every node's partial sum, each rounded through the exchange type.
        let merge = |x: &mut [f32], parts: Vec<Vec<f32>>| {
            for p in parts {
                for (xi, d) in x.iter_mut().zip(qa(p)) {
                    *xi += d;
                }
            }
        };
        let (hd, eps) = (h.head_dim, h.norm_epsilon);
        let dim = h.dim;
        st.gate_margin = 1.0;
        let mut x = self.emb.data[token as usize * dim..(token as usize + 1) * dim].to_vec();
        for (l, ly) in self.layers.iter().enumerate() {
            let xn = qa(rms_norm(&x, &ly.attn_norm, eps));
            let mut q = ly.wq.mul(&xn);
            let mut k = ly.wk.mul(&xn);
            let v = ly.wv.mul(&xn);
            if let (Some(qn), Some(kn)) = (&ly.q_norm, &ly.k_norm) {
                for head in q.chunks_exact_mut(hd) {
                    let n = rms_norm(head, qn, eps);
                    head.copy_from_slice(&n);
                }
                for head in k.chunks_exact_mut(hd) {
                    let n = rms_norm(head, kn, eps);
                    head.copy_from_slice(&n);
                }
            }
            self.rope(&mut q, pos);
            self.rope(&mut k, pos);
            assert_eq!(st.k[l].len(), pos, "positions must be fed in order");
            st.k[l].push(k);
            st.v[l].push(v);
            let kv_mul = h.n_heads / h.n_kv_heads;
            let mut att = vec![0f32; h.n_heads * hd];
            for head in 0..h.n_heads {
                let kvh = head / kv_mul;
                let qh = &q[head * hd..(head + 1) * hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|t| dot(qh, &st.k[l][t][kvh * hd..(kvh + 1) * hd]) / (hd as f64).sqrt())
                    .collect();
                let a = softmax(&scores);
                for i in 0..hd {
                    let s: f64 = (0..=pos)
                        .map(|t| a[t] * st.v[l][t][kvh * hd + i] as f64)
                        .sum();
                    att[head * hd + i] = s as f32;
                }
            }
            merge(&mut x, ly.wo.partials(&qa(att), n_nodes));
            let xn = rms_norm(&x, &ly.ffn_norm, eps);
            let xq = qa(xn.clone());
            let ff = |w1: &Mat, w2: &Mat, w3: &Mat| {
                let a = w1.mul(&xq);
                let b = w3.mul(&xq);
                let hmid: Vec<f32> = a
                    .iter()
                    .zip(&b)
                    .map(|(&u, &g)| (silu(u) * g as f64) as f32)
                    .collect();
                w2.partials(&qa(hmid), n_nodes)
            };
            match &ly.ffn {
                Ffn::Dense { w1, w2, w3 } => merge(&mut x, ff(w1, w2, w3)),
                Ffn::Moe { gate, experts } => {
                    let g: Vec<f64> = gate.mul(&xn).iter().map(|&v| v as f64).collect();
                    let p = softmax(&g);
                    let mut order: Vec<usize> = (0..p.len()).collect();
                    order.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap().then(a.cmp(&b)));
                    let k = h.n_active_experts;
                    let top = &order[..k];
                    if k < order.len() {
                        let lead = (p[order[k - 1]] - p[order[k]]) / p[order[k - 1]];
                        st.gate_margin = st.gate_margin.min(lead);
                    }
                    let sum: f64 = top.iter().map(|&e| p[e]).sum();
                    let mut acc = vec![vec![0f64; dim]; n_nodes];
                    for &e in top {
                        let (w1, w2, w3) = &experts[e];
                        for (acc_k, part) in acc.iter_mut().zip(ff(w1, w2, w3)) {
                            for (a, d) in acc_k.iter_mut().zip(part) {
                                *a += p[e] / sum * d as f64;
                            }
                        }
                    }
                    let parts = acc
                        .into_iter()
                        .map(|a| a.into_iter().map(|v| v as f32).collect())
                        .collect();
                    merge(&mut x, parts);
                }
            }
        }
        let xn = qa(rms_norm(&x, &self.final_norm, eps));
        self.cls.mul(&xn)
    }
}

/// A generated tiny model of `arch` with `weights`, read back through the model reader.
pub fn tiny_model(arch: GenArch, weights: FloatType, seed: u64) -> ModelFile {
    tiny_model_with(Preset::Tiny, arch, weights, seed)
}

/// A generated model of any preset, in memory.
pub fn tiny_model_with(preset: Preset, arch: GenArch, weights: FloatType, seed: u64) -> ModelFile {
    let header = ModelHeader::from_params(&params(preset, arch, weights)).expect("valid preset");
    let bytes = write_model(&header, seed, Vec::new(), &mut |_, _| {}).expect("model written");
    ModelFile::from_bytes(bytes, None).expect("model reads back")
}

/// Largest |a − b| over the slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Root-mean-square of the values.
pub fn rms(a: &[f32]) -> f32 {
    ((a.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / a.len() as f64).sqrt()) as f32
}

/// Index of the largest value and its lead over the second largest.
pub fn top2(a: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    let mut second = f32::NEG_INFINITY;
    for (i, &v) in a.iter().enumerate() {
        if v > best.1 {
            second = best.1;
            best = (i, v);
        } else if v > second {
            second = v;
        }
    }
    (best.0, best.1 - second)
}
