#include "sample/schedule.h"

#include <math.h>
#include <string.h>

#include "common/log.h"
#include "sample/schedule_impl.h"

/* torch.linspace's CPU formula (RangeFactoriesKernel.cpp): the first half counts up
 * from start, the second half down from end, so both ends are exact. The AVX2 loop
 * forms lanes as base + i*step instead, which can differ by an ulp. */
float vkd_linspace_f32(float start, float end, int steps, int idx)
{
    if (steps == 1)
        return start;
    float step = (end - start) / (float)(steps - 1);
    if (idx < steps / 2)
        return start + step * (float)idx;
    return end - step * (float)(steps - idx - 1);
}

static double linspace_f64(double start, double end, int steps, int idx)
{
    double step = (end - start) / (double)(steps - 1);
    if (idx < steps / 2)
        return start + step * (double)idx;
    return end - step * (double)(steps - idx - 1);
}

void vkd_noise_table_init(vkd_noise_table *tab)
{
    /* CompVis ddpm.py register_schedule("linear"): float64 betas and cumprod, then
     * alphas_cumprod stored as float32; k-diffusion takes sigmas from that in float32. */
    double acp = 1.0;
    for (int t = 0; t < VKD_NUM_TIMESTEPS; t++) {
        double sqrt_beta = linspace_f64(sqrt(0.00085), sqrt(0.012), VKD_NUM_TIMESTEPS, t);
        acp *= 1.0 - sqrt_beta * sqrt_beta;
        float a = (float)acp;
        tab->alphas_cumprod[t] = a;
        tab->sigmas[t] = sqrtf((1.0f - a) / a);
        tab->log_sigmas[t] = logf(tab->sigmas[t]);
    }
}

float vkd_sigma_to_t(const vkd_noise_table *tab, float sigma)
{
    const float *ls = tab->log_sigmas;
    float log_sigma = logf(sigma);
    /* k-diffusion: low = the last index whose log-sigma is <= log_sigma (0 if none),
     * at most 998 so that high = low + 1 exists */
    int low = 0;
    for (int i = 0; i < VKD_NUM_TIMESTEPS; i++)
        if (log_sigma - ls[i] >= 0.0f)
            low = i;
    if (low > VKD_NUM_TIMESTEPS - 2)
        low = VKD_NUM_TIMESTEPS - 2;
    int high = low + 1;
    float w = (ls[low] - log_sigma) / (ls[low] - ls[high]);
    w = w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
    if (w != w)         /* NaN sigma: clamp(NaN) stays NaN in torch; pin it to t = 0 */
        w = 0.0f;
    return (1.0f - w) * (float)low + w * (float)high;
}

float vkd_t_to_sigma(const vkd_noise_table *tab, float t)
{
    if (!(t >= 0.0f))
        t = 0.0f;
    if (t > (float)(VKD_NUM_TIMESTEPS - 1))
        t = (float)(VKD_NUM_TIMESTEPS - 1);
    int low = (int)floorf(t), high = (int)ceilf(t);
    float w = t - truncf(t);
    float log_sigma = (1.0f - w) * tab->log_sigmas[low] + w * tab->log_sigmas[high];
    return expf(log_sigma);
}

static const char *const schedule_names[] = {"discrete",     "karras", "trailing",   "exponential", "polyexponential",
                                             "sgm_uniform",  "simple", "normal",     "ddim_uniform", "beta",
                                             "kl_optimal",   "ays",    "ays_sdxl"};
#define N_SCHEDULES ((int)(sizeof schedule_names / sizeof schedule_names[0]))

vkd_result vkd_schedule_parse(const char *name, vkd_schedule *out)
{
    for (int i = 0; name && i < N_SCHEDULES; i++) {
        if (strcmp(name, schedule_names[i]) == 0) {
            *out = (vkd_schedule)i;
            return VKD_OK;
        }
    }
    VKD_ERROR("unknown schedule '%s' (expected discrete, karras, trailing, exponential, polyexponential, "
              "sgm_uniform, simple, normal, ddim_uniform, beta, kl_optimal, ays or ays_sdxl)",
              name ? name : "(null)");
    return VKD_ERR_INVALID_ARG;
}

const char *vkd_schedule_name(vkd_schedule schedule)
{
    if ((unsigned)schedule < (unsigned)N_SCHEDULES)
        return schedule_names[schedule];
    return "unknown";
}

vkd_result vkd_schedule_sigmas(const vkd_noise_table *tab, vkd_schedule schedule, int steps, float *sigmas)
{
    size_t count = 0;
    vkd_result r = vkd_schedule_sigmas_n(tab, schedule, steps, sigmas, (size_t)steps + 1, &count);
    if (r == VKD_OK && count != (size_t)steps + 1) {
        VKD_ERROR("schedule: %s gave %zu sigmas for %d steps", vkd_schedule_name(schedule), count, steps);
        return VKD_ERR_INVALID_ARG;
    }
    return r;
}

vkd_result vkd_schedule_sigmas_n(const vkd_noise_table *tab, vkd_schedule schedule, int steps, float *sigmas,
                                 size_t cap, size_t *count)
{
    if (!tab || !sigmas) {
        VKD_ERROR("schedule: NULL table or output");
        return VKD_ERR_INVALID_ARG;
    }
    if (steps < 1 || steps > VKD_MAX_STEPS) {
        VKD_ERROR("schedule: steps must be 1..%d (got %d)", VKD_MAX_STEPS, steps);
        return VKD_ERR_INVALID_ARG;
    }
    if (!count || cap < (size_t)steps + 1) {
        VKD_ERROR("schedule: room for %zu sigmas, need %d", cap, steps + 1);
        return VKD_ERR_INVALID_ARG;
    }
    if ((unsigned)schedule > VKD_SCHEDULE_TRAILING)
        return vkd_schedule_extra(tab, schedule, steps, sigmas, cap, count);
    switch (schedule) {
    case VKD_SCHEDULE_DISCRETE:
        for (int i = 0; i < steps; i++)
            sigmas[i] = vkd_t_to_sigma(tab, vkd_linspace_f32((float)(VKD_NUM_TIMESTEPS - 1), 0.0f, steps, i));
        break;
    case VKD_SCHEDULE_KARRAS:
        vkd_karras_sigmas(vkd_sigma_min(tab), vkd_sigma_max(tab), steps, sigmas);
        break;
    case VKD_SCHEDULE_TRAILING: {
        /* diffusers set_timesteps, timestep_spacing="trailing": NumPy arange in float64
         * (element i = start + i * delta, delta = (start + step) - start), rounded half
         * to even, minus 1; sigma = the table entry (np.interp at an integer). */
        double step = (double)VKD_NUM_TIMESTEPS / steps;
        double start = VKD_NUM_TIMESTEPS;
        double delta = (start - step) - start;
        int n_ts = (int)ceil((0.0 - start) / -step);
        if (n_ts != steps) {
            VKD_ERROR("schedule: trailing spacing gave %d timesteps for %d steps", n_ts, steps);
            return VKD_ERR_INTERNAL;
        }
        for (int i = 0; i < steps; i++) {
            int t = (int)nearbyint(start + (double)i * delta) - 1;
            t = t < 0 ? 0 : (t > VKD_NUM_TIMESTEPS - 1 ? VKD_NUM_TIMESTEPS - 1 : t);
            sigmas[i] = tab->sigmas[t];
        }
        break;
    }
    default:
        VKD_ERROR("schedule: unknown schedule %d", (int)schedule);
        return VKD_ERR_INVALID_ARG;
    }
    sigmas[steps] = 0.0f;
    *count = (size_t)steps + 1;
    return VKD_OK;
}

void vkd_karras_sigmas(float sigma_min, float sigma_max, int n, float *sigmas)
{
    /* A1111 passes sigma_min/max as Python floats; the exponents are float64,
     * the ramp and the rest float32 like the tensors they become. */
    const double rho = 7.0;
    double min_inv_rho = pow((double)sigma_min, 1.0 / rho);
    double max_inv_rho = pow((double)sigma_max, 1.0 / rho);
    float span = (float)(min_inv_rho - max_inv_rho);
    for (int i = 0; i < n; i++) {
        float ramp = vkd_linspace_f32(0.0f, 1.0f, n, i);
        sigmas[i] = powf((float)max_inv_rho + ramp * span, (float)rho);
    }
    sigmas[n] = 0.0f;
}

vkd_result vkd_ddim_timesteps(int steps, int *timesteps, int *count)
{
    if (!timesteps || !count) {
        VKD_ERROR("ddim: NULL output");
        return VKD_ERR_INVALID_ARG;
    }
    if (steps < 1 || steps > VKD_MAX_STEPS) {
        VKD_ERROR("ddim: steps must be 1..%d (got %d)", VKD_MAX_STEPS, steps);
        return VKD_ERR_INVALID_ARG;
    }
    int stride = VKD_NUM_TIMESTEPS / steps;
    int n = 0;
    for (int t = 0; t < VKD_NUM_TIMESTEPS; t += stride) {
        int v = t + 1;
        timesteps[n++] = v > VKD_NUM_TIMESTEPS - 1 ? VKD_NUM_TIMESTEPS - 1 : v;
    }
    *count = n;
    return VKD_OK;
}

/* ---- model wrapper ---------------------------------------------------------------- */

static const char *const prediction_names[] = {"eps", "v"};

vkd_result vkd_prediction_parse(const char *name, vkd_prediction *out)
{
    for (int i = 0; name && i < 2; i++) {
        if (strcmp(name, prediction_names[i]) == 0) {
            *out = (vkd_prediction)i;
            return VKD_OK;
        }
    }
    VKD_ERROR("unknown prediction '%s' (expected eps or v)", name ? name : "(null)");
    return VKD_ERR_INVALID_ARG;
}

const char *vkd_prediction_name(vkd_prediction pred)
{
    return (unsigned)pred < 2 ? prediction_names[pred] : "unknown";
}

float vkd_c_in(float sigma)
{
    return 1.0f / sqrtf(sigma * sigma + 1.0f);
}

void vkd_denoised_from_output(vkd_prediction pred, float sigma, const float *x, const float *out, float *denoised,
                              size_t n)
{
    if (pred == VKD_PREDICTION_V) {
        /* DiscreteVDDPMDenoiser with sigma_data = 1: out * c_out + x * c_skip */
        float s2 = sigma * sigma + 1.0f;
        float c_skip = 1.0f / s2;
        float c_out = -sigma / sqrtf(s2);
        for (size_t i = 0; i < n; i++)
            denoised[i] = out[i] * c_out + x[i] * c_skip;
    } else {
        /* DiscreteEpsDDPMDenoiser: x + eps * c_out, c_out = -sigma */
        float c_out = -sigma;
        for (size_t i = 0; i < n; i++)
            denoised[i] = x[i] + out[i] * c_out;
    }
}

void vkd_cfg_mix(const float *cond, const float *uncond, float scale, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = uncond[i] + (cond[i] - uncond[i]) * scale;
}
