/* vkdiff serve: options, start-up and shutdown (serve.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/env.h"
#include "cli/infotext.h"
#include "serve/jobs.h"
#include "serve/serve.h"
#include "vkdiff_dev.h"

#ifndef VKD_WEIGHTS_DIR
#define VKD_WEIGHTS_DIR "weights"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkdiff serve [options]     an HTTP server: the OpenAI images API, A1111's API, a web page\n"
            "  -m, --model PATH        the default model (default: the shipped shapes model)\n"
            "  --model-dir DIR         models requests may name (default: the model's folder)\n"
            "  --lora-dir DIR          LoRAs prompts may name with <lora:NAME:W> (default: --model-dir)\n"
            "  --tokenizer PATH        the tokenizer (default: each model's tokenizer/ folder)\n"
            "  --taesd PATH            TAESD decoder for progress previews (default: <model>_taesd_decoder.safetensors)\n"
            "  --listen ADDR           address to listen on (default 127.0.0.1)\n"
            "  --port N                port (default 7860, as A1111; 0: any free port)\n"
            "  --api-key KEY           require Authorization: Bearer KEY on the API\n"
            "  --allow-public-without-key  listen beyond loopback without --api-key\n"
            "  --device LIST           Vulkan devices, one worker each, e.g. 0,1 (default: the best one)\n"
            "  --queue N               jobs waiting at most; beyond: 429 (default 16)\n"
            "  --max-body-mb N         request body limit (default 32)\n"
            "  --max-side PX           image width/height limit (default 2048)\n"
            "  --max-steps N           steps limit (default 150)\n"
            "  --max-images N          images per request (default 16)\n"
            "  --max-prompt BYTES      prompt length limit (default 65536)\n"
            "  --read-timeout S        a request must arrive within S seconds (default 30)\n"
            "  --job-timeout S         a job is stopped after S seconds, queue included (default 600)\n"
            "  --cache-dir DIR         pipeline cache (default: $VKD_CACHE_DIR or ~/.cache/vkdiff)\n"
            "  -v                      log the library's messages\n"
            "docs/serving.md: the endpoints, examples with curl and the OpenAI client, nginx.\n");
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int is_loopback(const char *addr)
{
    return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1");
}

static int parse_args(int argc, char **argv, vkd_serve_cfg *c, char *model_buf, size_t model_len)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ival, mb;
#define NEED_VALUE                                                       \
    do {                                                                 \
        if (!v) {                                                        \
            fprintf(stderr, "vkdiff serve: %s needs a value\n", a);     \
            return -1;                                                   \
        }                                                                \
        i++;                                                             \
    } while (0)
#define INT_OPT(name, lo, hi, dst)                                                          \
    if (!strcmp(a, name)) {                                                                 \
        NEED_VALUE;                                                                         \
        if (parse_int(v, lo, hi, &ival)) {                                                  \
            fprintf(stderr, "vkdiff serve: %s takes a number from %d to %d\n", a, lo, hi); \
            return -1;                                                                      \
        }                                                                                   \
        dst = ival;                                                                         \
        continue;                                                                           \
    }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "-v")) {
            c->verbose = 1;
            continue;
        }
        if (!strcmp(a, "--allow-public-without-key")) {
            c->allow_public_without_key = true;
            continue;
        }
        INT_OPT("--port", 0, 65535, c->port)
        INT_OPT("--queue", 0, 100000, c->queue_max)
        INT_OPT("--max-side", 8, 16384, c->max_side)
        INT_OPT("--max-steps", 1, 10000, c->max_steps)
        INT_OPT("--max-images", 1, 1000, c->max_images)
        INT_OPT("--read-timeout", 1, 86400, c->read_timeout_s)
        INT_OPT("--job-timeout", 1, 30 * 86400, c->job_timeout_s)
        if (!strcmp(a, "--max-body-mb")) {
            NEED_VALUE;
            if (parse_int(v, 1, 4096, &mb)) {
                fprintf(stderr, "vkdiff serve: --max-body-mb takes 1 to 4096\n");
                return -1;
            }
            c->max_body = (size_t)mb << 20;
            continue;
        }
        if (!strcmp(a, "--max-prompt")) {
            NEED_VALUE;
            if (parse_int(v, 1, 1 << 24, &ival)) {
                fprintf(stderr, "vkdiff serve: --max-prompt takes 1 to 16777216 bytes\n");
                return -1;
            }
            c->max_prompt = (size_t)ival;
            continue;
        }
        if (!strcmp(a, "--device")) {
            NEED_VALUE;
            c->n_devices = 0;
            const char *p = v;
            while (*p) {
                char *end;
                long d = strtol(p, &end, 10);
                if (end == p || d < 0 || d > 64 || c->n_devices == VKD_SERVE_MAX_WORKERS || (*end && *end != ',')) {
                    fprintf(stderr, "vkdiff serve: --device takes up to %d device numbers: 0,1\n",
                            VKD_SERVE_MAX_WORKERS);
                    return -1;
                }
                c->devices[c->n_devices++] = (int)d;
                p = *end ? end + 1 : end;
            }
            continue;
        }
        const char **str = !strcmp(a, "-m") || !strcmp(a, "--model") ? &c->model
                           : !strcmp(a, "--model-dir")                 ? &c->model_dir
                           : !strcmp(a, "--lora-dir")                  ? &c->lora_dir
                           : !strcmp(a, "--tokenizer")                 ? &c->tokenizer
                           : !strcmp(a, "--taesd")                     ? &c->taesd
                           : !strcmp(a, "--listen")                    ? &c->listen
                           : !strcmp(a, "--api-key")                   ? &c->api_key
                           : !strcmp(a, "--cache-dir")                 ? &c->cache_dir
                                                                       : NULL;
        if (!str) {
            fprintf(stderr, "vkdiff serve: unknown option %s (vkdiff serve --help)\n", a);
            return -1;
        }
        NEED_VALUE;
        *str = v;
#undef NEED_VALUE
#undef INT_OPT
    }
    if (!c->model) { /* the shipped model, as the CLI finds it */
        snprintf(model_buf, model_len, "%s/shapes.safetensors", VKD_WEIGHTS_DIR);
        if (access(model_buf, R_OK))
            snprintf(model_buf, model_len, "weights/shapes.safetensors");
        c->model = model_buf;
    }
    return 0;
}

int vkd_serve_main(int argc, char **argv)
{
    static vkd_server srv; /* the process's one server (the signal wait below is its lifetime) */
    vkd_serve_cfg *c = &srv.cfg;
    char model_buf[4096], dir_buf[4096];
    *c = (vkd_serve_cfg){.listen = "127.0.0.1", .port = 7860, .queue_max = 16, .max_body = 32u << 20,
                         .max_side = 2048, .max_steps = 150, .max_images = 16, .max_prompt = 65536,
                         .read_timeout_s = 30, .job_timeout_s = 600, .n_devices = 1, .devices = {-1}};
    if (parse_args(argc, argv, c, model_buf, sizeof model_buf))
        return 2;
    if (!is_loopback(c->listen) && !c->api_key && !c->allow_public_without_key) {
        fprintf(stderr, "vkdiff serve: --listen %s reaches beyond this machine: give an --api-key (or "
                        "--allow-public-without-key if you mean it)\n", c->listen);
        return 2;
    }
    struct stat st;
    if (stat(c->model, &st)) {
        fprintf(stderr, "vkdiff serve: cannot open the model %s: %s\n", c->model, strerror(errno));
        return 1;
    }
    if (!c->model_dir) { /* the model's folder */
        snprintf(dir_buf, sizeof dir_buf, "%s", c->model);
        char *slash = strrchr(dir_buf, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir_buf, sizeof dir_buf, ".");
        c->model_dir = dir_buf;
    }
    if (!c->lora_dir)
        c->lora_dir = c->model_dir;
    vkd_cli_env env;
    vkd_cli_env_read(&env);
    if (!c->cache_dir)
        c->cache_dir = env.cache_dir;
    else if (mkdir(c->cache_dir, 0755) && errno != EEXIST) /* one level, as the CLI's default is made */
        fprintf(stderr, "vkdiff serve: cannot create --cache-dir %s: %s (no pipeline cache)\n", c->cache_dir,
                strerror(errno));
    pthread_mutex_init(&srv.lock, NULL);
    srv.opts.clip_skip = 1;
    srv.opts.preview_every = 10; /* A1111's show_progress_every_n_steps: a TAESD decode costs ~15 ms at 64x64 */
    snprintf(srv.opts.rng, sizeof srv.opts.rng, "cpu");
    snprintf(srv.opts.model, sizeof srv.opts.model, "%s", vkd_base_name(c->model));

    /* SIGINT/SIGTERM are taken by sigwait below: blocked in every thread from here on */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    vkd_log_set(NULL, NULL, c->verbose ? VKD_LOG_INFO : VKD_LOG_WARN);
    if (vkd_jobs_create(&srv, &srv.jobs))
        return 1;
#ifdef VKD_SANITIZE_BUILD
    vkd_pin_driver_libs(); /* vkdiff_dev.h */
#endif
    vkd_http *http;
    int port;
    if (vkd_http_start(&srv, &http, &port)) {
        vkd_jobs_destroy(srv.jobs);
        return 1;
    }
    fprintf(stderr, "vkdiff serve: listening on http://%s%s%s:%d\n", strchr(c->listen, ':') ? "[" : "", c->listen,
            strchr(c->listen, ':') ? "]" : "", port);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "vkdiff serve: %s: stopping (running jobs are cancelled)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&srv.lock);
    srv.stopping = 1;
    pthread_mutex_unlock(&srv.lock);
    vkd_jobs_stop(srv.jobs);  /* every waiting handler's job ends now */
    vkd_http_stop(http);      /* the handlers have replied */
    vkd_jobs_destroy(srv.jobs);
    pthread_mutex_destroy(&srv.lock);
    fprintf(stderr, "vkdiff serve: stopped\n");
    return 0;
}
