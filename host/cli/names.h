/* Sampler and schedule names as people paste them: vkdiff's (euler_a, karras), A1111's
 * display names ("Euler a", "Karras"), its k-diffusion aliases (k_euler_a) and its older
 * combined names ("DPM++ 2M Karras"). The CLI's infotext writes A1111's names; the
 * server's API takes any of them. Sources: A1111 modules/sd_samplers_kdiffusion.py
 * (samplers_k_diffusion, since 1.9 each sampler's default scheduler), modules/sd_schedulers.py. */
#ifndef VKD_CLI_NAMES_H
#define VKD_CLI_NAMES_H

typedef struct vkd_sampler_name {
    const char *vkdiff;        /* the library's name: euler_a */
    const char *a1111;         /* A1111's display name: "Euler a" */
    const char *aliases[4];    /* A1111's aliases (k_euler_a) and ComfyUI's names (euler_ancestral) */
    const char *auto_schedule; /* what A1111's "Automatic" scheduler gives this sampler (1.9+) */
} vkd_sampler_name;

typedef struct vkd_schedule_name {
    const char *vkdiff;        /* discrete, karras, trailing */
    const char *a1111;         /* "name" in /sdapi/v1/schedulers: uniform, karras */
    const char *label;         /* the label people see and infotexts write: "Karras" */
} vkd_schedule_name;

extern const vkd_sampler_name vkd_sampler_names[];
extern const int vkd_n_sampler_names;
extern const vkd_schedule_name vkd_schedule_names[];
extern const int vkd_n_schedule_names;

/* Any accepted spelling (case-insensitive) to the library's names. A combined name such
 * as "DPM++ 2M Karras" also sets *schedule (else *schedule is left as it is). 0 on
 * success, -1 when unknown. */
int vkd_sampler_lookup(const char *name, const char **sampler, const char **schedule);
/* "Automatic" (or "") gives the sampler's A1111 default; -1 when unknown. */
int vkd_schedule_lookup(const char *name, const char *sampler, const char **schedule);

/* The CLI's --sampler / --schedule values, resolved in place to the library's names:
 * A1111 display names and aliases, ComfyUI names, the old combined names (whose schedule
 * counts unless schedule_given), "Automatic" for the sampler's A1111 default. A name no
 * table knows is left as it is (the library's message lists the valid ones): returns 0;
 * -1 / -2 are reserved for callers that want to stop at an unknown sampler / schedule. */
int vkd_names_resolve(const char **sampler, const char **schedule, int schedule_given);

/* The library's names to A1111's display names (the name itself when not in the tables). */
const char *vkd_sampler_a1111(const char *sampler);
const char *vkd_schedule_a1111_label(const char *schedule);

#endif
