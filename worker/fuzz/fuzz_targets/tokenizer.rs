//! `.t` parsing on arbitrary bytes, then encoding and decoding with whatever parsed.
#![no_main]

use airllm_worker::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tokenizer::from_bytes(data) {
        let _ = t.to_bytes();
        if let Ok(ids) = t.encode(b"Hello, world! \xe2\x82\xac <s>", true, true) {
            let _ = t.decode_all(&ids);
        }
        let mut d = t.decoder();
        for id in 0..t.vocab_size().min(64) as u32 {
            let _ = d.push(id);
        }
    }
});
