#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Fused attention for wide heads on CPU devices (the VAE's one head of 512): the
// subgroup kernel of attention_sg.comp (8-lane workgroups, K and V rows shared by
// subgroupShuffle, online softmax in fp32, no score matrix in memory) for head dims past
// its 160. A lane cannot hold R query rows of 512 plus their outputs in registers, so
// q is re-read (16 bytes per load, like k) for every block of 8 keys, and each workgroup
// computes DV of the D output columns, NSPLIT workgroups per query block recomputing
// the scores (host/ops/attention.c: DV <= 256, R = 1). The shared-memory kernel
// (attention.comp) ran the VAE's [4096 tokens, 512] at 0.19 GFLOP/s on lavapipe, 65% of
// a 512x512 decode (BENCHMARKS.md).
//
// Every loop over the head dim is unrolled: llvmpipe ends an invocation's loops after
// 65535 iterations in total, so only the key loop may iterate (2048 trips for the
// 16384 tokens of a 1024x1024 decode).
//
// Grid: x = query blocks of 8 * R rows, y = heads, z = batch items * NSPLIT.
#include "attention_sg.glsl"

layout(constant_id = 5) const uint DV = 256;   // output columns per workgroup (a multiple of E, divides D)
layout(constant_id = 6) const uint NSPLIT = 2; // D / DV
const uint NVO = DV / 4; // 4-vectors of output per row
const uint NLO = DV / E; // V loads per row

#define VKD_SCOREW(c)                                                  \
    [[unroll]] for (uint u = 0; u < VPL; u++) {                        \
        vec4 kb = subgroupShuffle(kv[u], c);                           \
        [[unroll]] for (uint i = 0; i < R; i++)                        \
            s[i][c] += dot(qc[i][u], kb);                              \
    }
#define VKD_ACCUMW(c)                                                  \
    [[unroll]] for (uint u = 0; u < VPL; u++) {                        \
        vec4 vb = subgroupShuffle(vv[u], c);                           \
        [[unroll]] for (uint i = 0; i < R; i++)                        \
            acc[i][x * VPL + u] += s[i][c] * vb;                       \
    }

void main()
{
    const uint lane = gl_LocalInvocationID.x; // the workgroup is one subgroup of 8
    const uint q0 = gl_WorkGroupID.x * 8 * R + lane * R;
    const uint hd = gl_WorkGroupID.y * D;
    const uint b = gl_WorkGroupID.z / NSPLIT;
    const uint dv0 = (gl_WorkGroupID.z - b * NSPLIT) * DV; // this workgroup's first output column
    const uint kbase = pc.k_off + b * pc.k_bs + hd;
    const uint vbase = pc.v_off + b * pc.v_bs + hd + dv0;
    const float qscale = pc.scale * 1.4426950408889634;

    uint qe[R];        // each row's first q element (rows past the end re-read the last)
    vec4 acc[R][NVO];  // output accumulators, columns dv0 .. dv0+DV-1
    float m[R], l[R];
    [[unroll]] for (uint i = 0; i < R; i++) {
        qe[i] = pc.q_off + b * pc.q_bs + min(q0 + i, pc.rows - 1) * pc.q_rs + hd;
        [[unroll]] for (uint x = 0; x < NVO; x++)
            acc[i][x] = vec4(0.0);
        m[i] = NEG;
        l[i] = 0.0;
    }

    uint kend = pc.lk;
    if (pc.causal != 0)
        kend = min(kend, pc.row0 + gl_WorkGroupID.x * 8 * R + 8 * R);

    for (uint k0 = 0; k0 < kend; k0 += 8) {
        uint key = min(k0 + lane, pc.lk - 1);
        float s[R][8];
        [[unroll]] for (uint i = 0; i < R; i++)
            [[unroll]] for (uint c = 0; c < 8; c++)
                s[i][c] = 0.0;
        [[unroll]] for (uint x = 0; x < NL; x++) {
            vec4 kv[2], qc[R][2];
            load_k(kbase + key * pc.k_rs + x * E, kv);
            [[unroll]] for (uint i = 0; i < R; i++) {
                load_q(qe[i] + x * E, qc[i]);
                [[unroll]] for (uint u = 0; u < VPL; u++)
                    qc[i][u] *= qscale;
            }
            VKD_SCOREW(0) VKD_SCOREW(1) VKD_SCOREW(2) VKD_SCOREW(3)
            VKD_SCOREW(4) VKD_SCOREW(5) VKD_SCOREW(6) VKD_SCOREW(7)
        }
        [[unroll]] for (uint i = 0; i < R; i++) {
            float alpha = softmax_step(s[i], m[i], l[i], k0, pc.row0 + q0 + i);
            [[unroll]] for (uint x = 0; x < NVO; x++)
                acc[i][x] *= alpha;
        }
        [[unroll]] for (uint x = 0; x < NLO; x++) {
            vec4 vv[2];
            load_v(vbase + key * pc.v_rs + x * E, vv);
            VKD_ACCUMW(0) VKD_ACCUMW(1) VKD_ACCUMW(2) VKD_ACCUMW(3)
            VKD_ACCUMW(4) VKD_ACCUMW(5) VKD_ACCUMW(6) VKD_ACCUMW(7)
        }
    }
    [[unroll]] for (uint i = 0; i < R; i++) {
        if (q0 + i < pc.rows) {
            const uint ob = pc.o_off + b * pc.o_bs + (q0 + i) * pc.o_rs + hd + dv0;
            float inv = l[i] > 0.0 ? 1.0 / l[i] : 0.0;
            [[unroll]] for (uint x = 0; x < NVO; x++)
                [[unroll]] for (uint e = 0; e < 4; e++)
                    o[ob + x * 4 + e] = T(acc[i][x][e] * inv);
        }
    }
}
