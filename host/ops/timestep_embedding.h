/* Sinusoidal timestep embedding (UNet time_embed input). */
#ifndef VKD_TIMESTEP_EMBEDDING_H
#define VKD_TIMESTEP_EMBEDDING_H

#include "ops/op.h"

/* t: [N] fp32 timesteps (may be fractional; read on the device at submit, so a
 * recorded command buffer replays with whatever the buffer holds then), out: [N, dim]
 * in any dtype. As CompVis util.py timestep_embedding: half = dim/2,
 * freq_i = max_period^(-i/half), out[n] = cat(cos(t_n freq), sin(t_n freq)), plus a
 * zero column when dim is odd. SD uses dim 320 (SDXL 320, its size embeddings 256)
 * and max_period 10000. Accurate to ~1e-7 absolute for |t| up to ~1e5. */
vkd_result vkd_op_timestep_embedding(vkd_cmd *c, const vkd_tensor *t, uint32_t dim, double max_period,
                                     vkd_tensor *out);

#endif
