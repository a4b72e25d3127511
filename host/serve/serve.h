/* vkdiff serve: the HTTP server (docs/serving.md). Its parts:
 *   serve_main.c  options, start-up, signals, shutdown
 *   http.c        libmicrohttpd glue: routing, bodies and their limits, the API key,
 *                 the read deadline (slow clients), a client's disconnect
 *   jobs.c        the bounded queue and one worker (a vkd_ctx) per device
 *   request.c     typed JSON fields and the checks every generation request passes
 *   api_a1111.c   /sdapi/v1/...: A1111's API
 *   api_openai.c  /v1/...: the OpenAI images API
 *   models.c      the models and LoRAs in --model-dir / --lora-dir, names checked
 * The server uses the library through its public API only, as any embedder would. */
#ifndef VKD_SERVE_H
#define VKD_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VKD_SERVE_MAX_WORKERS 8

typedef struct vkd_serve_cfg {
    const char *model;          /* the default model: a file or diffusers folder */
    const char *model_dir;      /* models requests may name (default: the model's folder) */
    const char *lora_dir;       /* LoRAs prompts may name (default: model_dir) */
    const char *tokenizer;      /* NULL: each model's tokenizer/ folder */
    const char *taesd;          /* the previews' TAESD decoder; NULL: the one beside the model, if any */
    const char *cache_dir;      /* pipeline cache; NULL: the CLI's default */
    const char *listen;
    int port;
    const char *api_key;
    bool allow_public_without_key;
    int devices[VKD_SERVE_MAX_WORKERS];
    int n_devices;
    int queue_max;              /* jobs waiting (not running) at most */
    size_t max_body;            /* bytes */
    int max_side, max_steps, max_images;
    size_t max_prompt;          /* bytes */
    int read_timeout_s, job_timeout_s;
    int verbose;
} vkd_serve_cfg;

/* What A1111's /sdapi/v1/options holds (and POST changes): defaults for requests. */
typedef struct vkd_serve_options {
    char model[256];            /* sd_model_checkpoint: a file name in model_dir */
    int clip_skip;              /* CLIP_stop_at_last_layers */
    int preview_every;          /* show_progress_every_n_steps */
    char rng[8];                /* randn_source: "cpu" (A1111's "CPU") or "cuda" ("GPU") */
} vkd_serve_options;

struct vkd_jobs;

typedef struct vkd_server {
    vkd_serve_cfg cfg;
    pthread_mutex_t lock;       /* guards opts */
    vkd_serve_options opts;
    struct vkd_jobs *jobs;
    volatile int stopping;      /* set once at shutdown (under lock): new requests get 503 */
} vkd_server;

/* `vkdiff serve ARGS...` (argv[0] is "serve"): runs until SIGINT/SIGTERM; the exit status. */
int vkd_serve_main(int argc, char **argv);

/* A reply: status, body (malloc'd, owned by the reply) and its type. */
typedef struct vkd_reply {
    int status;
    char *body;
    size_t len;
    const char *type;           /* Content-Type */
    int retry_after;            /* > 0: a Retry-After header (429) */
    const char *allow;          /* a 405's Allow header */
} vkd_reply;

/* The HTTP server: starts listening (port 0: any free port, *bound_port tells which). */
typedef struct vkd_http vkd_http;
int vkd_http_start(vkd_server *srv, vkd_http **out, int *bound_port);
void vkd_http_stop(vkd_http *h);

/* Monotonic seconds. */
double vkd_serve_now(void);

#endif
