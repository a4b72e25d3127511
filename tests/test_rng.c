/* host/sample/rng.c against tests/data/rng_golden.json (tools/oracle/rng_ref.py):
 * the cpu generator against Debian's torch.randn, the cuda generator against a NumPy
 * port of A1111's rng_philox.py and against the values published in its docstring. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "sample/rng.h"

static cJSON *load_json(const char *path)
{
    char *text = test_read_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    return root;
}

/* Runs every golden case of one generator kind; returns the largest error seen,
 * measured as |got - ref| / max(1, |ref|). */
static double check_cases(const cJSON *cases, vkd_rng_kind kind, double tol, int *n_cases)
{
    double worst = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        uint64_t seed = (uint64_t)cJSON_GetObjectItem(c, "seed")->valuedouble;
        vkd_rng *rng = NULL;
        TEST_CHECK(vkd_rng_create(kind, seed, &rng) == VKD_OK, "create %s seed %llu", vkd_rng_name(kind),
                   (unsigned long long)seed);
        if (!rng)
            continue;
        int call_no = 0;
        const cJSON *call;
        cJSON_ArrayForEach(call, cJSON_GetObjectItem(c, "calls")) {
            size_t n = (size_t)cJSON_GetObjectItem(call, "n")->valuedouble;
            float *out = malloc((n ? n : 1) * sizeof *out);
            TEST_CHECK(vkd_rng_randn(rng, out, n) == VKD_OK, "randn n=%zu", n);
            const cJSON *idx = cJSON_GetObjectItem(call, "index");
            const cJSON *val = cJSON_GetObjectItem(call, "value");
            int k = 0, bad = 0;
            double case_worst = 0;
            for (const cJSON *i = idx->child, *v = val->child; i && v; i = i->next, v = v->next, k++) {
                size_t at = (size_t)i->valuedouble;
                double ref = v->valuedouble;
                double err = fabs((double)out[at] - ref) / fmax(1.0, fabs(ref));
                if (err > case_worst)
                    case_worst = err;
                if (!(err <= tol) && !bad) {
                    bad = 1;
                    fprintf(stderr, "  %s seed %llu call %d n=%zu: [%zu] got %.9g want %.9g\n", vkd_rng_name(kind),
                            (unsigned long long)seed, call_no, n, at, out[at], ref);
                }
            }
            TEST_CHECK(!bad && k > 0, "%s seed %llu call %d (n=%zu) matches the reference (worst %.3g)",
                       vkd_rng_name(kind), (unsigned long long)seed, call_no, n, case_worst);
            if (case_worst > worst)
                worst = case_worst;
            free(out);
            call_no++;
        }
        vkd_rng_destroy(rng);
        (*n_cases)++;
    }
    return worst;
}

static void test_cpu_rng_matches_torch_randn(const cJSON *root)
{
    int n = 0;
    /* float32 Box-Muller: libm vs torch's Sleef differ by an ulp or two */
    double worst = check_cases(cJSON_GetObjectItem(root, "cpu"), VKD_RNG_CPU, 1e-6, &n);
    printf("cpu: %d cases, worst error %.3g\n", n, worst);
    TEST_CHECK(n >= 40, "cpu golden cases present (%d)", n);
}

static void test_cuda_rng_matches_philox_port(const cJSON *root)
{
    int n = 0;
    double worst = check_cases(cJSON_GetObjectItem(root, "cuda"), VKD_RNG_CUDA, 1e-6, &n);
    printf("cuda: %d cases, worst error %.3g\n", n, worst);
    TEST_CHECK(n >= 30, "cuda golden cases present (%d)", n);
}

static void test_cuda_rng_matches_a1111_published_values(const cJSON *root)
{
    const cJSON *doc = cJSON_GetObjectItem(root, "a1111_docstring_seed0_3x4");
    TEST_CHECK(doc && cJSON_GetArraySize(doc) == 12, "docstring values present");
    if (!doc)
        return;
    vkd_rng *rng = NULL;
    float out[12];
    TEST_CHECK(vkd_rng_create(VKD_RNG_CUDA, 0, &rng) == VKD_OK, "create");
    TEST_CHECK(vkd_rng_randn(rng, out, 12) == VKD_OK, "randn");
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, doc) {
        /* the docstring was printed from a float32-math run: within 3e-7 of ours */
        TEST_CHECK(fabs(out[i] - v->valuedouble) <= 3e-7, "docstring [%d]: got %.9g want %.9g", i, out[i],
                   v->valuedouble);
        i++;
    }
    vkd_rng_destroy(rng);
}

static void test_rng_bad_input_is_an_error(void)
{
    vkd_rng_kind kind;
    TEST_CHECK(vkd_rng_parse("cpu", &kind) == VKD_OK && kind == VKD_RNG_CPU, "parse cpu");
    TEST_CHECK(vkd_rng_parse("cuda", &kind) == VKD_OK && kind == VKD_RNG_CUDA, "parse cuda");
    TEST_CHECK(vkd_rng_parse("gpu", &kind) == VKD_ERR_INVALID_ARG, "parse gpu fails");
    TEST_CHECK(vkd_rng_parse(NULL, &kind) == VKD_ERR_INVALID_ARG, "parse NULL fails");
    vkd_rng *rng = NULL;
    TEST_CHECK(vkd_rng_create((vkd_rng_kind)7, 1, &rng) == VKD_ERR_INVALID_ARG && rng == NULL, "bad kind");
    TEST_CHECK(vkd_rng_create(VKD_RNG_CPU, 1, NULL) == VKD_ERR_INVALID_ARG, "NULL out");
    TEST_CHECK(vkd_rng_randn(NULL, NULL, 4) == VKD_ERR_INVALID_ARG, "NULL rng");
    TEST_CHECK(vkd_rng_create(VKD_RNG_CPU, 1, &rng) == VKD_OK, "create");
    TEST_CHECK(vkd_rng_randn(rng, NULL, 4) == VKD_ERR_INVALID_ARG, "NULL out buffer");
    TEST_CHECK(vkd_rng_randn(rng, NULL, 0) == VKD_OK, "zero draws is fine");
    vkd_rng_destroy(rng);
    vkd_rng_destroy(NULL);
}

static void test_random_seed_is_in_range_and_varies(void)
{
    uint64_t a = vkd_seed_random(), b = vkd_seed_random();
    TEST_CHECK(a < 4294967295u && b < 4294967295u, "seeds in range: %llu %llu", (unsigned long long)a,
               (unsigned long long)b);
    TEST_CHECK(a != b, "two random seeds differ");
}

int main(void)
{
    cJSON *root = load_json(test_data_path("rng_golden.json"));
    TEST_CHECK(root != NULL, "read %s", test_data_path("rng_golden.json"));
    if (root) {
        test_cpu_rng_matches_torch_randn(root);
        test_cuda_rng_matches_philox_port(root);
        test_cuda_rng_matches_a1111_published_values(root);
        cJSON_Delete(root);
    }
    test_rng_bad_input_is_an_error();
    test_random_seed_is_in_range_and_varies();
    return test_finish();
}
