//! Matmul shapes from real models, whole and as one node's slice (row slices for q, k, v, w1,
//! w3 and the classifier; column slices for wo and w2, as distributed-llama splits them).

/// One matmul: `d` outputs from `n` inputs (weights stored as `d` rows of `n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatShape {
    /// Where the shape comes from, e.g. `llama3-8b/n4` (`/nK`: one node's slice of K nodes), or
    /// `square` for the synthetic shapes.
    pub model: &'static str,
    /// The tensor, e.g. `wq`, `w2`, `wcls`, or `-`.
    pub tensor: &'static str,
    /// Input features.
    pub n: usize,
    /// Output features (rows of the weight matrix).
    pub d: usize,
}

impl MatShape {
    /// `n×d` (inputs × outputs), the notation of the benchmark ids and report tables.
    pub fn dims(&self) -> String {
        format!("{}x{}", self.n, self.d)
    }

    /// `model.tensor n×d`, or just `n×d` for the synthetic shapes.
    pub fn label(&self) -> String {
        if self.tensor == "-" {
            self.dims()
        } else {
            format!("{}.{} {}", self.model, self.tensor, self.dims())
        }
    }

    /// Multiply-accumulates per input vector.
    pub fn macs(&self) -> usize {
        self.n * self.d
    }
}

/// The dimensions of one dense llama model.
struct Model {
    dim: usize,
    ffn: usize,
    kv_dim: usize,
    vocab: usize,
}

const LLAMA3_8B: Model = Model {
    dim: 4096,
    ffn: 14336,
    kv_dim: 1024,
    vocab: 128256,
};

const LLAMA3_70B: Model = Model {
    dim: 8192,
    ffn: 28672,
    kv_dim: 1024,
    vocab: 128256,
};

/// The distinct matmul shapes of one node of `nodes` (`model` names the node count).
fn node_shapes(m: &Model, model: &'static str, nodes: usize) -> Vec<MatShape> {
    let s = |tensor, n, d| MatShape {
        model,
        tensor,
        n,
        d,
    };
    let mut v = vec![
        s("wq", m.dim, m.dim / nodes),
        s("wk", m.dim, m.kv_dim / nodes),
        s("wo", m.dim / nodes, m.dim),
        s("w1", m.dim, m.ffn / nodes),
        s("w2", m.ffn / nodes, m.dim),
        s("wcls", m.dim, m.vocab / nodes),
    ];
    // Unsliced, wq and wo are the same square matrix.
    if nodes == 1 {
        v.remove(2);
    }
    v
}

/// The synthetic shapes named by the issue: 4096², 4096→11008, 11008→4096 and 2048².
pub fn standard_shapes() -> Vec<MatShape> {
    let s = |n, d| MatShape {
        model: "square",
        tensor: "-",
        n,
        d,
    };
    vec![s(4096, 4096), s(4096, 11008), s(11008, 4096), s(2048, 2048)]
}

/// Every model shape: Llama-3-8B whole and one node of 2, 4 and 8; Llama-3-70B one node of 8.
pub fn model_shapes() -> Vec<MatShape> {
    let mut v = node_shapes(&LLAMA3_8B, "llama3-8b", 1);
    v.extend(node_shapes(&LLAMA3_8B, "llama3-8b/n2", 2));
    v.extend(node_shapes(&LLAMA3_8B, "llama3-8b/n4", 4));
    v.extend(node_shapes(&LLAMA3_8B, "llama3-8b/n8", 8));
    v.extend(node_shapes(&LLAMA3_70B, "llama3-70b/n8", 8));
    v
}

/// The standard shapes followed by every model shape whose dimensions are not already listed
/// (Llama-3-8B's wq is the standard 4096×4096, its wk one node-of-4's wq, …).
pub fn all_shapes() -> Vec<MatShape> {
    let mut v = standard_shapes();
    for s in model_shapes() {
        if !v.iter().any(|o| (o.n, o.d) == (s.n, s.d)) {
            v.push(s);
        }
    }
    v
}

/// A short selection for default runs: the standard shapes plus Llama-3-8B's FFN matrices
/// for one node of 4.
pub fn default_shapes() -> Vec<MatShape> {
    let mut v = standard_shapes();
    v.extend(
        node_shapes(&LLAMA3_8B, "llama3-8b/n4", 4)
            .into_iter()
            .filter(|s| s.tensor == "w1" || s.tensor == "w2"),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_whole_blocks_and_match_the_model() {
        for s in all_shapes() {
            assert_eq!(s.n % 32, 0, "{}", s.label());
            assert!(s.d > 0);
        }
        let n8: Vec<_> = model_shapes()
            .into_iter()
            .filter(|s| s.model == "llama3-70b/n8")
            .collect();
        assert!(n8.contains(&MatShape {
            model: "llama3-70b/n8",
            tensor: "w2",
            n: 3584,
            d: 8192
        }));
        assert!(n8.iter().any(|s| s.tensor == "wcls" && s.d == 16032));
        // Every model shape is measured once, under its first label.
        let all = all_shapes();
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| (a.n, a.d) != (b.n, b.d)));
        }
        for m in model_shapes() {
            assert!(all.iter().any(|a| (a.n, a.d) == (m.n, m.d)));
        }
        // 8B whole has no separate wo (it equals wq).
        assert_eq!(
            model_shapes()
                .iter()
                .filter(|s| s.model == "llama3-8b")
                .count(),
            5
        );
    }
}
