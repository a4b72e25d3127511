#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#ifndef VKD_CM_EMULATE
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#endif
// Fused multi-head attention on cooperative matrices (host/ops/attention.c), fp16 only:
//   o[b, i, h] = softmax_j(scale * q[b, i, h] . k[b, j, h] (+ causal mask)) . v[b, j, h]
// Two modules (shaders/kernels.txt): attention_cmk (VK_KHR_cooperative_matrix) and
// attention_cmemu (VKD_CM_EMULATE: the same kernel with its matrix operations done by
// the lanes in shared memory, for the tests on devices without cooperative matrices,
// as gemm.comp's emulation).
//
// A workgroup of NSG subgroups takes BR = 16 * NSG query rows of one head; subgroup s
// owns rows 16 s .. 16 s + 15. Its Q rows stay in registers as DP / 16 matrices of
// 16 x 16 (DP: the head dim rounded up to 16, zero-padded), its output as DP / 16
// fp32 accumulators. Per block of BC keys (K and V staged in shared memory as fp16):
//   S = Q K^T          cooperative matrices, fp32 sums of fp16 products (exact products)
//   online softmax     by the lanes over S in shared memory, one row per lane, fp32
//                      (running max m and sum l: Dao et al., FlashAttention, Alg. 1);
//                      P rounded to fp16 once, and l sums the rounded values, so the
//                      normalisation matches what P V multiplies
//   O = diag(alpha) O  component-wise with a matrix whose row r holds alpha_r (the
//                      accumulator's element-to-lane map is the implementation's, so
//                      the per-row factor goes through shared memory as a matrix)
//   O += P V           cooperative matrices
// At the end O / l the same way, through shared memory to the output (rows and
// columns past the edges not written). The score matrix never exists in full.
//
// Grid: x = query blocks, y = heads, z = batch items.
#include "common.glsl"
#include "push_attention.h"

layout(constant_id = 3) const uint DP = 48;  // head dim rounded up to 16 (<= 160)
layout(constant_id = 4) const uint NSG = 4;  // subgroups per workgroup
layout(constant_id = 5) const uint BC = 32;  // keys per block (a multiple of 16)

layout(std430, binding = 0) readonly buffer Q { T q[]; };
layout(std430, binding = 1) readonly buffer K { T k[]; };
layout(std430, binding = 2) readonly buffer V { T v[]; };
layout(std430, binding = 3) writeonly buffer O { T o[]; };

const float NEG = -3.0e38; // masked score: exp(NEG - m) is 0, exp(NEG - NEG) is 1 (attention.comp)
const uint BR = 16 * NSG;  // query rows per workgroup
const uint NT = DP / 16;   // head-dim tiles
const uint MAXT = 10;      // NT at most (DP <= 160)
const uint DPS = DP + 8;   // fp16 row stride of staged Q, K, V: 16-byte rows, staggered banks
const uint SSS = BC + 4;   // fp32 row stride of a subgroup's scores (>= 16 + 4: also its output tile)
const uint PSS = BC + 8;   // fp16 row stride of its probabilities

#ifdef VKD_CM_EMULATE
// Emulation: a "loaded" matrix is its place in shared memory; an accumulator a 16 x 16
// region of EmAcc, element e held by lane e % subgroup size in every operation (so the
// lanes never touch each other's elements). Loads read as the KHR extension defines:
// row-major element (i, j) at offset + i * stride + j, column-major offset + j * stride + i.
#define SH float
SH sh(float x) { return unpackHalf2x16(packHalf2x16(vec2(x, 0.0))).x; } // rounded as fp16 storage
shared float Qs[BR * DPS];
shared float KVs[2 * BC * DPS];
shared float EmAcc[NSG * (NT + BC / 16) * 256];
struct CmRef { uint arr; uint off; uint stride; bool col; }; // arr: 0 Qs, 1 KVs, 2 Ps
#define MA CmRef
#define MB CmRef
#define ACC uint
#else
#define SH float16_t
SH sh(float x) { return float16_t(x); }
#define MA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
// Q is staged once, in the space K and V use afterwards (BR <= 2 BC: host/ops/attention.c)
shared SH KVs[(2 * BC > BR ? 2 * BC : BR) * DPS];
#define Qs KVs
#endif
shared float Ss[NSG * 16 * SSS]; // per subgroup: 16 rows of scores, then of one output tile
shared SH Ps[NSG * 16 * PSS];    // per subgroup: 16 rows of probabilities
shared float Ms[NSG * 256];      // per subgroup: the row-scale matrix (alpha or 1 / l)
shared float Mrow[BR], Lrow[BR]; // running max and sum of each row

#ifdef VKD_CM_EMULATE
float em_get(CmRef m, uint r, uint c)
{
    uint i = m.off + (m.col ? c * m.stride + r : r * m.stride + c);
    return m.arr == 0u ? Qs[i] : m.arr == 1u ? KVs[i] : float(Ps[i]);
}
#define LOAD_A(m, arr, o, st) m = CmRef(arr, o, st, false)
#define LOAD_B_ROWS(m, arr, o, st) m = CmRef(arr, o, st, false)
#define LOAD_B_COLS(m, arr, o, st) m = CmRef(arr, o, st, true)
void em_zero(uint acc)
{
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += gl_SubgroupSize)
        EmAcc[acc + e] = 0.0;
}
void em_muladd(uint acc, CmRef a, CmRef b)
{
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += gl_SubgroupSize) {
        uint i = e / 16u, j = e % 16u;
        float s = EmAcc[acc + e];
        for (uint x = 0; x < 16u; x++)
            s = fma(em_get(a, i, x), em_get(b, x, j), s);
        EmAcc[acc + e] = s;
    }
}
void em_scale(uint acc, uint ms) // component-wise by the matrix at Ms[ms] (row-major, stride 16)
{
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += gl_SubgroupSize)
        EmAcc[acc + e] *= Ms[ms + e];
}
void em_store(uint acc, uint off)
{
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += gl_SubgroupSize)
        Ss[off + (e / 16u) * SSS + e % 16u] = EmAcc[acc + e];
}
#endif

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    const uint tid = gl_LocalInvocationID.x;
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID, sgs = gl_SubgroupSize;
    const uint D = pc.d;
    const uint q0 = gl_WorkGroupID.x * BR;
    const uint hd = gl_WorkGroupID.y * D;
    const uint b = gl_WorkGroupID.z;
    const uint qbase = pc.q_off + b * pc.q_bs + hd;
    const uint kbase = pc.k_off + b * pc.k_bs + hd;
    const uint vbase = pc.v_off + b * pc.v_bs + hd;

    // Q [BR, DP], zero past the rows and past D
    for (uint e = tid; e < BR * DP; e += WG) {
        uint r = e / DP, c = e - r * DP;
        float x = q0 + r < pc.rows && c < D ? float(q[qbase + (q0 + r) * pc.q_rs + c]) : 0.0;
        Qs[r * DPS + c] = sh(x);
    }
    for (uint r = tid; r < BR; r += WG)
        Mrow[r] = NEG, Lrow[r] = 0.0;
    barrier();

#ifdef VKD_CM_EMULATE
    const uint acc0 = sg * (NT + BC / 16) * 256; // the output's tiles, then the scores'
    MA qa[MAXT];
    [[unroll]] for (uint t = 0; t < MAXT; t++)
        if (t < NT) {
            LOAD_A(qa[t], 0u, sg * 16 * DPS + t * 16, DPS);
            em_zero(acc0 + t * 256);
        }
#else
    MA qa[MAXT];
    ACC oacc[MAXT];
    [[unroll]] for (uint t = 0; t < MAXT; t++)
        if (t < NT) {
            coopMatLoad(qa[t], Qs, sg * 16 * DPS + t * 16, DPS, gl_CooperativeMatrixLayoutRowMajor);
            oacc[t] = ACC(0.0);
        }
    barrier(); // Q's staging space becomes K's and V's
#endif

    // with the causal mask, keys past the workgroup's last query row are all masked
    uint kend = pc.lk;
    if (pc.causal != 0)
        kend = min(kend, pc.row0 + q0 + BR);
    const uint srow = sg * 16;             // this subgroup's first row in the workgroup
    const uint soff = sg * 16 * SSS;       // its scores in Ss
    const uint poff = sg * 16 * PSS;       // its probabilities in Ps
    const uint moff = sg * 256;            // its row-scale matrix in Ms

    for (uint k0 = 0; k0 < kend; k0 += BC) {
        // K rows [0, BC) and V rows [BC, 2 BC) of KVs; zero past the keys and past D
        for (uint e = tid; e < BC * DP; e += WG) {
            uint j = e / DP, c = e - j * DP;
            bool inside = k0 + j < pc.lk && c < D;
            KVs[j * DPS + c] = sh(inside ? float(k[kbase + (k0 + j) * pc.k_rs + c]) : 0.0);
            KVs[(BC + j) * DPS + c] = sh(inside ? float(v[vbase + (k0 + j) * pc.v_rs + c]) : 0.0);
        }
        barrier();

        // S = Q K^T: K^T's element (d, j) is K row j, column d (column-major)
        for (uint j = 0; j < BC / 16; j++) {
#ifdef VKD_CM_EMULATE
            uint s = acc0 + (NT + j) * 256;
            em_zero(s);
            for (uint t = 0; t < NT; t++) {
                MB kt;
                LOAD_B_COLS(kt, 1u, j * 16 * DPS + t * 16, DPS);
                em_muladd(s, qa[t], kt);
            }
            em_store(s, soff + j * 16);
#else
            ACC s = ACC(0.0);
            [[unroll]] for (uint t = 0; t < MAXT; t++)
                if (t < NT) {
                    MB kt;
                    coopMatLoad(kt, KVs, j * 16 * DPS + t * 16, DPS, gl_CooperativeMatrixLayoutColumnMajor);
                    s = coopMatMulAdd(qa[t], kt, s);
                }
            coopMatStore(s, Ss, soff + j * 16, SSS, gl_CooperativeMatrixLayoutRowMajor);
#endif
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // online softmax: lane r updates row r (16 rows per subgroup)
        for (uint r = lane; r < 16u; r += sgs) {
            uint row = srow + r, qrow = pc.row0 + q0 + row; // (qrow: the row in the whole sequence)
            float mo = Mrow[row], mx = mo;
            for (uint c = 0; c < BC; c++) {
                uint key = k0 + c;
                bool masked = key >= pc.lk || (pc.causal != 0 && key > qrow);
                float x = masked ? NEG : Ss[soff + r * SSS + c] * pc.scale;
                Ss[soff + r * SSS + c] = x;
                mx = max(mx, x);
            }
            float alpha = exp(mo - mx), sum = 0.0;
            for (uint c = 0; c < BC; c++) {
                float x = Ss[soff + r * SSS + c];
                SH p = sh(x == NEG ? 0.0 : exp(x - mx));
                Ps[poff + r * PSS + c] = p;
                sum += float(p);
            }
            Mrow[row] = mx;
            Lrow[row] = Lrow[row] * alpha + sum;
            for (uint c = 0; c < 16u; c++)
                Ms[moff + r * 16 + c] = alpha;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // O = diag(alpha) O + P V: V's element (j, d) is V row j, column d (row-major)
#ifdef VKD_CM_EMULATE
        for (uint t = 0; t < NT; t++)
            em_scale(acc0 + t * 256, moff);
        for (uint j = 0; j < BC / 16; j++) {
            MA pa;
            LOAD_A(pa, 2u, poff + j * 16, PSS);
            for (uint t = 0; t < NT; t++) {
                MB vt;
                LOAD_B_ROWS(vt, 1u, (BC + j * 16) * DPS + t * 16, DPS);
                em_muladd(acc0 + t * 256, pa, vt);
            }
        }
#else
        ACC alpha_m;
        coopMatLoad(alpha_m, Ms, moff, 16, gl_CooperativeMatrixLayoutRowMajor);
        [[unroll]] for (uint t = 0; t < MAXT; t++)
            if (t < NT)
                oacc[t] = oacc[t] * alpha_m;
        for (uint j = 0; j < BC / 16; j++) {
            MA pa;
            coopMatLoad(pa, Ps, poff + j * 16, PSS, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint t = 0; t < MAXT; t++)
                if (t < NT) {
                    MB vt;
                    coopMatLoad(vt, KVs, (BC + j * 16) * DPS + t * 16, DPS, gl_CooperativeMatrixLayoutRowMajor);
                    oacc[t] = coopMatMulAdd(pa, vt, oacc[t]);
                }
        }
#endif
        barrier(); // everyone is done with this block's K and V
    }

    // O / l, one 16 x 16 tile at a time through this subgroup's part of Ss
    for (uint r = lane; r < 16u; r += sgs) {
        float l = Lrow[srow + r];
        for (uint c = 0; c < 16u; c++)
            Ms[moff + r * 16 + c] = l > 0.0 ? 1.0 / l : 0.0;
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
#ifndef VKD_CM_EMULATE
    ACC inv_l;
    coopMatLoad(inv_l, Ms, moff, 16, gl_CooperativeMatrixLayoutRowMajor);
#endif
    const uint obase = pc.o_off + b * pc.o_bs + hd;
    [[unroll]] for (uint t = 0; t < MAXT; t++) {
        if (t >= NT)
            break;
#ifdef VKD_CM_EMULATE
        em_scale(acc0 + t * 256, moff);
        em_store(acc0 + t * 256, soff);
#else
        ACC x = oacc[t] * inv_l;
        coopMatStore(x, Ss, soff, SSS, gl_CooperativeMatrixLayoutRowMajor);
#endif
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint e = lane; e < 256u; e += sgs) {
            uint r = e / 16u, c = e % 16u;
            uint row = q0 + srow + r, col = t * 16 + c;
            if (row < pc.rows && col < D)
                o[obase + row * pc.o_rs + col] = T(Ss[soff + r * SSS + c]);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
}
