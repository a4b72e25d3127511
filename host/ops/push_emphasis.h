/* Prompt emphasis (shaders/emphasis.comp, host/ops/emphasis.c). */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_emphasis)
    pc_uint tokens;  /* tokens per chunk (77) */
    pc_uint width;   /* channels per token */
    pc_uint z_off;   /* element offsets inside each binding window */
    pc_uint w_off;
VKD_PUSH_END(vkd_push_emphasis)
