//! The worker's config readers (handshake, net config, node config, control packet) on
//! arbitrary bytes, alone and behind a valid net config: errors only, never a panic or an
//! allocation in proportion to a claimed count.
#![no_main]

use airllm_worker::float_type::FloatType;
use airllm_worker::graph::build_llm_net;
use airllm_worker::model::gen::{params, GenArch, Preset};
use airllm_worker::model::ModelHeader;
use airllm_worker::net::codec::{
    net_config_bytes, read_net_config, read_node_config, Control, Handshake, Limits,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = Handshake::read(&mut &data[..], &limits);
    if let Ok(net) = read_net_config(&mut &data[..], &limits) {
        let _ = read_node_config(&mut &data[..], &net, &limits);
    }
    let h = ModelHeader::from_params(&params(Preset::Tiny, GenArch::Qwen3Moe, FloatType::Q40))
        .expect("tiny preset");
    let llm = build_llm_net(&h, 2, 32, FloatType::Q80).expect("tiny graph");
    let _ = read_node_config(&mut &data[..], &llm.net, &limits);
    let _ = Control::read(&mut &data[..], &llm.net);
    let mut prefixed = net_config_bytes(&llm.net);
    prefixed.extend_from_slice(data);
    if let Ok(net) = read_net_config(&mut &prefixed[..], &limits) {
        let _ = read_node_config(&mut &data[..], &net, &limits);
    }
});
