/* Inside host/sample: what schedule.c and schedule_extra.c share. */
#ifndef VKD_SAMPLE_SCHEDULE_IMPL_H
#define VKD_SAMPLE_SCHEDULE_IMPL_H

#include "sample/schedule.h"

/* torch.linspace(start, end, steps)[idx] in float32, as its CPU kernel computes it */
float vkd_linspace_f32(float start, float end, int steps, int idx);

/* k-diffusion get_sigmas_karras(n, sigma_min, sigma_max), rho 7: sigmas[n + 1], 0 last */
void vkd_karras_sigmas(float sigma_min, float sigma_max, int n, float *sigmas);

/* The schedules after VKD_SCHEDULE_TRAILING (schedule_extra.c): sigmas[*count], 0 last;
 * steps is already checked and cap >= steps + 1 (ddim_uniform and beta may make other counts). */
vkd_result vkd_schedule_extra(const vkd_noise_table *tab, vkd_schedule schedule, int steps, float *sigmas,
                              size_t cap, size_t *count);

#endif
