#version 450
#extension GL_GOOGLE_include_directive : require
// The denoise stage's conversions around the recorded UNet (host/pipeline/denoise_stage.c):
// the sampler's NCHW fp32 latent into the UNet's channels-last input, scaled by c_in and
// repeated per batch item; and the UNet's output back to NCHW fp32 with classifier-free
// guidance (k-diffusion CFGDenoiser: uncond + scale * (cond - uncond)). The scalars
// (c_in, the guidance scale) are read from a buffer written each step, so the recording
// is replayed unchanged. An inpainting UNet's extra input channels (mask, masked-image
// latent) ride along unscaled: k-diffusion scales only the noisy latent by c_in.
#include "common.glsl"
#include "push_latent.h"

layout(std430, binding = 0) buffer F { float f[]; };        // NCHW [ch, hw]
layout(std430, binding = 1) readonly buffer S { float s[]; }; // [c_in, guidance scale]
layout(std430, binding = 2) buffer X { T x[]; };            // [batch, hw, ch]

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.hw * pc.ch)
        return;
    uint p = i / pc.ch, k = i % pc.ch;  // channels-last index of item 0
    uint nchw = pc.f_off + k * pc.hw + p;
    if (pc.mode == VKD_LATENT_IN) {
        float v = k < pc.scaled ? f[nchw] * s[pc.s_off] : f[nchw];
        for (uint b = 0; b < pc.batch; b++)
            x[pc.t_off + b * pc.hw * pc.ch + i] = T(v);
    } else {
        float c = float(x[pc.t_off + (pc.batch - 1) * pc.hw * pc.ch + i]);
        if (pc.batch == 2) {
            float u = float(x[pc.t_off + i]);
            c = u + s[pc.s_off + 1] * (c - u);
        }
        f[nchw] = c;
    }
}
