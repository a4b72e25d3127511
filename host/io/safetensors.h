/* safetensors reader: memory-mapped, every header field checked before use.
 *
 * The file is untrusted (DESIGN.md decision 10): the 8-byte header length, the JSON,
 * every dtype, shape and offset are validated against the file size before any tensor
 * is exposed. A failure returns VKD_ERR_FORMAT (damaged), VKD_ERR_UNSUPPORTED (pickle,
 * unknown dtype) or VKD_ERR_IO and logs one message naming the file, the tensor and the
 * problem.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian N, N bytes of
 * JSON {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"k": "v"}}, then the data section; offsets are relative to it.
 *
 * Every dtype of the safetensors spec is accepted structurally (real SD1 files carry an
 * I64 `position_ids`), but only the float ones (F32, F16, BF16, F8_E4M3, F8_E5M2, F64)
 * convert; vkd_st_tensor_to_* refuses the others by name. A dtype string outside the
 * spec refuses the whole file.
 *
 * GGUF files (magic "GGUF"; io/gguf.c) open through the same functions and give the same
 * vkd_st_file: tensors with shapes in row-major order (ggml's ne reversed), F32/F16/
 * BF16 and ggml's block-quantized types (VKD_ST_Q4_0 ...), which vkd_st_tensor_to_* and
 * vkd_st_convert_* dequantize; key/values as metadata strings. */
#ifndef VKD_IO_SAFETENSORS_H
#define VKD_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/result.h"

#define VKD_ST_MAX_RANK 8
/* Real SDXL headers are ~0.2 MB; a larger header than this is refused unparsed. */
#define VKD_ST_MAX_HEADER (64u << 20)
/* Longest tensor or metadata key accepted, in bytes. */
#define VKD_ST_MAX_NAME 1024

typedef enum vkd_st_dtype {
    VKD_ST_F32 = 0,
    VKD_ST_F16,
    VKD_ST_BF16,
    VKD_ST_F8_E4M3,
    VKD_ST_F8_E5M2,
    VKD_ST_F64,
    /* below: parsed and size-checked, never converted */
    VKD_ST_I64,
    VKD_ST_I32,
    VKD_ST_I16,
    VKD_ST_I8,
    VKD_ST_U64,
    VKD_ST_U32,
    VKD_ST_U16,
    VKD_ST_U8,
    VKD_ST_BOOL,
    /* GGUF's block-quantized types (ggml's layouts, io/quant.h), in vkd_qtype order:
     * converted (dequantized) like the float ones */
    VKD_ST_Q4_0,
    VKD_ST_Q4_1,
    VKD_ST_Q5_0,
    VKD_ST_Q5_1,
    VKD_ST_Q8_0,
    VKD_ST_Q2_K,
    VKD_ST_Q3_K,
    VKD_ST_Q4_K,
    VKD_ST_Q5_K,
    VKD_ST_Q6_K,
    VKD_ST_COUNT
} vkd_st_dtype;

const char *vkd_st_dtype_name(vkd_st_dtype t);  /* "F16"; never NULL */
size_t vkd_st_dtype_size(vkd_st_dtype t);       /* bytes per element; 0 for block types */
int vkd_st_dtype_is_float(vkd_st_dtype t);      /* 1 if vkd_st_tensor_to_* converts it (quantized too) */
int vkd_st_dtype_is_quantized(vkd_st_dtype t);  /* 1 for the block types VKD_ST_Q4_0.. */
/* Elements per block (1 for element dtypes, 32 or 256 for block types) and bytes per
 * block (the element size for element dtypes): nbytes = nelem / block * block_bytes. */
size_t vkd_st_dtype_block(vkd_st_dtype t);
size_t vkd_st_dtype_block_bytes(vkd_st_dtype t);

/* One tensor of an open file. All pointers belong to the file and stay valid until
 * vkd_st_close. `data` points into the mapping and is NOT aligned in general. */
typedef struct vkd_st_tensor {
    const char *name;                 /* valid UTF-8, unique in the file */
    vkd_st_dtype dtype;
    int rank;                         /* 0..VKD_ST_MAX_RANK */
    int64_t shape[VKD_ST_MAX_RANK];   /* each >= 0 */
    size_t nelem;                     /* product of shape */
    size_t nbytes;                    /* nelem / block * block bytes == end - begin */
    uint64_t offset;                  /* begin, relative to the data section */
    const void *data;
    bool mapped;                      /* data is in a read-only file mapping (not a caller's memory) */
} vkd_st_tensor;

typedef struct vkd_st_file vkd_st_file;

/* Map and validate a file. *out is NULL on failure. Pickled checkpoints (.ckpt .pt
 * .pth .bin, or zip/pickle magic bytes) are refused with VKD_ERR_UNSUPPORTED and a
 * message saying how to convert them; nothing of them is read beyond the magic. */
vkd_result vkd_st_open(const char *path, vkd_st_file **out);
/* Validate a file already in memory; `data` is not copied and must outlive the file.
 * `label` names it in messages (may be NULL). */
vkd_result vkd_st_open_memory(const void *data, size_t size, const char *label, vkd_st_file **out);
/* Map `length` bytes at `offset` of an open descriptor (Android: AAsset_openFileDescriptor).
 * The descriptor may be closed after the call. */
vkd_result vkd_st_open_fd(int fd, uint64_t offset, size_t length, const char *label, vkd_st_file **out);
void vkd_st_close(vkd_st_file *f); /* NULL is fine */
/* Once a tensor is on the device its mapped pages are dropped from the process (madvise
 * MADV_DONTNEED on the file mapping): they stay in the page cache and fault back in from
 * the file if read again (a LoRA restore, a text encoder uploaded again), but no longer
 * count in the resident set beside the device copy, which on a CPU device is host memory
 * too (issue 24). Tensors from memory (vkd_st_open_memory) are left alone. */
void vkd_st_tensor_drop_pages(const vkd_st_tensor *t);

const char *vkd_st_label(const vkd_st_file *f);       /* the path or label */
const char *vkd_st_format(const vkd_st_file *f);      /* "safetensors" or "GGUF v2"/"GGUF v3" */
size_t vkd_st_count(const vkd_st_file *f);
const vkd_st_tensor *vkd_st_at(const vkd_st_file *f, size_t i); /* in file (offset) order */
const vkd_st_tensor *vkd_st_find(const vkd_st_file *f, const char *name); /* NULL if absent */
size_t vkd_st_metadata_count(const vkd_st_file *f);
/* i-th metadata pair (sorted by key); returns 0 when out of range. */
int vkd_st_metadata_at(const vkd_st_file *f, size_t i, const char **key, const char **value);
const char *vkd_st_metadata(const vkd_st_file *f, const char *key); /* NULL if absent */

/* Convert a whole tensor to f32 / f16 into dst (nelem elements, caller-owned).
 * F16/BF16/F8 -> f32 and F8 -> f16 are exact; F32/BF16/F64 -> f16 round to nearest even
 * (overflow gives inf). Non-float dtypes return VKD_ERR_UNSUPPORTED. */
vkd_result vkd_st_tensor_to_f32(const vkd_st_tensor *t, float *dst);
vkd_result vkd_st_tensor_to_f16(const vkd_st_tensor *t, uint16_t *dst);

/* Element conversions, exported for tests and for the weight loader. */
float vkd_f16_to_f32(uint16_t h);
uint16_t vkd_f32_to_f16(float f);
float vkd_bf16_to_f32(uint16_t b);
float vkd_f8e4m3_to_f32(uint8_t v);
float vkd_f8e5m2_to_f32(uint8_t v);

/* Convert `n` elements starting at element `first` of `src` (raw bytes of dtype t).
 * Used for row slices and transposes; same exactness as above. Block-quantized dtypes
 * need `first` and `n` on block boundaries (else VKD_ERR_UNSUPPORTED, with a message);
 * dequantized exactly as ggml's dequantize_row_* (to f16: through f32, rounded). */
vkd_result vkd_st_convert_f32(vkd_st_dtype t, const void *src, size_t first, size_t n, float *dst);
vkd_result vkd_st_convert_f16(vkd_st_dtype t, const void *src, size_t first, size_t n, uint16_t *dst);

#endif
