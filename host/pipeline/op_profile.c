/* GPU time by op family: see op_profile.h. */
#include "pipeline/op_profile.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

typedef vkd_op_profile op_profile;
#define PROFILE_MAX_OPS VKD_PROFILE_MAX_OPS

/* GPU time by label of n dispatches (fl, their counted work, may be NULL) */
static void build(op_profile *p, uint32_t n, const char *const *labels, const double *ms, const double *fl)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    for (uint32_t i = 0; i < p->n; i++) {
        int j = 0;
        while (j < p->k && strcmp(p->name[j], labels[i]))
            j++;
        if (j == p->k) {
            if (p->k == PROFILE_MAX_OPS)
                continue;
            snprintf(p->name[j], sizeof p->name[j], "%s", labels[i]);
            p->ms[j] = 0, p->flops[j] = 0, p->count[j] = 0, p->k++;
        }
        p->ms[j] += ms[i], p->flops[j] += fl ? fl[i] : 0, p->count[j]++, p->total += ms[i];
    }
    /* largest first (a handful of labels: selection sort) */
    for (int a = 0; a < p->k; a++)
        for (int b = a + 1; b < p->k; b++)
            if (p->ms[b] > p->ms[a]) {
                char tn[sizeof p->name[0]];
                memcpy(tn, p->name[a], sizeof tn);
                memcpy(p->name[a], p->name[b], sizeof tn);
                memcpy(p->name[b], tn, sizeof tn);
                double tm = p->ms[a], tf = p->flops[a];
                int tc = p->count[a];
                p->ms[a] = p->ms[b], p->flops[a] = p->flops[b], p->count[a] = p->count[b];
                p->ms[b] = tm, p->flops[b] = tf, p->count[b] = tc;
            }
}

void vkd_op_profile_get(vkd_cmd *cmd, op_profile *p)
{
    const char *const *labels;
    const double *ms;
    uint32_t n = vkd_cmd_timings(cmd, &labels, &ms);
    build(p, n, labels, ms, vkd_cmd_dispatch_flops(cmd));
}

void vkd_op_profile_first_use(vkd_cmd *cmd, const double *first, uint32_t n_first, op_profile *p)
{
    const char *const *labels;
    const double *ms;
    uint32_t n = vkd_cmd_timings(cmd, &labels, &ms);
    double *excess = n == n_first && n ? malloc(n * sizeof *excess) : NULL;
    if (!excess) {
        memset(p, 0, sizeof *p);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        excess[i] = first[i] > ms[i] ? first[i] - ms[i] : 0;
    build(p, n, labels, excess, NULL);
    free(excess);
}

void vkd_op_profile_log(vkd_cmd *cmd, const char *what)
{
    op_profile p;
    vkd_op_profile_get(cmd, &p);
    if (p.n == 0)
        return;
    VKD_INFO("%s GPU time by op (%u dispatches, %.1f ms summed, %.1f ms end to end):", what, p.n, p.total,
             vkd_cmd_total_ms(cmd));
    for (int j = 0; j < p.k; j++)
        VKD_INFO("  %-24s %5d dispatches %10.2f ms %5.1f%%", p.name[j], p.count[j], p.ms[j],
                 p.total > 0 ? 100 * p.ms[j] / p.total : 0);
}

/* A stage's GPU time by op family as a table. */
void vkd_op_profile_print(FILE *f, const char *stage, const char *which, const op_profile *p)
{
    fprintf(f, "\n%s, GPU time by op family (%s, %u dispatches timed, %.1f ms summed):\n\n", stage, which, p->n,
            p->total);
    fprintf(f, "| op | dispatches | ms | share of the stage | GFLOP | GFLOP/s |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int j = 0; j < p->k; j++) {
        fprintf(f, "| %s | %d | %.1f | %.1f%% |", p->name[j], p->count[j], p->ms[j],
                p->total > 0 ? 100 * p->ms[j] / p->total : 0);
        if (p->flops[j] > 0)
            fprintf(f, " %.1f | %.2f |\n", p->flops[j] / 1e9, p->ms[j] > 0 ? p->flops[j] / 1e6 / p->ms[j] : 0);
        else
            fprintf(f, " | |\n");
    }
}

