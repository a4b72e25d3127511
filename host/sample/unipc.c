/* UniPC, as ComfyUI runs it (comfy/extra_samplers/uni_pc.py: sample_unipc with variant bh1
 * or bh2, UniPC.sample(method="multistep", order = min(3, steps - 1), lower_order_final),
 * multistep_uni_pc_bh_update with predict_x0). Its time variable is sigma itself
 * (SigmaConvert): log alpha(s) = 0.5 log(1 / (s^2 + 1)), std(s) = sqrt(1 - alpha^2),
 * lambda(s) = log alpha - log std; x runs in the variance-preserving scaling x * alpha,
 * and a final sigma of 0 is replaced by 0.001. Scalars are float32 like the 0-d tensors
 * of the source; the small linear systems are solved in double and rounded (torch calls
 * LAPACK's sgesv in float32: the rhos agree to about an ulp). */
#include <math.h>
#include <string.h>

#include "common/log.h"
#include "sample/sampler_impl.h"

static float lmc(float s) { return 0.5f * logf(1.0f / (s * s + 1.0f)); }
static float alpha_of(float s) { return expf(lmc(s)); }
static float std_of(float s) { return sqrtf(1.0f - expf(2.0f * lmc(s))); }
static float lambda_of(float s)
{
    float l = lmc(s);
    return l - 0.5f * logf(1.0f - expf(2.0f * l));
}

/* out[n] <- the data prediction x0 at VP-scaled x and sigma t (predict_eps_sigma, then
 * data_prediction_fn); uses s->aux */
static vkd_result data_pred(vkd_run *s, const float *x, float t, float *out)
{
    float lift = sqrtf(t * t + 1.0f), sd = std_of(t), al = alpha_of(t);
    float *in = s->aux;
    for (size_t k = 0; k < s->n; k++)
        in[k] = x[k] * lift;
    vkd_result r = vkd_run_model(s, in, t, out);
    if (r != VKD_OK)
        return r;
    for (size_t k = 0; k < s->n; k++) {
        float eps = (in[k] - out[k]) / t;
        out[k] = (x[k] - sd * eps) / al;
    }
    return VKD_OK;
}

/* solve a[m][m] y = b[m] by Gaussian elimination with partial pivoting (m <= 3) */
static void solve_small(int m, double a[3][3], double *b, double *y)
{
    for (int c = 0; c < m; c++) {
        int piv = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c]))
                piv = r;
        for (int k = 0; k < m; k++) {
            double t = a[c][k];
            a[c][k] = a[piv][k], a[piv][k] = t;
        }
        double t = b[c];
        b[c] = b[piv], b[piv] = t;
        for (int r = c + 1; r < m; r++) {
            double f = a[r][c] / a[c][c];
            for (int k = c; k < m; k++)
                a[r][k] -= f * a[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int r = m - 1; r >= 0; r--) {
        double acc = b[r];
        for (int k = r + 1; k < m; k++)
            acc -= a[r][k] * y[k];
        y[r] = acc / a[r][r];
    }
}

typedef struct unipc {
    vkd_run *s;
    int bh2;
    float *prev[3];   /* model_prev_list, oldest first */
    float t_prev[3];
    int n_prev;
    float *d1s[2];
    float *xt_;
} unipc;

/* multistep_uni_pc_bh_update: x (VP) moves to t; with the corrector, *model_t (into out)
 * receives the data prediction at the predicted point. */
static vkd_result bh_update(unipc *u, float t, int order, int use_corrector, float *out, int *have_model)
{
    vkd_run *s = u->s;
    size_t n = s->n;
    const float *m0 = u->prev[u->n_prev - 1];
    float t0 = u->t_prev[u->n_prev - 1];
    float lambda_prev_0 = lambda_of(t0), lambda_t = lambda_of(t);
    float sigma_prev_0 = std_of(t0), sigma_t = std_of(t);
    float alpha_t = expf(lmc(t));
    float h = lambda_t - lambda_prev_0;

    float rks[3];
    int nd = 0;
    for (int i = 1; i < order; i++) {
        const float *mi = u->prev[u->n_prev - 1 - i];
        float rk = (lambda_of(u->t_prev[u->n_prev - 1 - i]) - lambda_prev_0) / h;
        rks[nd] = rk;
        float *d = u->d1s[nd++];
        for (size_t k = 0; k < n; k++)
            d[k] = (mi[k] - m0[k]) / rk;
    }
    rks[nd] = 1.0f;

    float hh = -h;
    float h_phi_1 = expm1f(hh);
    float h_phi_k = h_phi_1 / hh - 1.0f;
    float b_h = u->bh2 ? expm1f(hh) : hh;
    float bvec[3];
    double rmat[3][3];
    int factorial = 1;
    for (int i = 1; i <= order; i++) {
        for (int k = 0; k < order; k++)
            rmat[i - 1][k] = (double)powf(rks[k], (float)(i - 1));
        bvec[i - 1] = h_phi_k * (float)factorial / b_h;
        factorial *= i + 1;
        h_phi_k = h_phi_k / hh - 1.0f / (float)factorial;
    }
    float rhos_p[3] = {0}, rhos_c[3] = {0};
    if (nd > 0) {
        if (order == 2) {
            rhos_p[0] = 0.5f;
        } else {
            double a[3][3], b[3], y[3];
            for (int r = 0; r < order - 1; r++) {
                for (int c = 0; c < order - 1; c++)
                    a[r][c] = rmat[r][c];
                b[r] = bvec[r];
            }
            solve_small(order - 1, a, b, y);
            for (int r = 0; r < order - 1; r++)
                rhos_p[r] = (float)y[r];
        }
    }
    if (use_corrector) {
        if (order == 1) {
            rhos_c[0] = 0.5f;
        } else {
            double a[3][3], b[3], y[3];
            for (int r = 0; r < order; r++) {
                for (int c = 0; c < order; c++)
                    a[r][c] = rmat[r][c];
                b[r] = bvec[r];
            }
            solve_small(order, a, b, y);
            for (int r = 0; r < order; r++)
                rhos_c[r] = (float)y[r];
        }
    }

    float ca = sigma_t / sigma_prev_0, cb = alpha_t * h_phi_1, cab = alpha_t * b_h;
    float *x = s->x, *xt_ = u->xt_;
    for (size_t k = 0; k < n; k++) {
        xt_[k] = ca * x[k] - cb * m0[k];
        float pred = 0.0f;
        for (int j = 0; j < nd; j++)
            pred = j ? pred + rhos_p[j] * u->d1s[j][k] : rhos_p[j] * u->d1s[j][k];
        x[k] = xt_[k] - cab * pred; /* the predictor's x_t */
    }
    *have_model = 0;
    if (use_corrector) {
        vkd_result r = data_pred(s, x, t, out);
        if (r != VKD_OK)
            return r;
        *have_model = 1;
        for (size_t k = 0; k < n; k++) {
            float corr = 0.0f;
            for (int j = 0; j < nd; j++)
                corr = j ? corr + rhos_c[j] * u->d1s[j][k] : rhos_c[j] * u->d1s[j][k];
            float d1_t = out[k] - m0[k];
            x[k] = xt_[k] - cab * (corr + rhos_c[order - 1] * d1_t);
        }
    }
    return VKD_OK;
}

/* the after-step hook works in the k-diffusion scaling: x / alpha */
static vkd_result unipc_report(unipc *u, int step, float t, float sigma_reported)
{
    vkd_run *s = u->s;
    if (s->p->after_step) {
        float al = alpha_of(t);
        for (size_t k = 0; k < s->n; k++)
            s->x[k] = s->x[k] / al;
        vkd_result r = vkd_run_report(s, step, sigma_reported);
        for (size_t k = 0; k < s->n; k++)
            s->x[k] = s->x[k] * al;
        return r;
    }
    return vkd_run_report(s, step, sigma_reported);
}

vkd_result vkd_run_unipc(vkd_run *s, int bh2)
{
    int steps = s->n_steps;
    float ts[VKD_MAX_STEPS + 2];
    memcpy(ts, s->sigmas, (size_t)(steps + 1) * sizeof *ts);
    if (ts[steps] == 0.0f)
        ts[steps] = 0.001f;
    unipc u = {.s = s, .bh2 = bh2, .prev = {s->extra[0], s->extra[1], s->extra[2]},
               .d1s = {s->extra[3], s->extra[4]}, .xt_ = s->extra[5]};
    int order = steps - 1 < 3 ? steps - 1 : 3;
    float *model_x = s->den;
    vkd_result r;

    /* x = noise * sigma_0 in k-diffusion's scaling; UniPC's starts at x / sqrt(1 + t0^2) */
    float lift0 = sqrtf(1.0f + ts[0] * ts[0]);
    for (size_t k = 0; k < s->n; k++)
        s->x[k] = s->x[k] / lift0;

    for (int step_index = 0; step_index < steps; step_index++) {
        if (step_index == 0) {
            if ((r = data_pred(s, s->x, ts[0], u.prev[0])) != VKD_OK)
                return r;
            u.t_prev[0] = ts[0];
            u.n_prev = 1;
        } else if (step_index < order) {
            int have = 0;
            float *slot = u.prev[u.n_prev];
            if ((r = bh_update(&u, ts[step_index], step_index, 1, slot, &have)) != VKD_OK)
                return r;
            u.t_prev[u.n_prev++] = ts[step_index];
        } else {
            int extra = step_index == steps - 1;
            for (int step = step_index; step <= step_index + extra; step++) {
                int step_order = order < steps + 1 - step ? order : steps + 1 - step;
                int use_corrector = step != steps, have = 0;
                if ((r = bh_update(&u, ts[step], step_order, use_corrector, model_x, &have)) != VKD_OK)
                    return r;
                /* shift the history left; the oldest buffer takes the new value */
                float *oldest = u.prev[0];
                for (int i = 0; i < order - 1; i++) {
                    u.t_prev[i] = u.t_prev[i + 1];
                    u.prev[i] = u.prev[i + 1];
                }
                u.prev[order - 1] = oldest;
                u.t_prev[order - 1] = ts[step];
                if (step < steps) {
                    if (!have && (r = data_pred(s, s->x, ts[step], model_x)) != VKD_OK)
                        return r;
                    memcpy(u.prev[order - 1], model_x, s->n * sizeof *model_x);
                }
            }
        }
        int last = step_index == steps - 1;
        float t_now = last ? ts[steps] : ts[step_index];
        if (last) { /* x /= alpha(timesteps[-1]): back to k-diffusion's scaling */
            float al = alpha_of(ts[steps]);
            for (size_t k = 0; k < s->n; k++)
                s->x[k] = s->x[k] / al;
            if ((r = vkd_run_report(s, step_index + 1, s->sigmas[steps])) != VKD_OK)
                return r;
        } else if ((r = unipc_report(&u, step_index + 1, t_now, s->sigmas[step_index])) != VKD_OK) {
            return r;
        }
    }
    return VKD_OK;
}
