//! The worker's weight-message reader on arbitrary bytes, headers applied to a real executor
//! the way the worker does (bounded chunks, offsets checked against the op's weight size).
#![no_main]

use airllm_kernels::Kernels;
use airllm_worker::exec::Executor;
use airllm_worker::float_type::FloatType;
use airllm_worker::graph::build_llm_net;
use airllm_worker::model::gen::{params, GenArch, Preset};
use airllm_worker::model::ModelHeader;
use airllm_worker::net::codec::{read_weight_header, Limits};
use libfuzzer_sys::fuzz_target;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static EXEC: std::cell::RefCell<Executor> = {
            let h = ModelHeader::from_params(&params(Preset::Tiny, GenArch::Llama, FloatType::Q40))
                .expect("tiny preset");
            let llm = build_llm_net(&h, 2, 32, FloatType::Q80).expect("tiny graph");
            std::cell::RefCell::new(
                Executor::new(&llm.net, &llm.nodes[1], 1, Kernels::scalar()).expect("executor"),
            )
        };
    }
    let limits = Limits::default();
    let mut r = data;
    EXEC.with(|e| {
        let mut exec = e.borrow_mut();
        let mut chunk = [0u8; 4096];
        while let Ok(Some(h)) = read_weight_header(&mut r, &limits) {
            let mut done = 0u64;
            while done < h.n_bytes {
                let n = (h.n_bytes - done).min(chunk.len() as u64) as usize;
                if r.read_exact(&mut chunk[..n]).is_err() {
                    return;
                }
                let Ok(offset) = usize::try_from(h.offset + done) else { return };
                if exec.load_weight(&h.op_name, h.op_index, offset, &chunk[..n]).is_err() {
                    return;
                }
                done += n as u64;
            }
        }
    });
});
