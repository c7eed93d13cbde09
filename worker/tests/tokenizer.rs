//! `.t` reading and writing, BPE encoding, streaming decoding and the generated vocabulary.

use airllm_worker::tokenizer::{
    Tokenizer, TokenizerError, LEGACY_TOKENIZER_MAGIC, TOKENIZER_MAGIC,
};
use proptest::prelude::*;
use std::sync::OnceLock;

/// The generated 300- and 400-token vocabularies, built once for the property tests.
fn generated(n: usize) -> &'static Tokenizer {
    static T300: OnceLock<Tokenizer> = OnceLock::new();
    static T400: OnceLock<Tokenizer> = OnceLock::new();
    let cell = if n == 300 { &T300 } else { &T400 };
    cell.get_or_init(|| Tokenizer::byte_level_bpe(n).unwrap())
}

fn toks(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Regular tokens `regular` with `scores`, then `<s>` (BOS) and `</s>` (EOS).
fn small(regular: &[&str], scores: &[f32]) -> Tokenizer {
    let mut vocab = toks(regular);
    vocab.extend(toks(&["<s>", "</s>"]));
    let mut s = scores.to_vec();
    s.extend([0.0, 0.0]);
    let bos = regular.len() as u32;
    Tokenizer::new(vocab, s, bos, vec![bos + 1], true, None).unwrap()
}

fn header(pairs: &[(i32, i32)]) -> Vec<u8> {
    let mut out = TOKENIZER_MAGIC.to_le_bytes().to_vec();
    out.extend_from_slice(&(8 + 8 * pairs.len() as i32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn entry(out: &mut Vec<u8>, score: f32, t: &[u8]) {
    out.extend_from_slice(&score.to_le_bytes());
    out.extend_from_slice(&(t.len() as i32).to_le_bytes());
    out.extend_from_slice(t);
}

#[test]
fn merges_pick_the_highest_score_then_the_leftmost_pair() {
    let t = small(
        &["a", "b", "c", "ab", "bc", "abc"],
        &[0.0, 0.0, 0.0, 1.0, 2.0, 3.0],
    );
    // a b c -> (bc scores 2 > ab 1) a bc -> abc.
    assert_eq!(t.encode(b"abc", false, false).unwrap(), vec![5]);
    assert_eq!(t.encode(b"ab", false, false).unwrap(), vec![3]);

    let tie = small(&["a", "b", "ab", "ba"], &[0.0, 0.0, 1.0, 1.0]);
    assert_eq!(tie.encode(b"aba", false, false).unwrap(), vec![2, 0]);
    let ba_wins = small(&["a", "b", "ab", "ba"], &[0.0, 0.0, 1.0, 1.5]);
    assert_eq!(ba_wins.encode(b"aba", false, false).unwrap(), vec![0, 3]);
    // A merge scoring -1e10 or less never happens (the peer's starting best score).
    let never = small(&["a", "b", "ab"], &[0.0, 0.0, -1e10]);
    assert_eq!(never.encode(b"ab", false, false).unwrap(), vec![0, 1]);
}

#[test]
fn bos_specials_and_multibyte_accumulation() {
    let t = small(&["h", "i", "\u{20ac}", "<"], &[0.0; 4]);
    let (bos, eos) = (t.bos_id(), t.eos_ids()[0]);
    assert_eq!(t.encode(b"hi", true, false).unwrap(), vec![bos, 0, 1]);
    assert_eq!(t.encode(b"hi", false, false).unwrap(), vec![0, 1]);
    // Special tokens only when asked for; otherwise their bytes must be regular tokens.
    assert_eq!(t.encode(b"h</s>i", false, true).unwrap(), vec![0, eos, 1]);
    assert!(matches!(
        t.encode(b"h</s>i", false, false),
        Err(TokenizerError::Unencodable { offset: 2 })
    ));
    // The euro sign has no single-byte tokens: its three bytes accumulate into one token.
    assert_eq!(
        t.encode("h\u{20ac}".as_bytes(), false, false).unwrap(),
        vec![0, 2]
    );
    assert!(matches!(
        t.encode(b"hx", false, false),
        Err(TokenizerError::Unencodable { offset: 1 })
    ));

    // Among specials the lowest id that matches wins, not the longest.
    let mut vocab = toks(&["x", "y", "<s>", "<x", "<xy"]);
    vocab.push(b"</s>".to_vec());
    let s = Tokenizer::new(vocab, vec![0.0; 6], 2, vec![5], false, None).unwrap();
    assert_eq!(s.encode(b"<xy", true, true).unwrap(), vec![3, 1]);
}

#[test]
fn decoder_emits_only_complete_utf8() {
    let t = small(&["a"], &[0.0]);
    let mut vocab = vec![b"a".to_vec(), vec![0xE2], vec![0x82, 0xAC], vec![0xFF]];
    vocab.extend(toks(&["<s>", "</s>"]));
    let t2 = Tokenizer::new(vocab, vec![0.0; 6], 4, vec![5], true, None).unwrap();
    let mut d = t2.decoder();
    assert_eq!(d.push(4).unwrap(), None);
    assert_eq!(d.push(0).unwrap().as_deref(), Some("a"));
    assert_eq!(d.push(1).unwrap(), None);
    assert_eq!(d.push(2).unwrap().as_deref(), Some("\u{20ac}"));
    assert_eq!(d.push(3).unwrap().as_deref(), Some("\u{fffd}"));
    assert_eq!(d.push(1).unwrap(), None);
    assert_eq!(d.push(0).unwrap().as_deref(), Some("\u{fffd}a"));
    assert_eq!(d.push(1).unwrap(), None);
    assert_eq!(d.push(5).unwrap().as_deref(), Some("\u{fffd}"));
    assert_eq!(d.push(5).unwrap(), None);
    assert!(matches!(d.push(6), Err(TokenizerError::BadToken(6))));
    assert_eq!(t.decode_all(&[0, 0]).unwrap(), "aa");
}

#[test]
fn generated_vocabulary_round_trips_text() {
    let t = Tokenizer::byte_level_bpe(512).unwrap();
    assert_eq!(t.vocab_size(), 512);
    assert_eq!(t.bos_id(), 510);
    assert_eq!(t.eos_ids(), &[511]);
    assert_eq!(
        t.to_bytes(),
        Tokenizer::byte_level_bpe(512).unwrap().to_bytes()
    );
    for text in [
        "The baker made bread in the town by the river.",
        "h\u{e9}llo w\u{f6}rld \u{2014} \u{65e5}\u{672c}\u{8a9e} \u{1f35e}",
        "zzz qqq 12345 !!",
        "",
    ] {
        let ids = t.encode(text.as_bytes(), true, true).unwrap();
        assert_eq!(ids.first(), Some(&510));
        assert_eq!(t.decode_all(&ids).unwrap(), text);
    }
    // Learnt merges compress English.
    let plain = "the baker and the traveller";
    assert!(t.encode(plain.as_bytes(), false, false).unwrap().len() < plain.len() / 2);

    let big = Tokenizer::byte_level_bpe(32000).unwrap();
    assert_eq!(big.vocab_size(), 32000);
    let back = Tokenizer::from_bytes(&big.to_bytes()).unwrap();
    assert_eq!(back.to_bytes(), big.to_bytes());
    assert!(big.max_token_length() <= 32);
    assert!(matches!(
        Tokenizer::byte_level_bpe(100),
        Err(TokenizerError::OutOfRange { .. })
    ));
}

#[test]
fn file_round_trip_keeps_everything() {
    let mut vocab = toks(&["a", "b", "ab", "<s>", "</s>", "<eot>"]);
    vocab[2] = b"ab".to_vec();
    let t = Tokenizer::new(
        vocab,
        vec![0.5, -1.0, 2.0, 0.0, 0.0, 0.0],
        3,
        vec![4, 5],
        false,
        Some(b"{{x}}".to_vec()),
    )
    .unwrap();
    let bytes = t.to_bytes();
    let back = Tokenizer::from_bytes(&bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.eos_ids(), &[4, 5]);
    assert_eq!(back.chat_template(), Some(&b"{{x}}"[..]));
    assert!(!back.add_bos());
    assert_eq!(back.score(2), Some(2.0));
    assert_eq!(back.max_token_length(), 5);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.t"), &bytes).unwrap();
    assert_eq!(
        Tokenizer::open(dir.path().join("t.t")).unwrap().to_bytes(),
        bytes
    );
    assert!(matches!(
        Tokenizer::open(dir.path().join("none.t")),
        Err(TokenizerError::Io { .. })
    ));
}

#[test]
fn legacy_format_and_chat_stop_bytes() {
    let mut legacy = LEGACY_TOKENIZER_MAGIC.to_le_bytes().to_vec();
    for v in [3i32, 4, 1, 2, 0] {
        legacy.extend_from_slice(&v.to_le_bytes());
    }
    for t in ["a", "<s>", "</s>"] {
        entry(&mut legacy, 0.0, t.as_bytes());
    }
    let t = Tokenizer::from_bytes(&legacy).unwrap();
    assert_eq!(
        (t.vocab_size(), t.bos_id(), t.eos_ids()),
        (3, 1, &[2u32][..])
    );
    assert!(t.add_bos());

    // Key 8's bytes come first and are skipped; legacy EOS keys 4 and 6 add to the list.
    let mut b = header(&[
        (0, 1),
        (1, 3),
        (2, 4),
        (3, 1),
        (4, 2),
        (6, 2),
        (8, 3),
        (7, 2),
        (9, 1),
        (10, 1),
    ]);
    b.extend_from_slice(b"xyz");
    b.extend_from_slice(b"TT");
    b.extend_from_slice(&2i32.to_le_bytes());
    for t in ["a", "<s>", "</s>"] {
        entry(&mut b, 0.0, t.as_bytes());
    }
    let t = Tokenizer::from_bytes(&b).unwrap();
    assert_eq!(t.eos_ids(), &[2, 2, 2]);
    assert_eq!(t.chat_template(), Some(&b"TT"[..]));
}

#[test]
fn malformed_files_give_the_right_error() {
    let good = Tokenizer::byte_level_bpe(300).unwrap().to_bytes();
    Tokenizer::from_bytes(&good).unwrap();
    let vocab3 = |pairs: &[(i32, i32)]| {
        let mut b = header(pairs);
        for t in ["a", "<s>", "</s>"] {
            entry(&mut b, 0.0, t.as_bytes());
        }
        b
    };
    let base = [(0, 1), (1, 3), (2, 4), (3, 1), (9, 0), (10, 1)];
    Tokenizer::from_bytes(&vocab3(&base)).unwrap();

    let mut bad = good.clone();
    bad[..4].copy_from_slice(&0x567125i32.to_le_bytes());
    assert!(matches!(
        Tokenizer::from_bytes(&bad),
        Err(TokenizerError::BadMagic(0x567125))
    ));
    assert!(matches!(
        Tokenizer::from_bytes(&good[..3]),
        Err(TokenizerError::Truncated { .. })
    ));
    assert!(matches!(
        Tokenizer::from_bytes(&vocab3(&[(0, 2), (1, 3), (2, 4), (3, 1)])),
        Err(TokenizerError::OldVersion(2))
    ));
    assert!(matches!(
        Tokenizer::from_bytes(&vocab3(&[(1, 3), (2, 4), (3, 1)])),
        Err(TokenizerError::OldVersion(-1))
    ));
    let mut with_unknown = base.to_vec();
    with_unknown.push((11, 0));
    assert!(matches!(
        Tokenizer::from_bytes(&vocab3(&with_unknown)),
        Err(TokenizerError::UnknownKey(11))
    ));
    let mut dup = base.to_vec();
    dup.push((1, 3));
    assert!(matches!(
        Tokenizer::from_bytes(&vocab3(&dup)),
        Err(TokenizerError::DuplicateKey(1))
    ));
    let out_of_range =
        |pairs: &[(i32, i32)], what: &str| match Tokenizer::from_bytes(&vocab3(pairs)) {
            Err(TokenizerError::OutOfRange { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        };
    out_of_range(&[(0, 1), (1, 3), (2, 0), (3, 1)], "max_token_length");
    out_of_range(&[(0, 1), (1, 3), (2, 4), (3, 3)], "bos_id");
    out_of_range(&[(0, 1), (1, 3), (2, 4), (3, 0)], "bos_id");
    out_of_range(&[(0, 1), (1, 3), (2, 4)], "bos_id");
    out_of_range(&[(0, 1), (1, 3), (2, 4), (3, 1), (4, 7)], "eos_id");
    out_of_range(&[(0, 1), (1, -3), (2, 4), (3, 1)], "vocab_size");
    // Token longer than the header's maximum.
    assert!(matches!(
        Tokenizer::from_bytes(&vocab3(&[(0, 1), (1, 3), (2, 3), (3, 1)])),
        Err(TokenizerError::TokenTooLong {
            id: 2,
            len: 4,
            max: 3
        })
    ));
    // A vocabulary count far beyond the bytes present fails before allocating.
    let mut huge = header(&[(0, 1), (1, 1 << 24), (2, 4), (3, 1)]);
    entry(&mut huge, 0.0, b"a");
    assert!(matches!(
        Tokenizer::from_bytes(&huge),
        Err(TokenizerError::Truncated { what: "vocabulary" })
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        Tokenizer::from_bytes(&trailing),
        Err(TokenizerError::TrailingBytes(1))
    ));
    let mut bad_size = good.clone();
    bad_size[4..8].copy_from_slice(&12i32.to_le_bytes());
    assert!(matches!(
        Tokenizer::from_bytes(&bad_size),
        Err(TokenizerError::BadHeaderSize(12))
    ));
    for cut in 0..good.len() {
        assert!(Tokenizer::from_bytes(&good[..cut]).is_err(), "cut {cut}");
    }
}

proptest! {
    #[test]
    fn corrupted_files_never_panic(
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8),
        cut in 0usize..8192,
    ) {
        let mut bytes = generated(300).to_bytes();
        for (at, v) in flips {
            let at = at % bytes.len();
            bytes[at] = v;
        }
        bytes.truncate(cut.max(4) % (bytes.len() + 1));
        if let Ok(t) = Tokenizer::from_bytes(&bytes) {
            let _ = t.encode(b"some text", true, true);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Tokenizer::from_bytes(&bytes);
        let mut b = TOKENIZER_MAGIC.to_le_bytes().to_vec();
        b.extend_from_slice(&bytes);
        let _ = Tokenizer::from_bytes(&b);
    }

    #[test]
    fn encode_decode_round_trip(text in "\\PC{0,40}") {
        let t = generated(400);
        let ids = t.encode(text.as_bytes(), false, false).unwrap();
        prop_assert_eq!(t.decode_all(&ids).unwrap(), text);
    }
}
