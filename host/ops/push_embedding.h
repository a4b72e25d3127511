/* Token + position embedding (shaders/embedding.comp, host/ops/embedding.c).
 * A token table larger than one binding window (CLIP-H fp32: 49408 x 1024 x 4 B =
 * 202 MB) is bound in row windows; each dispatch writes the tokens whose id falls in
 * its window, so every output row is written by exactly one dispatch. */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_embedding)
    pc_uint n;        /* output elements in this dispatch (tokens * C) */
    pc_uint c;        /* embedding width */
    pc_uint t0;       /* flat token index (n * L + l) of this dispatch's first token */
    pc_uint l;        /* tokens per sample: position = flat token index % L */
    pc_uint v0;       /* first table row bound in this window */
    pc_uint vn;       /* table rows in this window */
    pc_uint v;        /* table rows in all */
    pc_uint first;    /* 1 in the first window: it also writes the rows of out-of-range ids */
    pc_uint id_off;   /* element offsets inside each binding window */
    pc_uint t_off;
    pc_uint p_off;
    pc_uint o_off;
VKD_PUSH_END(vkd_push_embedding)
