/* The model goldens (tools/oracle/make_goldens.py) as the C tests read them, and the
 * comparisons with issue 4's thresholds: relative error <= 1e-4 per stage in fp32,
 * <= 1e-2 in fp16; images PSNR >= 40 dB fp32, >= 30 dB fp16. */
#ifndef VKD_TESTS_GOLDEN_H
#define VKD_TESTS_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "models/graph.h"

typedef struct golden {
    vkd_st_file *f;
} golden;

/* a golden tensor as fp32 (NULL if absent: a failed check); I32 converted */
float *gload(golden *g, const char *name, size_t *n);
/* [B, C, HW] (NCHW) -> [B, HW, C] */
void nchw_to_nhwc(const float *in, float *out, int64_t b, int64_t c, int64_t hw);
double rel_err(const float *got, const float *ref, size_t n);
/* PSNR of two [-1, 1] images mapped to [0, 1] and clamped */
double psnr01(const float *got, const float *ref, size_t n);
void expect_rel_lim(const char *what, vkd_dtype dt, const float *got, const float *ref, size_t n, double lim);
/* one stage: 1e-4 fp32, 1e-2 fp16 */
void expect_rel(const char *what, vkd_dtype dt, const float *got, const float *ref, size_t n);
/* the image criterion: PSNR >= 40 dB fp32, >= 30 dB fp16 */
void expect_psnr(const char *what, vkd_dtype dt, const float *got, const float *ref, size_t n);

/* Build a graph, run it once, return its output on the host. */
typedef struct stage {
    vkd_graph g;
    vkd_tensor out;
} stage;
int stage_begin(stage *s, vkd_device *d, vkd_wstore *ws, vkd_dtype dt);
/* end, submit, download s->out (NULL on failure, which is a failed check) */
float *stage_finish(stage *s, vkd_result r, const char *what);

#endif
