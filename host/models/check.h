/* The weights a model reads, checked once against the detected config before any GPU
 * work: every tensor present, of its expected shape and of a float dtype. Generation
 * (vkd_ctx_create) and `vkdiff info` run the same check, so a file `info` accepts is a
 * file generation accepts. */
#ifndef VKD_MODELS_CHECK_H
#define VKD_MODELS_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "io/layout.h"
#include "models/detect.h"

/* One finding, as a line without a newline: "missing: NAME", "wrong shape: NAME is
 * [..], expected [..]", "wrong dtype: NAME is I64, expected a float type", "non-finite:
 * NAME holds N NaN/Inf values". */
typedef void (*vkd_check_say_fn)(void *user, const char *line);

typedef struct vkd_weight_check {
    size_t missing, wrong_shape, wrong_dtype, non_finite;
    uint64_t elems;        /* elements of the tensors the model reads */
    unsigned char *used;   /* optional, vkd_weights_count() entries: set where read */
    int scan_values;       /* also read every value for NaN/Inf (a full pass over the file) */
    size_t limit;          /* findings reported through say (0: all) */
    vkd_check_say_fn say;  /* NULL: logged as errors (non-finite values as warnings) */
    void *user;
} vkd_weight_check;

/* VKD_OK, or VKD_ERR_FORMAT when a tensor is missing, of another shape or not a float;
 * non-finite values are reported (c->non_finite) but are not an error here: the
 * stages' outputs are checked (never a silent black image). */
vkd_result vkd_model_check_weights(const vkd_weights *w, const vkd_model_config *cfg, vkd_weight_check *c);

/* "[320, 4, 3, 3]" */
void vkd_shape_str(char *buf, size_t len, int rank, const int64_t *s);

#endif
