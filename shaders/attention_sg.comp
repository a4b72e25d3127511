#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Fused multi-head attention, the subgroup variant for CPU devices (host/ops/attention.c
// picks it on devices of type CPU with 8-lane subgroups and shuffles: lavapipe on AVX2):
//   o[b, i, h] = softmax_j(scale * q[b, i, h] . k[b, j, h] (+ causal mask)) . v[b, j, h]
// Same push constants and bindings as attention.comp; the same online softmax in fp32
// (Dao et al., FlashAttention, Alg. 1), no score matrix in memory.
//
// Why a second kernel: llvmpipe runs a shader with barriers as coroutines and turns
// every load from shared or storage memory into a loop over the 8 SIMD lanes, whatever
// the address; attention.comp, with K/V tiles in shared memory, ran at 0.6-0.9 GFLOP/s
// there while the subgroup GEMM (gemm.comp, DIRECT = 2) reached 3-7. This kernel is
// that GEMM's scheme applied twice: a workgroup is one subgroup of 8 lanes, lane l owns
// R query rows (its q and output accumulators live in registers for the whole key
// loop); keys go 8 at a time, lane l loading key row k0 + l (and later value row
// k0 + l) 16 bytes per load, and the other lanes take each value by subgroupShuffle
// from a constant lane (one vpermd on llvmpipe; subgroupBroadcast is a loop over the
// lanes there, see gemm.comp, and cost 2.8x here). Each K/V load then feeds
// 8 * R * E multiply-adds (E elements per load) with no shared memory and no barrier.
//
// The head dim D is a specialization constant (a multiple of E) so every loop over it
// unrolls; the host keeps R * D <= 320 (the registers per lane).
//
// Grid: x = query blocks of 8 * R rows, y = heads, z = batch items.
#include "attention_sg.glsl"

// Scores and the running max are kept in the log2 domain (q is scaled by
// scale * log2(e) once), so the softmax uses exp2 directly.
#define VKD_SCORE(c)                                                   \
    [[unroll]] for (uint u = 0; u < VPL; u++) {                        \
        vec4 kb = subgroupShuffle(kv[u], c);                         \
        [[unroll]] for (uint i = 0; i < R; i++)                        \
            s[i][c] += dot(qr[i][x * VPL + u], kb);                    \
    }
#define VKD_ACCUM(c)                                                   \
    [[unroll]] for (uint u = 0; u < VPL; u++) {                        \
        vec4 vb = subgroupShuffle(vv[u], c);                         \
        [[unroll]] for (uint i = 0; i < R; i++)                        \
            acc[i][x * VPL + u] += s[i][c] * vb;                       \
    }

void main()
{
    const uint lane = gl_LocalInvocationID.x; // the workgroup is one subgroup of 8
    const uint q0 = gl_WorkGroupID.x * 8 * R + lane * R; // this lane's first row
    const uint hd = gl_WorkGroupID.y * D;
    const uint b = gl_WorkGroupID.z;
    const uint kbase = pc.k_off + b * pc.k_bs + hd;
    const uint vbase = pc.v_off + b * pc.v_bs + hd;
    const float qscale = pc.scale * 1.4426950408889634;

    vec4 qr[R][NV];  // this lane's R query rows, scaled
    vec4 acc[R][NV]; // their output accumulators
    float m[R], l[R];
    [[unroll]] for (uint i = 0; i < R; i++) {
        // rows past the end compute on a copy of the last row and write nothing
        // (every lane stays active, as the broadcasts need)
        uint qe = pc.q_off + b * pc.q_bs + min(q0 + i, pc.rows - 1) * pc.q_rs + hd;
        [[unroll]] for (uint x = 0; x < NL; x++) {
            vec4 t[2];
            load_q(qe + x * E, t);
            [[unroll]] for (uint u = 0; u < VPL; u++)
                qr[i][x * VPL + u] = t[u] * qscale;
        }
        [[unroll]] for (uint x = 0; x < NV; x++)
            acc[i][x] = vec4(0.0);
        m[i] = NEG;
        l[i] = 0.0;
    }

    // With the causal mask, keys past the workgroup's last query row are all masked.
    uint kend = pc.lk;
    if (pc.causal != 0)
        kend = min(kend, pc.row0 + gl_WorkGroupID.x * 8 * R + 8 * R);

    for (uint k0 = 0; k0 < kend; k0 += 8) {
        // keys past lk load the last key (finite) and get p = 0
        uint key = min(k0 + lane, pc.lk - 1);
        float s[R][8];
        [[unroll]] for (uint i = 0; i < R; i++)
            [[unroll]] for (uint c = 0; c < 8; c++)
                s[i][c] = 0.0;
        [[unroll]] for (uint x = 0; x < NL; x++) {
            vec4 kv[2];
            load_k(kbase + key * pc.k_rs + x * E, kv);
            VKD_SCORE(0) VKD_SCORE(1) VKD_SCORE(2) VKD_SCORE(3)
            VKD_SCORE(4) VKD_SCORE(5) VKD_SCORE(6) VKD_SCORE(7)
        }
        // online softmax update of each row
        [[unroll]] for (uint i = 0; i < R; i++) {
            float alpha = softmax_step(s[i], m[i], l[i], k0, pc.row0 + q0 + i);
            [[unroll]] for (uint x = 0; x < NV; x++)
                acc[i][x] *= alpha;
        }
        // acc += P V
        [[unroll]] for (uint x = 0; x < NL; x++) {
            vec4 vv[2];
            load_v(vbase + key * pc.v_rs + x * E, vv);
            VKD_ACCUM(0) VKD_ACCUM(1) VKD_ACCUM(2) VKD_ACCUM(3)
            VKD_ACCUM(4) VKD_ACCUM(5) VKD_ACCUM(6) VKD_ACCUM(7)
        }
    }
    [[unroll]] for (uint i = 0; i < R; i++) {
        if (q0 + i < pc.rows) {
            const uint ob = pc.o_off + b * pc.o_bs + (q0 + i) * pc.o_rs + hd;
            float inv = l[i] > 0.0 ? 1.0 / l[i] : 0.0;
            [[unroll]] for (uint x = 0; x < NV; x++)
                [[unroll]] for (uint e = 0; e < 4; e++)
                    o[ob + x * 4 + e] = T(acc[i][x][e] * inv);
        }
    }
}
