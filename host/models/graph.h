/* Recording a model evaluation: the ops of host/ops/ wrapped with an error latch,
 * weights looked up by checkpoint key, activations from a pool.
 *
 * Model code reads like the network:
 *
 *   vkd_tensor h = g_groupnorm(g, &x, 32, 1e-5f, true, "%sin_layers.0", p);   // [N, HW, C]
 *   vkd_tensor y = g_conv(g, &h, H, W, 1, 1, NULL, "%sin_layers.2", p);      // [N, HW, Cout]
 *   g_free(g, &h);
 *
 * After the first failure every call is a no-op returning an empty tensor, and
 * g->err holds the first error; the caller checks it once at the end.
 *
 * Activation lifetimes: a tensor freed with g_free while recording is reused by a
 * later allocation from the same pool. That is safe because every dispatch is
 * separated from the next by a full barrier (host/vk/cmd.c), so a later write cannot
 * overtake an earlier read. The pool outlives the recorded command buffer. */
#ifndef VKD_MODELS_GRAPH_H
#define VKD_MODELS_GRAPH_H

#include <stdbool.h>

#include "models/wstore.h"
#include "ops/attention.h"
#include "ops/groupnorm.h"
#include "vk/cmd.h"

/* A dry run of a recording (the pre-flight memory plan): with g->plan set, the g_*
 * calls allocate nothing, upload nothing and record nothing; shapes flow through as
 * in a real recording (weight shapes come from the checkpoint's header) and the plan
 * adds up what the real recording would hold. g->pool may be NULL; g->c must be a
 * valid command buffer (ops read device limits from it) but stays empty. */
typedef struct vkd_graph_plan {
    uint64_t live;         /* activation bytes held now, rounded as the pool rounds */
    uint64_t peak;         /* the most held at once: the activation pool's size */
    uint64_t weight_bytes; /* weight bytes read (each weight counted at each read) */
    uint64_t act_bytes;    /* bytes of every activation allocated: each written once */
    uint32_t ops;          /* g_* calls that would record work */
    uint64_t dq_max;       /* the largest dequantized-weight temporary (quantized weights; 0: none) */
} vkd_graph_plan;

/* Group norms of a recording whose statistics the caller manages (tiled VAE decode):
 * each one's scratch stays allocated and is listed here; with `external`, the norms
 * apply the finals the caller writes into the scratches instead of their own. */
typedef struct vkd_gn_entry {
    vkd_tensor scratch;    /* fp32, laid out as layout says (ops/groupnorm.h) */
    vkd_groupnorm_layout layout;
    int64_t n, hw, groups;
    float eps;
} vkd_gn_entry;
typedef struct vkd_gn_capture {
    bool external;
    /* The scratches' own pool (the caller's): external statistics are written before
     * the command buffer runs, so their memory must not be shared in time with any
     * activation of the recording, as pooled memory freed earlier in it would be. */
    vkd_pool *pool;
    int count, cap;
    vkd_gn_entry *e;
} vkd_gn_capture;

typedef struct vkd_graph {
    vkd_device *d;
    vkd_cmd *c;
    vkd_pool *pool;   /* activations */
    vkd_wstore *ws;   /* weights */
    vkd_dtype dt;     /* activation dtype (= weight dtype) */
    vkd_result err;   /* first error, VKD_OK if none */
    vkd_graph_plan *plan; /* non-NULL: dry run, see above */
    vkd_gn_capture *gn;   /* non-NULL: group-norm statistics managed by the caller */
} vkd_graph;

#if defined(__GNUC__)
#define VKD_FMT(a, b) __attribute__((format(printf, a, b)))
#else
#define VKD_FMT(a, b)
#endif

vkd_tensor g_new(vkd_graph *g, int ndim, const int64_t *shape);
vkd_tensor g_new3(vkd_graph *g, int64_t n, int64_t l, int64_t c);
vkd_tensor g_new_f32(vkd_graph *g, int ndim, const int64_t *shape); /* fp32 whatever g->dt */
void g_free(vkd_graph *g, vkd_tensor *t);
bool g_ok(const vkd_graph *g);
/* In a dry run, count a weight an op called directly would read (no-op otherwise). */
VKD_FMT(2, 3) void g_plan_weight(vkd_graph *g, const char *fmt, ...);
/* g_ok and not a dry run: model code that calls an op directly checks this first. */
bool g_recording(const vkd_graph *g);
/* Latch an error that is not an op's (e.g. a bad config). Returns g->err. */
vkd_result g_fail(vkd_graph *g, vkd_result r);

/* nn.Linear "<name>.weight" (+ "<name>.bias" when present) (+ residual, which may be reused as out) */
VKD_FMT(4, 5) vkd_tensor g_linear(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *residual, const char *fmt, ...);
/* nn.Linear "<name>" (or a 1x1 conv) on torch.cat([x, x2], -1), read from the two in
 * place (x's channels a multiple of 16: vkd_linear_opts.a2) */
VKD_FMT(5, 6) vkd_tensor g_linear_pair(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2,
                                       const vkd_tensor *residual, const char *fmt, ...);
/* nn.Conv2d "<name>.weight/.bias", square kernel from the weight; symmetric padding */
VKD_FMT(8, 9) vkd_tensor g_conv(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int stride, int pad,
                                const vkd_tensor *residual, const char *fmt, ...);
/* Upsample (nearest 2x) then a 3x3 conv with padding 1, as one pass: x is [N, h*w, C],
 * out [N, 4*h*w, Cout]; the upsampled map never exists */
VKD_FMT(5, 6) vkd_tensor g_conv_up2(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, const char *fmt, ...);
/* The same with the upsampling to oh x ow (nearest as F.interpolate(size=...): diffusers'
 * UNet on sizes that do not halve evenly); oh, ow at most 2h, 2w */
VKD_FMT(7, 8) vkd_tensor g_conv_up_to(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                      const char *fmt, ...);
/* conv with explicit (top, bottom, left, right) padding (the VAE encoder's downsample) */
VKD_FMT(10, 11) vkd_tensor g_conv_pad(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w, int stride, int pt,
                                      int pb, int pl, int pr, const char *fmt, ...);
/* nn.GroupNorm "<name>.weight/.bias" */
VKD_FMT(6, 7) vkd_tensor g_groupnorm(vkd_graph *g, const vkd_tensor *x, int groups, float eps, bool silu,
                                     const char *fmt, ...);
/* GroupNorm of torch.cat([x, x2], -1), read from the two in place */
VKD_FMT(7, 8) vkd_tensor g_groupnorm_cat(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *x2, int groups, float eps,
                                         bool silu, const char *fmt, ...);
/* GroupNorm(x + add[n, add_col ..]) (add [N, W], e.g. a ResBlock's time embedding in
 * the UNet's stacked embeddings), the sum never stored */
VKD_FMT(8, 9) vkd_tensor g_groupnorm_add(vkd_graph *g, const vkd_tensor *x, const vkd_tensor *add, int64_t add_col,
                                         int groups, float eps, bool silu, const char *fmt, ...);
/* nn.LayerNorm "<name>.weight/.bias" over the last dim */
VKD_FMT(4, 5) vkd_tensor g_layernorm(vkd_graph *g, const vkd_tensor *x, float eps, const char *fmt, ...);

/* Linears "<name_i>.weight" (all with "<name_i>.bias" or all without) on the same x,
 * as one GEMM on their stacked weights: out [.., sum out_i], layer i's output in its
 * columns, in order. At most VKD_LINEAR_CAT_MAX layers. */
#define VKD_LINEAR_CAT_MAX 64
vkd_tensor g_linear_cat(vkd_graph *g, const vkd_tensor *x, int n, const char *const *names);

/* LayerNorm "<ln>" (eps) of x, then the linears "<layer_i>" stacked as in g_linear_cat,
 * (+ residual), as one GEMM that normalises x as it reads it (vkd_op_linear_ex .ln):
 * the norm costs no dispatch and no normalised copy of x. */
vkd_tensor g_linear_ln(vkd_graph *g, const vkd_tensor *x, const char *ln, float eps, const vkd_tensor *residual, int n,
                       const char *const *layers);

vkd_tensor g_attention(vkd_graph *g, const vkd_tensor *q, const vkd_tensor *k, const vkd_tensor *v, int heads,
                       bool causal);
/* The same on views: head 0 of q, k, v at columns q_col, k_col, v_col of their last
 * dimension (packed projections from g_linear_cat); out [N, Lq, width]. */
vkd_tensor g_attention_cols(vkd_graph *g, const vkd_tensor *q, const vkd_tensor *k, const vkd_tensor *v, int heads,
                            int64_t width, int64_t q_col, int64_t k_col, int64_t v_col);
vkd_tensor g_add(vkd_graph *g, const vkd_tensor *a, const vkd_tensor *b);
void g_add_inplace(vkd_graph *g, vkd_tensor *a, const vkd_tensor *b);
vkd_tensor g_silu(vkd_graph *g, const vkd_tensor *x);
void g_act_inplace(vkd_graph *g, vkd_tensor *x, int kind); /* 0 silu, 1 gelu, 2 quick_gelu, 3 relu */
#define VKD_ACT_RELU 3
vkd_tensor g_geglu(vkd_graph *g, const vkd_tensor *x);     /* [M, 2F] -> [M, F] */
vkd_tensor g_upsample2x(vkd_graph *g, const vkd_tensor *x, int64_t h, int64_t w);
vkd_tensor g_concat(vkd_graph *g, const vkd_tensor *a, const vkd_tensor *b);
/* Rows idx[0..n) of x viewed as [rows, C] -> [n, C]; idx: n uint32 row numbers in a
 * device buffer the caller writes before each run (e.g. the end-of-text positions
 * of a prompt, which a kept recording cannot know) */
vkd_tensor g_gather_rows(vkd_graph *g, const vkd_tensor *x, const vkd_buffer *idx, int64_t n);
/* a [N, L, C] += v [N, C] broadcast over L */

#endif
