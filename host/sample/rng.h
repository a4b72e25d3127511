/* Noise generators that reproduce the reference implementations' torch.randn.
 *
 *   cpu   torch.randn(n, generator=torch.Generator().manual_seed(seed)) on the CPU
 *         (mt19937; what ComfyUI and A1111's "CPU" setting use)
 *   cuda  torch.randn(n, device="cuda") after torch.manual_seed(seed) (Philox4x32-10),
 *         as A1111's modules/rng_philox.py imitates it (A1111's default "GPU" seed)
 *
 * A generator is a stream: each vkd_rng_randn call is one torch.randn call of n
 * elements, and consecutive calls continue where the last one stopped, as
 * consecutive torch.randn calls on the same generator do. */
#ifndef VKD_SAMPLE_RNG_H
#define VKD_SAMPLE_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"

typedef enum vkd_rng_kind { VKD_RNG_CPU = 0, VKD_RNG_CUDA = 1 } vkd_rng_kind;

typedef struct vkd_rng vkd_rng;

/* "cpu" / "cuda" -> kind. VKD_ERR_INVALID_ARG (and a logged message) otherwise. */
vkd_result vkd_rng_parse(const char *name, vkd_rng_kind *out);
const char *vkd_rng_name(vkd_rng_kind kind);

/* *out receives a new generator seeded with seed (the cpu generator uses its low
 * 32 bits, as torch's mt19937 does). Free with vkd_rng_destroy. */
vkd_result vkd_rng_create(vkd_rng_kind kind, uint64_t seed, vkd_rng **out);
void vkd_rng_destroy(vkd_rng *rng);   /* NULL is fine */

/* out[n] <- the next torch.randn(n) of this stream (float32). n may be 0. */
vkd_result vkd_rng_randn(vkd_rng *rng, float *out, size_t n);

/* A seed for "--seed -1": in [0, 2^32 - 1) like A1111's, mixed from the clock and
 * addresses (portable C11; not cryptographic). Different on each call. */
uint64_t vkd_seed_random(void);

#endif
