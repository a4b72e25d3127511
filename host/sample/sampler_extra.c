/* The samplers A1111 and ComfyUI added to the first six (sampler_impl.h), each written from
 * its source: k-diffusion sampling.py (sample_lms, sample_dpm_2, sample_dpm_2_ancestral,
 * sample_dpmpp_2s_ancestral, sample_dpmpp_sde, sample_dpmpp_2m_sde, sample_dpmpp_3m_sde, as
 * A1111 and ComfyUI ship them) and A1111 modules/sd_samplers_extra.py (restart_sampler).
 *
 * Scalars are float32 where the source computes them from 0-d tensors (sigmas[i] and what
 * follows from it) and float64 where it uses Python floats (r = 1/2, the LMS coefficients),
 * then rounded to float32 where they meet a tensor, as torch does.
 *
 * Noise: every noise_sampler(sigma, sigma_next) / randn_like call draws one standard normal
 * vector from the run's generator, in the order the source makes the calls. A1111 and
 * ComfyUI draw the SDE samplers' noise from a Brownian tree (torchsde) instead; that is not
 * reproduced (docs/samplers.md says why and what differs). */
#include <math.h>
#include <string.h>

#include "common/log.h"
#include "sample/sampler_impl.h"
#include "sample/schedule_impl.h"

/* k-diffusion get_ancestral_step(sigma_from, sigma_to, eta = 1) on float32 scalars */
static void ancestral_step(float from, float to, float *down, float *up)
{
    float u = sqrtf(to * to * (from * from - to * to) / (from * from));
    if (to < u) /* min(sigma_to, ...) */
        u = to;
    *up = u;
    *down = sqrtf(to * to - u * u);
}

/* x += noise * scale, with a fresh draw */
static vkd_result add_noise(vkd_run *s, float *x, float scale)
{
    vkd_result r = vkd_run_noise(s, s->aux);
    if (r != VKD_OK)
        return r;
    for (size_t k = 0; k < s->n; k++)
        x[k] = x[k] + s->aux[k] * scale;
    return VKD_OK;
}

/* Euler's step from sigma to target: x += (x - denoised) / sigma * (target - sigma) (the
 * samplers' step to 0, and the ancestral ones' when sigma_down is 0) */
static void euler_to(vkd_run *s, float sigma, float target)
{
    float dt = target - sigma;
    for (size_t k = 0; k < s->n; k++)
        s->x[k] = s->x[k] + (s->x[k] - s->den[k]) / sigma * dt;
}

/* x += (noise * f1) * f2: the SDE samplers' noise * sigma_next * sqrt(...) */
static vkd_result add_noise2(vkd_run *s, float *x, float f1, float f2)
{
    vkd_result r = vkd_run_noise(s, s->aux);
    if (r != VKD_OK)
        return r;
    for (size_t k = 0; k < s->n; k++)
        x[k] = x[k] + s->aux[k] * f1 * f2;
    return VKD_OK;
}

/* ---- LMS ---------------------------------------------------------------------------- */

/* linear_multistep_coeff(order, t, i, j): the integral from t[i] to t[i+1] of the Lagrange
 * basis polynomial of node j. k-diffusion integrates it with scipy's quad, which is exact
 * for these cubics to rounding; here the product is expanded and integrated exactly. The
 * nodes' differences t[i-j] - t[i-k] are float32 subtractions (NumPy float32 scalars), the
 * rest float64. */
static double lms_coeff(int order, const float *t, int i, int j)
{
    double poly[8] = {1.0}; /* coefficients of tau^0.. */
    int deg = 0;
    for (int k = 0; k < order; k++) {
        if (k == j)
            continue;
        double denom = (double)(t[i - j] - t[i - k]);
        double root = (double)t[i - k];
        /* poly *= (tau - root) / denom */
        for (int e = deg + 1; e >= 0; e--) {
            double hi = e > 0 ? poly[e - 1] : 0.0, lo = e <= deg ? poly[e] : 0.0;
            poly[e] = (hi - root * lo) / denom;
        }
        deg++;
    }
    double a = t[i], b = t[i + 1], sum = 0.0;
    for (int e = deg; e >= 0; e--)
        sum += poly[e] * (pow(b, e + 1) - pow(a, e + 1)) / (e + 1);
    return sum;
}

vkd_result vkd_run_lms(vkd_run *s)
{
    enum { ORDER = 4 };
    float *ds[ORDER] = {s->extra[0], s->extra[1], s->extra[2], s->extra[3]}; /* ds[0] newest */
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i];
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        float *oldest = ds[ORDER - 1];
        memmove(ds + 1, ds, (ORDER - 1) * sizeof ds[0]);
        ds[0] = oldest;
        for (size_t k = 0; k < s->n; k++)
            ds[0][k] = (s->x[k] - s->den[k]) / sigma;
        int order = i + 1 < ORDER ? i + 1 : ORDER;
        float c[ORDER];
        for (int j = 0; j < order; j++)
            c[j] = (float)lms_coeff(order, s->sigmas, i, j);
        for (size_t k = 0; k < s->n; k++) {
            /* sum(coeff * d for coeff, d in zip(coeffs, reversed(ds))): 0 + c0 d0 + c1 d1 ... */
            float acc = c[0] * ds[0][k];
            for (int j = 1; j < order; j++)
                acc = acc + c[j] * ds[j][k];
            s->x[k] = s->x[k] + acc;
        }
        if ((r = vkd_run_report(s, i + 1, s->sigmas[i + 1])) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* ---- DPM2 and DPM2 a: a midpoint step at the geometric mean of the two sigmas --------- */

/* x += d_2 * dt_2 where d_2 is the derivative at x + d * dt_1, sigma_mid */
static vkd_result dpm2_midpoint(vkd_run *s, float sigma, float target)
{
    /* sigma_hat.log().lerp(target.log(), 0.5).exp(): torch's lerp at a weight of 0.5 or
     * more is end - (end - start) * (1 - weight) */
    float ls = logf(sigma), lt = logf(target);
    float mid = expf(lt - (lt - ls) * 0.5f);
    float dt_1 = mid - sigma, dt_2 = target - sigma;
    float *d = s->aux2, *x2 = s->extra[0];
    for (size_t k = 0; k < s->n; k++) {
        d[k] = (s->x[k] - s->den[k]) / sigma;
        x2[k] = s->x[k] + d[k] * dt_1;
    }
    vkd_result r = vkd_run_model(s, x2, mid, s->den);
    if (r != VKD_OK)
        return r;
    for (size_t k = 0; k < s->n; k++) {
        float d2 = (x2[k] - s->den[k]) / mid;
        s->x[k] = s->x[k] + d2 * dt_2;
    }
    return VKD_OK;
}

vkd_result vkd_run_dpm2(vkd_run *s)
{
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        if (next == 0.0f) { /* Euler */
            euler_to(s, sigma, next);
        } else if ((r = dpm2_midpoint(s, sigma, next)) != VKD_OK) {
            return r;
        }
        if ((r = vkd_run_report(s, i + 1, next)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

vkd_result vkd_run_dpm2_a(vkd_run *s)
{
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1], down, up;
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        ancestral_step(sigma, next, &down, &up);
        if (down == 0.0f) {
            euler_to(s, sigma, down);
        } else {
            if ((r = dpm2_midpoint(s, sigma, down)) != VKD_OK || (r = add_noise(s, s->x, up)) != VKD_OK)
                return r;
        }
        if ((r = vkd_run_report(s, i + 1, next)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* ---- DPM++ 2S a and DPM++ SDE: t = -log sigma, sigma = exp(-t) ----------------------- */

static float t_fn(float sigma) { return -logf(sigma); }
static float sigma_fn(float t) { return expf(-t); }

vkd_result vkd_run_dpmpp_2s_a(vkd_run *s)
{
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1], down, up;
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        ancestral_step(sigma, next, &down, &up);
        if (down == 0.0f) {
            euler_to(s, sigma, down);
        } else {
            float t = t_fn(sigma), t_next = t_fn(down);
            float h = t_next - t, st = t + 0.5f * h;
            float a = sigma_fn(st) / sigma_fn(t), b = expm1f(-h * 0.5f);
            float *x2 = s->aux2;
            for (size_t k = 0; k < s->n; k++)
                x2[k] = a * s->x[k] - b * s->den[k];
            if ((r = vkd_run_model(s, x2, sigma_fn(st), s->den)) != VKD_OK)
                return r;
            float a2 = sigma_fn(t_next) / sigma_fn(t), b2 = expm1f(-h);
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = a2 * s->x[k] - b2 * s->den[k];
        }
        if (next > 0.0f && (r = add_noise(s, s->x, up)) != VKD_OK)
            return r;
        if ((r = vkd_run_report(s, i + 1, next)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

vkd_result vkd_run_dpmpp_sde(vkd_run *s)
{
    const double rr = 0.5, fac = 1.0 / (2.0 * rr); /* r = 1/2 */
    float *x2 = s->aux2, *den1 = s->extra[0];
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        if (next == 0.0f) {
            euler_to(s, sigma, next);
        } else {
            float t = t_fn(sigma), t_next = t_fn(next);
            float h = t_next - t, st = t + h * (float)rr;
            /* step 1: to s, with noise */
            float sd, su;
            ancestral_step(sigma_fn(t), sigma_fn(st), &sd, &su);
            float s_ = t_fn(sd);
            float a = sigma_fn(s_) / sigma_fn(t), b = expm1f(t - s_);
            for (size_t k = 0; k < s->n; k++)
                x2[k] = a * s->x[k] - b * s->den[k];
            if ((r = add_noise(s, x2, su)) != VKD_OK)
                return r;
            memcpy(den1, s->den, s->n * sizeof *den1);
            if ((r = vkd_run_model(s, x2, sigma_fn(st), s->den)) != VKD_OK)
                return r;
            /* step 2: to t_next with denoised_d = (1 - fac) denoised + fac denoised_2 */
            ancestral_step(sigma_fn(t), sigma_fn(t_next), &sd, &su);
            float tn_ = t_fn(sd);
            float a2 = sigma_fn(tn_) / sigma_fn(t), b2 = expm1f(t - tn_);
            float w1 = (float)(1.0 - fac), w2 = (float)fac;
            for (size_t k = 0; k < s->n; k++) {
                float dd = w1 * den1[k] + w2 * s->den[k];
                s->x[k] = a2 * s->x[k] - b2 * dd;
            }
            if ((r = add_noise(s, s->x, su)) != VKD_OK)
                return r;
        }
        if ((r = vkd_run_report(s, i + 1, next)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* ---- DPM++ 2M SDE and 3M SDE (eta = 1, s_noise = 1) ---------------------------------- */

vkd_result vkd_run_dpmpp_2m_sde(vkd_run *s, int heun)
{
    const float eta = 1.0f;
    float *old = s->extra[0];
    int have_old = 0;
    float h = 0.0f, h_last = 0.0f;
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        if (next == 0.0f) { /* denoising step */
            memcpy(s->x, s->den, s->n * sizeof *s->x);
        } else {
            float t = -logf(sigma), sn = -logf(next);
            h = sn - t;
            float eta_h = eta * h;
            float a = next / sigma * expf(-eta_h);
            float b = -expm1f(-h - eta_h);
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = a * s->x[k] + b * s->den[k];
            if (have_old) {
                float rr = h_last / h, c;
                if (heun)
                    c = (-expm1f(-h - eta_h) / (-h - eta_h) + 1.0f) * (1.0f / rr);
                else
                    c = 0.5f * -expm1f(-h - eta_h) * (1.0f / rr);
                for (size_t k = 0; k < s->n; k++)
                    s->x[k] = s->x[k] + c * (s->den[k] - old[k]);
            }
            if ((r = add_noise2(s, s->x, next, sqrtf(-expm1f(-2.0f * eta_h)))) != VKD_OK)
                return r;
        }
        memcpy(old, s->den, s->n * sizeof *old);
        have_old = 1;
        h_last = h;
        if ((r = vkd_run_report(s, i + 1, next)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

vkd_result vkd_run_dpmpp_3m_sde(vkd_run *s)
{
    const float eta = 1.0f;
    float *den1 = s->extra[0], *den2 = s->extra[1];
    int n_hist = 0; /* how many of h_1, h_2 are set (None in the source until then) */
    float h = 0.0f, h_1 = 0.0f, h_2 = 0.0f;
    for (int i = 0; i < s->n_steps; i++) {
        float sigma = s->sigmas[i], next = s->sigmas[i + 1];
        vkd_result r = vkd_run_model(s, s->x, sigma, s->den);
        if (r != VKD_OK)
            return r;
        if (next == 0.0f) {
            memcpy(s->x, s->den, s->n * sizeof *s->x);
        } else {
            float t = -logf(sigma), sn = -logf(next);
            h = sn - t;
            float h_eta = h * (eta + 1.0f);
            float a = expf(-h_eta), b = -expm1f(-h_eta);
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = a * s->x[k] + b * s->den[k];
            float phi_2 = expm1f(-h_eta) / h_eta + 1.0f;
            if (n_hist >= 2) {
                float r0 = h_1 / h, r1 = h_2 / h;
                float phi_3 = phi_2 / h_eta - 0.5f;
                for (size_t k = 0; k < s->n; k++) {
                    float d1_0 = (s->den[k] - den1[k]) / r0;
                    float d1_1 = (den1[k] - den2[k]) / r1;
                    float d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1);
                    float d2 = (d1_0 - d1_1) / (r0 + r1);
                    s->x[k] = s->x[k] + phi_2 * d1 - phi_3 * d2;
                }
            } else if (n_hist == 1) {
                float rr = h_1 / h;
                for (size_t k = 0; k < s->n; k++)
                    s->x[k] = s->x[k] + phi_2 * ((s->den[k] - den1[k]) / rr);
            }
            if ((r = add_noise2(s, s->x, next, sqrtf(-expm1f(-2.0f * h * eta)))) != VKD_OK)
                return r;
        }
        float *tmp = den2; /* denoised_1, denoised_2 = denoised, denoised_1 */
        den2 = den1;
        den1 = tmp;
        memcpy(den1, s->den, s->n * sizeof *den1);
        h_2 = h_1;
        h_1 = h;
        n_hist = n_hist < 2 ? n_hist + 1 : 2;
        if ((r = vkd_run_report(s, i + 1, next)) != VKD_OK)
            return r;
    }
    return VKD_OK;
}

/* ---- Restart (A1111 sd_samplers_extra.restart_sampler, its automatic restart list) ----- */

static int argmin_abs(const float *v, int n, float key)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (fabsf(v[i] - key) < fabsf(v[best] - key))
            best = i;
    return best;
}

/* heun_step: Heun's method from old to new, Euler when new is 0 */
static vkd_result restart_heun(vkd_run *s, float old, float new_sigma)
{
    vkd_result r = vkd_run_model(s, s->x, old, s->den);
    if (r != VKD_OK)
        return r;
    float *d = s->aux2, *x2 = s->extra[0];
    float dt = new_sigma - old;
    for (size_t k = 0; k < s->n; k++)
        d[k] = (s->x[k] - s->den[k]) / old;
    if (new_sigma == 0.0f) {
        for (size_t k = 0; k < s->n; k++)
            s->x[k] = s->x[k] + d[k] * dt;
        return VKD_OK;
    }
    for (size_t k = 0; k < s->n; k++)
        x2[k] = s->x[k] + d[k] * dt;
    if ((r = vkd_run_model(s, x2, new_sigma, s->den)) != VKD_OK)
        return r;
    for (size_t k = 0; k < s->n; k++) {
        float d2 = (x2[k] - s->den[k]) / new_sigma;
        s->x[k] = s->x[k] + (d[k] + d2) / 2.0f * dt;
    }
    return VKD_OK;
}

vkd_result vkd_run_restart(vkd_run *s)
{
    enum { CAP = 2 * VKD_MAX_STEPS + 4 };
    static _Thread_local float sig[VKD_MAX_STEPS + 2], from[CAP], to[CAP];
    int steps = s->n_steps, ns = steps + 1;
    memcpy(sig, s->sigmas, (size_t)ns * sizeof *sig);
    int restart_at = -1, restart_steps = 0, restart_times = 0;
    if (steps >= 20) {
        restart_steps = 9, restart_times = 1;
        if (steps >= 36)
            restart_steps = steps / 4, restart_times = 2;
        /* the schedule is replaced by a Karras one over fewer steps, same ends */
        int m = steps - restart_steps * restart_times;
        vkd_karras_sigmas(s->sigmas[steps - 1], s->sigmas[0], m, sig);
        ns = m + 1;
        restart_at = argmin_abs(sig, ns, 0.1f);
    }
    int n_pairs = 0;
    for (int i = 0; i < ns - 1; i++) {
        from[n_pairs] = sig[i], to[n_pairs++] = sig[i + 1];
        if (i + 1 == restart_at) {
            int min_idx = i + 1, max_idx = argmin_abs(sig, ns, 2.0f);
            if (max_idx < min_idx) {
                float sr[VKD_MAX_STEPS + 2]; /* karras(restart_steps + 1, ...)[:-1] */
                vkd_karras_sigmas(sig[min_idx], sig[max_idx], restart_steps + 1, sr);
                for (int t = 0; t < restart_times; t++)
                    for (int j = 0; j + 1 < restart_steps + 1; j++)
                        from[n_pairs] = sr[j], to[n_pairs++] = sr[j + 1];
            }
        }
    }
    s->n_steps = n_pairs; /* what the progress callback counts */
    float last = 0.0f;
    for (int i = 0; i < n_pairs; i++) {
        vkd_result r;
        if (i > 0 && last < from[i] &&
            (r = add_noise2(s, s->x, 1.0f, sqrtf(from[i] * from[i] - last * last))) != VKD_OK)
            return r;
        if ((r = restart_heun(s, from[i], to[i])) != VKD_OK)
            return r;
        last = to[i];
        if ((r = vkd_run_report(s, i + 1, to[i])) != VKD_OK)
            return r;
    }
    return VKD_OK;
}
