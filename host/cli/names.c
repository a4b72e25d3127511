/* Sampler and schedule names (names.h). */
#include "cli/names.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

const vkd_sampler_name vkd_sampler_names[] = {
    {"euler_a", "Euler a", {"k_euler_a", "k_euler_ancestral", "euler_ancestral", NULL}, "discrete"},
    {"euler", "Euler", {"k_euler", NULL, NULL, NULL}, "discrete"},
    {"heun", "Heun", {"k_heun", NULL, NULL, NULL}, "discrete"},
    /* A1111 1.9+: ('DPM++ 2M', 'sample_dpmpp_2m', ['k_dpmpp_2m'], {'scheduler': 'karras'}) */
    {"dpm++2m", "DPM++ 2M", {"k_dpmpp_2m", "dpmpp_2m", NULL, NULL}, "karras"},
    {"ddim", "DDIM", {NULL, NULL, NULL, NULL}, "discrete"},
    {"lcm", "LCM", {"k_lcm", NULL, NULL, NULL}, "discrete"},
    {"lms", "LMS", {"k_lms", NULL, NULL, NULL}, "discrete"},
    {"dpm2", "DPM2", {"k_dpm_2", "dpm_2", NULL, NULL}, "karras"},
    {"dpm2_a", "DPM2 a", {"k_dpm_2_a", "dpm_2_ancestral", NULL, NULL}, "karras"},
    {"dpm++2s_a", "DPM++ 2S a", {"k_dpmpp_2s_a", "dpmpp_2s_ancestral", NULL, NULL}, "karras"},
    {"dpm++sde", "DPM++ SDE", {"k_dpmpp_sde", "dpmpp_sde", "dpmpp_sde_gpu", NULL}, "karras"},
    {"dpm++2m_sde", "DPM++ 2M SDE", {"k_dpmpp_2m_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", NULL}, "exponential"},
    {"dpm++2m_sde_heun", "DPM++ 2M SDE Heun", {"k_dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", NULL},
     "exponential"},
    {"dpm++3m_sde", "DPM++ 3M SDE", {"k_dpmpp_3m_sde", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", NULL}, "exponential"},
    /* A1111's "UniPC" runs its own timestep-space implementation; vkdiff runs ComfyUI's
     * (docs/samplers.md) */
    {"uni_pc", "UniPC", {"unipc", "uni_pc_bh1", NULL, NULL}, "discrete"},
    {"uni_pc_bh2", "UniPC BH2", {NULL, NULL, NULL, NULL}, "discrete"},
    {"restart", "Restart", {NULL, NULL, NULL, NULL}, "karras"},
};
const int vkd_n_sampler_names = (int)(sizeof vkd_sampler_names / sizeof vkd_sampler_names[0]);

/* A1111's "uniform" is the model's own discrete sigmas, spaced as k-diffusion's
 * get_sigmas (vkdiff's discrete); "trailing" has no A1111 scheduler of that name. */
const vkd_schedule_name vkd_schedule_names[] = {
    {"discrete", "uniform", "Uniform"},
    {"karras", "karras", "Karras"},
    {"trailing", "trailing", "Trailing"},
    {"exponential", "exponential", "Exponential"},
    {"polyexponential", "polyexponential", "Polyexponential"},
    {"sgm_uniform", "sgm_uniform", "SGM Uniform"},
    {"sgm_uniform", "SGMUniform", "SGMUniform"}, /* A1111's alias */
    {"kl_optimal", "kl_optimal", "KL Optimal"},
    {"ays", "align_your_steps", "Align Your Steps"},
    {"ays_sdxl", "align_your_steps_sdxl", "Align Your Steps SDXL"},
    {"simple", "simple", "Simple"},
    {"normal", "normal", "Normal"},
    {"ddim_uniform", "ddim", "DDIM"},
    {"beta", "beta", "Beta"},
};
const int vkd_n_schedule_names = (int)(sizeof vkd_schedule_names / sizeof vkd_schedule_names[0]);

int vkd_sampler_lookup(const char *name, const char **sampler, const char **schedule)
{
    if (!name)
        return -1;
    for (int i = 0; i < vkd_n_sampler_names; i++) {
        const vkd_sampler_name *s = &vkd_sampler_names[i];
        int hit = !strcasecmp(name, s->vkdiff) || !strcasecmp(name, s->a1111);
        for (int a = 0; a < 4 && s->aliases[a]; a++)
            hit = hit || !strcasecmp(name, s->aliases[a]);
        if (hit) {
            *sampler = s->vkdiff;
            return 0;
        }
        /* before A1111 1.9 the schedule was part of the name: "DPM++ 2M Karras" */
        size_t n = strlen(s->a1111);
        if (!strncasecmp(name, s->a1111, n) && name[n] == ' ') {
            for (int k = 0; k < vkd_n_schedule_names; k++)
                if (!strcasecmp(name + n + 1, vkd_schedule_names[k].label)) {
                    *sampler = s->vkdiff, *schedule = vkd_schedule_names[k].vkdiff;
                    return 0;
                }
        }
    }
    return -1;
}

int vkd_schedule_lookup(const char *name, const char *sampler, const char **schedule)
{
    if (!name || !*name || !strcasecmp(name, "automatic")) {
        for (int i = 0; i < vkd_n_sampler_names; i++)
            if (sampler && !strcmp(sampler, vkd_sampler_names[i].vkdiff)) {
                *schedule = vkd_sampler_names[i].auto_schedule;
                return 0;
            }
        *schedule = "discrete";
        return 0;
    }
    for (int k = 0; k < vkd_n_schedule_names; k++) {
        const vkd_schedule_name *s = &vkd_schedule_names[k];
        if (!strcasecmp(name, s->vkdiff) || !strcasecmp(name, s->a1111) || !strcasecmp(name, s->label)) {
            *schedule = s->vkdiff;
            return 0;
        }
    }
    return -1;
}

const char *vkd_sampler_a1111(const char *sampler)
{
    for (int i = 0; i < vkd_n_sampler_names; i++)
        if (!strcmp(sampler, vkd_sampler_names[i].vkdiff))
            return vkd_sampler_names[i].a1111;
    return sampler;
}

const char *vkd_schedule_a1111_label(const char *schedule)
{
    for (int k = 0; k < vkd_n_schedule_names; k++)
        if (!strcmp(schedule, vkd_schedule_names[k].vkdiff))
            return vkd_schedule_names[k].label;
    return schedule;
}

int vkd_names_resolve(const char **sampler, const char **schedule, int schedule_given)
{
    const char *combined = NULL;
    if (*sampler && vkd_sampler_lookup(*sampler, sampler, &combined) != 0)
        return -1; /* unknown: left as given */
    /* "DPM++ 2M Karras" names its schedule, unless another one was asked for */
    if (combined && (!schedule_given || !*schedule || !strcasecmp(*schedule, "automatic")))
        *schedule = combined;
    if (*schedule && vkd_schedule_lookup(*schedule, *sampler, schedule) != 0)
        return -2;
    return 0;
}
