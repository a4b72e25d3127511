/* Fused multi-head attention (shaders/attention.comp, host/ops/attention.c).
 *
 * One dispatch covers `rows` query rows of gz batch items; element index of
 * q[b, i, h*D + d] inside its binding window is q_off + b*q_bs + i*q_rs + h*D + d
 * (q_off already holds the column offset of a view into a packed qkv tensor).

 * Same for k, v (key rows j < lk) and o. */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_attention)
    pc_uint rows;    /* query rows per batch item in this dispatch */
    pc_uint lk;      /* key/value rows */
    pc_uint d;       /* head dim */
    pc_uint causal;  /* 1: key j is masked for query i when j > i (top-left aligned, as torch is_causal) */
    pc_uint row0;    /* index of this dispatch's first query row in the whole sequence (for the mask) */
    pc_uint q_off;
    pc_uint q_rs;    /* row stride in elements */
    pc_uint q_bs;    /* batch stride in elements */
    pc_uint k_off;
    pc_uint k_rs;
    pc_uint k_bs;
    pc_uint v_off;
    pc_uint v_rs;
    pc_uint v_bs;
    pc_uint o_off;
    pc_uint o_rs;
    pc_uint o_bs;
    pc_float scale;  /* applied to q·k before the softmax */
VKD_PUSH_END(vkd_push_attention)
