/* Samplers: k-diffusion's sampling.py loops (euler, euler_ancestral, heun, dpmpp_2m,
 * lcm) and A1111's DDIM (modules/sd_samplers_timesteps_impl.py), driven by a denoiser
 * callback. Plain C, no GPU: the callback does the model work.
 *
 *   vkd_sample_params p = {.sampler = VKD_SAMPLER_EULER_A, .schedule = VKD_SCHEDULE_KARRAS,
 *                          .steps = 20, .table = &tab, .denoise = fn, .rng = rng};
 *   vkd_sample(&p, noise, x, n);       // x[n] <- the final latent
 *
 * Per-element arithmetic is float32, op by op in the order torch evaluates the
 * reference expressions, so results agree with it to rounding. */
#ifndef VKD_SAMPLE_SAMPLER_H
#define VKD_SAMPLE_SAMPLER_H

#include <stddef.h>

#include "common/result.h"
#include "sample/rng.h"
#include "sample/schedule.h"

typedef enum vkd_sampler_kind {
    VKD_SAMPLER_EULER = 0,
    VKD_SAMPLER_EULER_A = 1,    /* eta = 1, s_noise = 1 */
    VKD_SAMPLER_HEUN = 2,       /* 2 model calls per step, 1 on the last */
    VKD_SAMPLER_DPMPP_2M = 3,
    VKD_SAMPLER_DDIM = 4,       /* A1111's, eta = 0; ignores the schedule */
    VKD_SAMPLER_LCM = 5,
    /* sampler_extra.c and unipc.c: A1111's and ComfyUI's further samplers */
    VKD_SAMPLER_LMS = 6,            /* k-diffusion sample_lms, order 4 */
    VKD_SAMPLER_DPM2 = 7,           /* sample_dpm_2; A1111 drops the penultimate sigma */
    VKD_SAMPLER_DPM2_A = 8,         /* sample_dpm_2_ancestral, eta 1; likewise */
    VKD_SAMPLER_DPMPP_2S_A = 9,     /* sample_dpmpp_2s_ancestral, eta 1 */
    VKD_SAMPLER_DPMPP_SDE = 10,     /* sample_dpmpp_sde, eta 1, r 1/2 */
    VKD_SAMPLER_DPMPP_2M_SDE = 11,  /* sample_dpmpp_2m_sde, midpoint, eta 1 */
    VKD_SAMPLER_DPMPP_2M_SDE_HEUN = 12, /* the same, solver_type heun */
    VKD_SAMPLER_DPMPP_3M_SDE = 13,  /* sample_dpmpp_3m_sde, eta 1; A1111 drops the penultimate sigma */
    VKD_SAMPLER_UNI_PC = 14,        /* ComfyUI uni_pc (bh1), order 3 */
    VKD_SAMPLER_UNI_PC_BH2 = 15,    /* ComfyUI uni_pc_bh2 */
    VKD_SAMPLER_RESTART = 16,       /* A1111 restart_sampler: Heun with restarts from 20 steps on */
} vkd_sampler_kind;

/* "euler", "euler_a", "heun", "dpm++2m", "ddim", "lcm", "lms", ... (sampler.c's list) -> kind */
vkd_result vkd_sampler_parse(const char *name, vkd_sampler_kind *out);
const char *vkd_sampler_name(vkd_sampler_kind kind);
/* 1 for the samplers that draw noise after the start (they need vkd_sample_params.rng) */
int vkd_sampler_is_stochastic(vkd_sampler_kind kind);
/* 1 for the samplers run with a discarded penultimate sigma: A1111's discard_next_to_last_sigma
 * (DPM2, DPM2 a, DPM++ 3M SDE) and ComfyUI's KSampler for uni_pc / uni_pc_bh2 */
int vkd_sampler_discards_penultimate(vkd_sampler_kind kind);

/* Returns denoised[n], the clean-latent estimate for the noisy latent x[n] at noise
 * level sigma (k-diffusion convention: x = x0 + sigma * noise). The callback scales
 * the UNet input by vkd_c_in(sigma), passes t = vkd_sigma_to_t(sigma), applies
 * guidance and turns the prediction into denoised (vkd_denoised_from_output).
 * Anything but VKD_OK stops the sampler, which returns that value. */
typedef vkd_result (*vkd_denoise_fn)(void *user, const float *x, float sigma, float *denoised, size_t n);

/* Called after each step with step = 1..total; nonzero cancels (VKD_ERR_CANCELLED). */
typedef int (*vkd_progress_fn)(void *user, int step, int total);

typedef struct vkd_sample_params {
    vkd_sampler_kind sampler;
    vkd_schedule schedule;          /* not used by ddim */
    int steps;                      /* 1..VKD_MAX_STEPS */
    const vkd_noise_table *table;
    vkd_denoise_fn denoise;
    void *denoise_user;
    vkd_rng *rng;                   /* noise for euler_a and lcm (one randn(n) per step); may be
                                       NULL for the others */
    vkd_progress_fn progress;       /* optional */
    void *progress_user;
    /* img2img: start `first` noise levels into the schedule (A1111's cut: sigma_sched =
     * sigmas[steps - t_enc - 1:]), from x = init + noise * sigma_first instead of
     * noise * sigma_0. 0 / NULL: txt2img. Not for ddim. */
    int first;
    const float *init;
    /* Called after every step with the latent at its new noise level sigma (inpainting
     * with an ordinary checkpoint blends the known region back in here); optional. */
    vkd_result (*after_step)(void *user, float *x, size_t n, float sigma);
    void *after_step_user;
} vkd_sample_params;

/* sigmas[*count] <- the noise levels the run visits, descending; cap is the room in
 * sigmas (VKD_MAX_STEPS + 2 always suffices). k-diffusion samplers: steps + 1 values
 * ending in 0. ddim: the table sigmas at A1111's timesteps (vkd_ddim_timesteps), the
 * last one non-zero, one step fewer than timesteps. The run takes *count - 1 steps. */
vkd_result vkd_sample_sigmas(const vkd_sample_params *p, float *sigmas, size_t cap, size_t *count);

/* x[n] <- the sampled latent, starting from noise[n] (a standard normal draw):
 * x = noise * sigma_0 for the k-diffusion samplers. ddim, like A1111, runs in the
 * variance-preserving scaling: it starts at x = noise and returns its latent at the
 * last timestep (t = 1) unscaled, which is what A1111 decodes. x may alias noise.
 * Scratch memory (a few n floats) is allocated and freed here. */
vkd_result vkd_sample(const vkd_sample_params *p, const float *noise, float *x, size_t n);

#endif
