/* Sampler and schedule names (names.h). */
#include "cli/names.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

const vkd_sampler_name vkd_sampler_names[] = {
    {"euler_a", "Euler a", {"k_euler_a", "k_euler_ancestral", NULL}, "discrete"},
    {"euler", "Euler", {"k_euler", NULL, NULL}, "discrete"},
    {"heun", "Heun", {"k_heun", NULL, NULL}, "discrete"},
    /* A1111 1.9+: ('DPM++ 2M', 'sample_dpmpp_2m', ['k_dpmpp_2m'], {'scheduler': 'karras'}) */
    {"dpm++2m", "DPM++ 2M", {"k_dpmpp_2m", "dpmpp_2m", NULL}, "karras"},
    {"ddim", "DDIM", {NULL, NULL, NULL}, "discrete"},
    {"lcm", "LCM", {"k_lcm", NULL, NULL}, "discrete"},
};
const int vkd_n_sampler_names = (int)(sizeof vkd_sampler_names / sizeof vkd_sampler_names[0]);

/* A1111's "uniform" is the model's own discrete sigmas, spaced as k-diffusion's
 * get_sigmas (vkdiff's discrete); "trailing" has no A1111 scheduler of that name. */
const vkd_schedule_name vkd_schedule_names[] = {
    {"discrete", "uniform", "Uniform"},
    {"karras", "karras", "Karras"},
    {"trailing", "trailing", "Trailing"},
};
const int vkd_n_schedule_names = (int)(sizeof vkd_schedule_names / sizeof vkd_schedule_names[0]);

int vkd_sampler_lookup(const char *name, const char **sampler, const char **schedule)
{
    if (!name)
        return -1;
    for (int i = 0; i < vkd_n_sampler_names; i++) {
        const vkd_sampler_name *s = &vkd_sampler_names[i];
        int hit = !strcasecmp(name, s->vkdiff) || !strcasecmp(name, s->a1111);
        for (int a = 0; a < 3 && s->aliases[a]; a++)
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
