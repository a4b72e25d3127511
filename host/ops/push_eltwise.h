/* Element-wise ops: out = f(a) or f(a, b). See shaders/eltwise.comp. */
#include "push.h"

/* op codes */
#define VKD_ELT_ADD 0          /* a + b */
#define VKD_ELT_MUL 1          /* a * b */
#define VKD_ELT_ADD_BCAST_C 2  /* a + b[i % c]: bias over channels */
#define VKD_ELT_ADD_BCAST_ROW 3 /* a + b[(i / inner) * c + i % c]: per-batch channel vector, e.g. time embedding into [N, HW, C] */
#define VKD_ELT_SILU 10        /* x * sigmoid(x) */
#define VKD_ELT_GELU 11        /* x * Phi(x), erf form */
#define VKD_ELT_QUICK_GELU 12  /* x * sigmoid(1.702 x) (OpenAI CLIP) */
#define VKD_ELT_SCALE 13       /* alpha * x + beta */
#define VKD_ELT_RELU 14        /* max(x, 0) (TAESD) */
#define VKD_ELT_TANH_CLAMP 15  /* alpha * tanh(x / alpha): TAESD's soft clamp of its input latent */

VKD_PUSH_BEGIN(vkd_push_eltwise)
    pc_uint n;       /* elements in this dispatch */
    pc_uint base;    /* global index of element 0 of this dispatch (for broadcasts) */
    pc_uint op;
    pc_uint a_off;   /* element offsets of each operand inside its binding window */
    pc_uint b_off;
    pc_uint o_off;
    pc_uint c;       /* broadcast period (channels) */
    pc_uint inner;   /* elements per batch item for ADD_BCAST_ROW */
    pc_float alpha;
    pc_float beta;
VKD_PUSH_END(vkd_push_eltwise)
