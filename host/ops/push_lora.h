/* LoRA weight update in place (shaders/lora.comp, host/ops/lora.c). */
#include "push.h"

#define VKD_LORA_DENSE 1   /* W[o, c] += scale * U[o, c] */
#define VKD_LORA_ROW_SUM 2 /* U[o] = sum_c W[o, c]        (a folded layer norm's row sums) */

VKD_PUSH_BEGIN(vkd_push_lora)
    pc_uint rows;   /* rows of W in this dispatch */
    pc_uint cols;
    pc_uint ldw;    /* elements from one row of W to the next */
    pc_uint w_off;  /* element offsets inside each binding window */
    pc_uint u_off;
    pc_uint mode;   /* VKD_LORA_* */
    pc_float scale;
VKD_PUSH_END(vkd_push_lora)
