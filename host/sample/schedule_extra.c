/* The schedules A1111 and ComfyUI offer beyond k-diffusion's discrete and Karras ones
 * (schedule_impl.h). Each follows its source's arithmetic: float32 where the source works on
 * torch tensors, float64 where it works on Python floats or NumPy arrays, so the sigmas
 * agree with it to an ulp or so (tests/test_sampling.c, tools/oracle/sampling_more.py). */
#include <math.h>

#include "common/log.h"
#include "sample/schedule_impl.h"

/* numpy.linspace(start, stop, num[, endpoint]) in float64: y = i * step + start, and the
 * last element set to stop when the endpoint is included */
static double np_linspace(double start, double stop, int num, int endpoint, int i)
{
    int div = endpoint ? num - 1 : num;
    if (div <= 0)
        return start;
    if (endpoint && i == num - 1)
        return stop;
    return (double)i * ((stop - start) / div) + start;
}

/* ---- the regularized incomplete beta and its inverse (ComfyUI's beta schedule calls
 * scipy.stats.beta.ppf; this is the same function, to ~1e-15) ------------------------ */

/* continued fraction of I_x(a, b) (modified Lentz), valid for x < (a + 1) / (a + b + 2) */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    d = fabs(d) < tiny ? 1.0 / tiny : 1.0 / d;
    double h = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        c = 1.0 + num / c;
        d = fabs(d) < tiny ? 1.0 / tiny : 1.0 / d;
        c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        c = 1.0 + num / c;
        d = fabs(d) < tiny ? 1.0 / tiny : 1.0 / d;
        c = fabs(c) < tiny ? tiny : c;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-16)
            break;
    }
    return h;
}

static double beta_inc(double a, double b, double x)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    double lbeta = lgamma(a + b) - lgamma(a) - lgamma(b);
    double front = exp(lbeta + a * log(x) + b * log1p(-x));
    if (x < (a + 1.0) / (a + b + 2.0))
        return front * beta_cf(a, b, x) / a;
    return 1.0 - front * beta_cf(b, a, 1.0 - x) / b;
}

/* the p-quantile of Beta(a, b): bisection to the last bit (I_x rises with x) */
static double beta_ppf(double p, double a, double b)
{
    if (p <= 0.0)
        return 0.0;
    if (p >= 1.0)
        return 1.0;
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < 200 && hi - lo > 0.0; i++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi)
            break;
        if (beta_inc(a, b, mid) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* ---- Align Your Steps (A1111 modules/sd_schedulers.py get_align_your_steps_sigmas:
 * NVIDIA's published 10-step tables, log-linearly interpolated to other step counts) --- */
static const double ays_sd15[11] = {14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029};
static const double ays_sdxl[11] = {14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029};

/* loglinear_interp(t_steps, n): np.interp over linspace(0, 1) of the log of the reversed
 * table, exponentiated and reversed back */
static void ays_sigmas(const double *table, int n, float *out)
{
    double ys[11];
    for (int i = 0; i < 11; i++)
        ys[i] = log(table[10 - i]);
    for (int i = 0; i < n; i++) {
        double x = np_linspace(0.0, 1.0, n, 1, i), y;
        /* np.interp: the interval [xp[j], xp[j+1]) holding x, the last point exactly */
        int j = 0;
        while (j < 10 && np_linspace(0.0, 1.0, 11, 1, j + 1) <= x)
            j++;
        double xj = np_linspace(0.0, 1.0, 11, 1, j);
        if (j == 10 || x == xj) {
            y = ys[j];
        } else {
            double slope = (ys[j + 1] - ys[j]) / (np_linspace(0.0, 1.0, 11, 1, j + 1) - xj);
            y = slope * (x - xj) + ys[j];
        }
        out[n - 1 - i] = (float)exp(y);
    }
}

vkd_result vkd_schedule_extra(const vkd_noise_table *tab, vkd_schedule schedule, int steps, float *sigmas,
                              size_t cap, size_t *count)
{
    /* A1111 passes the table's ends as Python floats */
    const double smin = vkd_sigma_min(tab), smax = vkd_sigma_max(tab);
    size_t n = 0;
    switch (schedule) {
    case VKD_SCHEDULE_EXPONENTIAL: /* k-diffusion: linspace(log max, log min, n).exp() */
        for (int i = 0; i < steps; i++)
            sigmas[n++] = expf(vkd_linspace_f32((float)log(smax), (float)log(smin), steps, i));
        break;
    case VKD_SCHEDULE_POLYEXPONENTIAL: { /* rho = 1: exp(ramp * (log max - log min) + log min) */
        float span = (float)(log(smax) - log(smin)), lmin = (float)log(smin);
        for (int i = 0; i < steps; i++)
            sigmas[n++] = expf(vkd_linspace_f32(1.0f, 0.0f, steps, i) * span + lmin);
        break;
    }
    case VKD_SCHEDULE_SGM_UNIFORM: /* t = linspace(t(max), t(min), n + 1)[:-1] */
    case VKD_SCHEDULE_NORMAL: {    /* t = linspace(t(max), t(min), n) */
        float t0 = vkd_sigma_to_t(tab, (float)smax), t1 = vkd_sigma_to_t(tab, (float)smin);
        int m = schedule == VKD_SCHEDULE_SGM_UNIFORM ? steps + 1 : steps;
        for (int i = 0; i < steps; i++)
            sigmas[n++] = vkd_t_to_sigma(tab, vkd_linspace_f32(t0, t1, m, i));
        break;
    }
    case VKD_SCHEDULE_SIMPLE: { /* every (1000 / n)-th table sigma from the top */
        double ss = (double)VKD_NUM_TIMESTEPS / steps;
        for (int i = 0; i < steps; i++)
            sigmas[n++] = tab->sigmas[VKD_NUM_TIMESTEPS - 1 - (int)(i * ss)];
        break;
    }
    case VKD_SCHEDULE_DDIM_UNIFORM: { /* table sigmas 1, 1 + ss, ... below 1000, reversed */
        int ss = VKD_NUM_TIMESTEPS / steps;
        ss = ss < 1 ? 1 : ss;
        int m = 0;
        for (int x = 1; x < VKD_NUM_TIMESTEPS; x += ss)
            m++;
        if ((size_t)m + 1 > cap)
            goto no_room;
        for (int k = m - 1; k >= 0; k--)
            sigmas[n++] = tab->sigmas[1 + k * ss];
        break;
    }
    case VKD_SCHEDULE_BETA: { /* ComfyUI: table sigmas at rint(ppf(1 - i/n; 0.6, 0.6) * 999), repeats dropped */
        double last = -1.0;
        for (int i = 0; i < steps; i++) {
            double t = nearbyint(beta_ppf(1.0 - np_linspace(0.0, 1.0, steps, 0, i), 0.6, 0.6) *
                                 (VKD_NUM_TIMESTEPS - 1));
            if (t != last)
                sigmas[n++] = tab->sigmas[(int)t];
            last = t;
        }
        break;
    }
    case VKD_SCHEDULE_KL_OPTIMAL: { /* ComfyUI: tan(w atan(min) + (1 - w) atan(max)), w = i / (n - 1) */
        float amin = (float)atan(smin), amax = (float)atan(smax);
        for (int i = 0; i < steps; i++) {
            /* one step: ComfyUI divides 0 by 0; the one sigma is taken as sigma_max */
            float w = steps > 1 ? (float)i / (float)(steps - 1) : 0.0f;
            sigmas[n++] = tanf(w * amin + (1.0f - w) * amax);
        }
        break;
    }
    case VKD_SCHEDULE_AYS:
    case VKD_SCHEDULE_AYS_SDXL: {
        const double *table = schedule == VKD_SCHEDULE_AYS ? ays_sd15 : ays_sdxl;
        if (steps == 11)
            for (int i = 0; i < 11; i++)
                sigmas[i] = (float)table[i];
        else
            ays_sigmas(table, steps, sigmas);
        n = (size_t)steps;
        break;
    }
    default:
        VKD_ERROR("schedule: unknown schedule %d", (int)schedule);
        return VKD_ERR_INVALID_ARG;
    }
    sigmas[n++] = 0.0f;
    *count = n;
    return VKD_OK;
no_room:
    VKD_ERROR("schedule: room for %zu sigmas is too little", cap);
    return VKD_ERR_INVALID_ARG;
}
