/* Inside host/sample: one sampler run, shared by sampler.c (the first six samplers) and
 * sampler_extra.c / unipc.c (the ones A1111 and ComfyUI added). */
#ifndef VKD_SAMPLE_SAMPLER_IMPL_H
#define VKD_SAMPLE_SAMPLER_IMPL_H

#include <stddef.h>

#include "sample/sampler.h"

/* scratch vectors of n floats a run may use: den, aux, aux2 and VKD_RUN_EXTRA more */
#define VKD_RUN_EXTRA 6

typedef struct vkd_run {
    const vkd_sample_params *p;
    const float *sigmas;        /* [n_steps + 1] */
    int n_steps;                /* steps reported to the progress callback */
    size_t n;
    float *x;                   /* [n] */
    float *den;                 /* [n] scratch: denoised */
    float *aux;                 /* [n] scratch: d, old denoised, noise */
    float *aux2;                /* [n] scratch: heun's x_2 / denoised_2 */
    float *extra[VKD_RUN_EXTRA];/* [n] each: the multistep samplers' history */
} vkd_run;

vkd_result vkd_run_model(vkd_run *s, const float *x, float sigma, float *den);
/* after-step hook and progress for step `step` (1-based) landing at sigma */
vkd_result vkd_run_report(vkd_run *s, int step, float sigma);
vkd_result vkd_run_noise(vkd_run *s, float *out);

/* sampler_extra.c */
vkd_result vkd_run_lms(vkd_run *s);
vkd_result vkd_run_dpm2(vkd_run *s);
vkd_result vkd_run_dpm2_a(vkd_run *s);
vkd_result vkd_run_dpmpp_2s_a(vkd_run *s);
vkd_result vkd_run_dpmpp_sde(vkd_run *s);
vkd_result vkd_run_dpmpp_2m_sde(vkd_run *s, int heun);
vkd_result vkd_run_dpmpp_3m_sde(vkd_run *s);
vkd_result vkd_run_restart(vkd_run *s);
/* unipc.c */
vkd_result vkd_run_unipc(vkd_run *s, int bh2);

#endif
