/* The weight store's inside, shared by wstore.c (uploads) and wstore_delta.c (LoRA
 * deltas applied to uploaded tensors in place). Not for other modules. */
#ifndef VKD_MODELS_WSTORE_IMPL_H
#define VKD_MODELS_WSTORE_IMPL_H

#include <stdbool.h>

#include "models/wstore.h"
#include "vk/cmd.h"

/* A layer-norm-folded pair's key: "<ln>" LNFOLD_SEP "<layer>+<layer>..." (layers without
 * ".weight"); stacked linears: "<name>+<name>..."; anything else: the checkpoint name. */
#define LNFOLD_SEP "|lnfold|"

typedef struct slot {
    char *name;       /* NULL: empty */
    vkd_wkind kind;
    vkd_tensor t;
    bool changed;     /* LoRA deltas were added to it since it was uploaded */
} slot;

struct vkd_wstore {
    vkd_device *d;
    const vkd_weights *w;
    vkd_dtype dt;
    slot *slots;
    uint32_t cap, count;
    uint64_t bytes;
    /* host staging of the fp16 uploads, kept from one to the next (up to HOST_KEEP
     * elements; vkd_wstore_release frees it): a fresh allocation per tensor cost a page
     * fault per 4 KiB, a third of the upload's time (perf) */
    uint16_t *host;
    size_t host_cap; /* elements */
    vkd_result err;  /* why the last get returned NULL (vkd_wstore_error) */
    vkd_wdelta_source deltas; /* .get NULL: none */
    vkd_cmd *cmd;             /* for the deltas, made on first use */
    uint32_t qtype;           /* vkd_wstore_set_quant: ggml type to quantize to (0: none) */
    uint32_t q_build;         /* set while a stacked / folded weight is built as blocks of this type */
    char qprefix[128];        /* ... the tensors under this prefix */
};

/* The slot holding (name, kind), or the free slot where it goes; NULL when full. */
slot *vkd_ws_find_slot(vkd_wstore *s, const char *name, vkd_wkind kind);
/* New tensors as the getters build them (the base weights, no deltas). */
vkd_result vkd_ws_build_single(vkd_wstore *s, const char *name, vkd_wkind kind, vkd_tensor *t);
vkd_result vkd_ws_build_cat(vkd_wstore *s, vkd_wkind kind, int n, const char *const *names, const char *key,
                            vkd_tensor *t);
vkd_result vkd_ws_build_lnfold(vkd_wstore *s, const char *ln, int n, const char *const *layers, vkd_tensor *tw,
                               vkd_tensor *ts);
/* t kept in the free slot sl under (name, kind); NULL (t destroyed) when out of memory */
const vkd_tensor *vkd_ws_keep(vkd_wstore *s, slot *sl, const char *name, vkd_wkind kind, vkd_tensor t);
/* wstore_quant.c: the blocks of a host matrix [rows, cols] (checkpoint row order) into a
 * new F32 word tensor; the row sums of what the dequant kernel will make of them, into
 * sc[0 .. rows) (a folded layer norm's s); LoRA refused on a quantized weight (logged) */
vkd_result vkd_ws_upload_blocks(vkd_wstore *s, uint32_t ggml_type, const float *m, int64_t rows, int64_t cols,
                                vkd_tensor *out);
void vkd_ws_row_sums_dequantized(vkd_wstore *s, uint32_t ggml_type, const float *m, int64_t rows, int64_t cols,
                                 float *sc);
vkd_result vkd_ws_refuse_deltas(const char *key);
/* The current deltas added to a slot just uploaded (for a folded pair: the weight's slot). */
vkd_result vkd_ws_slot_deltas(vkd_wstore *s, slot *sl);

#endif
