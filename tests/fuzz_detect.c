/* libFuzzer target: model detection from a checkpoint's header. Bytes -> a file (a
 * memfd) -> vkd_weights_open_fd (CompVis layout mapping) -> vkd_model_detect -> a
 * config or a refusal; a config then goes through vkd_model_expected, each expected
 * tensor looked up in the weights, and through vkd_model_check_weights.
 *
 * Two input forms:
 *   - a safetensors file (byte 8 is '{'). 64 MiB of zeros are appended, so a header
 *     whose data was cut off (tests/fuzz_corpus/detect/ holds the tiny checkpoints'
 *     headers, tools/fuzz_seeds.py) still loads; detection never reads tensor data.
 *   - anything else: a tensor list the harness writes out as a safetensors header with
 *     consistent data_offsets, so that mutated shapes still load (a raw header whose
 *     shape changes no longer matches its offsets). One tensor a line:
 *         name 320x4x3x3 F16        (dtype optional, F16 by default; "-" is rank 0)
 *         @key value                (a metadata entry, e.g. @vkdiff.config {...})
 *     Data is a sparse zero-filled tail; inputs needing over 4 GiB of it are skipped.
 * Checks: detection returns a config of a known family with sane numbers, or a refusal
 * with a reason; every expected tensor has a name and rank 1..4 with non-negative
 * dimensions; the callback's stop value stops the walk and is returned; the weight
 * check fails exactly when a tensor is missing, of another shape or dtype, says each
 * finding once and finds no NaN/Inf in the zero data.
 * Run: tools/fuzz.sh, or ./fuzz_detect -max_total_time=60 tests/fuzz_corpus/detect
 * (VKD_FUZZ_VERBOSE=1: one line per input that loads, what detection made of it). */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "io/layout.h"
#include "models/check.h"
#include "models/detect.h"

static void quiet(vkd_log_level level, const char *msg, void *user) { (void)level, (void)msg, (void)user; }

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_detect: check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define RAW_PAD (64ull << 20)
#define MAX_DATA (4ull << 30)
#define MAX_SCAN (1ull << 20) /* vkd_model_check_weights reads the values of data this small */

/* ---- a growing text buffer ---------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(buf *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t k = i; /* a run that needs no escape, copied at once */
        while (k < n && (unsigned char)s[k] >= 0x20 && s[k] != '"' && s[k] != '\\')
            k++;
        put(b, s + i, k - i);
        if (k == n)
            break;
        unsigned char c = (unsigned char)s[k];
        char e[8];
        if (c == '"' || c == '\\')
            e[0] = '\\', e[1] = (char)c, e[2] = 0;
        else
            snprintf(e, sizeof e, "\\u%04x", c);
        puts_(b, e);
        i = k + 1;
    }
    put(b, "\"", 1);
}

static uint64_t dtype_bytes(const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned size;
    } t[] = {{"F64", 8}, {"I64", 8}, {"U64", 8}, {"F32", 4}, {"I32", 4}, {"U32", 4}, {"F16", 2}, {"BF16", 2},
             {"I16", 2}, {"U16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I8", 1}, {"U8", 1}, {"BOOL", 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strlen(t[i].name) == n && memcmp(t[i].name, s, n) == 0)
            return t[i].size;
    return 2; /* an unknown dtype: the reader refuses it whatever its offsets */
}

static uint64_t sat_mul(uint64_t a, uint64_t b) { return a && b > UINT64_MAX / a ? UINT64_MAX : a * b; }

/* The tensor list -> a safetensors header (8-byte length + JSON); *data_bytes: the size
 * of the data section it describes. Returns 0 when the input is not worth a file. */
static int build_header(const uint8_t *in, size_t size, buf *h, uint64_t *data_bytes)
{
    buf j = {0}, meta = {0};
    uint64_t off = 0;
    int ok = 1, ntensors = 0;
    put(&j, "{", 1);
    for (size_t pos = 0; pos < size && ok;) {
        const char *line = (const char *)in + pos;
        const char *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + 1;
        const char *sp = memchr(line, ' ', len);
        if (!sp || sp == line)
            continue;
        size_t nlen = (size_t)(sp - line);
        const char *rest = sp + 1;
        size_t rlen = len - nlen - 1;
        if (line[0] == '@') { /* metadata: @key value */
            put(&meta, meta.n ? "," : "", meta.n ? 1 : 0);
            put_json_string(&meta, line + 1, nlen - 1);
            put(&meta, ":", 1);
            put_json_string(&meta, rest, rlen);
            continue;
        }
        /* dims [dtype] */
        const char *sp2 = memchr(rest, ' ', rlen);
        size_t dlen = sp2 ? (size_t)(sp2 - rest) : rlen;
        const char *dt = sp2 ? sp2 + 1 : "F16";
        size_t dtlen = sp2 ? rlen - dlen - 1 : 3;
        uint64_t dims[16], nelem = 1;
        int rank = 0, good = 1;
        if (!(dlen == 1 && rest[0] == '-')) {
            for (size_t i = 0; i < dlen && good;) {
                uint64_t v = 0;
                size_t k = i;
                while (k < dlen && rest[k] >= '0' && rest[k] <= '9' && k - i < 15)
                    v = v * 10 + (uint64_t)(rest[k++] - '0');
                if (k == i || rank == 16 || (k < dlen && rest[k] != 'x'))
                    good = 0;
                else
                    dims[rank++] = v;
                i = k + 1;
            }
            good = good && rank > 0;
        }
        if (!good)
            continue;
        for (int d = 0; d < rank; d++)
            nelem = sat_mul(nelem, dims[d]);
        uint64_t nbytes = sat_mul(nelem, dtype_bytes(dt, dtlen));
        if (nbytes > MAX_DATA || off + nbytes > MAX_DATA) {
            ok = 0;
            break;
        }
        if (ntensors++)
            put(&j, ",", 1);
        put_json_string(&j, line, nlen);
        puts_(&j, ":{\"dtype\":");
        put_json_string(&j, dt, dtlen);
        puts_(&j, ",\"shape\":[");
        char num[64];
        for (int d = 0; d < rank; d++) {
            snprintf(num, sizeof num, "%s%llu", d ? "," : "", (unsigned long long)dims[d]);
            puts_(&j, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + nbytes));
        puts_(&j, num);
        off += nbytes;
    }
    if (meta.n) {
        put(&j, ntensors ? "," : "", ntensors ? 1 : 0);
        puts_(&j, "\"__metadata__\":{");
        put(&j, meta.s, meta.n);
        put(&j, "}", 1);
    }
    put(&j, "}", 1);
    while (j.n % 8)
        put(&j, " ", 1);
    ok = ok && !j.oom && !meta.oom;
    if (ok) {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++)
            len8[i] = (uint8_t)((uint64_t)j.n >> (8 * i));
        put(h, (const char *)len8, 8);
        put(h, j.s, j.n);
        ok = !h->oom;
    }
    free(j.s);
    free(meta.s);
    *data_bytes = off;
    return ok;
}

/* ---- the model side ------------------------------------------------------------------ */

typedef struct {
    const vkd_weights *w;
    size_t calls, stop_at, found, same_shape;
    int stopped, lookup;
} expect_ctx;

static int on_expected(const char *name, int rank, const int64_t *shape, void *user)
{
    expect_ctx *c = user;
    CHECK(!c->stopped); /* nothing after the callback said stop */
    CHECK(name && name[0] && strlen(name) < 256);
    CHECK(rank >= 1 && rank <= 4);
    for (int i = 0; i < rank; i++)
        CHECK(shape[i] >= 0);
    const vkd_wtensor *t = c->lookup ? vkd_weights_find(c->w, name) : NULL;
    if (t) {
        CHECK(strcmp(t->name, name) == 0);
        c->found++;
        int same = t->rank == rank;
        for (int i = 0; same && i < rank; i++)
            same = t->shape[i] == shape[i];
        c->same_shape += same;
    }
    if (++c->calls == c->stop_at) {
        c->stopped = 1;
        return 7;
    }
    return 0;
}

static void check_config(const vkd_model_config *cfg)
{
    const vkd_unet_config *u = &cfg->unet;
    CHECK(cfg->family == VKD_FAMILY_SD1 || cfg->family == VKD_FAMILY_SD2 || cfg->family == VKD_FAMILY_SDXL);
    CHECK(u->in_channels == 4 || u->in_channels == 9);
    CHECK(u->out_channels == 4 && u->model_channels > 0 && u->context_dim > 0);
    CHECK(u->num_levels >= 1 && u->num_levels <= VKD_MAX_LEVELS && u->num_res_blocks >= 1);
    CHECK((u->num_heads > 0) != (u->head_dim > 0));
    for (int i = 0; i < u->num_levels; i++)
        CHECK(u->channel_mult[i] >= 1);
    CHECK(cfg->n_text == 1 || cfg->n_text == 2);
    for (int k = 0; k < cfg->n_text; k++)
        CHECK(cfg->text[k].width > 0 && cfg->text[k].heads > 0 && cfg->text[k].width % cfg->text[k].heads == 0);
    CHECK(cfg->vae.num_levels >= 1 && cfg->vae.num_levels <= VKD_MAX_LEVELS && cfg->vae.ch > 0);
    for (int i = 0; i < cfg->vae.num_levels; i++)
        CHECK(cfg->vae.ch_mult[i] >= 1);
}

static void on_finding(void *user, const char *line)
{
    CHECK(line && line[0]);
    ++*(size_t *)user;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkd_log_set(quiet, NULL, VKD_LOG_DEBUG); /* format every message, print none */
    buf h = {0};
    const uint8_t *bytes = data;
    uint64_t file_len = size + RAW_PAD;
    size_t nbytes = size;
    if (!(size > 8 && data[8] == '{')) {
        uint64_t data_bytes = 0;
        if (!build_header(data, size, &h, &data_bytes)) {
            free(h.s);
            return 0;
        }
        bytes = (const uint8_t *)h.s;
        nbytes = h.n;
        file_len = h.n + data_bytes;
    }
    int fd = memfd_create("fuzz_detect", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    CHECK(write(fd, bytes, nbytes) == (ssize_t)nbytes);
    CHECK(ftruncate(fd, (off_t)file_len) == 0); /* a sparse tail of zeros */
    free(h.s);

    vkd_weights *w = NULL;
    vkd_result r = vkd_weights_open_fd(fd, 0, (size_t)file_len, "fuzz", &w);
    close(fd);
    if (r != VKD_OK) {
        CHECK(!w);
        return 0;
    }
    size_t n = vkd_weights_count(w);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        const vkd_wtensor *t = vkd_weights_at(w, i);
        CHECK(t && t->name && t->src && t->rank >= 0 && t->rank <= VKD_ST_MAX_RANK);
        CHECK(vkd_weights_find(w, t->name) == t);
        if (i)
            CHECK(strcmp(vkd_weights_at(w, i - 1)->name, t->name) < 0); /* sorted, unique */
    }

    vkd_model_config cfg;
    char why[256];
    r = vkd_model_detect(w, &cfg, why, sizeof why);
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("VKD_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz_detect: %zu tensors: %s%s\n", n, r ? "refused: " : vkd_family_name(cfg.family), r ? why : "");
    if (r == VKD_OK) {
        check_config(&cfg);
        expect_ctx all = {w, 0, 0, 0, 0, 0, 1};
        CHECK(vkd_model_expected(&cfg, on_expected, &all) == 0);
        CHECK(all.calls > 0);
        /* again, stopping part way (no lookups: they cost as much as the rest) */
        expect_ctx part = {w, 0, 1 + size % all.calls, 0, 0, 0, 0};
        CHECK(vkd_model_expected(&cfg, on_expected, &part) == 7 && part.calls == part.stop_at);

        /* the check generation and `vkdiff info` run: every expected tensor present, of
         * its shape and a float dtype; the values (all zero here) are read when the
         * data section is small */
        unsigned char *used = calloc(n + 1, 1);
        size_t lines = 0;
        vkd_weight_check chk = {0};
        chk.used = used;
        chk.scan_values = file_len - nbytes <= MAX_SCAN;
        chk.say = on_finding;
        chk.user = &lines;
        vkd_result cr = vkd_model_check_weights(w, &cfg, &chk);
        size_t errors = chk.missing + chk.wrong_shape + chk.wrong_dtype;
        if (verbose)
            fprintf(stderr, "fuzz_detect: weight check: %zu missing, %zu wrong shape, %zu wrong dtype%s\n", chk.missing,
                    chk.wrong_shape, chk.wrong_dtype, chk.scan_values ? ", values read" : "");
        CHECK(cr == (errors ? VKD_ERR_FORMAT : VKD_OK));
        CHECK(chk.missing == all.calls - all.found && chk.wrong_shape == all.found - all.same_shape);
        CHECK(chk.wrong_dtype <= all.same_shape);
        CHECK(chk.non_finite == 0);       /* the data is zeros */
        CHECK(lines == errors);           /* each finding said once (no limit) */
        for (size_t i = 0; used && i < n; i++)
            CHECK(used[i] <= 1);
        free(used);
    } else {
        CHECK(r == VKD_ERR_UNSUPPORTED && why[0]); /* a refusal says why */
    }
    vkd_weights_close(w);
    return 0;
}
