/* Device copies of a model's weights, uploaded on first use and looked up by their
 * checkpoint key, so model code names each block after the key it reads:
 *
 *   const vkd_tensor *w = vkd_wstore_get(ws, VKD_W_CONV, "%sin_layers.2.weight", prefix);
 *
 * A weight is converted to the store's dtype and laid out for the op that reads it
 * (a conv kernel is re-laid by conv2d's uploader; a [o, i, 1, 1] kernel read as a
 * linear layer becomes [o, i]). */
#ifndef VKD_MODELS_WSTORE_H
#define VKD_MODELS_WSTORE_H

#include "io/layout.h"
#include "ops/tensor.h"

typedef enum vkd_wkind {
    VKD_W_RAW = 0,  /* as stored, flattened to 1D (norm scales, biases, embeddings keep their shape) */
    VKD_W_LINEAR,   /* [out, in] for vkd_op_linear (also from [out, in, 1, 1]) */
    VKD_W_CONV,     /* [out, in, kh, kw] re-laid for vkd_op_conv2d */
    VKD_W_QBLOCKS,  /* the store's own: a weight's quantized blocks (wstore_quant.c) */
} vkd_wkind;

typedef struct vkd_wstore vkd_wstore;

/* The store reads from w (which must outlive it) and keeps tensors of dtype dt. */
vkd_result vkd_wstore_create(vkd_device *d, const vkd_weights *w, vkd_dtype dt, vkd_wstore **out);
void vkd_wstore_destroy(vkd_wstore *s);

/* The weight named by the printf-style format, uploaded on first use; NULL (and an
 * error naming the tensor is logged) when the checkpoint lacks it or it cannot be
 * uploaded. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
const vkd_tensor *vkd_wstore_get(vkd_wstore *s, vkd_wkind kind, const char *fmt, ...);
/* The named checkpoint tensors (full names) joined into one, uploaded on first use.
 * VKD_W_LINEAR: linear weights [rows_i, in] stacked into [sum rows_i, in], so one GEMM
 * computes what n linears on the same input would (q/k/v of self-attention, k/v of
 * cross-attention, the time-embedding projections of all UNet ResBlocks);
 * VKD_W_RAW: flattened and concatenated (their biases). NULL (with an error) when one
 * is missing or their input widths differ. */
const vkd_tensor *vkd_wstore_get_cat(vkd_wstore *s, vkd_wkind kind, int n, const char *const *names);
/* LayerNorm "<ln>.weight/.bias" folded into the linears "<layer_i>.weight" (and
 * ".bias", all or none) stacked as above, for vkd_op_linear_ex's .ln: *w is
 * w diag(gamma) [sum rows_i, in] in the store's dtype and *sc fp32 [2, sum rows_i]
 * (vkd_ln_fold). The norm's own tensors and the plain weights are never uploaded.
 * Uploaded on first use; an error code (logged) when a tensor is missing or mis-sized. */
vkd_result vkd_wstore_get_ln_linear(vkd_wstore *s, const char *ln, int n, const char *const *layers,
                                    const vkd_tensor **w, const vkd_tensor **sc);
/* Whether the checkpoint has the tensor (no upload). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int vkd_wstore_has(vkd_wstore *s, const char *fmt, ...);
/* Shape of a checkpoint tensor, rank or -1 if absent. */
int vkd_wstore_shape(vkd_wstore *s, const char *name, int64_t shape[8]);

/* ---- LoRA deltas (issue 22) -------------------------------------------------------
 * A change to one checkpoint tensor W [out, in(, kh, kw)], in its checkpoint order:
 *   rank > 0: W += scale * u d   u [out, rank], d [rank, in*kh*kw]
 *   rank 0:   W += scale * u     u [out, in*kh*kw] (made on the host: LoHa, LoKr)
 * The store adds it on the device to every tensor built from W (re-laid conv kernels,
 * stacked q/k/v, a layer norm folded in: its row sums and folded bias follow), in place:
 * command buffers recorded on those tensors stay valid. */
typedef struct vkd_wdelta {
    int64_t rank;
    float scale;
    float *u, *d; /* fp32, the source's until its release */
} vkd_wdelta;

typedef struct vkd_wdelta_source {
    /* The deltas for checkpoint tensor `name` (0: none), at most max into out; -1 on an
     * error (logged). */
    int (*get)(void *ctx, const char *name, vkd_wdelta *out, int max);
    void (*release)(void *ctx, vkd_wdelta *d, int n);
    void *ctx;
} vkd_wdelta_source;

/* From now on tensors are uploaded with src's deltas (src NULL or src->get NULL: none);
 * tensors already on the device that an earlier set changed are restored from the
 * checkpoint (re-read from the mapping, no full reload), and those src changes get its
 * deltas. src's functions are called during this call and at later uploads: its
 * context must live until the next set (or the store's end). */
vkd_result vkd_wstore_set_deltas(vkd_wstore *s, const vkd_wdelta_source *src);

/* ---- quantized weights (issue 25, wstore_quant.c) ---------------------------------
 * A linear or conv weight is kept quantized in device memory (ggml's blocks) when its
 * file tensor is a block type the dequant kernel reads (a GGUF file), or when the store
 * was told to quantize (vkd_wstore_set_quant: checkpoint tensors under prefix, but the
 * first and last conv of the UNet), and its rows are whole blocks. The model code gets
 * such a weight dequantized just before the op (models/graph.c weight_q). */
void vkd_wstore_set_quant(vkd_wstore *s, uint32_t ggml_type, const char *prefix);
/* nonzero (and *qtype, ggml's type number) when (name, kind) is kept quantized: 1 with the
 * blocks in the op's layout, 2 for a conv kernel whose blocks keep the checkpoint's
 * [Cout, Cin, kh, kw] rows (a GGUF file's: the dequant kernel re-lays them) */
int vkd_wstore_quantized(vkd_wstore *s, const char *name, vkd_wkind kind, uint32_t *qtype);
/* The same for the stacked linears of vkd_wstore_get_cat (VKD_W_LINEAR) and the folded
 * ones of vkd_wstore_get_ln_linear: with vkd_wstore_set_quant, when every layer is under
 * the prefix and the rows are whole blocks. Those getters then return the blocks (an F32
 * word tensor) in place of the weight. */
int vkd_wstore_cat_quantized(vkd_wstore *s, int n, const char *const *names, uint32_t *qtype);
int vkd_wstore_ln_quantized(vkd_wstore *s, int n, const char *const *layers, uint32_t *qtype);
/* its blocks' bytes on the device (0: not quantized) */
uint64_t vkd_wstore_quant_bytes(vkd_wstore *s, const char *name);
/* its blocks (an F32 tensor used as a word array), uploaded on first use; NULL with an
 * error as vkd_wstore_get (LoRA deltas on them: VKD_ERR_UNSUPPORTED) */
const vkd_tensor *vkd_wstore_get_blocks(vkd_wstore *s, const char *name, vkd_wkind kind);

vkd_dtype vkd_wstore_dtype(const vkd_wstore *s);
/* Why the last vkd_wstore_get / _get_cat returned NULL: VKD_ERR_FORMAT (absent or
 * mis-shaped), VKD_ERR_OUT_OF_DEVICE_MEMORY, VKD_ERR_TOO_LARGE, ... as the upload said. */
vkd_result vkd_wstore_error(const vkd_wstore *s);
uint64_t vkd_wstore_device_bytes(const vkd_wstore *s);
/* Device bytes the checkpoint's tensors under `prefix` take in the store's precision, all
 * of them (an upper bound of what a stage uploads; for vkd_memory_expect). */
uint64_t vkd_wstore_prefix_bytes(const vkd_wstore *s, const char *prefix);
uint32_t vkd_wstore_count(const vkd_wstore *s);
/* Free every uploaded tensor whose name starts with prefix (e.g. a text encoder
 * once the prompt is encoded), keeping the rest. */
void vkd_wstore_release(vkd_wstore *s, const char *prefix);

#endif
