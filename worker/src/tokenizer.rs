//! The peer's `.t` tokenizer (spec §2): reading (current and legacy formats), writing, BPE
//! encoding, streaming UTF-8 decoding, and a deterministic byte-level BPE vocabulary for
//! generated models.
//!
//! Ids `[0, bos_id)` are the regular vocabulary, `[bos_id, vocab)` the special one (the peer's
//! assumption). Encoding matches the peer: optional BOS; special tokens matched first at each
//! byte (lowest id wins); otherwise bytes accumulate until they spell a regular token; then
//! greedy merging of the adjacent pair whose concatenation is the regular token with the
//! highest score, leftmost on ties. The peer's habit of feeding a stale token after the prompt
//! belongs to its CLI, not here.

use crate::model::gen::SplitMix64;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use thiserror::Error;

/// Magic of the current format (key/value header).
pub const TOKENIZER_MAGIC: i32 = 0x0056_7124;
/// Magic of the legacy fixed-struct format.
pub const LEGACY_TOKENIZER_MAGIC: i32 = 0x0056_7123;
/// Most header pairs accepted.
pub const MAX_TOKENIZER_PAIRS: usize = 64;
/// Largest vocabulary accepted.
pub const MAX_VOCAB: usize = 1 << 24;
/// Longest token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 1 << 16;
/// Most EOS ids accepted.
pub const MAX_EOS_IDS: usize = 1024;

/// Why a tokenizer file was rejected, or a text could not be encoded.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data ends inside `what`.
    #[error("truncated tokenizer file: cannot read {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// Neither magic.
    #[error("invalid tokenizer file: bad magic {0:#x}")]
    BadMagic(i32),
    /// `headerSize` is not `8 + 8·nPairs` with at most 64 pairs.
    #[error("bad tokenizer header size {0}")]
    BadHeaderSize(i32),
    /// A key outside 0..=10.
    #[error("invalid tokenizer header key {0}")]
    UnknownKey(i32),
    /// A non-repeatable key given twice.
    #[error("duplicate tokenizer header key {0}")]
    DuplicateKey(i32),
    /// Version missing or not 1.
    #[error("old tokenizer version {0}, please regenerate your tokenizer")]
    OldVersion(i32),
    /// A header value out of range.
    #[error("tokenizer value {what} = {value} is out of range ({why})")]
    OutOfRange {
        /// The field.
        what: &'static str,
        /// Its value.
        value: i64,
        /// The rule.
        why: &'static str,
    },
    /// A token longer than `max_token_length`.
    #[error("token {id} has {len} bytes, more than max_token_length {max}")]
    TokenTooLong {
        /// Token id.
        id: usize,
        /// Its length.
        len: usize,
        /// The header's maximum.
        max: usize,
    },
    /// Bytes after the last token.
    #[error("{0} unexpected bytes after the vocabulary")]
    TrailingBytes(usize),
    /// Text bytes that no regular token spells.
    #[error("cannot encode the text from byte {offset}: no token matches")]
    Unencodable {
        /// Offset of the first byte of the unmatched run.
        offset: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
}

/// A loaded tokenizer.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: Vec<Vec<u8>>,
    scores: Vec<f32>,
    bos_id: u32,
    eos_ids: Vec<u32>,
    add_bos: bool,
    max_token_length: usize,
    chat_template: Option<Vec<u8>>,
    regular: HashMap<Vec<u8>, u32>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TokenizerError> {
        if self.bytes.len() - self.pos < n {
            return Err(TokenizerError::Truncated { what });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, TokenizerError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

fn count(what: &'static str, value: i32, lo: usize, hi: usize) -> Result<usize, TokenizerError> {
    let v = usize::try_from(value).map_err(|_| TokenizerError::OutOfRange {
        what,
        value: value.into(),
        why: "negative",
    })?;
    if v < lo || v > hi {
        return Err(TokenizerError::OutOfRange {
            what,
            value: value.into(),
            why: if v < lo {
                "too small"
            } else {
                "above the supported limit"
            },
        });
    }
    Ok(v)
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl Tokenizer {
    /// Builds a tokenizer from its parts and validates it: at least one regular token, `bos_id`
    /// and every EOS id inside the vocabulary, tokens at most [`MAX_TOKEN_BYTES`] long.
    /// `max_token_length` becomes the longest token (at least 1).
    pub fn new(
        vocab: Vec<Vec<u8>>,
        scores: Vec<f32>,
        bos_id: u32,
        eos_ids: Vec<u32>,
        add_bos: bool,
        chat_template: Option<Vec<u8>>,
    ) -> Result<Tokenizer, TokenizerError> {
        let max = vocab.iter().map(Vec::len).max().unwrap_or(0).max(1);
        if vocab.len() != scores.len() {
            return Err(TokenizerError::OutOfRange {
                what: "scores",
                value: scores.len() as i64,
                why: "must match the vocabulary size",
            });
        }
        Self::build(
            vocab,
            scores,
            bos_id as i64,
            eos_ids.iter().map(|&e| e as i64).collect(),
            add_bos,
            max,
            chat_template,
        )
    }

    fn build(
        vocab: Vec<Vec<u8>>,
        scores: Vec<f32>,
        bos_id: i64,
        eos_ids: Vec<i64>,
        add_bos: bool,
        max_token_length: usize,
        chat_template: Option<Vec<u8>>,
    ) -> Result<Tokenizer, TokenizerError> {
        let n = vocab.len();
        if n == 0 || n > MAX_VOCAB {
            return Err(TokenizerError::OutOfRange {
                what: "vocab_size",
                value: n as i64,
                why: "must be 1..=2^24",
            });
        }
        if max_token_length == 0 || max_token_length > MAX_TOKEN_BYTES {
            return Err(TokenizerError::OutOfRange {
                what: "max_token_length",
                value: max_token_length as i64,
                why: "must be 1..=65536",
            });
        }
        // bos_id is where the special vocabulary starts, so it must leave at least one regular
        // token and name a real token.
        if bos_id < 1 || bos_id >= n as i64 {
            return Err(TokenizerError::OutOfRange {
                what: "bos_id",
                value: bos_id,
                why: "must be in 1..vocab_size",
            });
        }
        let mut eos = Vec::with_capacity(eos_ids.len());
        for e in eos_ids {
            if e < 0 || e >= n as i64 {
                return Err(TokenizerError::OutOfRange {
                    what: "eos_id",
                    value: e,
                    why: "must be inside the vocabulary",
                });
            }
            eos.push(e as u32);
        }
        for (id, t) in vocab.iter().enumerate() {
            if t.len() > max_token_length {
                return Err(TokenizerError::TokenTooLong {
                    id,
                    len: t.len(),
                    max: max_token_length,
                });
            }
        }
        let bos = bos_id as u32;
        let mut regular = HashMap::with_capacity(bos as usize);
        for (id, t) in vocab[..bos as usize].iter().enumerate() {
            // The peer compares C strings, so a token with a NUL byte can never match.
            if !t.is_empty() && !t.contains(&0) {
                regular.entry(t.clone()).or_insert(id as u32);
            }
        }
        Ok(Tokenizer {
            vocab,
            scores,
            bos_id: bos,
            eos_ids: eos,
            add_bos,
            max_token_length,
            chat_template,
            regular,
        })
    }

    /// Reads a `.t` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Tokenizer, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Tokenizer::from_bytes(&bytes)
    }

    /// Parses a `.t` file's bytes (either format). Every count is checked against the bytes
    /// left before anything is allocated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tokenizer, TokenizerError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.i32("magic")?;
        let (vocab_size, max_len, bos, mut eos, add_bos, template);
        if magic == LEGACY_TOKENIZER_MAGIC {
            vocab_size = r.i32("vocab size")?;
            max_len = r.i32("max token length")?;
            bos = r.i32("bos id")?;
            eos = vec![r.i32("eos id")? as i64];
            r.i32("pad id")?;
            // The legacy header has no add_bos flag; the llama 2 tokenizers it comes from use BOS.
            add_bos = true;
            template = None;
        } else if magic == TOKENIZER_MAGIC {
            let raw = r.i32("header size")?;
            let size = usize::try_from(raw).map_err(|_| TokenizerError::BadHeaderSize(raw))?;
            if size < 8 || !(size - 8).is_multiple_of(8) || (size - 8) / 8 > MAX_TOKENIZER_PAIRS {
                return Err(TokenizerError::BadHeaderSize(raw));
            }
            let mut seen = [false; 11];
            let (mut version, mut vs, mut ml, mut b) = (None, None, None, None);
            let (mut template_len, mut stop_len, mut n_eos, mut ab) =
                (0usize, 0usize, 0usize, None);
            eos = Vec::new();
            for _ in 0..(size - 8) / 8 {
                let key = r.i32("header pair")?;
                let value = r.i32("header pair")?;
                let k = usize::try_from(key)
                    .ok()
                    .filter(|&k| k <= 10)
                    .ok_or(TokenizerError::UnknownKey(key))?;
                // EOS ids (keys 4 and 6) accumulate; the others are single-valued.
                if seen[k] && k != 4 && k != 6 && k != 5 {
                    return Err(TokenizerError::DuplicateKey(key));
                }
                seen[k] = true;
                match k {
                    0 => version = Some(value),
                    1 => vs = Some(value),
                    2 => ml = Some(value),
                    3 => b = Some(value),
                    4 | 6 => eos.push(value as i64),
                    5 => {}
                    7 => template_len = count("chat template length", value, 0, usize::MAX)?,
                    8 => stop_len = count("chat stop length", value, 0, usize::MAX)?,
                    9 => n_eos = count("n_eos_tokens", value, 0, MAX_EOS_IDS)?,
                    _ => ab = Some(value),
                }
            }
            if version != Some(1) {
                return Err(TokenizerError::OldVersion(version.unwrap_or(-1)));
            }
            vocab_size = vs.ok_or(TokenizerError::OutOfRange {
                what: "vocab_size",
                value: -1,
                why: "missing",
            })?;
            max_len = ml.unwrap_or(0);
            bos = b.ok_or(TokenizerError::OutOfRange {
                what: "bos_id",
                value: -1,
                why: "missing",
            })?;
            // The peer leaves add_bos uninitialised when the key is absent; a missing key is
            // read as "no BOS" here.
            add_bos = ab == Some(1);
            r.take(stop_len, "chat stop")?;
            template = if template_len > 0 {
                Some(r.take(template_len, "chat template")?.to_vec())
            } else {
                None
            };
            if n_eos * 4 > r.remaining() {
                return Err(TokenizerError::Truncated {
                    what: "eos token ids",
                });
            }
            for _ in 0..n_eos {
                eos.push(r.i32("eos token id")? as i64);
            }
        } else {
            return Err(TokenizerError::BadMagic(magic));
        }
        let n = count("vocab_size", vocab_size, 1, MAX_VOCAB)?;
        let max_len = count("max_token_length", max_len, 1, MAX_TOKEN_BYTES)?;
        // Each entry has at least a score and a length.
        if n > r.remaining() / 8 {
            return Err(TokenizerError::Truncated { what: "vocabulary" });
        }
        let mut vocab = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        for id in 0..n {
            let score = f32::from_bits(r.i32("token score")? as u32);
            let len = r.i32("token length")?;
            let len = count("token length", len, 0, MAX_TOKEN_BYTES)?;
            if len > max_len {
                return Err(TokenizerError::TokenTooLong {
                    id,
                    len,
                    max: max_len,
                });
            }
            vocab.push(r.take(len, "token bytes")?.to_vec());
            scores.push(score);
        }
        if r.remaining() != 0 {
            return Err(TokenizerError::TrailingBytes(r.remaining()));
        }
        Tokenizer::build(vocab, scores, bos as i64, eos, add_bos, max_len, template)
    }

    /// The current-format bytes: keys version, vocab_size, max_token_length, bos_id,
    /// chat_template (if any), n_eos_tokens, add_bos; then the template, the EOS ids and the
    /// vocabulary.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut pairs = vec![
            (0, 1),
            (1, self.vocab.len() as i32),
            (2, self.max_token_length as i32),
            (3, self.bos_id as i32),
        ];
        if let Some(t) = &self.chat_template {
            pairs.push((7, t.len() as i32));
        }
        pairs.push((9, self.eos_ids.len() as i32));
        pairs.push((10, i32::from(self.add_bos)));
        let mut out = Vec::new();
        put_i32(&mut out, TOKENIZER_MAGIC);
        put_i32(&mut out, 8 + 8 * pairs.len() as i32);
        for (k, v) in pairs {
            put_i32(&mut out, k);
            put_i32(&mut out, v);
        }
        if let Some(t) = &self.chat_template {
            out.extend_from_slice(t);
        }
        for &e in &self.eos_ids {
            put_i32(&mut out, e as i32);
        }
        for (t, s) in self.vocab.iter().zip(&self.scores) {
            out.extend_from_slice(&s.to_le_bytes());
            put_i32(&mut out, t.len() as i32);
            out.extend_from_slice(t);
        }
        out
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Bytes of token `id`.
    pub fn token(&self, id: u32) -> Option<&[u8]> {
        self.vocab.get(id as usize).map(Vec::as_slice)
    }

    /// Score of token `id`.
    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    /// BOS id; also the first special id.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// EOS ids, in file order.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Whether `id` ends generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// Whether encoding a start of text adds BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Longest token in bytes, as the header says.
    pub fn max_token_length(&self) -> usize {
        self.max_token_length
    }

    /// The chat template text, if the file has one.
    pub fn chat_template(&self) -> Option<&[u8]> {
        self.chat_template.as_deref()
    }

    /// Encodes `text`. BOS comes first when `is_start` and the file's add_bos flag are both
    /// set; special tokens are recognised only when `add_special`. Fails if some bytes spell no
    /// regular token (the peer aborts there).
    pub fn encode(
        &self,
        text: &[u8],
        is_start: bool,
        add_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut tokens = Vec::with_capacity(text.len() + 1);
        if is_start && self.add_bos {
            tokens.push(self.bos_id);
        }
        let mut pending_start = 0;
        let mut pending: Vec<u8> = Vec::with_capacity(self.max_token_length);
        let mut i = 0;
        while i < text.len() {
            if add_special {
                if let Some(id) = self.special_at(&text[i..]) {
                    tokens.push(id);
                    i += self.vocab[id as usize].len();
                    continue;
                }
            }
            if pending.is_empty() {
                pending_start = i;
            }
            pending.push(text[i]);
            if let Some(&id) = self.regular.get(pending.as_slice()) {
                tokens.push(id);
                pending.clear();
            } else if pending.len() >= self.max_token_length {
                return Err(TokenizerError::Unencodable {
                    offset: pending_start,
                });
            }
            i += 1;
        }
        if !pending.is_empty() {
            return Err(TokenizerError::Unencodable {
                offset: pending_start,
            });
        }
        self.merge(&mut tokens);
        Ok(tokens)
    }

    fn special_at(&self, rest: &[u8]) -> Option<u32> {
        (self.bos_id as usize..self.vocab.len())
            .find(|&id| {
                let t = &self.vocab[id];
                !t.is_empty() && rest.starts_with(t)
            })
            .map(|id| id as u32)
    }

    fn merge(&self, tokens: &mut Vec<u32>) {
        let mut joined = Vec::with_capacity(2 * self.max_token_length);
        loop {
            // The peer starts from -1e10 and needs a strictly higher score, so the leftmost of
            // equal-score pairs wins and pairs scoring -1e10 or less never merge.
            let mut best: Option<(f32, u32, usize)> = None;
            for i in 0..tokens.len().saturating_sub(1) {
                let (a, b) = (
                    &self.vocab[tokens[i] as usize],
                    &self.vocab[tokens[i + 1] as usize],
                );
                if a.len() + b.len() > self.max_token_length {
                    continue;
                }
                joined.clear();
                joined.extend_from_slice(a);
                joined.extend_from_slice(b);
                if let Some(&id) = self.regular.get(joined.as_slice()) {
                    let score = self.scores[id as usize];
                    if score > best.map_or(-1e10, |b| b.0) {
                        best = Some((score, id, i));
                    }
                }
            }
            match best {
                Some((_, id, i)) => {
                    tokens[i] = id;
                    tokens.remove(i + 1);
                }
                None => break,
            }
        }
    }

    /// A fresh streaming decoder.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            tokenizer: self,
            pending: Vec::new(),
        }
    }

    /// Decodes a whole token sequence (BOS dropped, EOS flushing, invalid bytes as U+FFFD,
    /// any incomplete tail flushed at the end).
    pub fn decode_all(&self, tokens: &[u32]) -> Result<String, TokenizerError> {
        let mut d = self.decoder();
        let mut s = String::new();
        for &t in tokens {
            if let Some(p) = d.push(t)? {
                s.push_str(&p);
            }
        }
        if let Some(p) = d.flush() {
            s.push_str(&p);
        }
        Ok(s)
    }

    /// A byte-level BPE tokenizer with `vocab_size` tokens (at least 259): the 256 single
    /// bytes, merges learnt from a built-in English text, then synthetic merges of existing
    /// tokens until the vocabulary is full, then BOS `<s>` and EOS `</s>` as the two special
    /// tokens. Merge `k` scores `-k`, so earlier merges win. Deterministic.
    pub fn byte_level_bpe(vocab_size: usize) -> Result<Tokenizer, TokenizerError> {
        if !(259..=MAX_VOCAB).contains(&vocab_size) {
            return Err(TokenizerError::OutOfRange {
                what: "vocab_size",
                value: vocab_size as i64,
                why: "a byte-level vocabulary needs 259..=2^24 tokens",
            });
        }
        let n_regular = vocab_size - 2;
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut known: HashSet<Vec<u8>> = vocab.iter().cloned().collect();
        let mut scores = vec![0.0f32; 256];
        fn add(
            t: Vec<u8>,
            vocab: &mut Vec<Vec<u8>>,
            scores: &mut Vec<f32>,
            known: &mut HashSet<Vec<u8>>,
        ) {
            scores.push(-((vocab.len() - 256) as f32));
            known.insert(t.clone());
            vocab.push(t);
        }

        // Learn merges: repeatedly join the most frequent adjacent pair (smallest ids on ties).
        let mut seq: Vec<u32> = TRAINING_TEXT.bytes().map(u32::from).collect();
        while vocab.len() < n_regular {
            let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
            for w in seq.windows(2) {
                *counts.entry((w[0], w[1])).or_default() += 1;
            }
            let best = counts
                .into_iter()
                .filter(|&(_, c)| c >= 2)
                .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)));
            let Some(((a, b), _)) = best else { break };
            let mut t = vocab[a as usize].clone();
            t.extend_from_slice(&vocab[b as usize]);
            let id = match vocab.iter().position(|v| *v == t) {
                Some(id) => id as u32,
                None => {
                    add(t, &mut vocab, &mut scores, &mut known);
                    (vocab.len() - 1) as u32
                }
            };
            let mut out = Vec::with_capacity(seq.len());
            let mut i = 0;
            while i < seq.len() {
                if i + 1 < seq.len() && seq[i] == a && seq[i + 1] == b {
                    out.push(id);
                    i += 2;
                } else {
                    out.push(seq[i]);
                    i += 1;
                }
            }
            seq = out;
        }

        // Fill the rest with joins of printable-ASCII-led tokens so every token stays short.
        let mut rng = SplitMix64::new(0x5EED_70CE_0000_0001);
        while vocab.len() < n_regular {
            let cur = vocab.len() as u64;
            let a = 32 + (rng.next_u64() % (cur - 32)) as usize;
            let b = 32 + (rng.next_u64() % (cur - 32)) as usize;
            let mut t = vocab[a].clone();
            t.extend_from_slice(&vocab[b]);
            if t.len() <= 16 && !t.contains(&0) && !known.contains(&t) {
                add(t, &mut vocab, &mut scores, &mut known);
            }
        }
        vocab.push(b"<s>".to_vec());
        vocab.push(b"</s>".to_vec());
        scores.extend([0.0, 0.0]);
        let bos = (vocab_size - 2) as u32;
        Tokenizer::new(vocab, scores, bos, vec![bos + 1], true, None)
    }
}

/// Turns a token stream into text, emitting only complete UTF-8 (spec §2).
#[derive(Debug)]
pub struct Decoder<'t> {
    tokenizer: &'t Tokenizer,
    pending: Vec<u8>,
}

impl Decoder<'_> {
    /// Adds `token` and returns the text it completes, if any. BOS gives nothing; an EOS id
    /// flushes pending bytes (see [`flush`](Self::flush)). Invalid UTF-8 becomes U+FFFD; an
    /// incomplete sequence at the end stays pending.
    pub fn push(&mut self, token: u32) -> Result<Option<String>, TokenizerError> {
        let t = self.tokenizer;
        let piece = t.token(token).ok_or(TokenizerError::BadToken(token))?;
        if token == t.bos_id {
            return Ok(None);
        }
        if t.is_eos(token) {
            return Ok(self.flush());
        }
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix was just validated by from_utf8.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                    }
                }
            }
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    /// Returns any pending bytes (an incomplete sequence, lossily as U+FFFD) and clears them.
    pub fn flush(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(s)
    }
}

/// Training text for the generated vocabulary: plain English, so that common words and
/// word pieces become tokens.
const TRAINING_TEXT: &str = "\
The quick brown fox jumps over the lazy dog. Once upon a time there was a little town by the \
river, and in the town there lived a baker who made the best bread in the whole country. Every \
morning the baker woke up before the sun, lit the fire in the oven, and mixed flour, water, salt \
and yeast in a large wooden bowl. The people of the town would come to the shop with baskets and \
leave with warm loaves, and the smell of fresh bread filled the streets until the evening. One \
day a traveller came to the town and asked the baker how he had learned to bake so well. The \
baker smiled and said that he had learned it from his mother, who had learned it from her \
father, and that the secret was simply to do the same thing carefully every single day. The \
traveller thought about this for a long time. He had been to many cities and seen many wonderful \
things, but he had never stayed in one place long enough to learn anything well. So he decided \
to stay in the town for a year and work with the baker. At first he burned the bread and \
dropped the trays, but after a few months his loaves were almost as good as those of his \
teacher. When the year was over, the traveller thanked the baker and went on his way, and in \
every town he visited after that he told the story of the baker by the river. Language models \
read text as a sequence of tokens. A tokenizer splits the text into pieces that are found in its \
vocabulary, and the model predicts the next piece from the ones before it. Small models with \
random weights do not know anything about language, but they are useful for testing that the \
computation is correct, that the numbers agree between machines, and that the program is fast.";
