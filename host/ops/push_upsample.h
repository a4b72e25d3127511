/* Nearest 2x upsample (shaders/upsample.comp, host/ops/upsample.c). A [N, H*W, C] map
 * is [N*H] image rows of W pixels; output row r reads input row r/2 (2H is even, so
 * the samples never mix) and output column x reads input column x/2. */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_upsample)
    pc_uint n;      /* output elements in this dispatch */
    pc_uint base;   /* global output element index of this dispatch's element 0 */
    pc_uint c;      /* channels */
    pc_uint w;      /* input width */
    pc_uint i_lo;   /* global input element index bound at i_off */
    pc_uint i_off;  /* element offsets inside each binding window */
    pc_uint o_off;
VKD_PUSH_END(vkd_push_upsample)
