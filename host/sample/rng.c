#include "sample/rng.h"

#include <stdatomic.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

/* ---- cpu: torch's CPUGeneratorImpl ----------------------------------------------
 *
 * Derivation (pytorch aten/src/ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp,
 * core/DistributionsHelper.h, core/TransformationHelper.h,
 * native/cpu/DistributionTemplates.h):
 *  - manual_seed(s): mt19937 with state[0] = s & 0xffffffff and the standard
 *    Knuth initialisation; the cached normal samples are cleared.
 *  - random() is one mt19937 draw; random64() is two draws, the first the high word.
 *  - uniform_real_distribution<float>(0,1): (random() & (2^24-1)) * 2^-24.
 *    uniform_real_distribution<double>(0,1): (random64() & (2^53-1)) * 2^-53.
 *  - normal_kernel, float tensor of >= 16 contiguous elements (normal_fill): first
 *    all n uniforms are drawn in order; then each full block of 16 is transformed in
 *    place: for j < 8, u1 = 1 - d[j], u2 = d[j+8], r = sqrt(-2 log u1),
 *    theta = 2 pi u2, d[j] = r cos theta, d[j+8] = r sin theta. When n % 16 != 0 the
 *    last 16 elements are overwritten with 16 fresh uniforms and transformed again.
 *    On x86 with AVX2 (normal_fill_AVX2) this runs in float with 2 pi rounded to
 *    float; the scalar build computes theta in double. We follow the AVX2 variant in
 *    float; the two differ by at most an ulp or so, as do Sleef and libm.
 *  - fewer than 16 elements: each value is normal_distribution<double>: if a cached
 *    sample exists it is returned (and cleared); otherwise u1, u2 are two double
 *    uniforms, r = sqrt(-2 log(1 - u2)), theta = 2 pi u1, r sin theta is cached and
 *    r cos theta returned, then rounded to float. The cache lives in the generator,
 *    so it survives across randn calls (until the next manual_seed). */

enum { MT_N = 624, MT_M = 397 };

typedef struct mt19937 {
    uint32_t state[MT_N];
    int next;
} mt19937;

static void mt_seed(mt19937 *mt, uint32_t seed)
{
    mt->state[0] = seed;
    for (int i = 1; i < MT_N; i++) {
        uint32_t prev = mt->state[i - 1];
        mt->state[i] = 1812433253u * (prev ^ (prev >> 30)) + (uint32_t)i;
    }
    mt->next = MT_N;   /* twist before the first draw */
}

static void mt_twist(mt19937 *mt)
{
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt->state[i] & 0x80000000u) | (mt->state[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = mt->state[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u)
            v ^= 0x9908b0dfu;
        mt->state[i] = v;
    }
    mt->next = 0;
}

static uint32_t mt_next(mt19937 *mt)
{
    if (mt->next >= MT_N)
        mt_twist(mt);
    uint32_t y = mt->state[mt->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float uniform_f32(mt19937 *mt)
{
    return (float)(mt_next(mt) & 0xffffffu) * (1.0f / 16777216.0f);
}

static double uniform_f64(mt19937 *mt)
{
    uint64_t hi = mt_next(mt);
    uint64_t lo = mt_next(mt);
    uint64_t r = (hi << 32) | lo;
    return (double)(r & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* d[16]: uniforms in, normals out (see the derivation above) */
static void normal_fill_16(float *d)
{
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = two_pi * u2;
        d[j] = radius * cosf(theta);
        d[j + 8] = radius * sinf(theta);
    }
}

/* ---- cuda: Philox4x32-10 as A1111's rng_philox.py ---------------------------------
 *
 * Derivation (A1111 modules/rng_philox.py, which imitates torch's CUDA randn):
 *  - randn call number k (the generator's offset, starting at 0) of n elements:
 *    element i uses counter = (k, 0, i, 0) and key = (seed & 0xffffffff, seed >> 32).
 *  - Philox4x32-10: 10 rounds; each round, with M0 = 0xD2511F53, M1 = 0xCD9E8D57,
 *    (hi0,lo0) = M0 * c0, (hi1,lo1) = M1 * c2 (64-bit products),
 *    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); between rounds the key is bumped
 *    by (0x9E3779B9, 0xBB67AE85).
 *  - Box-Muller on the first two outputs x = c0, y = c1 (c2, c3 are discarded):
 *    u = x * A + A/2, v = y * B + B/2 with A = float32(2.3283064e-10) and
 *    B = float32(2.3283064e-10 * 6.2831855); NumPy promotes uint32 * float32 to
 *    float64, so u, v and r = sqrt(-2 ln u) * sin(v) are float64, rounded to float32
 *    at the end. Only the sin half is used. */

static void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c[0] = n0;
        c[1] = n1;
        c[2] = n2;
        c[3] = n3;
    }
}

/* ---- the generator object --------------------------------------------------------- */

struct vkd_rng {
    vkd_rng_kind kind;
    uint64_t seed;
    /* cpu */
    mt19937 mt;
    int has_cached_normal;
    double cached_normal;
    /* cuda */
    uint32_t offset;
};

vkd_result vkd_rng_parse(const char *name, vkd_rng_kind *out)
{
    if (name && strcmp(name, "cpu") == 0) {
        *out = VKD_RNG_CPU;
        return VKD_OK;
    }
    if (name && strcmp(name, "cuda") == 0) {
        *out = VKD_RNG_CUDA;
        return VKD_OK;
    }
    VKD_ERROR("unknown rng '%s' (expected cpu or cuda)", name ? name : "(null)");
    return VKD_ERR_INVALID_ARG;
}

const char *vkd_rng_name(vkd_rng_kind kind)
{
    return kind == VKD_RNG_CUDA ? "cuda" : "cpu";
}

vkd_result vkd_rng_create(vkd_rng_kind kind, uint64_t seed, vkd_rng **out)
{
    if (!out)
        return VKD_ERR_INVALID_ARG;
    *out = NULL;
    if (kind != VKD_RNG_CPU && kind != VKD_RNG_CUDA) {
        VKD_ERROR("rng: unknown generator kind %d", (int)kind);
        return VKD_ERR_INVALID_ARG;
    }
    vkd_rng *rng = calloc(1, sizeof *rng);
    if (!rng)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    rng->kind = kind;
    rng->seed = seed;
    if (kind == VKD_RNG_CPU)
        mt_seed(&rng->mt, (uint32_t)(seed & 0xffffffffu));
    *out = rng;
    return VKD_OK;
}

void vkd_rng_destroy(vkd_rng *rng)
{
    free(rng);
}

static void randn_cpu(vkd_rng *rng, float *out, size_t n)
{
    if (n >= 16) {
        for (size_t i = 0; i < n; i++)
            out[i] = uniform_f32(&rng->mt);
        for (size_t i = 0; i + 16 <= n; i += 16)
            normal_fill_16(out + i);
        if (n % 16 != 0) {
            float *tail = out + n - 16;
            for (int i = 0; i < 16; i++)
                tail[i] = uniform_f32(&rng->mt);
            normal_fill_16(tail);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (rng->has_cached_normal) {
            rng->has_cached_normal = 0;
            out[i] = (float)rng->cached_normal;
            continue;
        }
        double u1 = uniform_f64(&rng->mt);
        double u2 = uniform_f64(&rng->mt);
        double r = sqrt(-2.0 * log1p(-u2));
        double theta = 2.0 * 3.14159265358979323846 * u1;
        rng->cached_normal = r * sin(theta);
        rng->has_cached_normal = 1;
        out[i] = (float)(r * cos(theta));
    }
}

static void randn_cuda(vkd_rng *rng, float *out, size_t n)
{
    const double a = (double)2.3283064e-10f;
    const double b = (double)(float)(2.3283064e-10 * 6.2831855);
    const double a_half = (double)(2.3283064e-10f / 2.0f);
    const double b_half = (double)((float)(2.3283064e-10 * 6.2831855) / 2.0f);
    uint32_t k0 = (uint32_t)(rng->seed & 0xffffffffu);
    uint32_t k1 = (uint32_t)(rng->seed >> 32);
    for (size_t i = 0; i < n; i++) {
        /* A1111 keeps the index in one 32-bit word (np.arange(n, dtype=uint32)) */
        uint32_t c[4] = {rng->offset, 0, (uint32_t)i, 0};
        philox4x32_10(c, k0, k1);
        double u = (double)c[0] * a + a_half;
        double v = (double)c[1] * b + b_half;
        double s = sqrt(-2.0 * log(u));
        out[i] = (float)(s * sin(v));
    }
    rng->offset++;
}

vkd_result vkd_rng_randn(vkd_rng *rng, float *out, size_t n)
{
    if (!rng || (n > 0 && !out)) {
        VKD_ERROR("rng: randn called with a NULL %s", rng ? "output" : "generator");
        return VKD_ERR_INVALID_ARG;
    }
    if (rng->kind == VKD_RNG_CUDA && n > UINT32_MAX) {
        VKD_ERROR("rng: cuda generator draws at most 2^32 values per call (asked %zu)", n);
        return VKD_ERR_INVALID_ARG;
    }
    if (rng->kind == VKD_RNG_CPU)
        randn_cpu(rng, out, n);
    else
        randn_cuda(rng, out, n);
    return VKD_OK;
}

static uint64_t splitmix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

uint64_t vkd_seed_random(void)
{
    /* Sources every platform offers: wall clock, processor clock, a stack and a heap
     * address (ASLR) and a call counter, so two calls in the same second differ. */
    static _Atomic uint64_t counter; /* contexts may call this from several threads */
    int local = 0;
    void *heap = malloc(1);
    uint64_t h = splitmix64(vkd_clock_wall_ns());
    h = splitmix64(h ^ (uint64_t)clock());
    h = splitmix64(h ^ (uint64_t)(uintptr_t)&local);
    h = splitmix64(h ^ (uint64_t)(uintptr_t)heap);
    h = splitmix64(h ^ (atomic_fetch_add(&counter, 1) + 1));
    free(heap);
    return h % UINT64_C(4294967295);
}
