#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sample/sampler_impl.h"
#include "sample/schedule_impl.h"

static const char *const sampler_names[] = {"euler",     "euler_a",     "heun",        "dpm++2m",
                                            "ddim",      "lcm",         "lms",         "dpm2",
                                            "dpm2_a",    "dpm++2s_a",   "dpm++sde",    "dpm++2m_sde",
                                            "dpm++2m_sde_heun", "dpm++3m_sde", "uni_pc", "uni_pc_bh2",
                                            "restart"};
#define N_SAMPLERS ((int)(sizeof sampler_names / sizeof sampler_names[0]))

vkd_result vkd_sampler_parse(const char *name, vkd_sampler_kind *out)
{
    for (int i = 0; name && i < N_SAMPLERS; i++) {
        if (strcmp(name, sampler_names[i]) == 0) {
            *out = (vkd_sampler_kind)i;
            return VKD_OK;
        }
    }
    VKD_ERROR("unknown sampler '%s' (expected euler, euler_a, heun, dpm++2m, ddim, lcm, lms, dpm2, dpm2_a, "
              "dpm++2s_a, dpm++sde, dpm++2m_sde, dpm++2m_sde_heun, dpm++3m_sde, uni_pc, uni_pc_bh2 or restart)",
              name ? name : "(null)");
    return VKD_ERR_INVALID_ARG;
}

const char *vkd_sampler_name(vkd_sampler_kind kind)
{
    return (unsigned)kind < (unsigned)N_SAMPLERS ? sampler_names[kind] : "unknown";
}

static vkd_result check_params(const vkd_sample_params *p)
{
    if (!p || !p->table) {
        VKD_ERROR("sampler: NULL parameters or noise table");
        return VKD_ERR_INVALID_ARG;
    }
    if ((unsigned)p->sampler >= (unsigned)N_SAMPLERS) {
        VKD_ERROR("sampler: unknown sampler %d", (int)p->sampler);
        return VKD_ERR_INVALID_ARG;
    }
    if (p->steps < 1 || p->steps > VKD_MAX_STEPS) {
        VKD_ERROR("sampler: steps must be 1..%d (got %d)", VKD_MAX_STEPS, p->steps);
        return VKD_ERR_INVALID_ARG;
    }
    if (p->first < 0 || p->first >= p->steps || (p->first && p->sampler == VKD_SAMPLER_DDIM)) {
        VKD_ERROR("sampler: cannot start at noise level %d of %d steps%s", p->first, p->steps,
                  p->sampler == VKD_SAMPLER_DDIM ? " with ddim (img2img takes the k-diffusion samplers)" : "");
        return VKD_ERR_INVALID_ARG;
    }
    return VKD_OK;
}

vkd_result vkd_sample_sigmas(const vkd_sample_params *p, float *sigmas, size_t cap, size_t *count)
{
    vkd_result r = check_params(p);
    if (r != VKD_OK)
        return r;
    if (!sigmas || !count) {
        VKD_ERROR("sampler: NULL sigma output");
        return VKD_ERR_INVALID_ARG;
    }
    if (p->sampler == VKD_SAMPLER_DDIM) {
        int ts[VKD_MAX_STEPS + 1], m = 0;
        r = vkd_ddim_timesteps(p->steps, ts, &m);
        if (r != VKD_OK)
            return r;
        if (cap < (size_t)m) {
            VKD_ERROR("sampler: room for %zu sigmas, need %d", cap, m);
            return VKD_ERR_INVALID_ARG;
        }
        for (int i = 0; i < m; i++)
            sigmas[i] = p->table->sigmas[ts[m - 1 - i]];
        *count = (size_t)m;
        return VKD_OK;
    }
    /* A1111 (sd_samplers_kdiffusion.py): DPM2, DPM2 a and DPM++ 3M SDE set
     * discard_next_to_last_sigma: the schedule is made for one step more and its
     * next-to-last sigma dropped, so the run still takes `steps` steps */
    int discard = vkd_sampler_discards_penultimate(p->sampler);
    float all[VKD_MAX_STEPS + 3];
    size_t m = 0;
    r = vkd_schedule_sigmas_n(p->table, p->schedule, p->steps + discard, all, sizeof all / sizeof all[0], &m);
    if (r != VKD_OK)
        return r;
    if (discard && m >= 2) {
        all[m - 2] = all[m - 1];
        m--;
    }
    /* img2img: the schedule's tail from `first` (A1111: sigmas[steps - t_enc - 1:]) */
    if ((size_t)p->first + 2 > m) {
        VKD_ERROR("sampler: cannot start at noise level %d of a %zu-sigma schedule", p->first, m);
        return VKD_ERR_INVALID_ARG;
    }
    m -= (size_t)p->first;
    if (cap < m) {
        VKD_ERROR("sampler: room for %zu sigmas, need %zu", cap, m);
        return VKD_ERR_INVALID_ARG;
    }
    memcpy(sigmas, all + p->first, m * sizeof *sigmas);
    *count = m;
    return VKD_OK;
}

int vkd_sampler_discards_penultimate(vkd_sampler_kind kind)
{
    /* A1111 for its samplers; ComfyUI's KSampler for uni_pc (its DISCARD_PENULTIMATE_SIGMA_SAMPLERS),
     * whose implementation vkdiff runs */
    return kind == VKD_SAMPLER_DPM2 || kind == VKD_SAMPLER_DPM2_A || kind == VKD_SAMPLER_DPMPP_3M_SDE ||
           kind == VKD_SAMPLER_UNI_PC || kind == VKD_SAMPLER_UNI_PC_BH2;
}

int vkd_sampler_is_stochastic(vkd_sampler_kind kind)
{
    switch (kind) {
    case VKD_SAMPLER_EULER_A: case VKD_SAMPLER_LCM: case VKD_SAMPLER_DPM2_A: case VKD_SAMPLER_DPMPP_2S_A:
    case VKD_SAMPLER_DPMPP_SDE: case VKD_SAMPLER_DPMPP_2M_SDE: case VKD_SAMPLER_DPMPP_2M_SDE_HEUN:
    case VKD_SAMPLER_DPMPP_3M_SDE: case VKD_SAMPLER_RESTART:
        return 1;
    default:
        return 0;
    }
}

/* ---- one run ---------------------------------------------------------------------- */

typedef vkd_run run;

vkd_result vkd_run_model(vkd_run *s, const float *x, float sigma, float *den)
{
    vkd_result r = s->p->denoise(s->p->denoise_user, x, sigma, den, s->n);
    if (r != VKD_OK)
        VKD_ERROR("sampler: the denoiser failed at sigma %g: %s", (double)sigma, vkd_result_str(r));
    return r;
}

vkd_result vkd_run_report(vkd_run *s, int step, float sigma)
{
    if (s->p->after_step) {
        vkd_result r = s->p->after_step(s->p->after_step_user, s->x, s->n, sigma);
        if (r != VKD_OK)
            return r;
    }
    if (s->p->progress && s->p->progress(s->p->progress_user, step, s->n_steps) != 0) {
        VKD_INFO("sampler: cancelled after step %d of %d", step, s->n_steps);
        return VKD_ERR_CANCELLED;
    }
    return VKD_OK;
}

vkd_result vkd_run_noise(vkd_run *s, float *out)
{
    vkd_result r = vkd_rng_randn(s->p->rng, out, s->n);
    if (r != VKD_OK)
        VKD_ERROR("sampler: drawing step noise failed");
    return r;
}

#define call_model vkd_run_model
#define draw_noise vkd_run_noise
#define report(s, step) vkd_run_report((s), (step), (s)->sigmas[(step)])

/* k-diffusion sample_euler with s_churn = 0 (so sigma_hat = sigma) */
static vkd_result run_euler(run *s)
{
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i];
        vkd_result r = call_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        float dt = s->sigmas[i + 1] - sigma;
        for (size_t k = 0; k < s->n; k++) {
            float d = (s->x[k] - s->den[k]) / sigma;
            s->x[k] = s->x[k] + d * dt;
        }
        if ((r = report(s, i + 1)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* k-diffusion sample_euler_ancestral, eta = 1, s_noise = 1: step down to sigma_down
 * deterministically, then add sigma_up of fresh noise (none after the last step). */
static vkd_result run_euler_a(run *s)
{
    for (int i = 0; i < s->n_steps; i++) {
        float from = s->sigmas[i], to = s->sigmas[i + 1];
        vkd_result r = call_model(s, s->x, from, s->den);
        if (r != VKD_OK)
            return r;
        /* get_ancestral_step, in float32 like the 0-d tensors it gets */
        float up = sqrtf(to * to * (from * from - to * to) / (from * from));
        if (up > to)
            up = to;
        float down = sqrtf(to * to - up * up);
        float dt = down - from;
        for (size_t k = 0; k < s->n; k++) {
            float d = (s->x[k] - s->den[k]) / from;
            s->x[k] = s->x[k] + d * dt;
        }
        if (to > 0.0f) {
            if ((r = draw_noise(s, s->aux)) != VKD_OK)
                return r;
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = s->x[k] + s->aux[k] * up;
        }
        if ((r = report(s, i + 1)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* k-diffusion sample_heun with s_churn = 0: Heun's method, Euler on the step to 0 */
static vkd_result run_heun(run *s)
{
    float *d = s->aux, *x2 = s->aux2;
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        vkd_result r = call_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        float dt = next - sigma;
        for (size_t k = 0; k < s->n; k++)
            d[k] = (s->x[k] - s->den[k]) / sigma;
        if (next == 0.0f) {
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = s->x[k] + d[k] * dt;
        } else {
            for (size_t k = 0; k < s->n; k++)
                x2[k] = s->x[k] + d[k] * dt;
            /* den is free again: it receives denoised_2 */
            if ((r = call_model(s, x2, next, s->den)) != VKD_OK)
                return r;
            for (size_t k = 0; k < s->n; k++) {
                float d2 = (x2[k] - s->den[k]) / next;
                float d_prime = (d[k] + d2) / 2.0f;
                s->x[k] = s->x[k] + d_prime * dt;
            }
        }
        if ((r = report(s, i + 1)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* k-diffusion sample_dpmpp_2m: with t = -log sigma, first-order on the first step and
 * on the step to 0, else the two-step extrapolation of denoised. */
static vkd_result run_dpmpp_2m(run *s)
{
    float *old = s->aux;
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        vkd_result r = call_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        float t = -logf(sigma);
        float t_next = -logf(next);   /* +inf at sigma 0: ratio 0, expm1(-inf) = -1 -> x = denoised */
        float h = t_next - t;
        float ratio = expf(-t_next) / expf(-t);
        float em = expm1f(-h);
        if (i == 0 || next == 0.0f) {
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = ratio * s->x[k] - em * s->den[k];
        } else {
            float h_last = t - -logf(s->sigmas[i - 1]);
            float r_ = h_last / h;
            float c_old = 1.0f / (2.0f * r_);
            float c_new = 1.0f + c_old;
            for (size_t k = 0; k < s->n; k++) {
                float den_d = c_new * s->den[k] - c_old * old[k];
                s->x[k] = ratio * s->x[k] - em * den_d;
            }
        }
        memcpy(old, s->den, s->n * sizeof *old);
        if ((r = report(s, i + 1)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* k-diffusion / ComfyUI sample_lcm: jump to denoised, re-noise to the next sigma */
static vkd_result run_lcm(run *s)
{
    for (int i = 0; i < s->n_steps; i++) {
        float next = s->sigmas[i + 1];
        vkd_result r = call_model(s, s->x, s->sigmas[i], s->den);
        if (r != VKD_OK)
            return r;
        memcpy(s->x, s->den, s->n * sizeof *s->x);
        if (next > 0.0f) {
            if ((r = draw_noise(s, s->aux)) != VKD_OK)
                return r;
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = s->x[k] + next * s->aux[k];
        }
        if ((r = report(s, i + 1)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* A1111 sd_samplers_timesteps_impl.ddim with eta = 0, in its variance-preserving
 * scaling: x_vp = x / sqrt(sigma^2 + 1). The model is reached through the same
 * k-diffusion-style callback: x_vp is lifted to sigma's scaling, and eps is recovered
 * from denoised as (x - denoised) / sigma, which equals A1111's eps (for v models too:
 * sqrt(acp) v + sqrt(1 - acp) x_vp). Each step moves from timestep ts[j] to ts[j-1];
 * the last one lands on ts[0] = 1, not on 0. */
static vkd_result run_ddim(run *s, const int *ts)
{
    const vkd_noise_table *tab = s->p->table;
    float *lifted = s->aux;
    for (int i = 0; i < s->n_steps; i++) {
        int index = s->n_steps - i;   /* into ts: n_steps + 1 timesteps */
        float sigma = tab->sigmas[ts[index]];
        float a_t = tab->alphas_cumprod[ts[index]];
        float a_prev = tab->alphas_cumprod[ts[index - 1]];
        float sqrt_one_minus_at = sqrtf(1.0f - a_t);
        float sqrt_at = sqrtf(a_t), sqrt_a_prev = sqrtf(a_prev);
        float dir_scale = sqrtf(1.0f - a_prev);       /* sigma_t = 0 at eta = 0 */
        float lift = sqrtf(sigma * sigma + 1.0f);
        for (size_t k = 0; k < s->n; k++)
            lifted[k] = s->x[k] * lift;
        vkd_result r = call_model(s, lifted, sigma, s->den);
        if (r != VKD_OK)
            return r;
        for (size_t k = 0; k < s->n; k++) {
            float e_t = (lifted[k] - s->den[k]) / sigma;
            float pred_x0 = (s->x[k] - sqrt_one_minus_at * e_t) / sqrt_at;
            float dir_xt = dir_scale * e_t;
            s->x[k] = sqrt_a_prev * pred_x0 + dir_xt;
        }
        if ((r = report(s, i + 1)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

vkd_result vkd_sample(const vkd_sample_params *p, const float *noise, float *x, size_t n)
{
    vkd_result r = check_params(p);
    if (r != VKD_OK)
        return r;
    if (!p->denoise) {
        VKD_ERROR("sampler: no denoiser callback");
        return VKD_ERR_INVALID_ARG;
    }
    if (n == 0 || !noise || !x) {
        VKD_ERROR("sampler: empty or NULL latent");
        return VKD_ERR_INVALID_ARG;
    }
    if (vkd_sampler_is_stochastic(p->sampler) && !p->rng) {
        VKD_ERROR("sampler: %s needs a noise generator", vkd_sampler_name(p->sampler));
        return VKD_ERR_INVALID_ARG;
    }
    if (n > SIZE_MAX / ((3 + VKD_RUN_EXTRA) * sizeof(float))) {
        VKD_ERROR("sampler: latent of %zu elements is too large", n);
        return VKD_ERR_INVALID_ARG;
    }

    float sigmas[VKD_MAX_STEPS + 3];
    size_t count = 0;
    if ((r = vkd_sample_sigmas(p, sigmas, sizeof sigmas / sizeof sigmas[0], &count)) != VKD_OK)
        return r;

    run s = {.p = p, .sigmas = sigmas, .n_steps = (int)count - 1, .n = n, .x = x};
    /* the first six samplers need 3 vectors, LMS and the multistep ones more */
    size_t nvec = p->sampler <= VKD_SAMPLER_LCM ? 3 : 3 + VKD_RUN_EXTRA;
    float *scratch = malloc(nvec * n * sizeof(float));
    if (!scratch) {
        VKD_ERROR("sampler: out of memory for %zu-element scratch", nvec * n);
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    }
    s.den = scratch;
    s.aux = scratch + n;
    s.aux2 = scratch + 2 * n;
    for (size_t e = 0; e + 3 < nvec; e++)
        s.extra[e] = scratch + (3 + e) * n;

    if (p->sampler == VKD_SAMPLER_DDIM) {
        int ts[VKD_MAX_STEPS + 1], m = 0;
        if ((r = vkd_ddim_timesteps(p->steps, ts, &m)) == VKD_OK) {
            memmove(x, noise, n * sizeof *x);
            r = s.n_steps > 0 ? run_ddim(&s, ts) : VKD_OK;
        }
        free(scratch);
        return r;
    }

    for (size_t k = 0; k < n; k++) /* img2img: the image's latent plus noise at the first level */
        x[k] = p->init ? p->init[k] + noise[k] * sigmas[0] : noise[k] * sigmas[0];
    switch (p->sampler) {
    case VKD_SAMPLER_EULER: r = run_euler(&s); break;
    case VKD_SAMPLER_EULER_A: r = run_euler_a(&s); break;
    case VKD_SAMPLER_HEUN: r = run_heun(&s); break;
    case VKD_SAMPLER_DPMPP_2M: r = run_dpmpp_2m(&s); break;
    case VKD_SAMPLER_LCM: r = run_lcm(&s); break;
    case VKD_SAMPLER_LMS: r = vkd_run_lms(&s); break;
    case VKD_SAMPLER_DPM2: r = vkd_run_dpm2(&s); break;
    case VKD_SAMPLER_DPM2_A: r = vkd_run_dpm2_a(&s); break;
    case VKD_SAMPLER_DPMPP_2S_A: r = vkd_run_dpmpp_2s_a(&s); break;
    case VKD_SAMPLER_DPMPP_SDE: r = vkd_run_dpmpp_sde(&s); break;
    case VKD_SAMPLER_DPMPP_2M_SDE: r = vkd_run_dpmpp_2m_sde(&s, 0); break;
    case VKD_SAMPLER_DPMPP_2M_SDE_HEUN: r = vkd_run_dpmpp_2m_sde(&s, 1); break;
    case VKD_SAMPLER_DPMPP_3M_SDE: r = vkd_run_dpmpp_3m_sde(&s); break;
    case VKD_SAMPLER_UNI_PC: r = vkd_run_unipc(&s, 0); break;
    case VKD_SAMPLER_UNI_PC_BH2: r = vkd_run_unipc(&s, 1); break;
    case VKD_SAMPLER_RESTART: r = vkd_run_restart(&s); break;
    default: r = VKD_ERR_INTERNAL; break;
    }
    free(scratch);
    return r;
}
