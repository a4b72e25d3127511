#version 450
#extension GL_GOOGLE_include_directive : require
// 2D convolution as an implicit GEMM over a channels-last input (host/ops/conv2d.c):
// A(m, k) is the input pixel under tap (ky, kx) of output pixel m, channel ci
// (zero outside the image: the padding); w is re-laid to [Cout, kh, kw, Cin].
#include "common.glsl"
#include "push_matmul.h"

layout(std430, binding = 0) readonly buffer A { T a[]; };
layout(std430, binding = 0) readonly buffer A4 { T4 a4[]; };
layout(std430, binding = 1) readonly buffer W { T wt[]; };
layout(std430, binding = 1) readonly buffer W4 { T4 wt4[]; }; // the same buffer, 4-wide
layout(std430, binding = 2) readonly buffer Bias { T bias[]; };
layout(std430, binding = 3) readonly buffer Res { T res[]; };
layout(std430, binding = 4) writeonly buffer O { T outp[]; };

#include "gemm.glsl"

// The input pixel under tap k of output pixel m, or -1 in the padding; ci = k's channel.
int conv_pixel(uint m, uint k, out uint ci)
{
    uint per_img = pc.rows * pc.ow;
    uint img = m / per_img;
    uint p = m - img * per_img;
    uint oy = pc.oy0 + p / pc.ow, ox = p % pc.ow;
    uint tap = k / pc.cin;
    ci = k - tap * pc.cin;
    uint ky = tap / pc.kw, kx = tap - ky * pc.kw;
    int iy = int(oy * pc.stride + ky) - int(pc.pad_top);
    int ix = int(ox * pc.stride + kx) - int(pc.pad_left);
    if (iy < 0 || iy >= int(pc.h) || ix < 0 || ix >= int(pc.w))
        return -1;
    return int(img * pc.img_stride + ((uint(iy) - pc.iy_lo) * pc.w + uint(ix)) * pc.cin);
}

float load_a(uint m, uint k)
{
    uint ci;
    int p = conv_pixel(m, k, ci);
    return p < 0 ? 0.0 : float(a[pc.a_off + uint(p) + ci]);
}

// cin % 4 == 0 here, so k..k+3 lie in one tap
vec4 load_a4(uint m, uint k)
{
    uint ci;
    int p = conv_pixel(m, k, ci);
    return p < 0 ? vec4(0.0) : vec4(a4[(pc.a_off + uint(p) + ci) / 4]);
}

void main() { gemm_main(); }
