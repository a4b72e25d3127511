#version 450
#extension GL_GOOGLE_include_directive : require
// 2D convolution as an implicit GEMM over a channels-last input (host/ops/conv2d.c):
// A(m, k) is the input pixel under tap (ky, kx) of output pixel m, channel ci
// (zero outside the image: the padding); w is re-laid to [Cout, kh, kw, Cin].
#include "common.glsl"
#include "push_matmul.h"

layout(std430, binding = 0) readonly buffer A { T a[]; };
layout(std430, binding = 1) readonly buffer W { T wt[]; };
layout(std430, binding = 2) readonly buffer Bias { T bias[]; };
layout(std430, binding = 3) readonly buffer Res { T res[]; };
layout(std430, binding = 4) writeonly buffer O { T outp[]; };

#include "gemm.glsl"

float load_a(uint m, uint k)
{
    uint per_img = pc.rows * pc.ow;
    uint img = m / per_img;
    uint p = m - img * per_img;
    uint oy = pc.oy0 + p / pc.ow, ox = p % pc.ow;
    uint tap = k / pc.cin, ci = k - tap * pc.cin;
    uint ky = tap / pc.kw, kx = tap - ky * pc.kw;
    int iy = int(oy * pc.stride + ky) - int(pc.pad_top);
    int ix = int(ox * pc.stride + kx) - int(pc.pad_left);
    if (iy < 0 || iy >= int(pc.h) || ix < 0 || ix >= int(pc.w))
        return 0.0;
    return float(a[pc.a_off + img * pc.img_stride + ((uint(iy) - pc.iy_lo) * pc.w + uint(ix)) * pc.cin + ci]);
}

void main() { gemm_main(); }
