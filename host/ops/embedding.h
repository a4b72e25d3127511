/* Token + position embedding lookup (text encoder input). */
#ifndef VKD_EMBEDDING_H
#define VKD_EMBEDDING_H

#include "ops/op.h"

/* ids: N*L uint32 token ids at byte offset ids_offset (a multiple of 4) of a device
 * buffer (fill it with vkd_buffer_upload); tok: [V, C]; pos: [P, C] with P >= L;
 * out: [N, L, C]; tok, pos and out share one dtype.
 * out[n, l, :] = tok[ids[n*L + l], :] + pos[l, :]. Ids >= V read no table row: their
 * output is pos[l, :] alone (the tokenizer never makes them; this keeps bad input
 * from reading out of bounds). The token table may exceed one binding window. */
vkd_result vkd_op_embedding(vkd_cmd *c, const vkd_buffer *ids, VkDeviceSize ids_offset, const vkd_tensor *tok,
                            const vkd_tensor *pos, vkd_tensor *out);

#endif
