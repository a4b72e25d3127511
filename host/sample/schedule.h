/* Noise schedule of the SD 1.x / 2.x family and the k-diffusion model-wrapper math.
 *
 * Conventions are k-diffusion's (external.py DiscreteSchedule, CompVisDenoiser,
 * DiscreteEpsDDPMDenoiser, DiscreteVDDPMDenoiser; sampling.py get_sigmas_karras):
 * a sampler works on x = x0 + sigma * noise and asks the model for denoised(x, sigma).
 *
 * Precision: CompVis computes the betas and alphas_cumprod in float64 and registers
 * alphas_cumprod as a float32 buffer; k-diffusion derives sigmas, log-sigmas and every
 * schedule from it in float32. So the table and the schedule sigmas here are float,
 * computed op by op as torch does, and match the reference to an ulp or so. */
#ifndef VKD_SAMPLE_SCHEDULE_H
#define VKD_SAMPLE_SCHEDULE_H

#include <stddef.h>

#include "common/result.h"

#define VKD_NUM_TIMESTEPS 1000
#define VKD_MAX_STEPS 1000          /* a sampler run takes 1..VKD_MAX_STEPS steps */

/* the 1000-entry training schedule; index t = timestep */
typedef struct vkd_noise_table {
    float alphas_cumprod[VKD_NUM_TIMESTEPS];   /* prod(1 - beta), falls with t */
    float sigmas[VKD_NUM_TIMESTEPS];           /* sqrt((1 - acp) / acp), rises with t */
    float log_sigmas[VKD_NUM_TIMESTEPS];
} vkd_noise_table;

/* Fills *tab with the scaled-linear schedule every SD 1.x / 2.x checkpoint uses:
 * beta = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2. */
void vkd_noise_table_init(vkd_noise_table *tab);

static inline float vkd_sigma_min(const vkd_noise_table *tab) { return tab->sigmas[0]; }
static inline float vkd_sigma_max(const vkd_noise_table *tab) { return tab->sigmas[VKD_NUM_TIMESTEPS - 1]; }

/* Continuous timestep of a sigma: linear interpolation of log sigma between the two
 * neighbouring table entries, clamped to [0, 999] (k-diffusion sigma_to_t,
 * quantize=False). */
float vkd_sigma_to_t(const vkd_noise_table *tab, float sigma);
/* Inverse: exp of the log-sigma interpolated at t; t is clamped to [0, 999]. */
float vkd_t_to_sigma(const vkd_noise_table *tab, float t);

typedef enum vkd_schedule {
    VKD_SCHEDULE_DISCRETE = 0,  /* sigma(t) at t = linspace(999, 0, n) (CompVisDenoiser.get_sigmas) */
    VKD_SCHEDULE_KARRAS = 1,    /* Karras et al. rho = 7 between the table's sigma_min and sigma_max */
    VKD_SCHEDULE_TRAILING = 2,  /* diffusers "trailing" timesteps: round(arange(1000, 0, -1000/n)) - 1
                                   (SD-Turbo: 1 step at t = 999) */
    /* A1111 (modules/sd_schedulers.py) and ComfyUI (comfy/samplers.py), schedule_extra.c: */
    VKD_SCHEDULE_EXPONENTIAL = 3,     /* k-diffusion get_sigmas_exponential */
    VKD_SCHEDULE_POLYEXPONENTIAL = 4, /* k-diffusion get_sigmas_polyexponential, rho = 1 */
    VKD_SCHEDULE_SGM_UNIFORM = 5,     /* sigma(t), t = linspace(999, 0, n + 1) without its last */
    VKD_SCHEDULE_SIMPLE = 6,          /* every (1000 / n)-th table sigma from the top */
    VKD_SCHEDULE_NORMAL = 7,          /* ComfyUI's normal_scheduler: the discrete schedule's values */
    VKD_SCHEDULE_DDIM_UNIFORM = 8,    /* table sigmas 1, 1 + 1000 // n, ...: n or a few more steps */
    VKD_SCHEDULE_BETA = 9,            /* ComfyUI's: Beta(0.6, 0.6) quantiles of the timesteps; repeats
                                         dropped, so at most n steps */
    VKD_SCHEDULE_KL_OPTIMAL = 10,     /* ComfyUI's: tan of atan(sigma) spaced evenly */
    VKD_SCHEDULE_AYS = 11,            /* Align Your Steps, NVIDIA's SD1.5 table (A1111's interpolation) */
    VKD_SCHEDULE_AYS_SDXL = 12,       /* Align Your Steps, the SDXL table */
} vkd_schedule;

/* "discrete", "karras", ... (the names in schedule.c) -> value; VKD_ERR_INVALID_ARG and a message otherwise */
vkd_result vkd_schedule_parse(const char *name, vkd_schedule *out);
const char *vkd_schedule_name(vkd_schedule schedule);

/* sigmas[steps + 1] <- the schedule's descending sigmas, with 0 appended.
 * steps must be in 1..VKD_MAX_STEPS. */
vkd_result vkd_schedule_sigmas(const vkd_noise_table *tab, vkd_schedule schedule, int steps, float *sigmas);
/* Every schedule: sigmas[*count] (descending, 0 last), cap >= steps + 1 entries of room;
 * ddim_uniform and beta can give other counts than steps + 1 (VKD_MAX_STEPS + 2 always suffices). */
vkd_result vkd_schedule_sigmas_n(const vkd_noise_table *tab, vkd_schedule schedule, int steps, float *sigmas,
                                 size_t cap, size_t *count);

/* A1111's DDIM timesteps (sd_samplers_timesteps.py get_timesteps):
 * clip(range(0, 1000, 1000 // steps) + 1, 0, 999), ascending. *count receives how
 * many (steps or a few more when 1000 % steps != 0; at most VKD_MAX_STEPS + 1);
 * timesteps needs room for VKD_MAX_STEPS + 1 entries. */
vkd_result vkd_ddim_timesteps(int steps, int *timesteps, int *count);

/* ---- model wrapper ---------------------------------------------------------------- */

typedef enum vkd_prediction {
    VKD_PREDICTION_EPS = 0,     /* the UNet predicts the noise (SD 1.x, SD 2.x base, SD-Turbo) */
    VKD_PREDICTION_V = 1,       /* the UNet predicts v (SD 2.x 768) */
} vkd_prediction;

vkd_result vkd_prediction_parse(const char *name, vkd_prediction *out);   /* "eps" / "v" */
const char *vkd_prediction_name(vkd_prediction pred);

/* Scale of the UNet input: x_in = x * c_in, c_in = 1 / sqrt(sigma^2 + 1). */
float vkd_c_in(float sigma);

/* denoised[n] <- the clean-image estimate from the model output out[n] at noisy x[n]:
 *   eps: x - sigma * eps
 *   v:   x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1)
 * denoised may alias x or out. */
void vkd_denoised_from_output(vkd_prediction pred, float sigma, const float *x, const float *out, float *denoised,
                              size_t n);

/* out[n] <- uncond + scale * (cond - uncond) (classifier-free guidance; out may alias) */
void vkd_cfg_mix(const float *cond, const float *uncond, float scale, float *out, size_t n);

#endif
