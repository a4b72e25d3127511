/* `vkdiff bench model` and its `--plan` report, on the stages a generation composes
 * (host/vkdiff_dev.h declares the API entry points; host/api.c forwards to these). */
#ifndef VKD_PIPELINE_BENCH_H
#define VKD_PIPELINE_BENCH_H

#include <stdio.h>

#include "pipeline/pipe.h"
#include "vkdiff_dev.h"

vkd_result vkd_pipe_bench_model(vkd_pipe *p, const vkd_bench_model_opts *o, FILE *f, FILE *row);
vkd_result vkd_pipe_plan_report(vkd_pipe *p, int width, int height, int tiling, bool record, FILE *f);

#endif
