/* Storage-type conversion of a tensor: fp32 <-> fp16, or an fp32 copy. */
#ifndef VKD_CAST_H
#define VKD_CAST_H

#include "ops/op.h"

/* in and out have the same element count; (F32 -> F16), (F16 -> F32) or (F32 -> F32).
 * fp16 needs a device with 16-bit storage (VKD_ERR_UNSUPPORTED otherwise). Values
 * beyond fp16's range become +-inf, as torch's .half() does. */
vkd_result vkd_op_cast(vkd_cmd *c, const vkd_tensor *in, vkd_tensor *out);

#endif
