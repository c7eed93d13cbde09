/* The header from strict C99, and a few calls through it: a program that never sees C++. */

#include "airllm_kernels.h"

#include <stdio.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        printf("FAIL %s\n", what);
    }
}

int main(void) {
    enum { N = 64, D = 3 };
    float x[N], w[D * N], y[D], back[N];
    airllm_block_q80 xq[N / AIRLLM_QK];
    airllm_block_q40 wq[D * N / AIRLLM_QK];
    float yq[D];
    int i;

    for (i = 0; i < N; ++i) x[i] = (float)(i % 7) - 3.0f;
    for (i = 0; i < D * N; ++i) w[i] = (float)(i % 5) * 0.25f - 0.5f;

    check(sizeof(airllm_block_q40) == 18 && sizeof(airllm_block_q80) == 34, "block sizes");
    check(airllm_quantize_q80(xq, x, N, 1, 0) == AIRLLM_STATUS_OK, "quantize_q80");
    check(airllm_dequantize_q80(back, xq, N, 1, 0) == AIRLLM_STATUS_OK, "dequantize_q80");
    /* Small integers survive a Q80 round trip exactly (|x| <= 3 -> scale 3/127). */
    for (i = 0; i < N; ++i) {
        if (back[i] - x[i] > 0.02f || x[i] - back[i] > 0.02f) break;
    }
    check(i == N, "Q80 round trip");
    check(airllm_quantize_q40(wq, w, D * N, 1, 0) == AIRLLM_STATUS_OK, "quantize_q40");
    check(airllm_matmul_q80_q40(yq, xq, wq, N, D, 1, 0) == AIRLLM_STATUS_OK, "matmul_q80_q40");
    check(airllm_matmul_f32(y, x, w, N, D, 1, 0) == AIRLLM_STATUS_OK, "matmul_f32");
    for (i = 0; i < D; ++i) {
        float diff = y[i] - yq[i];
        if (diff > 1.0f || diff < -1.0f) break;
    }
    check(i == D, "Q80 x Q40 close to F32");
    check(airllm_matmul_f32(y, x, w, N, D, 1, 1) == AIRLLM_STATUS_BAD_THREAD_SPLIT, "bad split");
    check(airllm_quantize_q80(NULL, x, N, 1, 0) == AIRLLM_STATUS_NULL_POINTER, "NULL output");
    check(strcmp(airllm_status_str(AIRLLM_STATUS_OK), "ok") == 0, "status text");
    check(strlen(airllm_impl_name()) > 0 && strstr(airllm_list_impls(), airllm_impl_name()) != NULL,
          "impl name is listed");
    printf("c99-tests: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
