/* ggml block formats to fp16 / fp32 (shaders/dequant.comp, host/ops/dequant.c). */
#include "push.h"

/* ggml's type numbers (ggml.h enum ggml_type) */
#define VKD_QT_Q4_0 2u
#define VKD_QT_Q4_1 3u
#define VKD_QT_Q5_0 6u
#define VKD_QT_Q5_1 7u
#define VKD_QT_Q8_0 8u
#define VKD_QT_Q2_K 10u
#define VKD_QT_Q3_K 11u
#define VKD_QT_Q4_K 12u
#define VKD_QT_Q5_K 13u
#define VKD_QT_Q6_K 14u

VKD_PUSH_BEGIN(vkd_push_dequant)
    pc_uint groups;      /* 32-element groups to write (elements / 32) */
    pc_uint type;        /* VKD_QT_* */
    pc_uint block_bytes; /* bytes per block of the type */
    pc_uint q_off;       /* first 32-bit word of the blocks inside binding 0's window */
    pc_uint o_off;       /* first element of the output inside binding 1's window */
    pc_uint taps;        /* conv weights: kh * kw (> 1 re-lays [Cin, kh, kw] rows out as [kh, kw, Cin]); else 1 */
    pc_uint cin;         /* conv weights: Cin */
    pc_uint row;         /* elements per row (per output channel) */
VKD_PUSH_END(vkd_push_dequant)
