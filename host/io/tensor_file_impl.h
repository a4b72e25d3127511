/* Inside of a vkd_st_file, shared by the two readers that build one: safetensors.c
 * (JSON header) and gguf.c (GGUF). Not part of the loader's interface (safetensors.h). */
#ifndef VKD_IO_TENSOR_FILE_IMPL_H
#define VKD_IO_TENSOR_FILE_IMPL_H

#include "io/safetensors.h"

struct vkd_st_file {
    char *label;
    const uint8_t *base;     /* whole file */
    size_t size;
    void *map;               /* mmap'd region to unmap (NULL for memory) */
    size_t map_len;
    const uint8_t *data;     /* data section */
    uint64_t data_size;
    vkd_st_tensor *t;        /* sorted by offset */
    size_t n;
    const vkd_st_tensor **by_name; /* sorted by name, for bsearch */
    char **meta_k, **meta_v; /* sorted by key */
    size_t n_meta;
    char format[16];         /* "safetensors", "GGUF v3" */
};

/* safetensors.c */
int vkd_st_utf8_valid(const unsigned char *s, size_t n);
const char *vkd_st_printable(const char *s, char buf[128]); /* for log lines */
/* Once f->t[0..n) are filled: names unique, no two tensors share bytes, then sorts
 * f->t by offset and builds f->by_name. VKD_ERR_FORMAT with a message otherwise. */
vkd_result vkd_st_finish_tensors(vkd_st_file *f);
/* Sorts the metadata pairs by key. */
void vkd_st_sort_metadata(vkd_st_file *f);

/* gguf.c */
/* 1 if the bytes start with GGUF's magic. */
int vkd_gguf_is(const uint8_t *p, size_t size);
/* Validates f->base/f->size as GGUF and fills tensors and metadata. */
vkd_result vkd_gguf_parse(vkd_st_file *f);
/* Dequantize n elements from element `first` of a block-quantized dtype; first and n on
 * block boundaries (VKD_ERR_UNSUPPORTED with a message otherwise). */
vkd_result vkd_st_dequant_f32(vkd_st_dtype t, const void *src, size_t first, size_t n, float *dst);

#endif
