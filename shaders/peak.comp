#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_KHR_shader_subgroup_shuffle : require
// The device's arithmetic ceiling, for `vkdiff bench ops`: fp32 multiply-adds on
// registers only, no memory traffic inside the loop, so that a kernel's GFLOP/s can be
// read against what the device and its shader compiler reach at all.
//   MODE 0: 8 * TM independent fma chains per invocation (the count hides latency).
//   MODE 1, 2: the inner step of the subgroup GEMM (gemm.comp, DIRECT = 2): lane l
//           holds TM values a[i], one value w changes per trip, and every lane does
//           acc[i][c] += a[i] * w(lane c) for c < 8, taking w from lane c by
//           subgroupBroadcast (1) or subgroupShuffle (2). On llvmpipe the two differ
//           4x: the broadcast is a loop over the lanes, the shuffle one vpermd.
// Each invocation writes one float (the sum), so nothing is dead code.
#include "common.glsl"
#include "push_peak.h"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const uint TM = 8;

layout(std430, binding = 0) writeonly buffer O { float o[]; };

// (a macro: both take a constant lane, which an unrolled loop's index is not to glslang)
#define VKD_PEAK_COL(c)                                                                  \
    {                                                                                    \
        float wc = MODE == 2 ? subgroupShuffle(w, c) : subgroupBroadcast(w, c);          \
        [[unroll]] for (uint i = 0; i < TM; i++)                                         \
            acc[i * 8 + c] = fma(a[i], wc, acc[i * 8 + c]);                              \
    }

void main()
{
    const uint gid = gl_GlobalInvocationID.x;
    float acc[TM * 8], a[TM];
    [[unroll]] for (uint i = 0; i < TM * 8; i++)
        acc[i] = float(gid % 7u) * 0.01 + float(i) * 0.001;
    [[unroll]] for (uint i = 0; i < TM; i++)
        a[i] = pc.a + float(i) * 1.0e-4;
    float w = float(gl_SubgroupInvocationID) * 0.01;
    if (MODE == 0) {
        for (uint t = 0; t < pc.iters; t++)
            [[unroll]] for (uint i = 0; i < TM * 8; i++)
                acc[i] = fma(acc[i], pc.a, pc.b);
    } else {
        for (uint t = 0; t < pc.iters; t++) {
            w = fma(w, pc.a, pc.b);
            VKD_PEAK_COL(0) VKD_PEAK_COL(1) VKD_PEAK_COL(2) VKD_PEAK_COL(3)
            VKD_PEAK_COL(4) VKD_PEAK_COL(5) VKD_PEAK_COL(6) VKD_PEAK_COL(7)
        }
    }
    float s = 0.0;
    [[unroll]] for (uint i = 0; i < TM * 8; i++)
        s += acc[i];
    o[gid] = s;
}
