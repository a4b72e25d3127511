/* Quantized weights (issue 25): ggml's blocks kept in device memory as the file holds
 * them, turned into the storage dtype just before the op that reads them. */
#ifndef VKD_OPS_DEQUANT_H
#define VKD_OPS_DEQUANT_H

#include <stdint.h>

#include "ops/op.h"

/* One ggml block type: ggml's number (push_dequant.h VKD_QT_*), its name ("q8_0"),
 * elements and bytes per block. NULL for a type the kernel does not read. */
typedef struct vkd_dequant_info {
    uint32_t type;
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
} vkd_dequant_info;
const vkd_dequant_info *vkd_dequant_info_of(uint32_t ggml_type);
/* the device bytes of n elements of the type (n a multiple of its block) */
uint64_t vkd_dequant_bytes(const vkd_dequant_info *qt, int64_t n);
/* the words of a blocks tensor for n elements, padding included */
int64_t vkd_dequant_words(const vkd_dequant_info *qt, int64_t n);

/* Words a blocks tensor holds past its blocks: the kernel reads a 32-element block as 10
 * whole words, which for the last block may run past its bytes. */
#define VKD_DEQUANT_PAD_WORDS 10

/* blocks: the raw blocks in an F32 tensor used as a word array (ceil(bytes / 4) words and
 * VKD_DEQUANT_PAD_WORDS more, any value; vkd_dequant_words);
 * out: the dequantized tensor, F16 or F32, numel = the blocks' elements. With taps > 1
 * the rows (of row elements each) are conv weights in ggml's [Cin, kh, kw] order and are
 * written as vkdiff's [kh, kw, Cin] (taps = kh * kw, cin = Cin); else taps = 1. */
vkd_result vkd_op_dequant(vkd_cmd *c, const vkd_tensor *blocks, uint32_t ggml_type, int64_t taps, int64_t cin,
                          vkd_tensor *out);

#endif
