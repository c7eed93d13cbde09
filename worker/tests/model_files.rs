//! `.m` header parsing and writing, the tensor index, file validation, generation and node
//! slicing.

use airllm_worker::float_type::FloatType;
use airllm_worker::model::file::parse_layout;
use airllm_worker::model::gen::{self, GenArch, GenOptions, Preset};
use airllm_worker::model::header::{encode_pairs, HeaderKey, HeaderParams, RopeScaling};
use airllm_worker::model::writer::ModelWriter;
use airllm_worker::model::{
    ArchType, HeaderError, ModelError, ModelFile, ModelHeader, RopeType, Split, TensorId,
    TensorIndex, TensorKind,
};
use airllm_worker::weights::{node_slices, slice_for_node, slice_layout, SliceLayout, WeightStore};
use proptest::prelude::*;

/// A model small enough to build in every test: every tensor is a few KB.
fn micro(arch: ArchType, wt: FloatType) -> HeaderParams {
    let moe = arch == ArchType::Qwen3Moe;
    HeaderParams {
        arch,
        weight_type: wt,
        dim: 64,
        hidden_dim: if moe { 0 } else { 128 },
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: if arch == ArchType::Llama { 0 } else { 32 },
        n_experts: if moe { 4 } else { 0 },
        n_active_experts: if moe { 2 } else { 0 },
        moe_hidden_dim: if moe { 64 } else { 0 },
        vocab_size: 64,
        seq_len: 32,
        rope_theta: 10000,
        rope_type: RopeType::Llama,
        rope_scaling: None,
        norm_epsilon_1e6: false,
    }
}

fn model_bytes(h: &ModelHeader, seed: u64) -> Vec<u8> {
    gen::write_model(h, seed, Vec::new(), &mut |_, _| {}).unwrap()
}

/// Pairs of a valid micro llama header, for tests that break one of them.
fn base_pairs() -> Vec<(i32, i32)> {
    let h = ModelHeader::from_params(&micro(ArchType::Llama, FloatType::Q40)).unwrap();
    h.to_pairs()
        .into_iter()
        .map(|(k, v)| (k.code(), v))
        .collect()
}

fn set(pairs: &[(i32, i32)], key: HeaderKey, value: Option<i32>) -> Vec<(i32, i32)> {
    let mut p: Vec<(i32, i32)> = pairs
        .iter()
        .copied()
        .filter(|&(k, _)| k != key.code())
        .collect();
    if let Some(v) = value {
        p.push((key.code(), v));
    }
    p
}

fn with(pairs: &[(i32, i32)], key: HeaderKey, value: Option<i32>) -> Vec<u8> {
    encode_pairs(&set(pairs, key, value))
}

fn parse(bytes: &[u8]) -> Result<ModelHeader, HeaderError> {
    ModelHeader::parse(bytes, None)
}

#[test]
fn header_round_trips_for_every_generator_architecture() {
    for arch in [
        GenArch::Llama,
        GenArch::Llama31,
        GenArch::Qwen3,
        GenArch::Qwen3Moe,
    ] {
        for wt in [FloatType::Q40, FloatType::F32] {
            let h = ModelHeader::from_params(&gen::params(Preset::Tiny, arch, wt)).unwrap();
            let bytes = h.to_bytes();
            assert_eq!(bytes.len(), h.header_size);
            let back = parse(&bytes).unwrap();
            assert_eq!(back, h, "{arch} {wt}");
            // Pairs are written in key order.
            let keys: Vec<i32> = h.to_pairs().iter().map(|p| p.0.code()).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
        }
    }
}

#[test]
fn derived_values_and_overrides() {
    let llama31 =
        ModelHeader::from_params(&gen::params(Preset::Tiny, GenArch::Llama31, FloatType::Q40))
            .unwrap();
    assert_eq!(llama31.rope_type, RopeType::Llama31);
    assert_eq!(
        (
            llama31.rope_scaling_factor,
            llama31.rope_scaling_low_freq_factor,
            llama31.rope_scaling_high_freq_factor
        ),
        (8.0, 1.0, 4.0)
    );
    assert_eq!(llama31.rope_scaling_orig_max_seq_len, 8192);
    assert_eq!(llama31.rope_theta, 500000.0);

    let mut p = micro(ArchType::Qwen3, FloatType::Q40);
    p.rope_type = RopeType::Llama; // Qwen3 forces falcon whatever key 18 says.
    let q = ModelHeader::from_params(&p).unwrap();
    assert_eq!(q.rope_type, RopeType::Falcon);
    assert_eq!(
        (q.head_dim, q.q_dim, q.kv_dim, q.ff_dim),
        (32, 128, 64, 128)
    );

    let moe = ModelHeader::from_params(&micro(ArchType::Qwen3Moe, FloatType::Q40)).unwrap();
    assert_eq!(moe.ff_dim, 64);

    let l = ModelHeader::from_params(&micro(ArchType::Llama, FloatType::Q40)).unwrap();
    assert_eq!((l.head_dim, l.q_dim, l.kv_dim), (16, 64, 32));
    assert_eq!(l.norm_epsilon, 1e-5);
    assert_eq!(
        ModelHeader::parse(&l.to_bytes(), Some(8)).unwrap().seq_len,
        8
    );
    assert_eq!(
        ModelHeader::parse(&l.to_bytes(), Some(1000))
            .unwrap()
            .seq_len,
        32
    );
    assert_eq!(
        ModelHeader::parse(&l.to_bytes(), Some(0)),
        Err(HeaderError::ZeroSeqLenOverride)
    );
    let eps6 = with(&base_pairs(), HeaderKey::NormEpsilon, Some(6));
    assert_eq!(parse(&eps6).unwrap().norm_epsilon, 1e-6);
}

#[test]
fn defaults_apply_when_keys_are_absent() {
    let mut pairs = base_pairs();
    for k in [
        HeaderKey::Version,
        HeaderKey::HiddenAct,
        HeaderKey::RopeTheta,
        HeaderKey::NormEpsilon,
        HeaderKey::HeadDim,
    ] {
        pairs.retain(|p| p.0 != k.code());
    }
    let h = parse(&encode_pairs(&pairs)).unwrap();
    assert_eq!(h.version, 0);
    assert_eq!(h.rope_theta, 10000.0);
    assert_eq!(h.norm_epsilon, 1e-5);
    assert_eq!(h.head_dim, 16);
    assert_eq!(h.rope_scaling_factor, 1.0);
}

#[test]
fn malformed_headers_give_the_right_error() {
    let base = base_pairs();
    let good = encode_pairs(&base);
    assert!(parse(&good).is_ok());

    let mut b = good.clone();
    b[..4].copy_from_slice(&0xABCD00i32.to_le_bytes());
    assert_eq!(parse(&b), Err(HeaderError::OldFormat(0xABCD00)));
    b[..4].copy_from_slice(&0xABCD01i32.to_le_bytes());
    assert_eq!(parse(&b), Err(HeaderError::OldFormat(0xABCD01)));
    b[..4].copy_from_slice(&0x1234i32.to_le_bytes());
    assert_eq!(parse(&b), Err(HeaderError::BadMagic(0x1234)));

    assert_eq!(
        parse(&good[..5]),
        Err(HeaderError::Truncated { needed: 8, have: 5 })
    );
    assert_eq!(
        parse(&good[..20]),
        Err(HeaderError::Truncated {
            needed: good.len(),
            have: 20
        })
    );

    for size in [-8i32, 0, 7, 12, 8 + 8 * 65] {
        let mut b = good.clone();
        b[4..8].copy_from_slice(&size.to_le_bytes());
        assert_eq!(
            parse(&b),
            Err(HeaderError::BadHeaderSize(size)),
            "size {size}"
        );
    }

    let mut p = base.clone();
    p.push((22, 1));
    assert_eq!(parse(&encode_pairs(&p)), Err(HeaderError::UnknownKey(22)));
    let mut p = base.clone();
    p.push((-1, 1));
    assert_eq!(parse(&encode_pairs(&p)), Err(HeaderError::UnknownKey(-1)));
    let mut p = base.clone();
    p.push((HeaderKey::Dim.code(), 64));
    assert_eq!(
        parse(&encode_pairs(&p)),
        Err(HeaderError::DuplicateKey(HeaderKey::Dim))
    );

    assert_eq!(
        parse(&with(&base, HeaderKey::WeightsFloatType, None)),
        Err(HeaderError::MissingWeightType)
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::WeightsFloatType, Some(-1))),
        Err(HeaderError::MissingWeightType)
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::WeightsFloatType, Some(3))),
        Err(HeaderError::UnsupportedWeightType(3))
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::WeightsFloatType, Some(9))),
        Err(HeaderError::UnsupportedWeightType(9))
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::NormEpsilon, Some(7))),
        Err(HeaderError::BadNormEpsilon(7))
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::ArchType, None)),
        Err(HeaderError::BadArch(0))
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::ArchType, Some(0xABCD03))),
        Err(HeaderError::BadArch(0xABCD03))
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::HiddenAct, Some(2))),
        Err(HeaderError::BadHiddenAct(2))
    );
    assert_eq!(
        parse(&with(&base, HeaderKey::RopeType, Some(3))),
        Err(HeaderError::BadRopeType(3))
    );

    let out_of_range = |key: HeaderKey, v: i32| match parse(&with(&base, key, Some(v))) {
        Err(HeaderError::OutOfRange { key: k, .. }) => assert_eq!(k, key, "{key:?} = {v}"),
        other => panic!("{key:?} = {v}: {other:?}"),
    };
    out_of_range(HeaderKey::NHeads, 0);
    out_of_range(HeaderKey::NKvHeads, 0);
    out_of_range(HeaderKey::Dim, 0);
    out_of_range(HeaderKey::Dim, -64);
    out_of_range(HeaderKey::Dim, i32::MAX);
    out_of_range(HeaderKey::NLayers, 0);
    out_of_range(HeaderKey::NLayers, 1 << 20);
    out_of_range(HeaderKey::VocabSize, 0);
    out_of_range(HeaderKey::MaxSeqLen, 0);
    out_of_range(HeaderKey::RopeTheta, 0);
    out_of_range(HeaderKey::HeadDim, -1);

    let inconsistent = |bytes: Vec<u8>| match parse(&bytes) {
        Err(HeaderError::Inconsistent(_)) => {}
        other => panic!("{other:?}"),
    };
    // Q40 rows must be whole 32-element blocks.
    inconsistent(with(&base, HeaderKey::HiddenDim, Some(136)));
    inconsistent(with(
        &set(&base, HeaderKey::Dim, Some(48)),
        HeaderKey::HeadDim,
        Some(16),
    ));
    // Heads: kv heads must divide heads, head_dim must be a multiple of 8 and dim / heads whole.
    inconsistent(with(&base, HeaderKey::NKvHeads, Some(3)));
    inconsistent(with(&base, HeaderKey::HeadDim, Some(12)));
    inconsistent(with(
        &set(&base, HeaderKey::HeadDim, None),
        HeaderKey::NHeads,
        Some(3),
    ));
    // Experts on a dense architecture, a MoE without an expert width, scaling without limits.
    inconsistent(with(&base, HeaderKey::NExperts, Some(4)));
    inconsistent(with(&base, HeaderKey::RopeScalingFactor, Some(8)));
    let mut moe: Vec<(i32, i32)> = base.clone();
    moe.retain(|p| {
        ![
            HeaderKey::ArchType,
            HeaderKey::NExperts,
            HeaderKey::NActiveExperts,
        ]
        .iter()
        .any(|k| k.code() == p.0)
    });
    moe.extend([
        (HeaderKey::NActiveExperts.code(), 2),
        (HeaderKey::ArchType.code(), 0xABCD02),
        (HeaderKey::NExperts.code(), 2),
        (HeaderKey::MoeHiddenDim.code(), 64),
    ]);
    let moe_active = with(&moe, HeaderKey::NActiveExperts, Some(3));
    inconsistent(moe_active);
    assert!(matches!(
        parse(&with(&moe, HeaderKey::MoeHiddenDim, None)),
        Err(HeaderError::OutOfRange {
            key: HeaderKey::MoeHiddenDim,
            ..
        })
    ));
    assert!(parse(&with(&moe, HeaderKey::NActiveExperts, Some(2))).is_ok());
}

#[test]
fn node_count_rules() {
    let tiny = ModelHeader::from_params(&gen::params(Preset::Tiny, GenArch::Llama, FloatType::Q40))
        .unwrap();
    for n in [1, 2, 4] {
        tiny.validate_for_nodes(n).unwrap();
    }
    for n in [0, 3, 8] {
        assert!(
            matches!(tiny.validate_for_nodes(n), Err(HeaderError::Nodes { n_nodes, .. }) if n_nodes == n)
        );
    }
    // Column slices of Q40 weights must stay whole blocks: q_dim 64 over 4 nodes is 16 columns.
    let mut p = micro(ArchType::Llama, FloatType::Q40);
    p.n_kv_heads = 4;
    let h = ModelHeader::from_params(&p).unwrap();
    h.validate_for_nodes(2).unwrap();
    assert!(h.validate_for_nodes(4).is_err());
    p.weight_type = FloatType::F32;
    ModelHeader::from_params(&p)
        .unwrap()
        .validate_for_nodes(4)
        .unwrap();
}

#[test]
fn tiny_model_has_the_sizes_of_the_spec_example() {
    let h = ModelHeader::from_params(&gen::params(Preset::Tiny, GenArch::Llama, FloatType::Q40))
        .unwrap();
    assert_eq!(h.header_size, 136);
    assert_eq!(h.to_pairs().len(), 16);
    let index = TensorIndex::build(&h).unwrap();
    assert_eq!(index.file_size(), 2_376_840);
    let size = |kind, layer| index.get(TensorId::layer(kind, layer)).unwrap().bytes;
    assert_eq!(
        index
            .get(TensorId::global(TensorKind::Embedding))
            .unwrap()
            .bytes,
        524_288
    );
    for l in 0..4 {
        assert_eq!(size(TensorKind::Q, l), 36_864);
        assert_eq!(size(TensorKind::K, l), 18_432);
        assert_eq!(size(TensorKind::V, l), 18_432);
        assert_eq!(size(TensorKind::Wo, l), 36_864);
        for k in [TensorKind::W1, TensorKind::W2, TensorKind::W3] {
            assert_eq!(size(k, l), 110_592);
        }
        assert_eq!(size(TensorKind::AttnNorm, l), 1024);
        assert_eq!(size(TensorKind::FfnNorm, l), 1024);
    }
    assert_eq!(
        index
            .get(TensorId::global(TensorKind::FinalNorm))
            .unwrap()
            .bytes,
        1024
    );
    assert_eq!(
        index
            .get(TensorId::global(TensorKind::Classifier))
            .unwrap()
            .bytes,
        73_728
    );
    // Entries are back to back, in the file order of spec §1.2.
    let e = index.entries();
    assert_eq!(e[0].offset, 136);
    for w in e.windows(2) {
        assert_eq!(w[0].offset + w[0].bytes, w[1].offset);
    }
    let order: Vec<String> = e[..12].iter().map(|t| t.id.to_string()).collect();
    assert_eq!(
        order,
        [
            "embedding",
            "layers.0.wq",
            "layers.0.wk",
            "layers.0.wv",
            "layers.0.wo",
            "layers.0.w1",
            "layers.0.w2",
            "layers.0.w3",
            "layers.0.attn_norm",
            "layers.0.ffn_norm",
            "layers.1.wq",
            "layers.1.wk"
        ]
    );
    assert_eq!(e[e.len() - 2].id.to_string(), "final_norm");
    assert_eq!(e[e.len() - 1].id.to_string(), "classifier");

    let bytes = model_bytes(&h, 7);
    assert_eq!(bytes.len(), 2_376_840);
    let m = ModelFile::from_bytes(bytes, None).unwrap();
    assert_eq!(m.header(), &h);
}

#[test]
fn qwen3_and_moe_layer_order() {
    let h = ModelHeader::from_params(&micro(ArchType::Qwen3Moe, FloatType::Q40)).unwrap();
    let index = TensorIndex::build(&h).unwrap();
    let names: Vec<String> = index.entries()[1..20]
        .iter()
        .map(|t| t.id.to_string())
        .collect();
    let mut want = vec![
        "layers.0.wq",
        "layers.0.wk",
        "layers.0.wv",
        "layers.0.wo",
        "layers.0.moe_gate",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for e in 0..4 {
        for w in ["w1", "w2", "w3"] {
            want.push(format!("layers.0.experts.{e}.{w}"));
        }
    }
    want.extend(["layers.0.q_norm", "layers.0.k_norm"].map(String::from));
    assert_eq!(names, want);
    let gate = index.get(TensorId::layer(TensorKind::MoeGate, 0)).unwrap();
    assert_eq!(
        (gate.float_type, gate.rows, gate.cols, gate.bytes),
        (FloatType::F32, 4, 64, 4 * 64 * 4)
    );
    let qn = index.get(TensorId::layer(TensorKind::QNorm, 1)).unwrap();
    assert_eq!((qn.rows, qn.cols, qn.bytes), (1, 32, 128));
    let w2 = index.get(TensorId::expert(TensorKind::W2, 1, 3)).unwrap();
    assert_eq!((w2.rows, w2.cols, w2.bytes), (64, 64, 64 * 64 / 32 * 18));
    assert_eq!(
        index.file_size(),
        TensorIndex::expected_file_size(&h).unwrap()
    );
    let bytes = model_bytes(&h, 1);
    assert_eq!(bytes.len() as u64, index.file_size());
}

#[test]
fn file_length_must_match_exactly() {
    let h = ModelHeader::from_params(&micro(ArchType::Llama, FloatType::Q40)).unwrap();
    let bytes = model_bytes(&h, 3);
    let n = bytes.len() as u64;
    ModelFile::from_bytes(bytes.clone(), None).unwrap();
    match ModelFile::from_bytes(bytes[..bytes.len() - 1].to_vec(), None) {
        Err(ModelError::MissingBytes { expected, actual }) => {
            assert_eq!((expected, actual), (n, n - 1))
        }
        other => panic!("{other:?}"),
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 18]);
    match ModelFile::from_bytes(longer, None) {
        Err(ModelError::ExtraBytes { expected, actual }) => {
            assert_eq!((expected, actual), (n, n + 18))
        }
        other => panic!("{other:?}"),
    }
    // A header alone, and a header whose sizes ask for far more than the file holds, fail on
    // the length before any index is built.
    assert!(matches!(
        ModelFile::from_bytes(bytes[..h.header_size].to_vec(), None),
        Err(ModelError::MissingBytes { .. })
    ));
    let mut huge = h
        .to_pairs()
        .into_iter()
        .map(|(k, v)| (k.code(), v))
        .collect::<Vec<_>>();
    for (k, v) in huge.iter_mut() {
        if *k == HeaderKey::NLayers.code() {
            *v = 4096;
        }
        if *k == HeaderKey::VocabSize.code() {
            *v = 1 << 24;
        }
    }
    assert!(matches!(
        parse_layout(&encode_pairs(&huge), 1000, None),
        Err(ModelError::MissingBytes { .. })
    ));
}

#[test]
fn open_maps_the_file_and_serves_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.m");
    let tpath = dir.path().join("m.t");
    let opts = GenOptions {
        preset: Preset::Tiny,
        arch: GenArch::Qwen3,
        weight_type: FloatType::F32,
        seed: 11,
        model_path: path.clone(),
        tokenizer_path: Some(tpath.clone()),
    };
    let mut calls = 0u32;
    let mut last = (0, 0);
    let summary = gen::generate(&opts, &mut |done, total| {
        calls += 1;
        assert!(done >= last.0 && done <= total);
        last = (done, total);
    })
    .unwrap();
    assert!(calls > 2);
    assert_eq!(last.0, last.1);
    assert_eq!(summary.model_bytes, last.1);
    let m = ModelFile::open(&path, Some(100)).unwrap();
    assert_eq!(m.header().seq_len, 100);
    assert_eq!(m.bytes().len() as u64, summary.model_bytes);
    let norm = m.tensor_f32(TensorId::layer(TensorKind::QNorm, 2)).unwrap();
    assert_eq!(norm.len(), m.header().head_dim);
    assert!(norm.iter().all(|&v| (0.9..=1.1).contains(&v)));
    let mut row = vec![0.0; m.header().dim];
    m.embedding_row(5, &mut row).unwrap();
    let emb = m
        .tensor_f32(TensorId::global(TensorKind::Embedding))
        .unwrap();
    assert_eq!(row[..], emb[5 * m.header().dim..6 * m.header().dim]);
    assert!(m.embedding_row(m.header().vocab_size, &mut row).is_err());
    assert!(matches!(
        m.tensor(TensorId::layer(TensorKind::MoeGate, 0)),
        Err(ModelError::NoSuchTensor(_))
    ));
    let tok = airllm_worker::tokenizer::Tokenizer::open(&tpath).unwrap();
    assert_eq!(tok.vocab_size(), m.header().vocab_size);
    assert!(matches!(
        ModelFile::open(dir.path().join("none.m"), None),
        Err(ModelError::Io { .. })
    ));
    std::fs::write(dir.path().join("empty.m"), b"").unwrap();
    assert!(matches!(
        ModelFile::open(dir.path().join("empty.m"), None),
        Err(ModelError::Header(HeaderError::Truncated { .. }))
    ));
}

#[test]
fn generation_is_deterministic_and_weights_are_sane() {
    let h = ModelHeader::from_params(&micro(ArchType::Llama, FloatType::F32)).unwrap();
    let a = model_bytes(&h, 5);
    assert_eq!(a, model_bytes(&h, 5));
    assert_ne!(a, model_bytes(&h, 6));
    let m = ModelFile::from_bytes(a, None).unwrap();
    let wq = m.tensor_f32(TensorId::layer(TensorKind::Q, 0)).unwrap();
    let var = wq.iter().map(|v| v * v).sum::<f32>() / wq.len() as f32;
    // Uniform weights with variance 1/fan_in (fan_in = 64).
    assert!((var * 64.0 - 1.0).abs() < 0.1, "variance {var}");
}

#[test]
fn writer_rejects_wrong_order_length_and_incomplete_models() {
    let h = ModelHeader::from_params(&micro(ArchType::Llama, FloatType::Q40)).unwrap();
    let mut w = ModelWriter::new(Vec::new(), &h).unwrap();
    let emb = vec![0.5f32; 64 * 64];
    assert!(matches!(
        w.write_tensor(TensorId::layer(TensorKind::Q, 0), &emb),
        Err(ModelError::Writer(_))
    ));
    assert!(matches!(w.write(&emb[..10]), Err(ModelError::Writer(_))));
    w.write(&emb[..64 * 10]).unwrap();
    assert_eq!(w.rows_done(), 10);
    assert!(matches!(w.write(&emb), Err(ModelError::Writer(_))));
    w.write(&emb[..64 * 54]).unwrap();
    assert_eq!(w.current().unwrap().id, TensorId::layer(TensorKind::Q, 0));
    assert!(matches!(w.finish(), Err(ModelError::Writer(_))));
}

/// F32 model whose every weight value is its own element index inside the tensor, so slices
/// can be checked by value.
fn indexed_f32_model(p: &HeaderParams) -> ModelFile {
    let h = ModelHeader::from_params(p).unwrap();
    let mut w = ModelWriter::new(Vec::new(), &h).unwrap();
    while let Some(info) = w.current().copied() {
        let data: Vec<f32> = (0..info.rows * info.cols).map(|i| i as f32).collect();
        w.write(&data).unwrap();
    }
    ModelFile::from_bytes(w.finish().unwrap(), None).unwrap()
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn row_and_column_slices_match_a_hand_computation() {
    let mut p = micro(ArchType::Llama, FloatType::F32);
    p.n_kv_heads = 4;
    let m = indexed_f32_model(&p);
    let n = 4;
    for node in 0..n {
        // q is [64 rows, 64 cols]: node k gets rows 16k..16k+16, all 64 columns.
        let q = slice_for_node(&m, TensorId::layer(TensorKind::Q, 1), node, n).unwrap();
        assert_eq!(
            (q.rows, q.cols, q.op_name, q.op_index, q.op_offset),
            (16, 64, "block_matmul_q", 1, 0)
        );
        let want: Vec<f32> = (16 * 64 * node..16 * 64 * (node + 1))
            .map(|i| i as f32)
            .collect();
        assert_eq!(floats(&q.bytes), want);
        // w2 is [64 rows, 128 cols]: node k gets columns 32k..32k+32 of every row.
        let w2 = slice_for_node(&m, TensorId::layer(TensorKind::W2, 0), node, n).unwrap();
        assert_eq!((w2.rows, w2.cols, w2.op_name), (64, 32, "block_matmul_w2"));
        let want: Vec<f32> = (0..64)
            .flat_map(|r| (32 * node..32 * node + 32).map(move |c| (r * 128 + c) as f32))
            .collect();
        assert_eq!(floats(&w2.bytes), want);
        // Norms are whole on every node; the embedding only on the root.
        let norm = slice_for_node(&m, TensorId::layer(TensorKind::FfnNorm, 1), node, n).unwrap();
        assert_eq!(
            floats(&norm.bytes),
            (0..64).map(|i| i as f32).collect::<Vec<_>>()
        );
        let emb = slice_for_node(&m, TensorId::global(TensorKind::Embedding), node, n);
        assert_eq!(emb.is_ok(), node == 0);
    }
    // The slices of all nodes together hold each byte of a tensor exactly once.
    for kind in [TensorKind::Wo, TensorKind::W1, TensorKind::Classifier] {
        let id = if kind == TensorKind::Classifier {
            TensorId::global(kind)
        } else {
            TensorId::layer(kind, 0)
        };
        let total: usize = (0..n)
            .map(|k| slice_for_node(&m, id, k, n).unwrap().bytes.len())
            .sum();
        assert_eq!(total as u64, m.index().get(id).unwrap().bytes);
    }
    assert!(matches!(
        slice_for_node(&m, TensorId::layer(TensorKind::Q, 0), 4, 4),
        Err(ModelError::Slice { .. })
    ));
    assert!(matches!(
        slice_for_node(&m, TensorId::layer(TensorKind::Q, 0), 0, 3),
        Err(ModelError::Header(_))
    ));
}

#[test]
fn q40_and_expert_slices_follow_the_block_layout() {
    let h = ModelHeader::from_params(&micro(ArchType::Qwen3Moe, FloatType::Q40)).unwrap();
    let m = ModelFile::from_bytes(model_bytes(&h, 9), None).unwrap();
    let n = 2;
    for e in 0..4 {
        let id = TensorId::expert(TensorKind::W2, 1, e);
        let full = m.tensor(id).unwrap().to_vec();
        // w2 is [64][64] Q40: 2 blocks (36 bytes) per row; node k takes block k of each row.
        for node in 0..n {
            let s = slice_for_node(&m, id, node, n).unwrap();
            let want: Vec<u8> = (0..64)
                .flat_map(|r| full[r * 36 + node * 18..r * 36 + node * 18 + 18].to_vec())
                .collect();
            assert_eq!(&s.bytes[..], &want[..]);
            assert_eq!(s.op_offset, e as u64 * 64 * 18);
            assert_eq!((s.rows, s.cols), (64, 32));
        }
        let w1 = slice_for_node(&m, TensorId::expert(TensorKind::W1, 1, e), 1, n).unwrap();
        let full = m.tensor(TensorId::expert(TensorKind::W1, 1, e)).unwrap();
        assert_eq!(&w1.bytes[..], &full[32 * 36..64 * 36]);
        assert_eq!(w1.op_offset, e as u64 * 32 * 36);
    }
    let gate = slice_for_node(&m, TensorId::layer(TensorKind::MoeGate, 0), 1, n).unwrap();
    assert_eq!(gate.bytes.len(), 4 * 64 * 4);
    // Every tensor is visited in file order; the worker never sees the embedding.
    let ids: Vec<TensorId> = node_slices(&m, 1, n).map(|s| s.unwrap().id).collect();
    let want: Vec<TensorId> = m.index().entries()[1..].iter().map(|e| e.id).collect();
    assert_eq!(ids, want);
    assert_eq!(node_slices(&m, 0, n).count(), m.index().entries().len());
    let _: &dyn WeightStore = &m;
}

#[test]
fn slice_layout_describes_runs() {
    let h = ModelHeader::from_params(&gen::params(Preset::Tiny, GenArch::Llama, FloatType::Q40))
        .unwrap();
    let index = TensorIndex::build(&h).unwrap();
    let wo = index.get(TensorId::layer(TensorKind::Wo, 0)).unwrap();
    assert_eq!(wo.split(), Split::Cols);
    // Spec §5.4: tiny, 2 nodes: wo 18432 bytes per node, q 18432, k 9216, w2 55296, cls 36864.
    let l = slice_layout(wo, 1, 2).unwrap();
    assert_eq!(
        l,
        SliceLayout {
            start: 72,
            run_bytes: 72,
            stride: 144,
            runs: 256,
            rows: 256,
            cols: 128
        }
    );
    assert_eq!(l.bytes(), 18432);
    let per_node = |id| slice_layout(index.get(id).unwrap(), 1, 2).unwrap().bytes();
    assert_eq!(per_node(TensorId::layer(TensorKind::Q, 0)), 18432);
    assert_eq!(per_node(TensorId::layer(TensorKind::K, 0)), 9216);
    assert_eq!(per_node(TensorId::layer(TensorKind::W2, 0)), 55296);
    assert_eq!(per_node(TensorId::layer(TensorKind::W3, 0)), 55296);
    assert_eq!(per_node(TensorId::global(TensorKind::Classifier)), 36864);
    assert_eq!(per_node(TensorId::global(TensorKind::FinalNorm)), 1024);
}

fn micro_file() -> Vec<u8> {
    let h = ModelHeader::from_params(&micro(ArchType::Qwen3, FloatType::Q40)).unwrap();
    model_bytes(&h, 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ModelFile::from_bytes(bytes.clone(), None);
        let mut with_magic = 0x0A00ABCDi32.to_le_bytes().to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = ModelFile::from_bytes(with_magic, Some(16));
    }

    #[test]
    fn corrupted_or_truncated_models_fail_cleanly(
        cut in 0usize..usize::MAX,
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..6),
        file_len_delta in -100i64..100,
    ) {
        let good = micro_file();
        let mut bytes = good.clone();
        for (at, v) in flips {
            let at = at % 200.min(bytes.len());
            bytes[at] = v;
        }
        let _ = parse_layout(&bytes, (bytes.len() as i64 + file_len_delta).max(0) as u64, None);
        let cut = cut % good.len();
        let r = ModelFile::from_bytes(good[..cut].to_vec(), None);
        prop_assert!(r.is_err());
        if cut >= 8 + 8 * 22 {
            let is_missing = matches!(r, Err(ModelError::MissingBytes { .. }));
            prop_assert!(is_missing);
        }
        if let Ok(m) = ModelFile::from_bytes(bytes, None) {
            // Whatever parsed must describe the file exactly.
            prop_assert_eq!(m.index().file_size(), m.bytes().len() as u64);
        }
    }
}

#[test]
fn rope_scaling_header_values() {
    let mut p = micro(ArchType::Llama, FloatType::F32);
    p.rope_type = RopeType::Llama31;
    p.rope_scaling = Some(RopeScaling {
        factor: 8,
        low_freq_factor: 4,
        high_freq_factor: 4,
        orig_max_seq_len: 8192,
    });
    assert!(matches!(
        ModelHeader::from_params(&p),
        Err(HeaderError::Inconsistent(_))
    ));
    p.rope_scaling = Some(RopeScaling {
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        orig_max_seq_len: 8192,
    });
    let h = ModelHeader::from_params(&p).unwrap();
    assert_eq!(h.rope_type, RopeType::Llama31);
}
