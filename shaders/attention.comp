#version 450
#extension GL_GOOGLE_include_directive : require
// Fused multi-head attention, flash style (host/ops/attention.c):
//   o[b, i, h] = softmax_j(scale * q[b, i, h] . k[b, j, h] (+ causal mask)) . v[b, j, h]
//
// One invocation owns R query rows (t, t + WG, ...); a workgroup of BR = R * WG rows
// of one head walks the keys in tiles of BC rows. Per tile: the row's BC scores go to registers, then an
// online softmax update in fp32 (running max m and sum l, Dao et al., FlashAttention,
// Alg. 1), then O = alpha * O + P V with O in shared memory. The score matrix is
// never stored; memory per workgroup is O(BR * DV + BC * KD) whatever the lengths.
//
// K and V tiles are staged in shared memory KD columns at a time and every
// invocation reads the same element of them at the same moment (a broadcast: no
// bank conflicts on GPUs); each such load feeds R multiply-adds, which is what sets
// the speed on lavapipe, where shared loads are gathers. The per-row data (q from
// global, O in shared with a padded stride) is touched once per BC multiply-adds.
//
// lavapipe (llvmpipe) silently ends an invocation's loops after 65535 iterations in
// total (its loop limiter, LP_MAX_TGSI_LOOP_ITERATIONS), so loops over the head dim
// step UB columns at a time with an unrolled body (the K/V slices are zero-padded to
// a multiple of UB, so no guards are needed) and the tile loads are unrolled: a
// 16384-key sequence stays under the limit even at D = 512.
//
// Large head dims (the VAE's 512) split the output columns over workgroups: each
// computes columns [split*DV, split*DV + DV) and recomputes the scores.
//
// Grid: x = query blocks, y = heads, z = batch items * column splits.
//
// VKD_F16_ARITH (attention_h, fp16 storage; docs/fp16.md): K and V staged as fp16; q.k
// multiplied in fp16 and summed in fp16 over each UB-column block, each block's sum
// added to the fp32 score; the softmax statistics in fp32; each p rounded once to fp16,
// the rounded value both summed into l (fp32) and multiplied by V, whose products are
// summed in fp16 over the BC keys of a tile and added to the fp32 accumulators.
#ifdef VKD_F16_ARITH
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#include "common.glsl"
#include "push_attention.h"

layout(constant_id = 3) const uint BC = 32;  // key rows per tile (scores held in registers)
layout(constant_id = 8) const uint UB = 8;   // head-dim columns per unrolled step (divides KD and DV)
layout(constant_id = 4) const uint KD = 64;  // head-dim columns staged per K/V load
layout(constant_id = 5) const uint DV = 64;  // output columns per workgroup
layout(constant_id = 6) const uint NSPLIT = 1; // workgroups along the head dim: ceil(D / DV)
layout(constant_id = 7) const uint R = 2;    // query rows per invocation

layout(std430, binding = 0) readonly buffer Q { T q[]; };
layout(std430, binding = 1) readonly buffer K { T k[]; };
layout(std430, binding = 2) readonly buffer V { T v[]; };
layout(std430, binding = 3) writeonly buffer O { T o[]; };

// Masked scores. A finite sentinel instead of -inf, so that exp(m_old - m_new)
// stays 1 (not NaN) while a row has seen only masked keys; masked p are forced to 0.
const float NEG = -3.0e38;
const uint OS = DV + 1; // odd row stride: rows of os fall in different banks

#ifdef VKD_F16_ARITH
#define KV float16_t
#else
#define KV float
#endif
shared KV kvs[BC * KD];                 // [BC, KD] slice of the key tile, then of the value tile
shared float os[R * gl_WorkGroupSize.x * OS]; // [BR, DV] output accumulators

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    const uint BR = R * WG;
    const uint t = gl_LocalInvocationID.x;
    const uint D = pc.d;
    const uint q0 = gl_WorkGroupID.x * BR;
    const uint hd = gl_WorkGroupID.y * D;
    const uint b = gl_WorkGroupID.z / NSPLIT;
    const uint dv0 = (gl_WorkGroupID.z - b * NSPLIT) * DV; // first output column of this workgroup
    const uint dvn = min(DV, D - dv0);
    const uint kbase = pc.k_off + b * pc.k_bs + hd;
    const uint vbase = pc.v_off + b * pc.v_bs + hd;

    uint qbase[R];
    float m[R], l[R];
    [[unroll]] for (uint i = 0; i < R; i++) {
        // rows past the end compute on a copy of the last row and write nothing
        uint row = min(q0 + i * WG + t, pc.rows - 1);
        qbase[i] = pc.q_off + b * pc.q_bs + row * pc.q_rs + hd;
        m[i] = NEG;
        l[i] = 0.0;
        for (uint dd = 0; dd < DV; dd++)
            os[(i * WG + t) * OS + dd] = 0.0;
    }

    // With the causal mask, keys past the workgroup's last query row are all masked.
    uint kend = pc.lk;
    if (pc.causal != 0)
        kend = min(kend, pc.row0 + q0 + BR);

    for (uint k0 = 0; k0 < kend; k0 += BC) {
        float s[R][BC];
        [[unroll]] for (uint i = 0; i < R; i++)
            [[unroll]] for (uint c = 0; c < BC; c++)
                s[i][c] = 0.0;
        for (uint d0 = 0; d0 < D; d0 += KD) {
            uint dn = min(KD, D - d0);
            barrier(); // everyone is done with the previous slice
            [[unroll]] for (uint j = 0; j < (BC * KD + WG - 1) / WG; j++) {
                uint e = t + j * WG, c = e / KD, dd = e - c * KD;
                if ((BC * KD) % WG == 0 || e < BC * KD)
                    kvs[e] = k0 + c < pc.lk && dd < dn ? KV(k[kbase + (k0 + c) * pc.k_rs + d0 + dd]) : KV(0.0);
            }
            barrier();
            for (uint db = 0; db < dn; db += UB) {
#ifdef VKD_F16_ARITH
                f16vec4 qv[R][UB / 4];
                [[unroll]] for (uint u = 0; u < UB; u++) // past D: times the zero padding of kvs
                    [[unroll]] for (uint i = 0; i < R; i++)
                        qv[i][u / 4][u % 4] = q[qbase[i] + min(d0 + db + u, D - 1)];
                [[unroll]] for (uint c = 0; c < BC; c++) {
                    f16vec4 kv[UB / 4];
                    [[unroll]] for (uint u = 0; u < UB; u++)
                        kv[u / 4][u % 4] = kvs[c * KD + db + u];
                    [[unroll]] for (uint i = 0; i < R; i++) {
                        f16vec4 p = qv[i][0] * kv[0];
                        [[unroll]] for (uint w = 1; w < UB / 4; w++)
                            p = fma(qv[i][w], kv[w], p);
                        s[i][c] += float((p.x + p.y) + (p.z + p.w));
                    }
                }
#else
                [[unroll]] for (uint u = 0; u < UB; u++) {
                    uint dd = db + u;
                    // past D: an in-range q value times the zero padding of kvs
                    uint qd = min(d0 + dd, D - 1);
                    float qv[R];
                    [[unroll]] for (uint i = 0; i < R; i++)
                        qv[i] = float(q[qbase[i] + qd]);
                    [[unroll]] for (uint c = 0; c < BC; c++) {
                        float kv = kvs[c * KD + dd];
                        [[unroll]] for (uint i = 0; i < R; i++)
                            s[i][c] += qv[i] * kv;
                    }
                }
#endif
            }
        }
        // online softmax update of each row
        float alpha[R];
        [[unroll]] for (uint i = 0; i < R; i++) {
            uint qrow = pc.row0 + q0 + i * WG + t; // query index in the whole sequence (for the mask)
            float mx = m[i];
            [[unroll]] for (uint c = 0; c < BC; c++) {
                uint key = k0 + c;
                bool masked = key >= pc.lk || (pc.causal != 0 && key > qrow);
                s[i][c] = masked ? NEG : s[i][c] * pc.scale;
                mx = max(mx, s[i][c]);
            }
            alpha[i] = exp(m[i] - mx); // 1 while both are NEG; O and l are 0 then
            float sum = 0.0;
            [[unroll]] for (uint c = 0; c < BC; c++) {
                s[i][c] = s[i][c] == NEG ? 0.0 : exp(s[i][c] - mx);
#ifdef VKD_F16_ARITH
                s[i][c] = float(float16_t(s[i][c])); // the p that V is multiplied by, and l sums
#endif
                sum += s[i][c];
            }
            m[i] = mx;
            l[i] = l[i] * alpha[i] + sum;
        }
        // O = alpha O + P V over this workgroup's columns
        for (uint d0 = 0; d0 < dvn; d0 += KD) {
            uint dn = min(KD, dvn - d0);
            barrier();
            [[unroll]] for (uint j = 0; j < (BC * KD + WG - 1) / WG; j++) {
                uint e = t + j * WG, c = e / KD, dd = e - c * KD;
                // rows past lk load 0, not garbage: their p is 0 but 0 * NaN is NaN
                if ((BC * KD) % WG == 0 || e < BC * KD)
                    kvs[e] = k0 + c < pc.lk && dd < dn ? KV(v[vbase + (k0 + c) * pc.v_rs + dv0 + d0 + dd]) : KV(0.0);
            }
            barrier();
            // columns past dvn (up to the next multiple of UB <= DV) accumulate zeros
            for (uint db = 0; db < dn; db += UB) {
                [[unroll]] for (uint u = 0; u < UB; u++) {
                    uint dd = db + u;
                    float acc[R];
                    [[unroll]] for (uint i = 0; i < R; i++)
                        acc[i] = os[(i * WG + t) * OS + d0 + dd] * alpha[i];
#ifdef VKD_F16_ARITH
                    float16_t part[R]; // p.v over the tile's BC keys
                    [[unroll]] for (uint i = 0; i < R; i++)
                        part[i] = float16_t(0.0);
                    [[unroll]] for (uint c = 0; c < BC; c++) {
                        float16_t vv = kvs[c * KD + dd];
                        [[unroll]] for (uint i = 0; i < R; i++)
                            part[i] = fma(float16_t(s[i][c]), vv, part[i]);
                    }
                    [[unroll]] for (uint i = 0; i < R; i++)
                        acc[i] += float(part[i]);
#else
                    [[unroll]] for (uint c = 0; c < BC; c++) {
                        float vv = kvs[c * KD + dd];
                        [[unroll]] for (uint i = 0; i < R; i++)
                            acc[i] += s[i][c] * vv;
                    }
#endif
                    [[unroll]] for (uint i = 0; i < R; i++)
                        os[(i * WG + t) * OS + d0 + dd] = acc[i];
                }
            }
        }
    }
    [[unroll]] for (uint i = 0; i < R; i++) {
        uint r = q0 + i * WG + t;
        if (r < pc.rows) {
            const uint obase = pc.o_off + b * pc.o_bs + r * pc.o_rs + hd + dv0;
            float inv = l[i] > 0.0 ? 1.0 / l[i] : 0.0;
            for (uint dd = 0; dd < dvn; dd++)
                o[obase + dd] = T(os[(i * WG + t) * OS + dd] * inv);
        }
    }
}
