// C++17 tests of the airllm C ABI, built the way an outside program uses it: only the header,
// libairllm_kernels.a and the system libraries.
//
// Every exported kernel is compared with an independent scalar reference written below from the
// numerical contract (kernels/src/lib.rs), run the way distributed-llama runs its kernels (N
// std::threads, one thread_index each, all writing one shared output) and compared with the
// one-thread result bit for bit, and compared across every implementation the CPU offers. The
// error paths (NULL pointers, sizes that are not multiples of 32, bad thread splits, overlapping
// buffers, out-of-range arguments) must be refused without writing anything.
//
// Compile with -ffp-contract=off: the reference spells out every fused multiply-add with
// std::fma, and nothing else may be fused.

#include "airllm_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <math.h>
#include <string>
#include <thread>
#include <vector>

#ifndef AIRLLM_EXPECTED_VERSION
#error "build with -DAIRLLM_EXPECTED_VERSION=\"x.y.z\" (the workspace version)"
#endif

// ------------------------------------------------------------------------------------------
// Layout: the C blocks are byte-compatible with distributed-llama's NnBlockQ40 / NnBlockQ80,
// whose layout (an f16 scale, then the quants, no padding) is restated here.

struct PeerBlockQ40 {
    std::uint16_t d;
    std::uint8_t qs[16];
};
struct PeerBlockQ80 {
    std::uint16_t d;
    std::int8_t qs[32];
};

static_assert(AIRLLM_QK == 32, "block size");
static_assert(sizeof(airllm_block_q40) == 18, "Q40 block is 18 bytes");
static_assert(sizeof(airllm_block_q40) == sizeof(PeerBlockQ40), "Q40 size as the peer's");
static_assert(alignof(airllm_block_q40) == alignof(PeerBlockQ40), "Q40 alignment");
static_assert(offsetof(airllm_block_q40, d) == offsetof(PeerBlockQ40, d), "Q40 d offset");
static_assert(offsetof(airllm_block_q40, qs) == offsetof(PeerBlockQ40, qs), "Q40 qs offset");
static_assert(offsetof(airllm_block_q40, qs) == 2, "Q40 qs follows d");
static_assert(sizeof(airllm_block_q80) == 34, "Q80 block is 34 bytes");
static_assert(sizeof(airllm_block_q80) == sizeof(PeerBlockQ80), "Q80 size as the peer's");
static_assert(alignof(airllm_block_q80) == alignof(PeerBlockQ80), "Q80 alignment");
static_assert(offsetof(airllm_block_q80, d) == offsetof(PeerBlockQ80, d), "Q80 d offset");
static_assert(offsetof(airllm_block_q80, qs) == offsetof(PeerBlockQ80, qs), "Q80 qs offset");
static_assert(offsetof(airllm_block_q80, qs) == 2, "Q80 qs follows d");
static_assert(sizeof(airllm_rope_slice) == 12 * 4, "rope slice: 11 uint32 + theta");
static_assert(offsetof(airllm_rope_slice, theta) == 11 * 4, "theta is last");
static_assert(sizeof(airllm_rope_scaling) == 16, "rope scaling: 3 floats + uint32");
static_assert(AIRLLM_STATUS_OK == 0, "OK is zero");
static_assert(sizeof(airllm_status) == sizeof(int), "status is a C enum");

// ------------------------------------------------------------------------------------------
// Test bookkeeping.

struct Suite {
    int passed = 0;
    int failed = 0;
    std::string imp = "-";
    // The one-thread result of every kernel case under the scalar implementation.
    std::map<std::string, std::vector<unsigned char>> scalar_bytes;

    void check(bool ok, const std::string &what) {
        if (ok) {
            ++passed;
        } else {
            ++failed;
            std::printf("FAIL [%s] %s\n", imp.c_str(), what.c_str());
        }
    }

    void expect(airllm_status got, airllm_status want, const std::string &what) {
        check(got == want, what + ": got '" + airllm_status_str(got) + "', want '" +
                               airllm_status_str(want) + "'");
    }
};

// SplitMix64: a fixed, portable stream of test data.
struct Rng {
    std::uint64_t s;
    explicit Rng(std::uint64_t seed) : s(seed) {}
    std::uint64_t next() {
        s += 0x9E3779B97F4A7C15ull;
        std::uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    float uniform(float lo, float hi) {
        const float u = static_cast<float>(static_cast<double>(next() >> 40) / 16777216.0);
        return lo + (hi - lo) * u;
    }
    std::vector<float> floats(std::size_t n, float lo, float hi) {
        std::vector<float> v(n);
        for (float &x : v) x = uniform(lo, hi);
        return v;
    }
};

static std::uint32_t bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

static float from_bits(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

template <class T> static std::vector<unsigned char> bytes_of(const std::vector<T> &v) {
    std::vector<unsigned char> b(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
}

template <class T> static bool same_bytes(const std::vector<T> &a, const std::vector<T> &b) {
    return bytes_of(a) == bytes_of(b);
}

// A quiet NaN that no kernel produces: outputs start as this, so a skipped element shows.
static const float SENTINEL = from_bits(0x7fc0dead);

// Distance in units in the last place, for the few comparisons with the platform's libm.
static std::int64_t ulp_distance(float a, float b) {
    auto ord = [](float f) {
        const std::int32_t i = static_cast<std::int32_t>(bits(f));
        return i < 0 ? static_cast<std::int64_t>(INT32_MIN) - i : static_cast<std::int64_t>(i);
    };
    const std::int64_t d = ord(a) - ord(b);
    return d < 0 ? -d : d;
}

// The contract's expf, powf, sinf and cosf are glibc's x86-64 (FMA build) bits. Where the C++
// reference calls that same glibc the comparison is exact; elsewhere (another libm, aarch64's
// glibc build, a CPU without FMA) a libm value may differ in its last bit, and the kernels'
// later arithmetic can spread that, so those comparisons allow a small relative error.
static bool libm_is_the_contract() {
#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}
static const bool LIBM_EXACT = libm_is_the_contract();

enum class Cmp {
    Exact, // the contract fixes every bit
    Libm,  // exact where LIBM_EXACT, else within 4 ulp or 1e-6 absolute
    Tanh,  // GELU: the kernels' tanhf has no bit contract with any libm
};

// Values that matched only within the tolerance (reported, so a platform's drift is visible).
static int g_inexact_libm = 0;
static int g_inexact_tanh = 0;

static bool close_enough(const std::vector<float> &got, const std::vector<float> &want, Cmp cmp,
                         std::string *why) {
    if (got.size() != want.size()) {
        *why = "length differs";
        return false;
    }
    for (std::size_t i = 0; i < got.size(); ++i) {
        const float g = got[i], w = want[i];
        bool ok = bits(g) == bits(w);
        if (!ok && cmp == Cmp::Libm && !LIBM_EXACT)
            ok = ulp_distance(g, w) <= 4 || std::fabs(g - w) <= 1e-6f;
        if (!ok && cmp == Cmp::Tanh)
            ok = std::fabs(g - w) <= 2e-6f * (1.0f + std::fabs(w));
        if (ok && bits(g) != bits(w)) ++(cmp == Cmp::Tanh ? g_inexact_tanh : g_inexact_libm);
        if (!ok) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "element %zu: got %.9g (0x%08x), want %.9g (0x%08x)",
                          i, static_cast<double>(g), bits(g), static_cast<double>(w), bits(w));
            *why = buf;
            return false;
        }
    }
    return true;
}

// ------------------------------------------------------------------------------------------
// The independent scalar reference, from the numerical contract.

namespace ref {

float f16_to_f32(std::uint16_t h) {
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    const int e = (h >> 10) & 0x1f;
    const int m = h & 0x3ff;
    if (e == 0) return sign * std::ldexp(static_cast<float>(m), -24);
    if (e == 31) return m ? from_bits(0x7fc00000) : sign * INFINITY;
    return sign * std::ldexp(static_cast<float>(1024 + m), e - 25);
}

// Round to nearest, ties to even (what F16C's vcvtps2ph does in the peer's x86 build).
std::uint16_t f32_to_f16(float f) {
    const std::uint32_t x = bits(f);
    const std::uint32_t sign = (x >> 16) & 0x8000;
    const std::uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) return static_cast<std::uint16_t>(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
    if (ax >= 0x477ff000) return static_cast<std::uint16_t>(sign | 0x7c00); // >= 65520
    auto round = [](std::uint32_t m, std::uint32_t shift) {
        std::uint32_t q = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1);
        const std::uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) ++q;
        return q;
    };
    if (ax < 0x38800000) { // below 2^-14: a subnormal half (or zero)
        const std::uint32_t e = ax >> 23;
        if (e < 102) return static_cast<std::uint16_t>(sign);
        const std::uint32_t m = (ax & 0x7fffff) | 0x800000;
        return static_cast<std::uint16_t>(sign | round(m, 126 - e));
    }
    const std::uint32_t e = (ax >> 23) - 127 + 15;
    const std::uint32_t m = (e << 23) | (ax & 0x7fffff); // a carry may reach the exponent
    return static_cast<std::uint16_t>(sign | round(m, 13));
}

float hsum8(const float l[8]) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

float dot8(const float *a, const float *b, std::size_t n) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (std::size_t i = 0; i < n; ++i) l[i % 8] = std::fma(a[i], b[i], l[i % 8]);
    return hsum8(l);
}

// The peer's AVX2 exp polynomial.
float exp_poly(float x) {
    x = x > -88.0f ? x : -88.0f;
    x = x < 88.0f ? x : 88.0f;
    const float y = x * 1.44269504088896340736f;
    const std::int32_t n = static_cast<std::int32_t>(std::nearbyint(y));
    const float f = y - static_cast<float>(n);
    float p = static_cast<float>(0.009618129107628477);
    p = std::fma(p, f, static_cast<float>(0.05550410866482158));
    p = std::fma(p, f, static_cast<float>(0.2402265069591007));
    p = std::fma(p, f, static_cast<float>(0.6931471805599453));
    p = std::fma(p, f, 1.0f);
    return p * from_bits(static_cast<std::uint32_t>(n + 127) << 23);
}

void softmax(float *x, std::size_t n) {
    if (n == 0) return;
    float max = x[0];
    for (std::size_t i = 1; i < n; ++i)
        if (x[i] > max) max = x[i];
    const std::size_t full = n - n % 8;
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (std::size_t i = 0; i < full; ++i) {
        x[i] = exp_poly(x[i] - max);
        l[i % 8] += x[i];
    }
    float sum = hsum8(l);
    for (std::size_t i = full; i < n; ++i) {
        x[i] = ::expf(x[i] - max);
        sum += x[i];
    }
    if (sum == 0.0f) sum = 0.000001f;
    const float inv = 1.0f / sum;
    for (std::size_t i = 0; i < n; ++i) x[i] *= inv;
}

void quantize_q80(const float *x, std::size_t n, airllm_block_q80 *out) {
    for (std::size_t b = 0; b < n / 32; ++b) {
        const float *xs = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xs[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = f32_to_f16(d);
        for (int j = 0; j < 32; ++j)
            out[b].qs[j] = static_cast<std::int8_t>(static_cast<std::int32_t>(std::nearbyint(xs[j] * id)));
    }
}

void quantize_q40(const float *x, std::size_t n, airllm_block_q40 *out) {
    for (std::size_t b = 0; b < n / 32; ++b) {
        const float *xs = x + b * 32;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; ++j) {
            if (amax < std::fabs(xs[j])) {
                amax = std::fabs(xs[j]);
                max = xs[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        out[b].d = f32_to_f16(d);
        auto nib = [](float v) {
            const int t = static_cast<int>(v + 8.5f);
            return static_cast<std::uint8_t>(std::min(t, 15));
        };
        for (int j = 0; j < 16; ++j)
            out[b].qs[j] = static_cast<std::uint8_t>(nib(xs[j] * id) | (nib(xs[j + 16] * id) << 4));
    }
}

void dequantize_q80(const airllm_block_q80 *x, std::size_t n, float *out) {
    for (std::size_t b = 0; b < n / 32; ++b) {
        const float d = f16_to_f32(x[b].d);
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = static_cast<float>(x[b].qs[j]) * d;
    }
}

void dequantize_q40(const airllm_block_q40 *x, std::size_t n, float *out) {
    for (std::size_t b = 0; b < n / 32; ++b) {
        const float d = f16_to_f32(x[b].d);
        for (int j = 0; j < 16; ++j) {
            out[b * 32 + j] = static_cast<float>((x[b].qs[j] & 0x0F) - 8) * d;
            out[b * 32 + j + 16] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void matmul_q80_q40(const airllm_block_q80 *x, const airllm_block_q40 *w, std::size_t n,
                    std::size_t d, float *out) {
    const std::size_t nb = n / 32;
    for (std::size_t r = 0; r < d; ++r) {
        float acc = 0.0f;
        for (std::size_t j = 0; j < nb; ++j) {
            const airllm_block_q40 &wb = w[r * nb + j];
            const airllm_block_q80 &xb = x[j];
            std::int32_t s = 0;
            for (int k = 0; k < 16; ++k)
                s += ((wb.qs[k] & 0x0F) - 8) * xb.qs[k] + ((wb.qs[k] >> 4) - 8) * xb.qs[k + 16];
            const float scale = f16_to_f32(wb.d) * f16_to_f32(xb.d);
            acc = std::fma(static_cast<float>(s), scale, acc);
        }
        out[r] = acc;
    }
}

void matmul_f32(const float *x, const float *w, std::size_t n, std::size_t d, float *out) {
    for (std::size_t r = 0; r < d; ++r) out[r] = dot8(x, w + r * n, n);
}

float inv_rms(const float *x, std::size_t n, float eps) {
    float sum = dot8(x, x, n);
    sum /= static_cast<float>(n);
    sum += eps;
    return 1.0f / std::sqrt(sum);
}

float scale_llama3(float freq, const airllm_rope_scaling &s) {
    const double two_pi = 2.0 * 3.14159265358979323846;
    const float wave_len = static_cast<float>(two_pi / static_cast<double>(freq));
    const float orig = static_cast<float>(s.orig_max_seq_len);
    const float high_wl = orig / s.high_freq_factor;
    if (wave_len < high_wl) return freq;
    const float low_wl = orig / s.low_freq_factor;
    if (wave_len > low_wl) return freq / s.factor;
    const float smooth =
        (orig / wave_len - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return std::fma(smooth, freq, (1.0f - smooth) * freq / s.factor);
}

std::vector<float> llama_cache(const airllm_rope_slice &s, const airllm_rope_scaling *scaling) {
    std::vector<float> c(static_cast<std::size_t>(s.seq_len) * s.slice_dim);
    const float hd = static_cast<float>(s.head_dim);
    for (std::uint32_t p = 0; p < s.seq_len; ++p) {
        for (std::uint32_t k = 0; k < s.slice_dim / 2; ++k) {
            const std::uint32_t h = (s.kv_dim_start + 2 * k) % s.head_dim;
            float freq = 1.0f / ::powf(s.theta, static_cast<float>(h) / hd);
            if (scaling && scaling->factor != 1.0f) freq = scale_llama3(freq, *scaling);
            const float val = static_cast<float>(p) * freq;
            c[p * s.slice_dim + 2 * k] = ::cosf(val);
            c[p * s.slice_dim + 2 * k + 1] = ::sinf(val);
        }
    }
    return c;
}

std::vector<float> falcon_cache(const airllm_rope_slice &s) {
    const std::uint32_t hd = s.head_dim;
    std::vector<float> c(static_cast<std::size_t>(s.seq_len) * hd);
    const float hs = static_cast<float>(hd);
    for (std::uint32_t p = 0; p < s.seq_len; ++p) {
        for (std::uint32_t j = 0; j < hd / 2; ++j) {
            const float freq = 1.0f / ::powf(s.theta, 2.0f * (static_cast<float>(j) / hs));
            const float val = static_cast<float>(p) * freq;
            c[p * hd + j] = ::cosf(val);
            c[p * hd + j + hd / 2] = ::sinf(val);
        }
    }
    return c;
}

// Llama pairs: every product rounded, no FMA.
void rotate_pair(float &a, float &b, float c, float s) {
    const float v0 = a, v1 = b;
    a = v0 * c - v1 * s;
    b = v0 * s + v1 * c;
}

// Falcon halves: each output one FMA.
void rotate_fused(float &a, float &b, float c, float s) {
    const float v0 = a, v1 = b;
    a = std::fma(v0, c, -(v1 * s));
    b = std::fma(v0, s, v1 * c);
}

void rope_llama(float *x, const float *cache, bool is_q, std::uint32_t pos,
                const airllm_rope_slice &s) {
    const std::uint32_t dim0 = is_q ? s.q_dim0 : s.kv_dim0;
    const float *row = cache + static_cast<std::size_t>(pos) * s.slice_dim + (is_q ? s.q_shift : 0);
    for (std::uint32_t i = 0; i < dim0; i += 2) rotate_pair(x[i], x[i + 1], row[i], row[i + 1]);
}

void rope_falcon(float *x, const float *cache, bool is_q, std::uint32_t pos,
                 const airllm_rope_slice &s) {
    const std::uint32_t dim0 = is_q ? s.q_dim0 : s.kv_dim0;
    const std::uint32_t hd = s.head_dim, half = hd / 2;
    const float *row = cache + static_cast<std::size_t>(pos) * hd;
    for (std::uint32_t o = 0; o < dim0; o += hd)
        for (std::uint32_t j = 0; j < half; ++j) rotate_fused(x[o + j], x[o + j + half], row[j], row[j + half]);
}

void attention(float *y, const float *q, const float *kc, const float *vc, std::uint32_t pos,
               std::uint32_t n_heads, std::uint32_t n_heads0, std::uint32_t n_kv_heads,
               std::uint32_t kv_dim0, std::uint32_t hd) {
    const std::uint32_t kv_mul = n_heads / n_kv_heads;
    const float root = std::sqrt(static_cast<float>(hd));
    std::vector<float> sc(pos + 1);
    for (std::uint32_t h = 0; h < n_heads0; ++h) {
        const std::uint32_t kvh = h / kv_mul;
        for (std::uint32_t t = 0; t <= pos; ++t)
            sc[t] = dot8(q + h * hd, kc + t * kv_dim0 + kvh * hd, hd) / root;
        softmax(sc.data(), pos + 1);
        float *yh = y + h * hd;
        std::fill(yh, yh + hd, 0.0f);
        for (std::uint32_t t = 0; t <= pos; ++t)
            for (std::uint32_t i = 0; i < hd; ++i)
                yh[i] = std::fma(sc[t], vc[t * kv_dim0 + kvh * hd + i], yh[i]);
    }
}

float silu_one(float v, bool poly) {
    return v / (1.0f + (poly ? exp_poly(0.0f - v) : ::expf(-v)));
}

float gelu_one(float t) {
    const float k = static_cast<float>(0.7978845608028654);
    return 0.5f * t * (1.0f + ::tanhf(k * t * (1.0f + 0.044715f * t * t)));
}

void moe_gate(const float *probs, std::uint32_t n_experts, std::uint32_t rows, std::uint32_t k,
              bool normalize, float *weights, std::uint32_t *indices) {
    for (std::uint32_t r = 0; r < rows; ++r) {
        const float *p = probs + r * n_experts;
        std::vector<bool> taken(n_experts, false);
        for (std::uint32_t slot = 0; slot < k; ++slot) {
            int best = -1;
            for (std::uint32_t e = 0; e < n_experts; ++e)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = static_cast<int>(e);
            taken[best] = true;
            indices[r * k + slot] = static_cast<std::uint32_t>(best);
        }
        float sum = 1.0f;
        if (normalize) {
            sum = 0.0f;
            for (std::uint32_t slot = 0; slot < k; ++slot) sum += p[indices[r * k + slot]];
        }
        for (std::uint32_t slot = 0; slot < k; ++slot) weights[r * k + slot] = p[indices[r * k + slot]] / sum;
    }
}

} // namespace ref

// ------------------------------------------------------------------------------------------
// Running a kernel the peer's way.

static const std::uint32_t THREAD_COUNTS[] = {1, 2, 3, 4, 7};

// Calls `call(out, n_threads, thread_index)` from `nt` threads at once, all on one buffer.
template <class T, class Call>
static bool run_split(std::vector<T> &out, std::uint32_t nt, Call &call) {
    std::vector<airllm_status> st(nt, AIRLLM_STATUS_PANIC);
    std::vector<std::thread> pool;
    for (std::uint32_t ti = 0; ti < nt; ++ti)
        pool.emplace_back([&, ti] { st[ti] = call(out.data(), nt, ti); });
    for (std::thread &t : pool) t.join();
    return std::all_of(st.begin(), st.end(), [](airllm_status s) { return s == AIRLLM_STATUS_OK; });
}

// Runs a kernel with every thread count starting from `init`, checks that every split gives
// the one-thread bytes and that they match the scalar implementation's; returns them.
template <class T, class Call>
static std::vector<T> split_runs(Suite &s, const std::string &name, const std::vector<T> &init,
                                 Call call) {
    std::vector<T> one;
    for (std::uint32_t nt : THREAD_COUNTS) {
        std::vector<T> out = init;
        const bool ok = run_split(out, nt, call);
        s.check(ok, name + ": every call returns OK with " + std::to_string(nt) + " threads");
        if (nt == 1)
            one = out;
        else
            s.check(same_bytes(out, one), name + ": " + std::to_string(nt) +
                                              " threads give the one-thread bytes");
    }
    const std::vector<unsigned char> b = bytes_of(one);
    if (s.imp == "scalar")
        s.scalar_bytes[name] = b;
    else
        s.check(s.scalar_bytes.count(name) && s.scalar_bytes[name] == b,
                name + ": same bytes as the scalar implementation");
    return one;
}

static void check_values(Suite &s, const std::string &name, const std::vector<float> &got,
                         const std::vector<float> &want, Cmp cmp) {
    std::string why;
    const bool ok = close_enough(got, want, cmp, &why);
    s.check(ok, name + ": matches the C++ reference" + (ok ? "" : " (" + why + ")"));
}

template <class T>
static void check_blocks(Suite &s, const std::string &name, const std::vector<T> &got,
                         const std::vector<T> &want) {
    s.check(same_bytes(got, want), name + ": blocks match the C++ reference bit for bit");
}

// ------------------------------------------------------------------------------------------
// Kernel cases.

static std::vector<float> test_input(std::size_t n, std::uint64_t seed) {
    Rng rng(seed);
    std::vector<float> x = rng.floats(n, -3.0f, 3.0f);
    // A zero block (scale 0), a block with a magnitude tie (the first of -2 and +2 sets the Q40
    // sign), and a block of tiny values (subnormal f16 scales).
    if (n >= 128) {
        std::fill(x.begin(), x.begin() + 32, 0.0f);
        x[40] = -2.0f;
        x[50] = 2.0f;
        for (int j = 32; j < 64; ++j) x[j] = std::max(-1.9f, std::min(1.9f, x[j]));
        x[40] = -2.0f;
        x[50] = 2.0f;
        for (int j = 64; j < 96; ++j) x[j] *= 1e-6f;
    }
    return x;
}

static void quant_cases(Suite &s) {
    const std::uint32_t n = 32 * 37;
    const std::vector<float> x = test_input(n, 1);

    std::vector<airllm_block_q80> q80_ref(n / 32);
    ref::quantize_q80(x.data(), n, q80_ref.data());
    auto q80 = split_runs(s, "quantize_q80", std::vector<airllm_block_q80>(n / 32, airllm_block_q80{0xdead, {}}),
                          [&](airllm_block_q80 *o, std::uint32_t nt, std::uint32_t ti) {
                              return airllm_quantize_q80(o, x.data(), n, nt, ti);
                          });
    check_blocks(s, "quantize_q80", q80, q80_ref);

    std::vector<airllm_block_q40> q40_ref(n / 32);
    ref::quantize_q40(x.data(), n, q40_ref.data());
    auto q40 = split_runs(s, "quantize_q40", std::vector<airllm_block_q40>(n / 32, airllm_block_q40{0xdead, {}}),
                          [&](airllm_block_q40 *o, std::uint32_t nt, std::uint32_t ti) {
                              return airllm_quantize_q40(o, x.data(), n, nt, ti);
                          });
    check_blocks(s, "quantize_q40", q40, q40_ref);

    // Dequantise both the quantiser's blocks and blocks of arbitrary bits (finite scales).
    Rng rng(2);
    std::vector<airllm_block_q80> raw80 = q80_ref;
    std::vector<airllm_block_q40> raw40 = q40_ref;
    for (std::size_t b = 0; b < raw80.size(); b += 2) {
        raw80[b].d = static_cast<std::uint16_t>(rng.next() & 0x7bff);
        raw40[b].d = static_cast<std::uint16_t>(rng.next() & 0xfbff);
        for (int j = 0; j < 32; ++j) raw80[b].qs[j] = static_cast<std::int8_t>(rng.next());
        for (int j = 0; j < 16; ++j) raw40[b].qs[j] = static_cast<std::uint8_t>(rng.next());
    }
    std::vector<float> want(n);
    ref::dequantize_q80(raw80.data(), n, want.data());
    check_values(s, "dequantize_q80",
                 split_runs(s, "dequantize_q80", std::vector<float>(n, SENTINEL),
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_dequantize_q80(o, raw80.data(), n, nt, ti);
                            }),
                 want, Cmp::Exact);
    ref::dequantize_q40(raw40.data(), n, want.data());
    check_values(s, "dequantize_q40",
                 split_runs(s, "dequantize_q40", std::vector<float>(n, SENTINEL),
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_dequantize_q40(o, raw40.data(), n, nt, ti);
                            }),
                 want, Cmp::Exact);
}

static void matmul_cases(Suite &s) {
    Rng rng(3);
    // Q80 x Q40: rows not a multiple of any thread count; batches below and above 32.
    const std::uint32_t n = 32 * 9, d = 75;
    for (std::uint32_t batch : {1u, 3u, 37u}) {
        std::vector<float> xf = rng.floats(static_cast<std::size_t>(batch) * n, -2.0f, 2.0f);
        std::vector<float> wf = rng.floats(static_cast<std::size_t>(d) * n, -1.0f, 1.0f);
        std::vector<airllm_block_q80> x(xf.size() / 32);
        std::vector<airllm_block_q40> w(wf.size() / 32);
        ref::quantize_q80(xf.data(), xf.size(), x.data());
        ref::quantize_q40(wf.data(), wf.size(), w.data());
        std::vector<float> want(static_cast<std::size_t>(batch) * d);
        for (std::uint32_t b = 0; b < batch; ++b)
            ref::matmul_q80_q40(x.data() + b * (n / 32), w.data(), n, d, want.data() + b * d);
        const std::string name = batch == 1 ? "matmul_q80_q40" : "matmul_q80_q40_batch b=" + std::to_string(batch);
        std::vector<float> got = split_runs(s, name, std::vector<float>(want.size(), SENTINEL),
                                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                                return batch == 1
                                                           ? airllm_matmul_q80_q40(o, x.data(), w.data(), n, d, nt, ti)
                                                           : airllm_matmul_q80_q40_batch(o, x.data(), w.data(), n, d, batch, nt, ti);
                                            });
        check_values(s, name, got, want, Cmp::Exact);
    }
    // F32: a row length that is not a multiple of 8.
    const std::uint32_t nf = 67, df = 29;
    for (std::uint32_t batch : {1u, 3u, 37u}) {
        std::vector<float> x = rng.floats(static_cast<std::size_t>(batch) * nf, -2.0f, 2.0f);
        std::vector<float> w = rng.floats(static_cast<std::size_t>(df) * nf, -1.0f, 1.0f);
        std::vector<float> want(static_cast<std::size_t>(batch) * df);
        for (std::uint32_t b = 0; b < batch; ++b) ref::matmul_f32(x.data() + b * nf, w.data(), nf, df, want.data() + b * df);
        const std::string name = batch == 1 ? "matmul_f32" : "matmul_f32_batch b=" + std::to_string(batch);
        std::vector<float> got = split_runs(s, name, std::vector<float>(want.size(), SENTINEL),
                                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                                return batch == 1
                                                           ? airllm_matmul_f32(o, x.data(), w.data(), nf, df, nt, ti)
                                                           : airllm_matmul_f32_batch(o, x.data(), w.data(), nf, df, batch, nt, ti);
                                            });
        check_values(s, name, got, want, Cmp::Exact);
    }
}

static void norm_cases(Suite &s) {
    Rng rng(4);
    const float eps = 1e-5f;
    for (std::uint32_t cols : {1u, 3u, 8u}) {
        const std::uint32_t size = cols * 70;
        std::vector<float> x = rng.floats(size, -2.0f, 2.0f);
        std::vector<float> want(cols);
        for (std::uint32_t c = 0; c < cols; ++c) want[c] = ref::inv_rms(x.data() + c * 70, 70, eps);
        const std::string name = "inv_rms columns=" + std::to_string(cols);
        check_values(s, name,
                     split_runs(s, name, std::vector<float>(cols, SENTINEL),
                                [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                    return airllm_inv_rms(o, x.data(), eps, size, cols, nt, ti);
                                }),
                     want, Cmp::Exact);
    }

    const std::uint32_t n = 203;
    std::vector<float> x = rng.floats(n, -2.0f, 2.0f), w = rng.floats(n, 0.5f, 1.5f);
    const float inv = ref::inv_rms(x.data(), n, eps);
    std::vector<float> want(n);
    for (std::uint32_t i = 0; i < n; ++i) want[i] = (x[i] * inv) * w[i];
    check_values(s, "rms_norm",
                 split_runs(s, "rms_norm", std::vector<float>(n, SENTINEL),
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_rms_norm(o, x.data(), inv, w.data(), n, nt, ti);
                            }),
                 want, Cmp::Exact);

    const std::uint32_t nq = 32 * 13;
    std::vector<float> xf = rng.floats(nq, -2.0f, 2.0f), wq = rng.floats(nq, 0.5f, 1.5f);
    std::vector<airllm_block_q80> xq(nq / 32);
    ref::quantize_q80(xf.data(), nq, xq.data());
    std::vector<float> wantq(nq);
    for (std::uint32_t i = 0; i < nq; ++i) {
        const float sc = inv * ref::f16_to_f32(xq[i / 32].d);
        wantq[i] = wq[i] * (sc * static_cast<float>(xq[i / 32].qs[i % 32]));
    }
    check_values(s, "rms_norm_q80",
                 split_runs(s, "rms_norm_q80", std::vector<float>(nq, SENTINEL),
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_rms_norm_q80(o, xq.data(), inv, wq.data(), nq, nt, ti);
                            }),
                 wantq, Cmp::Exact);
}

static void rope_cases(Suite &s) {
    // 8 query heads and 4 KV heads of 16 floats, node 1 of 2.
    const std::uint32_t head_dim = 16, q_dim = 8 * head_dim, kv_dim = 4 * head_dim;
    const std::uint32_t seq_len = 20, n_nodes = 2, node = 1;
    airllm_rope_slice sl;
    std::memset(&sl, 0xff, sizeof sl);
    s.expect(airllm_rope_slice_for_node(&sl, q_dim, kv_dim, 4, n_nodes, seq_len, head_dim, 500000.0f, node),
             AIRLLM_STATUS_OK, "rope_slice_for_node");
    // The peer's sliceRope arithmetic, restated.
    const std::uint32_t q0 = q_dim / n_nodes, kv0 = kv_dim / n_nodes;
    const bool slice_ok = sl.q_dim0 == q0 && sl.kv_dim0 == kv0 && sl.q_dim_start == q0 * node &&
                          sl.q_dim_end == q0 * node + q0 && sl.kv_dim_start == kv0 * node &&
                          sl.q_shift == q0 * node - kv0 * node && sl.slice_dim == q0 * node + q0 - kv0 * node &&
                          sl.kv_dim == kv_dim && sl.seq_len == seq_len && sl.head_dim == head_dim &&
                          sl.n_kv_heads == 4 && sl.theta == 500000.0f;
    s.check(slice_ok, "rope_slice_for_node: fields as the peer's sliceRope computes them");

    const airllm_rope_scaling scaling = {8.0f, 1.0f, 4.0f, 8192};
    const airllm_rope_scaling no_scaling = {1.0f, 1.0f, 4.0f, 8192};
    const std::size_t llama_len = static_cast<std::size_t>(seq_len) * sl.slice_dim;
    struct Variant {
        const char *name;
        const airllm_rope_scaling *scaling;
    };
    const Variant variants[] = {{"plain", nullptr}, {"llama3.1-scaled", &scaling}, {"factor-1", &no_scaling}};
    std::vector<float> cache;
    for (const Variant &v : variants) {
        const std::string name = std::string("fill_rope_llama_cache ") + v.name;
        std::vector<float> got = split_runs(s, name, std::vector<float>(llama_len, SENTINEL),
                                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                                return airllm_fill_rope_llama_cache(o, &sl, v.scaling, nt, ti);
                                            });
        check_values(s, name, got, ref::llama_cache(sl, v.scaling), Cmp::Libm);
        if (v.scaling == &scaling) cache = got;
    }
    {
        std::vector<float> plain = ref::llama_cache(sl, nullptr), scaled = ref::llama_cache(sl, &scaling);
        s.check(plain != scaled, "fill_rope_llama_cache: the scaling case changes some frequencies");
    }

    Rng rng(5);
    for (bool is_q : {true, false}) {
        for (std::uint32_t pos : {0u, 13u, seq_len - 1}) {
            const std::uint32_t dim0 = is_q ? sl.q_dim0 : sl.kv_dim0;
            const std::vector<float> x = rng.floats(dim0, -2.0f, 2.0f);
            std::vector<float> want = x;
            ref::rope_llama(want.data(), cache.data(), is_q, pos, sl);
            const std::string name = std::string("rope_llama ") + (is_q ? "q" : "k") + " pos=" + std::to_string(pos);
            check_values(s, name,
                         split_runs(s, name, x,
                                    [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                        return airllm_rope_llama(o, cache.data(), is_q, pos, &sl, nt, ti);
                                    }),
                         want, Cmp::Exact);
        }
    }

    const std::size_t falcon_len = static_cast<std::size_t>(seq_len) * head_dim;
    std::vector<float> fcache = split_runs(s, "fill_rope_falcon_cache", std::vector<float>(falcon_len, SENTINEL),
                                           [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                               return airllm_fill_rope_falcon_cache(o, &sl, nt, ti);
                                           });
    check_values(s, "fill_rope_falcon_cache", fcache, ref::falcon_cache(sl), Cmp::Libm);
    for (bool is_q : {true, false}) {
        const std::uint32_t pos = 11, dim0 = is_q ? sl.q_dim0 : sl.kv_dim0;
        const std::vector<float> x = rng.floats(dim0, -2.0f, 2.0f);
        std::vector<float> want = x;
        ref::rope_falcon(want.data(), fcache.data(), is_q, pos, sl);
        const std::string name = std::string("rope_falcon ") + (is_q ? "q" : "k");
        check_values(s, name,
                     split_runs(s, name, x,
                                [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                    return airllm_rope_falcon(o, fcache.data(), is_q, pos, &sl, nt, ti);
                                }),
                     want, Cmp::Exact);
    }
}

static void attention_cases(Suite &s) {
    // 12 heads on 4 KV heads (kv_mul 3); this node has 6 query heads, reading 2 KV heads.
    const std::uint32_t n_heads = 12, n_kv_heads = 4, n_heads0 = 6, hd = 20, kv_dim0 = 2 * hd;
    const std::uint32_t seq_len = 24;
    Rng rng(6);
    const std::vector<float> q = rng.floats(n_heads0 * hd, -1.0f, 1.0f);
    const std::vector<float> kc = rng.floats(seq_len * kv_dim0, -1.0f, 1.0f);
    const std::vector<float> vc = rng.floats(seq_len * kv_dim0, -1.0f, 1.0f);
    // pos 17: 16 scores through the exp polynomial and 2 through expf; pos 5: expf only.
    for (std::uint32_t pos : {0u, 5u, 17u, seq_len - 1}) {
        std::vector<float> want(n_heads0 * hd);
        ref::attention(want.data(), q.data(), kc.data(), vc.data(), pos, n_heads, n_heads0, n_kv_heads, kv_dim0, hd);
        std::vector<float> att(n_heads0 * seq_len, SENTINEL);
        const std::string name = "multihead_attention pos=" + std::to_string(pos);
        check_values(s, name,
                     split_runs(s, name, std::vector<float>(want.size(), SENTINEL),
                                [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                    return airllm_multihead_attention(o, att.data(), q.data(), kc.data(), vc.data(),
                                                                      pos, n_heads, n_heads0, n_kv_heads, kv_dim0,
                                                                      hd, seq_len, nt, ti);
                                }),
                     want, Cmp::Libm);
    }
}

static void activation_cases(Suite &s) {
    Rng rng(7);
    for (std::uint32_t row_len : {3u, 8u, 45u}) {
        const std::uint32_t rows = 5;
        std::vector<float> x = rng.floats(row_len * rows, -6.0f, 6.0f);
        std::vector<float> want = x;
        for (std::uint32_t r = 0; r < rows; ++r) ref::softmax(want.data() + r * row_len, row_len);
        const std::string name = "softmax row_len=" + std::to_string(row_len);
        check_values(s, name,
                     split_runs(s, name, x,
                                [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                    return airllm_softmax(o, row_len, rows, nt, ti);
                                }),
                     want, Cmp::Libm);
    }

    const std::uint32_t n = 203; // 200 elements through the exp polynomial, 3 through expf
    const std::vector<float> x = rng.floats(n, -8.0f, 8.0f);
    std::vector<float> want(n);
    for (std::uint32_t i = 0; i < n; ++i) want[i] = ref::silu_one(x[i], i < n - n % 8);
    check_values(s, "silu",
                 split_runs(s, "silu", x,
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) { return airllm_silu(o, n, nt, ti); }),
                 want, Cmp::Libm);
    for (std::uint32_t i = 0; i < n; ++i) want[i] = ref::gelu_one(x[i]);
    check_values(s, "gelu",
                 split_runs(s, "gelu", x,
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) { return airllm_gelu(o, n, nt, ti); }),
                 want, Cmp::Tanh);

    const std::vector<float> m = rng.floats(n, -2.0f, 2.0f);
    for (std::uint32_t i = 0; i < n; ++i) want[i] = x[i] * m[i];
    check_values(s, "mul",
                 split_runs(s, "mul", x,
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_mul(o, m.data(), n, nt, ti);
                            }),
                 want, Cmp::Exact);
    for (std::uint32_t i = 0; i < n; ++i) want[i] = x[i] + m[i];
    check_values(s, "add",
                 split_runs(s, "add", x,
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_add(o, m.data(), n, nt, ti);
                            }),
                 want, Cmp::Exact);
    const float sc = 0.3f;
    for (std::uint32_t i = 0; i < n; ++i) want[i] = x[i] * sc;
    check_values(s, "scale",
                 split_runs(s, "scale", x,
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) { return airllm_scale(o, sc, n, nt, ti); }),
                 want, Cmp::Exact);

    const std::uint32_t nq = 32 * 11;
    const std::vector<float> y = rng.floats(nq, -2.0f, 2.0f), xf = rng.floats(nq, -2.0f, 2.0f);
    std::vector<airllm_block_q80> xq(nq / 32);
    ref::quantize_q80(xf.data(), nq, xq.data());
    std::vector<float> wantq(nq);
    for (std::uint32_t i = 0; i < nq; ++i)
        wantq[i] = std::fma(ref::f16_to_f32(xq[i / 32].d), static_cast<float>(xq[i / 32].qs[i % 32]), y[i]);
    check_values(s, "add_q80",
                 split_runs(s, "add_q80", y,
                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                return airllm_add_q80(o, xq.data(), nq, nt, ti);
                            }),
                 wantq, Cmp::Exact);
}

static void moe_and_kv_cases(Suite &s) {
    const std::uint32_t n_experts = 8, rows = 6, k = 3;
    Rng rng(8);
    std::vector<float> probs = rng.floats(n_experts * rows, 0.0f, 1.0f);
    for (std::uint32_t r = 0; r < rows; ++r) ref::softmax(probs.data() + r * n_experts, n_experts);
    probs[3] = probs[5] = 0.9f; // a tie in row 0: expert 3 comes first
    probs[n_experts + 7] = probs[n_experts + 1] = 0.95f;
    for (bool normalize : {false, true}) {
        std::vector<float> want_w(rows * k);
        std::vector<std::uint32_t> want_i(rows * k);
        ref::moe_gate(probs.data(), n_experts, rows, k, normalize, want_w.data(), want_i.data());
        const std::string name = std::string("moe_gate normalize=") + (normalize ? "1" : "0");
        // Two outputs: the weights through split_runs, the indices from a shared buffer per run.
        std::vector<std::uint32_t> idx(rows * k, 0xdeadbeef);
        std::vector<float> got = split_runs(s, name, std::vector<float>(rows * k, SENTINEL),
                                            [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                                return airllm_moe_gate(o, idx.data(), probs.data(), normalize,
                                                                       n_experts, rows, k, nt, ti);
                                            });
        check_values(s, name, got, want_w, Cmp::Exact);
        s.check(idx == want_i, name + ": indices match the C++ reference");
    }

    const std::uint32_t row_len = 37, seq_len = 9;
    const std::vector<float> row = rng.floats(row_len, -1.0f, 1.0f);
    for (std::uint32_t pos : {0u, 4u, seq_len - 1}) {
        std::vector<float> want(row_len * seq_len, SENTINEL);
        std::copy(row.begin(), row.end(), want.begin() + pos * row_len);
        const std::string name = "kv_write pos=" + std::to_string(pos);
        check_values(s, name,
                     split_runs(s, name, std::vector<float>(want.size(), SENTINEL),
                                [&](float *o, std::uint32_t nt, std::uint32_t ti) {
                                    return airllm_kv_write(o, row.data(), pos, row_len, seq_len, nt, ti);
                                }),
                     want, Cmp::Exact);
    }
}

// ------------------------------------------------------------------------------------------
// Error paths: every refusal has its status and writes nothing.

static void error_cases(Suite &s) {
    const std::uint32_t n = 64;
    std::vector<float> f(4 * n, 1.0f), g(4 * n, 1.0f), h(4 * n, 1.0f);
    std::vector<airllm_block_q80> q8(4 * n / 32);
    std::vector<airllm_block_q40> q4(4 * n / 32);
    std::vector<std::uint32_t> u(4 * n, 0);
    ref::quantize_q80(f.data(), f.size(), q8.data());
    ref::quantize_q40(f.data(), f.size(), q4.data());
    std::vector<float> out(4 * n, SENTINEL), att(4 * n, SENTINEL);
    std::vector<airllm_block_q80> out8(4 * n / 32, airllm_block_q80{0xdead, {}});
    std::vector<airllm_block_q40> out4(4 * n / 32, airllm_block_q40{0xdead, {}});
    const std::vector<float> out0 = out;
    const std::vector<airllm_block_q80> out80 = out8;
    const std::vector<airllm_block_q40> out40 = out4;
    airllm_rope_slice sl;
    s.expect(airllm_rope_slice_for_node(&sl, 64, 32, 2, 2, 4, 16, 10000.0f, 0), AIRLLM_STATUS_OK, "slice for errors");
    float *o = out.data();
    const float *x = f.data(), *w = g.data(), *c = h.data();
    const airllm_status NUL = AIRLLM_STATUS_NULL_POINTER, SIZE = AIRLLM_STATUS_BAD_SIZE,
                        SPLIT = AIRLLM_STATUS_BAD_THREAD_SPLIT, ARG = AIRLLM_STATUS_BAD_ARGUMENT,
                        OVER = AIRLLM_STATUS_OVERLAP, MIS = AIRLLM_STATUS_MISALIGNED;

    // Each kernel with one bad thing at a time: (status, label, call).
    struct Case {
        airllm_status want;
        const char *what;
        airllm_status got;
    };
    const Case cases[] = {
        {NUL, "quantize_q80 output NULL", airllm_quantize_q80(nullptr, x, n, 1, 0)},
        {NUL, "quantize_q80 input NULL", airllm_quantize_q80(out8.data(), nullptr, n, 1, 0)},
        {SIZE, "quantize_q80 n=33", airllm_quantize_q80(out8.data(), x, 33, 1, 0)},
        {SPLIT, "quantize_q80 thread 2 of 2", airllm_quantize_q80(out8.data(), x, n, 2, 2)},
        {SPLIT, "quantize_q80 0 threads", airllm_quantize_q80(out8.data(), x, n, 0, 0)},
        {NUL, "quantize_q40 output NULL", airllm_quantize_q40(nullptr, x, n, 1, 0)},
        {NUL, "quantize_q40 input NULL", airllm_quantize_q40(out4.data(), nullptr, n, 1, 0)},
        {SIZE, "quantize_q40 n=48", airllm_quantize_q40(out4.data(), x, 48, 1, 0)},
        {SPLIT, "quantize_q40 thread 5 of 3", airllm_quantize_q40(out4.data(), x, n, 3, 5)},
        {NUL, "dequantize_q80 output NULL", airllm_dequantize_q80(nullptr, q8.data(), n, 1, 0)},
        {NUL, "dequantize_q80 input NULL", airllm_dequantize_q80(o, nullptr, n, 1, 0)},
        {SIZE, "dequantize_q80 n=31", airllm_dequantize_q80(o, q8.data(), 31, 1, 0)},
        {SPLIT, "dequantize_q80 thread 1 of 1", airllm_dequantize_q80(o, q8.data(), n, 1, 1)},
        {NUL, "dequantize_q40 output NULL", airllm_dequantize_q40(nullptr, q4.data(), n, 1, 0)},
        {NUL, "dequantize_q40 input NULL", airllm_dequantize_q40(o, nullptr, n, 1, 0)},
        {SIZE, "dequantize_q40 n=1", airllm_dequantize_q40(o, q4.data(), 1, 1, 0)},
        {SPLIT, "dequantize_q40 0 threads", airllm_dequantize_q40(o, q4.data(), n, 0, 0)},
        {NUL, "matmul_q80_q40 output NULL", airllm_matmul_q80_q40(nullptr, q8.data(), q4.data(), n, 2, 1, 0)},
        {NUL, "matmul_q80_q40 input NULL", airllm_matmul_q80_q40(o, nullptr, q4.data(), n, 2, 1, 0)},
        {NUL, "matmul_q80_q40 weight NULL", airllm_matmul_q80_q40(o, q8.data(), nullptr, n, 2, 1, 0)},
        {SIZE, "matmul_q80_q40 n=40", airllm_matmul_q80_q40(o, q8.data(), q4.data(), 40, 2, 1, 0)},
        {SPLIT, "matmul_q80_q40 thread 4 of 4", airllm_matmul_q80_q40(o, q8.data(), q4.data(), n, 2, 4, 4)},
        {SIZE, "matmul_q80_q40_batch n=16", airllm_matmul_q80_q40_batch(o, q8.data(), q4.data(), 16, 2, 2, 1, 0)},
        {SPLIT, "matmul_q80_q40_batch 0 threads", airllm_matmul_q80_q40_batch(o, q8.data(), q4.data(), n, 2, 2, 0, 0)},
        {NUL, "matmul_q80_q40_batch weight NULL", airllm_matmul_q80_q40_batch(o, q8.data(), nullptr, n, 2, 2, 1, 0)},
        {NUL, "matmul_f32 output NULL", airllm_matmul_f32(nullptr, x, w, n, 2, 1, 0)},
        {NUL, "matmul_f32 input NULL", airllm_matmul_f32(o, nullptr, w, n, 2, 1, 0)},
        {NUL, "matmul_f32 weight NULL", airllm_matmul_f32(o, x, nullptr, n, 2, 1, 0)},
        {SPLIT, "matmul_f32 thread 3 of 2", airllm_matmul_f32(o, x, w, n, 2, 2, 3)},
        {OVER, "matmul_f32 output is the input", airllm_matmul_f32(f.data(), x, w, n, 2, 1, 0)},
        {MIS, "matmul_f32 misaligned input",
         airllm_matmul_f32(o, reinterpret_cast<const float *>(reinterpret_cast<const char *>(x) + 1), w, 8, 2, 1, 0)},
        {NUL, "matmul_f32_batch input NULL", airllm_matmul_f32_batch(o, nullptr, w, n, 2, 2, 1, 0)},
        {SPLIT, "matmul_f32_batch thread 9 of 9", airllm_matmul_f32_batch(o, x, w, n, 2, 2, 9, 9)},
        {NUL, "inv_rms output NULL", airllm_inv_rms(nullptr, x, 1e-5f, n, 2, 1, 0)},
        {NUL, "inv_rms input NULL", airllm_inv_rms(o, nullptr, 1e-5f, n, 2, 1, 0)},
        {SIZE, "inv_rms size not a multiple of the columns", airllm_inv_rms(o, x, 1e-5f, 65, 2, 1, 0)},
        {ARG, "inv_rms zero columns", airllm_inv_rms(o, x, 1e-5f, n, 0, 1, 0)},
        {SPLIT, "inv_rms thread 2 of 2", airllm_inv_rms(o, x, 1e-5f, n, 2, 2, 2)},
        {NUL, "rms_norm output NULL", airllm_rms_norm(nullptr, x, 1.0f, w, n, 1, 0)},
        {NUL, "rms_norm input NULL", airllm_rms_norm(o, nullptr, 1.0f, w, n, 1, 0)},
        {NUL, "rms_norm weight NULL", airllm_rms_norm(o, x, 1.0f, nullptr, n, 1, 0)},
        {SPLIT, "rms_norm 0 threads", airllm_rms_norm(o, x, 1.0f, w, n, 0, 0)},
        {OVER, "rms_norm output overlaps the weight", airllm_rms_norm(g.data() + 1, x, 1.0f, w, n, 1, 0)},
        {NUL, "rms_norm_q80 input NULL", airllm_rms_norm_q80(o, nullptr, 1.0f, w, n, 1, 0)},
        {NUL, "rms_norm_q80 weight NULL", airllm_rms_norm_q80(o, q8.data(), 1.0f, nullptr, n, 1, 0)},
        {SIZE, "rms_norm_q80 size=70", airllm_rms_norm_q80(o, q8.data(), 1.0f, w, 70, 1, 0)},
        {SPLIT, "rms_norm_q80 thread 1 of 1", airllm_rms_norm_q80(o, q8.data(), 1.0f, w, n, 1, 1)},
        {NUL, "rope_slice_for_node NULL", airllm_rope_slice_for_node(nullptr, 64, 32, 2, 2, 4, 16, 1e4f, 0)},
        {ARG, "rope_slice_for_node node 2 of 2", airllm_rope_slice_for_node(&sl, 64, 32, 2, 2, 4, 16, 1e4f, 2)},
        {ARG, "rope_slice_for_node kv_dim > q_dim", airllm_rope_slice_for_node(&sl, 32, 64, 2, 2, 4, 16, 1e4f, 0)},
        {ARG, "rope_slice_for_node uneven share", airllm_rope_slice_for_node(&sl, 66, 32, 2, 4, 4, 16, 1e4f, 0)},
        {NUL, "fill_rope_llama_cache cache NULL", airllm_fill_rope_llama_cache(nullptr, &sl, nullptr, 1, 0)},
        {NUL, "fill_rope_llama_cache slice NULL", airllm_fill_rope_llama_cache(o, nullptr, nullptr, 1, 0)},
        {SPLIT, "fill_rope_llama_cache thread 1 of 1", airllm_fill_rope_llama_cache(o, &sl, nullptr, 1, 1)},
        {NUL, "fill_rope_falcon_cache cache NULL", airllm_fill_rope_falcon_cache(nullptr, &sl, 1, 0)},
        {NUL, "fill_rope_falcon_cache slice NULL", airllm_fill_rope_falcon_cache(o, nullptr, 1, 0)},
        {SPLIT, "fill_rope_falcon_cache 0 threads", airllm_fill_rope_falcon_cache(o, &sl, 0, 0)},
        {NUL, "rope_llama x NULL", airllm_rope_llama(nullptr, c, true, 0, &sl, 1, 0)},
        {NUL, "rope_llama cache NULL", airllm_rope_llama(o, nullptr, true, 0, &sl, 1, 0)},
        {NUL, "rope_llama slice NULL", airllm_rope_llama(o, c, true, 0, nullptr, 1, 0)},
        {ARG, "rope_llama pos = seq_len", airllm_rope_llama(o, c, true, 4, &sl, 1, 0)},
        {SPLIT, "rope_llama thread 2 of 2", airllm_rope_llama(o, c, false, 0, &sl, 2, 2)},
        {OVER, "rope_llama x inside the cache", airllm_rope_llama(h.data() + 8, c, false, 0, &sl, 1, 0)},
        {NUL, "rope_falcon x NULL", airllm_rope_falcon(nullptr, c, true, 0, &sl, 1, 0)},
        {NUL, "rope_falcon cache NULL", airllm_rope_falcon(o, nullptr, true, 0, &sl, 1, 0)},
        {ARG, "rope_falcon pos = seq_len", airllm_rope_falcon(o, c, false, 4, &sl, 1, 0)},
        {SPLIT, "rope_falcon 0 threads", airllm_rope_falcon(o, c, false, 0, &sl, 0, 0)},
        {NUL, "multihead_attention y NULL",
         airllm_multihead_attention(nullptr, att.data(), x, w, c, 0, 4, 2, 2, 16, 8, 4, 1, 0)},
        {NUL, "multihead_attention att NULL",
         airllm_multihead_attention(o, nullptr, x, w, c, 0, 4, 2, 2, 16, 8, 4, 1, 0)},
        {NUL, "multihead_attention q NULL",
         airllm_multihead_attention(o, att.data(), nullptr, w, c, 0, 4, 2, 2, 16, 8, 4, 1, 0)},
        {NUL, "multihead_attention k NULL",
         airllm_multihead_attention(o, att.data(), x, nullptr, c, 0, 4, 2, 2, 16, 8, 4, 1, 0)},
        {NUL, "multihead_attention v NULL",
         airllm_multihead_attention(o, att.data(), x, w, nullptr, 0, 4, 2, 2, 16, 8, 4, 1, 0)},
        {ARG, "multihead_attention pos = seq_len",
         airllm_multihead_attention(o, att.data(), x, w, c, 4, 4, 2, 2, 16, 8, 4, 1, 0)},
        {ARG, "multihead_attention heads not a multiple of KV heads",
         airllm_multihead_attention(o, att.data(), x, w, c, 0, 5, 2, 2, 16, 8, 4, 1, 0)},
        {ARG, "multihead_attention head_dim 0",
         airllm_multihead_attention(o, att.data(), x, w, c, 0, 4, 2, 2, 16, 0, 4, 1, 0)},
        {SPLIT, "multihead_attention thread 3 of 3",
         airllm_multihead_attention(o, att.data(), x, w, c, 0, 4, 2, 2, 16, 8, 4, 3, 3)},
        {OVER, "multihead_attention y is att",
         airllm_multihead_attention(o, o, x, w, c, 0, 4, 2, 2, 16, 8, 4, 1, 0)},
        {NUL, "softmax NULL", airllm_softmax(nullptr, 8, 2, 1, 0)},
        {ARG, "softmax row_len 0", airllm_softmax(o, 0, 2, 1, 0)},
        {SPLIT, "softmax thread 1 of 1", airllm_softmax(o, 8, 2, 1, 1)},
        {NUL, "silu NULL", airllm_silu(nullptr, n, 1, 0)},
        {SPLIT, "silu 0 threads", airllm_silu(o, n, 0, 0)},
        {NUL, "gelu NULL", airllm_gelu(nullptr, n, 1, 0)},
        {SPLIT, "gelu thread 7 of 7", airllm_gelu(o, n, 7, 7)},
        {NUL, "mul x NULL", airllm_mul(nullptr, x, n, 1, 0)},
        {NUL, "mul m NULL", airllm_mul(o, nullptr, n, 1, 0)},
        {SPLIT, "mul thread 1 of 1", airllm_mul(o, x, n, 1, 1)},
        {OVER, "mul x is m", airllm_mul(o, o, n, 1, 0)},
        {NUL, "add output NULL", airllm_add(nullptr, x, n, 1, 0)},
        {NUL, "add input NULL", airllm_add(o, nullptr, n, 1, 0)},
        {SPLIT, "add 0 threads", airllm_add(o, x, n, 0, 0)},
        {OVER, "add output is the input", airllm_add(o, o, n, 1, 0)},
        {NUL, "add_q80 output NULL", airllm_add_q80(nullptr, q8.data(), n, 1, 0)},
        {NUL, "add_q80 input NULL", airllm_add_q80(o, nullptr, n, 1, 0)},
        {SIZE, "add_q80 n=63", airllm_add_q80(o, q8.data(), 63, 1, 0)},
        {SPLIT, "add_q80 thread 2 of 1", airllm_add_q80(o, q8.data(), n, 1, 2)},
        {NUL, "scale NULL", airllm_scale(nullptr, 2.0f, n, 1, 0)},
        {SPLIT, "scale 0 threads", airllm_scale(o, 2.0f, n, 0, 0)},
        {MIS, "scale misaligned", airllm_scale(reinterpret_cast<float *>(reinterpret_cast<char *>(o) + 2), 2.0f, 4, 1, 0)},
        {NUL, "moe_gate weights NULL", airllm_moe_gate(nullptr, u.data(), x, true, 8, 2, 2, 1, 0)},
        {NUL, "moe_gate indices NULL", airllm_moe_gate(o, nullptr, x, true, 8, 2, 2, 1, 0)},
        {NUL, "moe_gate probs NULL", airllm_moe_gate(o, u.data(), nullptr, true, 8, 2, 2, 1, 0)},
        {ARG, "moe_gate k > n_experts", airllm_moe_gate(o, u.data(), x, true, 8, 2, 9, 1, 0)},
        {ARG, "moe_gate k = 0", airllm_moe_gate(o, u.data(), x, true, 8, 2, 0, 1, 0)},
        {SPLIT, "moe_gate thread 1 of 1", airllm_moe_gate(o, u.data(), x, false, 8, 2, 2, 1, 1)},
        {OVER, "moe_gate weights overlap indices",
         airllm_moe_gate(o, reinterpret_cast<std::uint32_t *>(o + 1), x, false, 8, 2, 2, 1, 0)},
        {NUL, "kv_write cache NULL", airllm_kv_write(nullptr, x, 0, 8, 4, 1, 0)},
        {NUL, "kv_write row NULL", airllm_kv_write(o, nullptr, 0, 8, 4, 1, 0)},
        {ARG, "kv_write pos = seq_len", airllm_kv_write(o, x, 4, 8, 4, 1, 0)},
        {SPLIT, "kv_write 0 threads", airllm_kv_write(o, x, 0, 8, 4, 0, 0)},
        {OVER, "kv_write row inside the cache", airllm_kv_write(o, o + 40, 0, 8, 8, 1, 0)},
    };
    for (const Case &k : cases) s.expect(k.got, k.want, k.what);
    s.check(same_bytes(out, out0) && same_bytes(att, std::vector<float>(att.size(), SENTINEL)),
            "refused calls left the float outputs untouched");
    s.check(same_bytes(out8, out80) && same_bytes(out4, out40), "refused calls left the block outputs untouched");
    s.check(std::all_of(u.begin(), u.end(), [](std::uint32_t v) { return v == 0; }),
            "refused calls left the index output untouched");
    s.check(std::all_of(f.begin(), f.end(), [](float v) { return v == 1.0f; }) &&
                std::all_of(g.begin(), g.end(), [](float v) { return v == 1.0f; }),
            "refused calls left the inputs untouched");
}

static void info_cases(Suite &s, const std::vector<std::string> &impls) {
    s.check(std::string(airllm_version()) == AIRLLM_EXPECTED_VERSION, "airllm_version is the workspace version");
    const airllm_status all[] = {AIRLLM_STATUS_OK,          AIRLLM_STATUS_NULL_POINTER,     AIRLLM_STATUS_MISALIGNED,
                                 AIRLLM_STATUS_OVERLAP,     AIRLLM_STATUS_BAD_SIZE,         AIRLLM_STATUS_BAD_THREAD_SPLIT,
                                 AIRLLM_STATUS_BAD_ARGUMENT, AIRLLM_STATUS_UNSUPPORTED,     AIRLLM_STATUS_PANIC};
    std::vector<std::string> texts;
    for (airllm_status st : all) texts.emplace_back(airllm_status_str(st));
    std::vector<std::string> sorted = texts;
    std::sort(sorted.begin(), sorted.end());
    s.check(std::unique(sorted.begin(), sorted.end()) == sorted.end(), "airllm_status_str: one text per status");
    s.check(texts[0] == "ok", "airllm_status_str(OK) is \"ok\"");
    s.check(std::string(airllm_status_str(99)) == "unknown status" &&
                std::string(airllm_status_str(-1)) == "unknown status",
            "airllm_status_str: unknown codes");

    s.check(!impls.empty() && impls.front() == "scalar", "airllm_list_impls starts with scalar");
    s.check(std::string(airllm_impl_name()) == impls.back(), "the default implementation is the last listed");
    if (const char *want = std::getenv("AIRLLM_EXPECT_IMPL"))
        s.check(std::string(airllm_impl_name()) == want,
                std::string("detected implementation is AIRLLM_EXPECT_IMPL=") + want + " (got " + airllm_impl_name() + ")");

    s.expect(airllm_force_impl(nullptr), AIRLLM_STATUS_NULL_POINTER, "force_impl(NULL)");
    s.expect(airllm_force_impl("sse9"), AIRLLM_STATUS_BAD_ARGUMENT, "force_impl(unknown name)");
    const char *known[] = {"scalar", "avx2", "avx512", "avx512vnni", "neon", "neon-dotprod"};
    for (const char *k : known) {
        const bool here = std::find(impls.begin(), impls.end(), k) != impls.end();
        s.expect(airllm_force_impl(k), here ? AIRLLM_STATUS_OK : AIRLLM_STATUS_UNSUPPORTED,
                 std::string("force_impl(") + k + ")");
        if (here) s.check(std::string(airllm_impl_name()) == k, std::string("impl_name after force_impl(") + k + ")");
    }
    s.expect(airllm_force_impl("auto"), AIRLLM_STATUS_OK, "force_impl(auto)");
    s.check(std::string(airllm_impl_name()) == impls.back(), "force_impl(auto) restores the default");
}

int main() {
    Suite s;
    std::vector<std::string> impls;
    {
        const std::string list = airllm_list_impls();
        std::size_t start = 0;
        while (start <= list.size()) {
            const std::size_t end = std::min(list.find(',', start), list.size());
            impls.push_back(list.substr(start, end - start));
            start = end + 1;
        }
    }
    std::printf("cpp-tests: library %s, implementations %s (default %s), libm comparisons %s\n",
                airllm_version(), airllm_list_impls(), airllm_impl_name(),
                LIBM_EXACT ? "exact" : "within a few ulp");
    info_cases(s, impls);
    error_cases(s);
    for (const std::string &imp : impls) {
        s.imp = imp;
        s.expect(airllm_force_impl(imp.c_str()), AIRLLM_STATUS_OK, "force_impl(" + imp + ")");
        const int before = s.passed + s.failed;
        quant_cases(s);
        matmul_cases(s);
        norm_cases(s);
        rope_cases(s);
        attention_cases(s);
        activation_cases(s);
        moe_and_kv_cases(s);
        std::printf("cpp-tests: %s: %d checks\n", imp.c_str(), s.passed + s.failed - before);
    }
    s.imp = "-";
    s.expect(airllm_force_impl("auto"), AIRLLM_STATUS_OK, "force_impl(auto) at the end");
    std::printf("cpp-tests: not bit for bit but within tolerance: %d libm-derived values, %d GELU values\n",
                g_inexact_libm, g_inexact_tanh);
    std::printf("cpp-tests: %d passed, %d failed\n", s.passed, s.failed);
    return s.failed == 0 && s.passed > 0 ? 0 : 1;
}
