//! The wire codec against hand-written byte layouts from the spec (§5.2, §5.3), round trips
//! of every node config the graph builder makes, and hostile input (random, truncated bytes).

use airllm_worker::float_type::FloatType;
use airllm_worker::graph::{build_llm_net, LlmNet};
use airllm_worker::model::gen::{params, GenArch, Preset};
use airllm_worker::model::ModelHeader;
use airllm_worker::net::codec::{
    net_config_bytes, node_config_bytes, read_net_config, read_node_config, read_weight_header,
    weight_header_bytes, Control, Handshake, Limits, PeerAddr, WeightHeader, ACK,
};
use proptest::prelude::*;

fn tiny(arch: GenArch, weights: FloatType) -> ModelHeader {
    ModelHeader::from_params(&params(Preset::Tiny, arch, weights)).unwrap()
}

fn net(arch: GenArch, n_nodes: u32) -> LlmNet {
    let (w, sync) = (FloatType::Q40, FloatType::Q80);
    build_llm_net(&tiny(arch, w), n_nodes, 32, sync).unwrap()
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// Spec §5.3's verified start of the root → worker stream for the tiny model on 2 nodes.
#[test]
fn root_to_worker_stream_matches_the_spec_dump() {
    let llm = net(GenArch::Llama, 2);
    let mut s = Handshake {
        n_workers: 1,
        worker_index: 0,
        peers: vec![],
    }
    .to_bytes();
    s.extend_from_slice(&le32(ACK)); // "root ready"
    let net_at = s.len();
    s.extend(net_config_bytes(&llm.net));
    let node_at = s.len();
    s.extend(node_config_bytes(&llm.nodes[1]));

    let hex = |h: &str| -> Vec<u8> {
        let h: String = h.split_whitespace().collect();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    assert_eq!(
        s[0x00..0x10],
        hex("0100 0000 0000 0000 aaaa 6701 aaaa 6701")[..]
    );
    assert_eq!(s[0x10..0x1c], hex("2000 0000 0200 0000 0500 0000")[..]);
    assert_eq!(
        s[0x1c..0x2c],
        hex("0000 0000 0100 0000 2000 0000 0100 0000")[..]
    );
    assert_eq!(
        s[0x2c..0x3c],
        hex("2000 0000 0000 0000 8000 0000 0000 0000")[..]
    );
    assert_eq!(s[0x3c..0x44], hex("8000 0000 0000 0000")[..]);
    assert_eq!(s[0x44..0x4c], hex("0400 0000 504f 5300")[..]);
    assert_eq!(net_at, 0x0c);
    assert_eq!(node_at, 0x110);
    assert_eq!(s[0x108..0x110], hex("0100 0000 0000 0000")[..]);
    assert_eq!(
        s[0x110..0x120],
        hex("aaaa 6701 0100 0000 1f00 0000 0a00 0000")[..]
    );
    assert_eq!(
        s[0x120..0x130],
        hex("0000 0000 0100 0000 2000 0000 0001 0000")[..]
    );
    // The ZQ pipe: Q80, x = dim·nNodes = 512, 32 rows → 17408 bytes.
    let zq = &llm.net.pipes[4];
    assert_eq!(
        (zq.name.as_str(), zq.size.float_type()),
        ("ZQ", FloatType::Q80)
    );
    assert_eq!((zq.size.x(), zq.size.n_bytes()), (512, 17408));
}

/// Spec §5.2's verified handshake for 4 nodes, worker 0.
#[test]
fn handshake_matches_the_spec_capture() {
    let h = Handshake {
        n_workers: 3,
        worker_index: 0,
        peers: vec![
            PeerAddr {
                host: "127.0.0.1".into(),
                port: 9402,
            },
            PeerAddr {
                host: "127.0.0.1".into(),
                port: 9403,
            },
        ],
    };
    let mut want = Vec::new();
    for w in [3u32, 0, 10] {
        want.extend(le32(w));
    }
    want.extend(b"127.0.0.1\0");
    want.extend(le32(9402));
    want.extend(le32(10));
    want.extend(b"127.0.0.1\0");
    want.extend(le32(9403));
    assert_eq!(h.to_bytes(), want);
    assert_eq!(
        Handshake::read(&mut &want[..], &Limits::default()).unwrap(),
        h
    );
}

#[test]
fn every_node_config_round_trips() {
    let limits = Limits::default();
    for arch in [
        GenArch::Llama,
        GenArch::Llama31,
        GenArch::Qwen3,
        GenArch::Qwen3Moe,
    ] {
        for (w, sync) in [
            (FloatType::Q40, FloatType::Q80),
            (FloatType::F32, FloatType::F32),
        ] {
            for n in [1, 2, 4] {
                let llm = build_llm_net(&tiny(arch, w), n, 32, sync).unwrap();
                let nb = net_config_bytes(&llm.net);
                let net = read_net_config(&mut &nb[..], &limits).unwrap();
                assert_eq!(net, llm.net);
                for node in &llm.nodes {
                    let b = node_config_bytes(node);
                    let mut r = &b[..];
                    let got = read_node_config(&mut r, &net, &limits).unwrap();
                    assert!(
                        r.is_empty(),
                        "{arch} node {}: bytes left over",
                        node.node_index
                    );
                    assert_eq!(&got, node, "{arch} {w} node {} of {n}", node.node_index);
                }
            }
        }
    }
}

#[test]
fn weight_messages_and_control_packets_round_trip() {
    let h = WeightHeader {
        op_name: "block_matmul_q".into(),
        op_index: 3,
        offset: 36864,
        n_bytes: 18432,
    };
    let b = weight_header_bytes(&h);
    assert_eq!(b.len(), 4 + 15 + 4 + 8 + 8);
    assert_eq!(
        read_weight_header(&mut &b[..], &Limits::default()).unwrap(),
        Some(h)
    );
    assert_eq!(
        read_weight_header(&mut &[0u8; 4][..], &Limits::default()).unwrap(),
        None
    );
    let llm = net(GenArch::Llama, 2);
    let c = Control {
        position: 7,
        batch_size: 4,
    };
    assert_eq!(Control::read(&mut &c.to_bytes()[..], &llm.net).unwrap(), c);
    let too_big = Control {
        position: 0,
        batch_size: 33,
    };
    assert!(Control::read(&mut &too_big.to_bytes()[..], &llm.net).is_err());
}

#[test]
fn hostile_counts_are_refused_before_allocation() {
    let limits = Limits::default();
    // nPipes = 4 billion.
    let mut b = Vec::new();
    for w in [ACK, 32, 2, u32::MAX] {
        b.extend(le32(w));
    }
    let e = read_net_config(&mut &b[..], &limits).unwrap_err();
    assert!(e.to_string().contains("nPipes"), "{e}");
    // A string that claims 4 GB.
    let mut b = le32(2).to_vec();
    b.extend(le32(1));
    b.extend(le32(u32::MAX));
    assert!(Handshake::read(&mut &b[..], &limits).is_err());
    // A bad ACK.
    let e = read_net_config(&mut &le32(7)[..], &limits).unwrap_err();
    assert!(e.to_string().contains("ack"), "{e}");
    // An op index pointing past the buffers, and an op config of the wrong size.
    let llm = net(GenArch::Llama, 2);
    let good = node_config_bytes(&llm.nodes[1]);
    let mut bad = good.clone();
    // nBuffers 31 → 3: every later buffer pointer is out of range (and the buffer list shifts).
    bad[8] = 3;
    assert!(read_node_config(&mut &bad[..], &llm.net, &limits).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random bytes never panic any reader.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let limits = Limits::default();
        let llm = net(GenArch::Llama, 2);
        let _ = Handshake::read(&mut &bytes[..], &limits);
        let _ = read_net_config(&mut &bytes[..], &limits);
        let _ = read_node_config(&mut &bytes[..], &llm.net, &limits);
        let _ = read_weight_header(&mut &bytes[..], &limits);
        let _ = Control::read(&mut &bytes[..], &llm.net);
        // Random bytes behind a valid prefix reach deeper parsers.
        let mut prefixed = node_config_bytes(&llm.nodes[1])[..40].to_vec();
        prefixed.extend(&bytes);
        let _ = read_node_config(&mut &prefixed[..], &llm.net, &limits);
    }

    /// Every truncation of a valid config is an error, never a panic or a wrong success.
    #[test]
    fn truncated_configs_are_errors(cut in 0usize..1_000_000, flip in any::<(usize, u8)>()) {
        let limits = Limits::default();
        let llm = net(GenArch::Qwen3Moe, 2);
        let nb = net_config_bytes(&llm.net);
        let b = node_config_bytes(&llm.nodes[1]);
        let cut_b = cut % b.len();
        prop_assert!(read_node_config(&mut &b[..cut_b], &llm.net, &limits).is_err());
        prop_assert!(read_net_config(&mut &nb[..cut % nb.len()], &limits).is_err());
        // One flipped byte: either an error or a config that still parses (e.g. a changed float).
        let mut f = b.clone();
        let i = flip.0 % f.len();
        f[i] ^= flip.1 | 1;
        let _ = read_node_config(&mut &f[..], &llm.net, &limits);
    }
}
