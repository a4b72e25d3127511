/* Sinusoidal timestep embedding (shaders/timestep_embedding.comp, host/ops/timestep_embedding.c).
 * The timesteps are read from a device buffer, not pushed, so a recorded command
 * buffer replays with new timesteps (decision 5). */
#include "push.h"

VKD_PUSH_BEGIN(vkd_push_timestep)
    pc_uint n;      /* batch items */
    pc_uint dim;    /* output width; half = dim / 2 frequencies */
    pc_uint t_off;  /* element offsets inside each binding window */
    pc_uint o_off;
    pc_float b_hi;  /* b = max_period^(-1/half), computed in double on the host, */
    pc_float b_lo;  /* as an unevaluated sum of two floats; freq_i = b^i */
VKD_PUSH_END(vkd_push_timestep)
