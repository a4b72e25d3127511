/* Jobs: a bounded queue of generation requests and one worker thread per device
 * context. A worker keeps its model resident between jobs and switches model when a
 * job names another (the old context is freed first, so two models never share the
 * device's memory). A job is cancelled when its client goes away, at an interrupt, at
 * its deadline or at shutdown: the progress callback stops the generation within one
 * sampler step. */
#ifndef VKD_SERVE_JOBS_H
#define VKD_SERVE_JOBS_H

#include <stdint.h>

#include "serve/serve.h"
#include "vkdiff.h"

enum { VKD_JOB_QUEUED, VKD_JOB_RUNNING, VKD_JOB_DONE };

/* One image made. */
typedef struct vkd_job_image {
    char *png_b64;          /* PNG with its infotext, base64 */
    char *infotext;
    int64_t seed;
} vkd_job_image;

typedef struct vkd_job {
    /* ---- the request, owned (set before vkd_jobs_submit, then read-only) ---- */
    vkd_gen_params gp;      /* its strings point at the fields below or at static names */
    char *prompt, *negative;
    char *model_path;       /* the model file (resolved in model_dir) */
    char *model_name;       /* its file name, written in the infotext */
    uint8_t *init, *mask;   /* RGB8 / grey8, malloc'd; NULL: none */
    int count;              /* images; seeds seed, seed + 1, ... (seed < 0: random, then + 1) */
    char id[64];            /* task id (A1111's force_task_id, else made up) */
    double deadline;        /* vkd_serve_now() after which the job is stopped (504) */
    /* ---- state, under the queue's lock ---- */
    int state;
    int image, step, steps; /* progress: image index, sampler step of steps */
    double t_queued, t_started, t_done;
    int cancel;             /* stop at the next step */
    int interrupted, timed_out, client_gone;
    uint8_t *preview_png;   /* the latest TAESD preview */
    size_t preview_len;
    vkd_job_image *images;  /* [count]; the first n_done are made */
    int n_done;
    vkd_result result;      /* VKD_OK, or why it stopped early */
    char error[256];
    int refs;               /* the submitter's, the queue's and the recent list's */
    struct vkd_job *next;   /* in the queue */
} vkd_job;

typedef struct vkd_jobs vkd_jobs;

/* The workers start with the default model loaded (errors are printed; -1: no worker could start). */
int vkd_jobs_create(vkd_server *srv, vkd_jobs **out);
/* Cancels everything (waiting jobs end cancelled, running ones stop within a step), joins
 * the workers and frees the contexts; submitting is refused from then on (503). */
void vkd_jobs_stop(vkd_jobs *q);
/* vkd_jobs_stop, then frees the queue: after every handler has let go of its jobs. */
void vkd_jobs_destroy(vkd_jobs *q);

/* A new job with one reference (the caller's), id made up, all else zero. NULL: no memory. */
vkd_job *vkd_job_new(void);
void vkd_job_release(vkd_jobs *q, vkd_job *job); /* q NULL: a job never submitted */

/* 0: queued; 429: the queue is full; 503: shutting down. */
int vkd_jobs_submit(vkd_jobs *q, vkd_job *job);
/* Waits for the job to finish; every ~100 ms asks client_gone(user): when it says the
 * client went away the job is cancelled (and still waited for). */
void vkd_jobs_wait(vkd_jobs *q, vkd_job *job, int (*client_gone)(void *), void *user);
/* Stops the running jobs within a step (A1111's interrupt); the queued ones still run. */
void vkd_jobs_interrupt(vkd_jobs *q);

/* A snapshot of a job's progress for /sdapi/v1/progress: id NULL or "" takes the
 * running job started last. preview is a malloc'd copy (NULL when none or not asked). */
typedef struct vkd_progress {
    int found;              /* 0: no such job (or none running) */
    int state, image, count, step, steps, interrupted;
    int job_count;          /* jobs queued or running */
    double elapsed, t_started;
    char id[64];
    uint8_t *preview;
    size_t preview_len;
} vkd_progress;
void vkd_jobs_progress(vkd_jobs *q, const char *id, int want_preview, vkd_progress *out);

#endif
