//! Header, index and file-length validation on arbitrary bytes: must return errors, never
//! panic, hang or allocate in proportion to claimed sizes.
#![no_main]

use airllm_worker::model::file::parse_layout;
use airllm_worker::model::{ModelFile, ModelHeader};
use airllm_worker::weights::node_slices;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ModelHeader::parse(data, None);
    if let Ok(h) = ModelHeader::parse(data, Some(7)) {
        for n in 0..5 {
            let _ = h.validate_for_nodes(n);
        }
    }
    // The same header against a range of claimed file lengths.
    for len in [0u64, data.len() as u64, u64::MAX] {
        let _ = parse_layout(data, len, None);
    }
    if let Ok(m) = ModelFile::from_bytes(data.to_vec(), None) {
        for n in 1..3 {
            for node in 0..n {
                for s in node_slices(&m, node, n) {
                    let _ = s.map(|s| s.bytes.len());
                }
            }
        }
    }
});
