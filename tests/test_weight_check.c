/* Issue 18, items 3 and 11: damaged checkpoints are refused before any GPU work with an
 * error naming the tensor, its expected and its found shape or dtype; a weight that
 * cannot be had fails the recording with its real cause, and a conv never runs
 * without its bias.
 *
 * Every tensor of tests/data/tiny-sd1.safetensors is damaged in turn (its last
 * dimension one longer, the data appended at the end of the file), and the check
 * generation and `vkdiff info` share (models/check.h) must name it. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "harness.h"
#include "st_edit.h"
#include "io/layout.h"
#include "models/check.h"
#include "models/detect.h"
#include "models/graph.h"
#include "models/wstore.h"
#include "vk/memory.h"
#include "vkdiff.h"

/* ---- the check, as generation runs it ------------------------------------------------ */

typedef struct {
    char lines[4096];
} said;

static void collect(void *user, const char *line)
{
    said *s = user;
    size_t n = strlen(s->lines);
    snprintf(s->lines + n, sizeof s->lines - n, "%s\n", line);
}

/* 0 accepted, 1 refused by detection, 2 refused by the check (lines in *s) */
static int check_file(const char *path, said *s)
{
    s->lines[0] = 0;
    vkd_weights *w = NULL;
    if (vkd_weights_open(path, NULL, &w))
        return 1;
    vkd_model_config cfg;
    int verdict = 1;
    if (!vkd_model_detect(w, &cfg, NULL, 0)) {
        vkd_weight_check c = {.say = collect, .user = s};
        verdict = vkd_model_check_weights(w, &cfg, &c) ? 2 : 0;
    }
    vkd_weights_close(w);
    return verdict;
}

/* the names vkd_model_expected lists (tiny-sd1 is a CompVis file: the same names) */
typedef struct {
    char (*names)[160];
    int n, cap;
} expected_names;

static int note_expected(const char *name, int rank, const int64_t *shape, void *user)
{
    (void)rank, (void)shape;
    expected_names *e = user;
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 256;
        e->names = realloc(e->names, (size_t)e->cap * sizeof *e->names);
    }
    snprintf(e->names[e->n++], sizeof e->names[0], "%s", name);
    return 0;
}

static int is_expected(const expected_names *e, const char *name)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->names[i], name))
            return 1;
    return 0;
}

static void quiet(vkd_log_level l, const char *m, void *u) { (void)l, (void)m, (void)u; }

static char logged[8192];
static void keep_log(vkd_log_level l, const char *m, void *u)
{
    (void)l, (void)u;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", m);
}

static void test_every_tensor_named(void)
{
    st_image s;
    const char *src = test_data_path("tiny-sd1.safetensors");
    TEST_CHECK(st_load(src, &s) == 0, "read %s", src);
    if (!s.header)
        return;
    said out;
    TEST_CHECK(check_file(src, &out) == 0, "the undamaged file passes:\n%s", out.lines);
    const char *tmp = test_build_path("weight-check.safetensors");
    int named = 0, by_detect = 0, total = 0;
    vkd_log_set(quiet, NULL, VKD_LOG_ERROR); /* detection's refusals are expected below */
    expected_names ex = {0};
    {
        vkd_weights *w = NULL;
        vkd_model_config cfg;
        if (!vkd_weights_open(src, NULL, &w) && !vkd_model_detect(w, &cfg, NULL, 0))
            vkd_model_expected(&cfg, note_expected, &ex);
        vkd_weights_close(w);
    }
    for (cJSON *t = s.header->child; t; t = t->next) {
        if (!is_expected(&ex, t->string))
            continue; /* not read by the model (schedule buffers, ...) */
        if (st_write_changed(&s, t->string, NULL, 1, tmp))
            continue;
        total++;
        int v = check_file(tmp, &out);
        if (v == 1) {
            by_detect++;
            continue;
        }
        int ok = v == 2 && strstr(out.lines, t->string) && strstr(out.lines, "expected");
        named += ok;
        TEST_CHECK(ok, "%s one longer: %s\n%s", t->string, v ? "refused without naming it" : "accepted", out.lines);
    }
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    printf("  %d tensors damaged: %d named by the check, %d refused by detection\n", total, named, by_detect);
    TEST_CHECK(total > 300 && named + by_detect == total, "every damaged tensor refused");
    TEST_CHECK(named * 10 >= total * 9, "most named by the check (%d of %d)", named, total);

    /* the cases: a sheared VAE kernel, a to_q of the wrong width, integer dtypes */
    static const struct {
        const char *name, *dtype;
        int grow;
        const char *want;
    } cases[] = {
        {"first_stage_model.decoder.conv_out.weight", NULL, 1, "expected [3, "},
        {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", NULL, 8, "to_q.weight is"},
        {"model.diffusion_model.out.2.bias", "I64", 0, "is I64, expected a float"},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", "U8", 0, "is U8, expected a float"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cJSON_GetObjectItemCaseSensitive(s.header, cases[i].name)) {
            TEST_CHECK(0, "tiny-sd1 has no %s", cases[i].name);
            continue;
        }
        TEST_CHECK(st_write_changed(&s, cases[i].name, cases[i].dtype, cases[i].grow, tmp) == 0, "write");
        int v = check_file(tmp, &out);
        TEST_CHECK(v == 2 && strstr(out.lines, cases[i].want), "%s: %s", cases[i].name, out.lines);
        /* generation refuses it too, before a device is made, naming the tensor */
        vkd_ctx_params cp;
        vkd_ctx_params_init(&cp);
        cp.model_path = tmp;
        cp.tokenizer_path = test_shared_path("clip/bpe_simple_vocab_16e6.txt.gz");
        cp.log = keep_log;
        logged[0] = 0;
        vkd_ctx *ctx = NULL;
        vkd_result r = vkd_ctx_create(&cp, &ctx);
        TEST_CHECK(r == VKD_ERR_FORMAT && strstr(logged, cases[i].name) && strstr(logged, cases[i].want),
                   "vkd_ctx_create on %s: %s\n%s", cases[i].name, vkd_result_str(r), logged);
        vkd_ctx_free(ctx);
    }
    remove(tmp);
    free(ex.names);
    st_free(&s);
}

/* ---- item 11: the recording's errors keep their cause ---------------------------- */

#define CONV "model.diffusion_model.out.2" /* a name the layout maps */

static void write_conv_file(const char *path, int cout, const char *bias_dtype)
{
    /* CONV.weight F32 [cout, 3, 3, 3], CONV.bias [cout] */
    size_t nw = (size_t)cout * 27 * 4, nb = (size_t)cout * (strcmp(bias_dtype, "I64") ? 4 : 8);
    char json[512];
    snprintf(json, sizeof json,
             "{\"" CONV ".weight\":{\"dtype\":\"F32\",\"shape\":[%d,3,3,3],\"data_offsets\":[0,%zu]},"
             "\"" CONV ".bias\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}}",
             cout, nw, bias_dtype, cout, nw, nw + nb);
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(json);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (8 * i));
    float *data = calloc(1, nw + nb);
    for (size_t i = 0; i < nw / 4; i++)
        data[i] = (float)((i % 7) - 3) * 0.1f;
    fwrite(len, 1, 8, f);
    fwrite(json, 1, n, f);
    fwrite(data, 1, nw + nb, f);
    fclose(f);
    free(data);
}

/* record g_conv "c" over a 4x4 3-channel image; the graph's error */
static vkd_result record_conv(const char *file, uint64_t max_device_bytes)
{
    vkd_device_opts o;
    vkd_device_opts_init(&o);
    o.validation = getenv("VKD_NO_VALIDATION") == NULL;
    o.require_validation = o.validation && getenv("VKD_REQUIRE_VALIDATION") != NULL;
    o.max_device_bytes = max_device_bytes;
    vkd_device *d = NULL;
    vkd_result r = vkd_device_create(&o, &d);
    TEST_CHECK(r == VKD_OK, "device: %s", vkd_result_str(r));
    if (r)
        return r;
    test_pin_driver_libs();
    vkd_memory_set_block_size(d, 1u << 20);
    vkd_weights *w = NULL;
    vkd_wstore *ws = NULL;
    vkd_pool *pool = NULL;
    vkd_cmd *c = NULL;
    float x[4 * 4 * 3] = {0};
    int64_t xs[3] = {1, 16, 3};
    vkd_tensor xt = test_tensor_from(d, VKD_F32, 3, xs, x);
    r = vkd_weights_open(file, NULL, &w);
    if (!r)
        r = vkd_wstore_create(d, w, VKD_F32, &ws);
    if (!r)
        r = vkd_pool_create(d, &pool);
    if (!r)
        r = vkd_cmd_create(d, &c);
    TEST_CHECK(r == VKD_OK, "setup: %s", vkd_result_str(r));
    if (!r) {
        vkd_cmd_begin(c);
        vkd_graph g = {.d = d, .c = c, .pool = pool, .ws = ws, .dt = VKD_F32};
        vkd_tensor y = g_conv(&g, &xt, 4, 4, 1, 1, NULL, CONV);
        vkd_cmd_end(c);
        r = g.err;
        g_free(&g, &y);
    }
    vkd_cmd_destroy(c);
    vkd_tensor_destroy(d, &xt);
    vkd_pool_destroy(d, pool);
    vkd_wstore_destroy(ws);
    vkd_weights_close(w);
    TEST_CHECK(d->validation_errors == 0, "validation errors");
    vkd_device_destroy(d);
    return r;
}

static void test_recording_errors_keep_their_cause(void)
{
    const char *f = test_build_path("conv-errors.safetensors");
    vkd_log_set(quiet, NULL, VKD_LOG_ERROR);
    write_conv_file(f, 8, "F32");
    vkd_result r = record_conv(f, 0);
    TEST_CHECK(r == VKD_OK, "a good conv records: %s", vkd_result_str(r));
    write_conv_file(f, 8, "I64");
    r = record_conv(f, 0);
    TEST_CHECK(r != VKD_OK, "a conv whose bias cannot be read is not recorded without it (got %s)",
               vkd_result_str(r));
    /* a 2.2 MB weight on a device that has 1.5 MiB: the device's answer, not a format error */
    write_conv_file(f, 20000, "F32");
    r = record_conv(f, 3u << 19);
    TEST_CHECK(r == VKD_ERR_OUT_OF_DEVICE_MEMORY, "a weight that does not fit: %s (expected %s)",
               vkd_result_str(r), vkd_result_str(VKD_ERR_OUT_OF_DEVICE_MEMORY));
    vkd_log_set(NULL, NULL, VKD_LOG_WARN);
    remove(f);
}

int main(void)
{
    test_every_tensor_named();
    test_recording_errors_keep_their_cause();
    return test_finish();
}
