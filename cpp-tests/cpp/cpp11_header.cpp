// The header must compile as C++11 (distributed-llama's oldest supported dialect) with every
// warning enabled; nothing here runs.

#include "airllm_kernels.h"

static_assert(sizeof(airllm_block_q80) == 34, "Q80 block");

airllm_status (*const matmul)(float *, const airllm_block_q80 *, const airllm_block_q40 *, uint32_t, uint32_t,
                              uint32_t, uint32_t) = &airllm_matmul_q80_q40;
