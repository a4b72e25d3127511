/* host/sample/schedule.c and sampler.c against tests/data/sampling_golden.json
 * (tools/oracle/sampling_ref.py: k-diffusion, diffusers and A1111 rendered in torch),
 * driven by the same toy model the oracle uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

static vkd_noise_table table;

static cJSON *load_json(const char *path)
{
    char *text = test_read_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    return root;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* reads a JSON number array into out[cap]; returns the count (or -1 if too long) */
static int read_floats(const cJSON *arr, double *out, int cap)
{
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (n >= cap)
            return -1;
        out[n++] = v->valuedouble;
    }
    return n;
}

static int rel_close(double got, double ref, double tol)
{
    return fabs(got - ref) <= tol * fmax(fabs(ref), 1e-30) || got == ref;
}

/* ---- the toy model (same formula as toy_model in the oracle) -------------------------- */

typedef struct toy {
    vkd_prediction pred;
    float cfg;
    float *cond, *uncond, *x_in;   /* [n] scratch */
    int calls;
} toy;

static void toy_eval(const float *x_in, float t, float c, float *out, size_t n)
{
    for (size_t k = 0; k < n; k++)
        out[k] = 0.8f * tanhf(0.6f * x_in[k] + 0.25f * sinf(0.37f * (float)k + 1.3f * c)) +
                 0.1f * x_in[k] * cosf(0.002f * t) + 0.05f * c;
}

/* what the pipeline's callback does: scale the input, map sigma to t, guide, convert */
static vkd_result toy_denoise(void *user, const float *x, float sigma, float *denoised, size_t n)
{
    toy *m = user;
    float c_in = vkd_c_in(sigma);
    float t = vkd_sigma_to_t(&table, sigma);
    for (size_t k = 0; k < n; k++)
        m->x_in[k] = x[k] * c_in;
    toy_eval(m->x_in, t, 1.0f, m->cond, n);
    toy_eval(m->x_in, t, 0.0f, m->uncond, n);
    vkd_cfg_mix(m->cond, m->uncond, m->cfg, m->cond, n);
    vkd_denoised_from_output(m->pred, sigma, x, m->cond, denoised, n);
    m->calls++;
    return VKD_OK;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_noise_table_matches_compvis(const cJSON *root)
{
    const cJSON *t = get(root, "table");
    const cJSON *idx = get(t, "index"), *acp = get(t, "alphas_cumprod"), *sig = get(t, "sigmas");
    for (const cJSON *i = idx->child, *a = acp->child, *s = sig->child; i && a && s;
         i = i->next, a = a->next, s = s->next) {
        int k = i->valueint;
        TEST_CHECK(rel_close(table.alphas_cumprod[k], a->valuedouble, 1e-6), "acp[%d] %.9g vs %.9g", k,
                   table.alphas_cumprod[k], a->valuedouble);
        TEST_CHECK(rel_close(table.sigmas[k], s->valuedouble, 1e-6), "sigma[%d] %.9g vs %.9g", k, table.sigmas[k],
                   s->valuedouble);
    }
    /* the constants everyone quotes for SD 1.x / 2.x */
    TEST_CHECK(fabs(vkd_sigma_max(&table) - 14.6146) < 1e-4, "sigma_max %.6f ~ 14.6146", vkd_sigma_max(&table));
    TEST_CHECK(fabs(vkd_sigma_min(&table) - 0.0292) < 1e-4, "sigma_min %.6f ~ 0.0292", vkd_sigma_min(&table));
}

static void test_sigma_t_conversions_match_kdiffusion(const cJSON *root)
{
    double in[32], want[32];
    const cJSON *ts = get(root, "t_to_sigma");
    int n = read_floats(get(ts, "t"), in, 32);
    TEST_CHECK(n > 0 && read_floats(get(ts, "sigma"), want, 32) == n, "t_to_sigma golden");
    for (int i = 0; i < n; i++) {
        float got = vkd_t_to_sigma(&table, (float)in[i]);
        TEST_CHECK(rel_close(got, want[i], 1e-5), "t_to_sigma(%g) = %.9g, want %.9g", in[i], got, want[i]);
    }
    const cJSON *st = get(root, "sigma_to_t");
    n = read_floats(get(st, "sigma"), in, 32);
    TEST_CHECK(n > 0 && read_floats(get(st, "t"), want, 32) == n, "sigma_to_t golden");
    for (int i = 0; i < n; i++) {
        float got = vkd_sigma_to_t(&table, (float)in[i]);
        /* t near 0 carries absolute, not relative, precision */
        TEST_CHECK(fabs(got - want[i]) <= 1e-5 * fmax(fabs(want[i]), 1.0), "sigma_to_t(%g) = %.9g, want %.9g", in[i],
                   got, want[i]);
    }
}

static void test_sigma_t_round_trips(void)
{
    double worst_t = 0, worst_s = 0;
    for (int i = 0; i <= 999 * 4; i++) {
        float t = (float)i / 4.0f;
        float back = vkd_sigma_to_t(&table, vkd_t_to_sigma(&table, t));
        worst_t = fmax(worst_t, fabs(back - t));
    }
    for (int t = 0; t < VKD_NUM_TIMESTEPS; t++) {
        /* table sigmas map to their exact integer timestep */
        float s = table.sigmas[t];
        float back = vkd_t_to_sigma(&table, vkd_sigma_to_t(&table, s));
        worst_s = fmax(worst_s, fabs(back - s) / s);
        TEST_CHECK(vkd_sigma_to_t(&table, s) == (float)t, "sigma_to_t(sigmas[%d]) = %.9g", t,
                   vkd_sigma_to_t(&table, s));
    }
    TEST_CHECK(worst_t < 2e-3, "t -> sigma -> t within 2e-3 (worst %.3g)", worst_t);
    TEST_CHECK(worst_s < 1e-6, "sigma -> t -> sigma within 1e-6 relative (worst %.3g)", worst_s);
    /* outside the table: clamped like k-diffusion */
    TEST_CHECK(vkd_sigma_to_t(&table, 1e-4f) == 0.0f, "tiny sigma -> t = 0");
    TEST_CHECK(vkd_sigma_to_t(&table, 100.0f) == 999.0f, "huge sigma -> t = 999");
}

/* every {"schedule", "steps", "sigmas"} case under key of a golden file whose schedule is
 * in `only` (NULL: all), to relative tol; at least min_cases */
static void check_schedules(const cJSON *root, const char *file, const char *key, const char *const *only,
                            double tol, int min_cases)
{
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, get(root, key)) {
        const char *name = get(c, "schedule")->valuestring;
        int listed = !only;
        for (int k = 0; only && only[k]; k++)
            listed = listed || !strcmp(only[k], name);
        if (!listed)
            continue;
        int steps = get(c, "steps")->valueint;
        double want[VKD_MAX_STEPS + 2];
        int n = read_floats(get(c, "sigmas"), want, VKD_MAX_STEPS + 2);
        vkd_schedule sch;
        float got[VKD_MAX_STEPS + 2];
        size_t count = 0;
        TEST_CHECK(vkd_schedule_parse(name, &sch) == VKD_OK, "%s: parse %s", file, name);
        TEST_CHECK(vkd_schedule_sigmas_n(&table, sch, steps, got, VKD_MAX_STEPS + 2, &count) == VKD_OK, "%s %d",
                   name, steps);
        TEST_CHECK(n == (int)count, "%s %d steps: %zu sigmas, want %d", name, steps, count, n);
        for (int i = 0; i < n && i < (int)count; i++)
            TEST_CHECK(rel_close(got[i], want[i], tol), "%s %s steps %d sigma[%d] = %.9g, want %.9g", key, name, steps,
                       i, got[i], want[i]);
        cases++;
    }
    TEST_CHECK(cases >= min_cases, "%s %s: schedule cases present (%d)", file, key, cases);
}

static void test_schedules_match_reference(const cJSON *root)
{
    check_schedules(root, "sampling_golden.json", "schedules", NULL, 1e-5, 18);

    /* SD-Turbo: one step from t = 999 */
    float s[2];
    TEST_CHECK(vkd_schedule_sigmas(&table, VKD_SCHEDULE_TRAILING, 1, s) == VKD_OK && s[0] == table.sigmas[999] &&
                   s[1] == 0.0f,
               "trailing 1 step starts at sigma(999)");

    const cJSON *c;
    cJSON_ArrayForEach(c, get(root, "ddim_timesteps")) {
        int steps = get(c, "steps")->valueint;
        double want[VKD_MAX_STEPS + 1];
        int n = read_floats(get(c, "timesteps"), want, VKD_MAX_STEPS + 1);
        int got[VKD_MAX_STEPS + 1], count = 0;
        TEST_CHECK(vkd_ddim_timesteps(steps, got, &count) == VKD_OK && count == n, "ddim %d: %d timesteps, want %d",
                   steps, count, n);
        for (int i = 0; i < n && i < count; i++)
            TEST_CHECK(got[i] == (int)want[i], "ddim %d timestep[%d] = %d, want %d", steps, i, got[i], (int)want[i]);
    }
}

/* every run of a golden file against the oracle's final latent; the toy model's settings
 * come from toyc (sampling_golden.json's "toy") */
static void check_runs(const cJSON *root, const cJSON *toyc, const char *file, const char *key, int min_runs)
{
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, get(toyc, "shape")) n *= (size_t)d->valueint;
    uint64_t seed = (uint64_t)get(toyc, "seed")->valuedouble;
    float cfg = (float)get(toyc, "cfg_scale")->valuedouble;

    float *noise = malloc(n * sizeof *noise), *x = malloc(n * sizeof *x);
    double *want = malloc(n * sizeof *want);
    toy m = {.cfg = cfg};
    m.cond = malloc(n * sizeof(float));
    m.uncond = malloc(n * sizeof(float));
    m.x_in = malloc(n * sizeof(float));

    int runs = 0;
    double worst = 0, worst_rms = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, get(root, key)) {
        const char *sampler = get(r, "sampler")->valuestring;
        /* a run whose penultimate-sigma rule is not vkdiff's for that sampler (the oracle
         * renders uni_pc both ways: A1111's plain schedule and ComfyUI's KSampler) */
        vkd_sampler_kind kind;
        if (get(r, "discard_penultimate") && vkd_sampler_parse(sampler, &kind) == VKD_OK &&
            cJSON_IsTrue(get(r, "discard_penultimate")) != vkd_sampler_discards_penultimate(kind))
            continue;
        const char *schedule = get(r, "schedule")->valuestring;
        const char *pred = get(r, "prediction")->valuestring;
        int steps = get(r, "steps")->valueint;
        TEST_CHECK(read_floats(get(r, "x"), want, (int)n) == (int)n, "golden x has %zu values", n);

        vkd_sample_params p = {.steps = steps, .table = &table, .denoise = toy_denoise, .denoise_user = &m};
        TEST_CHECK(vkd_sampler_parse(sampler, &p.sampler) == VKD_OK, "parse %s", sampler);
        if (strcmp(schedule, "a1111") != 0)
            TEST_CHECK(vkd_schedule_parse(schedule, &p.schedule) == VKD_OK, "parse %s", schedule);
        TEST_CHECK(vkd_prediction_parse(pred, &m.pred) == VKD_OK, "parse %s", pred);
        m.calls = 0;

        /* the oracle: start noise, then one randn per ancestral step, one generator */
        TEST_CHECK(vkd_rng_create(VKD_RNG_CPU, seed, &p.rng) == VKD_OK, "rng");
        TEST_CHECK(vkd_rng_randn(p.rng, noise, n) == VKD_OK, "noise");
        vkd_result res = vkd_sample(&p, noise, x, n);
        TEST_CHECK(res == VKD_OK, "%s/%s/%s/%d runs: %s", sampler, schedule, pred, steps, vkd_result_str(res));
        vkd_rng_destroy(p.rng);

        /* float32 throughout, as in the reference; eps models cancel x - sigma * eps at
         * sigma ~ 14.6, so single elements carry rounding of that scale. Criteria: the
         * relative RMS error sqrt(nmse) <= 1e-5, and each element within 3e-5 of
         * max(|want|, 1). Observed: rms <= ~3e-6, elements <= ~1e-5. */
        size_t bad;
        double nmse = test_nmse(x, want, n, 3e-5, 3e-5, &bad);
        double rms = sqrt(nmse);
        TEST_CHECK(bad == SIZE_MAX && rms <= 1e-5, "%s %s %s %d steps: rms error %.3g, first bad [%zu] got %.9g want %.9g",
                   sampler, schedule, pred, steps, rms, bad == SIZE_MAX ? 0 : bad, bad == SIZE_MAX ? 0.0 : x[bad],
                   bad == SIZE_MAX ? 0.0 : want[bad]);
        double run_worst = 0;
        for (size_t k = 0; k < n; k++)
            run_worst = fmax(run_worst, fabs(x[k] - want[k]) / fmax(fabs(want[k]), 1.0));
        if (getenv("VKD_VERBOSE"))
            printf("  %-8s %-8s %-3s %d steps: rms error %.3g, worst element %.3g\n", sampler, schedule, pred, steps,
                   rms, run_worst);
        worst = fmax(worst, run_worst);
        worst_rms = fmax(worst_rms, rms);

        /* model calls: the oracle's count where it gives one; heun 2 per step but 1 on the
         * last; ddim len(timesteps) - 1 */
        int expect_calls = steps;
        if (get(r, "calls"))
            expect_calls = get(r, "calls")->valueint;
        else if (strcmp(sampler, "heun") == 0)
            expect_calls = 2 * steps - 1;
        if (strcmp(sampler, "ddim") == 0) {
            int ts[VKD_MAX_STEPS + 1], count = 0;
            vkd_ddim_timesteps(steps, ts, &count);
            expect_calls = count - 1;
        }
        TEST_CHECK(m.calls == expect_calls, "%s %d steps: %d model calls, want %d",
                   sampler, steps, m.calls, expect_calls);
        runs++;
    }
    printf("%s %s: %d sampler runs: worst rms error %.3g, worst element %.3g (|got - want| / max(|want|, 1))\n",
           file, key, runs, worst_rms, worst);
    TEST_CHECK(runs >= min_runs, "%s %s: sampler runs present (%d)", file, key, runs);
    free(noise);
    free(x);
    free(want);
    free(m.cond);
    free(m.uncond);
    free(m.x_in);
}

static void test_samplers_match_reference(const cJSON *root)
{
    check_runs(root, get(root, "toy"), "sampling_golden.json", "runs", 30);
}

static int cancel_at_two(void *user, int step, int total)
{
    int *seen = user;
    *seen = step;
    return step == 2;
}

static vkd_result failing_denoise(void *user, const float *x, float sigma, float *denoised, size_t n)
{
    return VKD_ERR_DEVICE_LOST;
}

static void test_sampler_cancels_and_reports_errors(void)
{
    enum { N = 16 };
    float noise[N], x[N];
    for (int i = 0; i < N; i++)
        noise[i] = (float)i / N - 0.5f;
    toy m = {.pred = VKD_PREDICTION_EPS, .cfg = 1.0f};
    float a[N], b[N], c[N];
    m.cond = a;
    m.uncond = b;
    m.x_in = c;
    int seen = 0;
    vkd_sample_params p = {.sampler = VKD_SAMPLER_EULER, .schedule = VKD_SCHEDULE_KARRAS, .steps = 5, .table = &table,
                           .denoise = toy_denoise, .denoise_user = &m, .progress = cancel_at_two,
                           .progress_user = &seen};
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_CANCELLED && seen == 2, "progress returning 1 cancels");

    p.progress = NULL;
    p.denoise = failing_denoise;
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_DEVICE_LOST, "a denoiser error stops the run");

    p.denoise = toy_denoise;
    p.steps = 0;
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_INVALID_ARG, "0 steps rejected");
    p.steps = VKD_MAX_STEPS + 1;
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_INVALID_ARG, "too many steps rejected");
    p.steps = 4;
    p.sampler = VKD_SAMPLER_EULER_A;
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_INVALID_ARG, "euler_a without rng rejected");
    p.sampler = (vkd_sampler_kind)42;
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_INVALID_ARG, "unknown sampler rejected");
    p.sampler = VKD_SAMPLER_EULER;
    p.schedule = (vkd_schedule)99;
    TEST_CHECK(vkd_sample(&p, noise, x, N) == VKD_ERR_INVALID_ARG, "unknown schedule rejected");
    p.schedule = VKD_SCHEDULE_DISCRETE;
    TEST_CHECK(vkd_sample(&p, noise, x, 0) == VKD_ERR_INVALID_ARG, "empty latent rejected");
    TEST_CHECK(vkd_sample(&p, NULL, x, N) == VKD_ERR_INVALID_ARG, "NULL noise rejected");
    TEST_CHECK(vkd_sample(NULL, noise, x, N) == VKD_ERR_INVALID_ARG, "NULL params rejected");

    vkd_sampler_kind k;
    vkd_schedule s;
    vkd_prediction pr;
    TEST_CHECK(vkd_sampler_parse("dpm++2m", &k) == VKD_OK && k == VKD_SAMPLER_DPMPP_2M, "parse dpm++2m");
    TEST_CHECK(vkd_sampler_parse("plms", &k) == VKD_ERR_INVALID_ARG, "unknown sampler name");
    TEST_CHECK(vkd_schedule_parse("linear_quadratic", &s) == VKD_ERR_INVALID_ARG, "unknown schedule name");
    TEST_CHECK(vkd_prediction_parse("x0", &pr) == VKD_ERR_INVALID_ARG, "unknown prediction name");
    float sig[4];
    TEST_CHECK(vkd_schedule_sigmas(&table, VKD_SCHEDULE_KARRAS, 0, sig) == VKD_ERR_INVALID_ARG, "0-step schedule");
}

int main(void)
{
    vkd_noise_table_init(&table);
    cJSON *root = load_json(test_data_path("sampling_golden.json"));
    TEST_CHECK(root != NULL, "read %s", test_data_path("sampling_golden.json"));
    if (root) {
        test_noise_table_matches_compvis(root);
        test_sigma_t_conversions_match_kdiffusion(root);
        test_schedules_match_reference(root);
        test_samplers_match_reference(root);
        /* A1111's and ComfyUI's further samplers and schedules (tools/oracle/sampling_more.py) */
        cJSON *more = load_json(test_data_path("sampling_more_golden.json"));
        TEST_CHECK(more != NULL, "read %s", test_data_path("sampling_more_golden.json"));
        if (more) {
            /* vkdiff computes every schedule on one table, A1111's (k-diffusion's float32
             * sigmas from the float32 alphas_cumprod); ComfyUI's is float64 rounded once,
             * 1.3e-5 apart at most (the oracle's notes): its schedules are held to 3e-5,
             * the ones vkdiff takes from A1111 (schedules_a1111) to 1e-5 */
            static const char *const comfy[] = {"exponential", "polyexponential", "simple", "ddim_uniform", "beta",
                                                "kl_optimal", NULL};
            static const char *const a1111[] = {"normal", "sgm_uniform", "ays", "ays_sdxl", NULL};
            check_schedules(more, "sampling_more_golden.json", "schedules", comfy, 3e-5, 35);
            check_schedules(more, "sampling_more_golden.json", "schedules_a1111", a1111, 1e-5, 24);
            check_runs(more, get(root, "toy"), "sampling_more_golden.json", "runs", 76);
            check_runs(more, get(root, "toy"), "sampling_more_golden.json", "runs_comfy_discard", 8);
            cJSON_Delete(more);
        }
        cJSON_Delete(root);
    }
    test_sigma_t_round_trips();
    test_sampler_cancels_and_reports_errors();
    return test_finish();
}
