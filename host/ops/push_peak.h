/* Arithmetic ceiling probe (shaders/peak.comp, host/ops/bench_ops.c). */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_peak)
    pc_uint iters;  /* loop trips; each does 8 * TM multiply-adds per invocation */
    pc_float a;     /* multiplier and addend keep the chains bounded and opaque to the compiler */
    pc_float b;
    pc_uint pad;
VKD_PUSH_END(vkd_push_peak)
