#version 450
#extension GL_GOOGLE_include_directive : require
// The GEMM kernels of the linear layer and the implicit-GEMM convolution, one module
// per kernel family (VKD_GEMM_FAMILY, matching the DIRECT spec constant), each an entry
// of shaders/kernels.txt with its defines: matmul / conv2d (0: shared-memory tiles),
// matmul_direct / conv2d_direct (1: no shared memory, no barriers), matmul_sg /
// conv2d_sg (2: built with subgroup shuffles, so that devices without them never see
// the capability), matmul_cm / conv2d_cm (3: cooperative matrices, NV; with VKD_CM_KHR
// the KHR extension's, *_cmk; with VKD_CM_EMULATE the matrix operations emulated in
// shared memory, *_cmemu, for the tests). One family per module: llvmpipe
// compiles a shader that has barriers or shared memory as coroutines, and with the
// tiled path's barriers left in the direct modules (dead, but present) a direct kernel
// took many minutes to JIT at its first dispatch (CI timed out in test_op_matmul):
//   out[m, n] = sum_k A(m, k) * w[n * K + k]  (+ bias[n])  (+ res[m, n])
// The linear layer can also take LayerNorm(A) (LNFOLD, below) without a separate pass.
// The manifest defines VKD_GEMM_CONV 0 (A is a row-major [M, K] matrix) or 1 (A is
// the im2col view of a channels-last image: host/ops/conv2d.c).
//
// A workgroup computes a BM x BN output tile; it stages BK-wide slices of A and w
// in shared memory (as fp32, k-major so the inner loop reads along m and n), and
// each invocation accumulates TM x TN outputs in registers. Invocation (tx, ty)
// owns rows ty + i*(BM/TM) and columns tx + j*(BN/TN): neighbouring invocations
// read neighbouring shared words and write neighbouring outputs.
#ifdef VKD_F16_ARITH // families 0 and 1 multiplying in fp16 (*_h: gemm_f16.glsl), staging fp16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define VKD_GEMM_SH float16_t
#else
#define VKD_GEMM_SH float
#endif
#if VKD_GEMM_FAMILY == 2
#extension GL_KHR_shader_subgroup_shuffle : require
#elif VKD_GEMM_FAMILY == 3
#extension GL_KHR_shader_subgroup_basic : require
#ifndef VKD_CM_EMULATE
// glslang emits the Vulkan memory model for the cooperative-matrix types
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#ifdef VKD_CM_KHR
#extension GL_KHR_cooperative_matrix : require
#else
#extension GL_NV_cooperative_matrix : require
#endif
#endif
#endif
#include "common.glsl"
#include "push_matmul.h"
#ifndef VKD_GEMM_FAMILY
#define VKD_GEMM_FAMILY 0
#endif

#if VKD_GEMM_FAMILY == 2
// The subgroup kernel reads A (bindings 0 and 6) and w (1) through uniform texel
// buffers of 16-byte texels (vk/cmd.h VKD_TEXEL_FORMAT): on llvmpipe a texel fetch is
// a straight-line gather of 16 bytes per lane, where a storage-buffer load is a loop
// over the lanes with a branch and a stack round trip per 8-byte component.
layout(binding = 0) uniform usamplerBuffer a_tex;
layout(binding = 1) uniform usamplerBuffer w_tex;
#if !VKD_GEMM_CONV
layout(binding = 6) uniform usamplerBuffer a2_tex;
#endif
#else
layout(std430, binding = 0) readonly buffer A { T a[]; };
layout(std430, binding = 0) readonly buffer A4 { T4 a4[]; };
layout(std430, binding = 1) readonly buffer W { T wt[]; };
layout(std430, binding = 1) readonly buffer W4 { T4 wt4[]; }; // the same buffer, 4-wide
#endif
layout(std430, binding = 2) readonly buffer Bias { T bias[]; };
layout(std430, binding = 3) readonly buffer Res { T res[]; };
layout(std430, binding = 4) writeonly buffer O { T outp[]; };
#if !VKD_GEMM_CONV
// LNFOLD: lnsc[l_off + n] = s[n], lnsc[l_off + N + n] = c[n] (host/ops/matmul.h vkd_ln_fold)
layout(std430, binding = 5) readonly buffer Ln { float lnsc[]; };
// pc.k1 > 0: A is two tensors side by side along k, read in place (a UNet skip
// concatenation): columns k < k1 from binding 0 ([M, k1]), the rest from binding 6
// ([M, K - k1]); k1 is a multiple of every load width, so no load straddles the two.
#if VKD_GEMM_FAMILY != 2
layout(std430, binding = 6) readonly buffer A2 { T a2[]; };
layout(std430, binding = 6) readonly buffer A2v4 { T4 a2v4[]; };
#if VKD_F16
layout(std430, binding = 6) readonly buffer A2v8 { uvec4 a2v8[]; };
#endif
#endif
#endif
#if VKD_F16 && VKD_GEMM_FAMILY != 2
// fp16 A and w read 8 at a time (VEC4 = 2): one 16-byte load instead of two 8-byte ones
layout(std430, binding = 0) readonly buffer A8 { uvec4 a8[]; };
layout(std430, binding = 1) readonly buffer W8 { uvec4 wt8[]; };

// halves 0..3 and 4..7 of eight packed fp16 values
void unpack8(uvec4 u, out vec4 lo, out vec4 hi)
{
    lo = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    hi = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}
#endif

#if VKD_GEMM_CONV
// Convolution: A(m, k) is the input pixel under tap (ky, kx) of output pixel m,
// channel ci (zero outside the image: the padding); w is re-laid to [Cout, kh, kw, Cin].
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
    // pc.up: the stored input is upsampled (nearest) to h x w: source row floor(iy * sh / h),
    // a shift for an exact 2x (the branch is uniform over the dispatch)
    uint sy = uint(iy), sx = uint(ix), sw = pc.w;
    if (pc.up != 0u) {
        uint sh = pc.up >> 16;
        sw = pc.up & 0xffffu;
        sy = sh * 2u == pc.h ? sy >> 1 : sy * sh / pc.h;
        sx = sw * 2u == pc.w ? sx >> 1 : sx * sw / pc.w;
    }
    return int(img * pc.img_stride + ((sy - pc.iy_lo) * sw + sx) * pc.cin);
}

#if VKD_GEMM_FAMILY != 2
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

#if VKD_F16
// cin % 8 == 0 here, so k..k+7 lie in one tap
uvec4 load_a8(uint m, uint k)
{
    uint ci;
    int p = conv_pixel(m, k, ci);
    return p < 0 ? uvec4(0) : a8[(pc.a_off + uint(p) + ci) / 8];
}
#endif
#endif
float ln_row_shift(uint m) { return 0.0; }
#else
// Linear layer: A is [M, K] row-major, or two such side by side (pc.k1).
// The element of A(m, k) in binding 0 (second = false) or binding 6.
uint a_index(uint m, uint k, out bool second)
{
    second = pc.k1 != 0u && k >= pc.k1;
    if (second)
        return pc.a2_off + m * (pc.K - pc.k1) + (k - pc.k1);
    return pc.a_off + m * (pc.k1 != 0u ? pc.k1 : pc.K) + k;
}

#if VKD_GEMM_FAMILY == 2
// LNFOLD: the value subtracted from every element of row m (its first: see ln_out);
// rows start on a texel here (host/ops/matmul.c vkd_gemm_vec_width)
float ln_row_shift(uint m)
{
    bool s;
    uvec4 t = texelFetch(a_tex, int(a_index(m, 0u, s) / (VKD_F16 != 0 ? 8u : 4u)));
    return VKD_F16 != 0 ? unpackHalf2x16(t.x).x : uintBitsToFloat(t.x);
}
#else
float load_a(uint m, uint k)
{
    bool s;
    uint i = a_index(m, k, s);
    if (s) // if, not ?: -- a select would load from both bindings
        return float(a2[i]);
    return float(a[i]);
}
// LNFOLD: the value subtracted from every element of row m (its first: see ln_out)
float ln_row_shift(uint m) { return load_a(m, 0u); }

vec4 load_a4(uint m, uint k)
{
    bool s;
    uint i = a_index(m, k, s);
    if (s)
        return vec4(a2v4[i / 4]);
    return vec4(a4[i / 4]);
}

#if VKD_F16
uvec4 load_a8(uint m, uint k)
{
    bool s;
    uint i = a_index(m, k, s);
    if (s)
        return a2v8[i / 8];
    return a8[i / 8];
}
#endif
#endif
#endif

layout(constant_id = 3) const uint BM = 64;
layout(constant_id = 4) const uint BN = 64;
layout(constant_id = 5) const uint BK = 16;
layout(constant_id = 6) const uint TM = 4;
layout(constant_id = 7) const uint TN = 4;
// DIRECT = 1: no shared memory; each invocation owns one row m and the workgroup's TN
// columns, so every weight load is the same address across the workgroup. CPU
// drivers (lavapipe) run 8 invocations per SIMD vector and turn per-lane addresses
// into gathers; here only the A load is one (host/ops/matmul.c picks the mode).
layout(constant_id = 8) const uint DIRECT = 0;
// VEC4 = 1 (DIRECT = 1): K, and every row start of A and w, are multiples of 4, so
// A and w are read as 4-vectors. llvmpipe turns each storage-buffer load into a loop
// over the SIMD lanes whatever the address; a 4-wide load costs about what a scalar
// one does, so this quarters the load count. VEC4 = 3: the subgroup kernel's 32-byte
// texel loads (its only mode).
layout(constant_id = 9) const uint VEC4 = 0;
// LNFOLD = 1 (linear only): out = LayerNorm(A) w^T + b with the norm folded in, no pass
// of its own. The host stores w' = w diag(gamma), s[n] = sum_k w'[n, k] and
// c[n] = sum_k beta[k] w[n, k] + b[n] (vkd_ln_fold); then
//   LayerNorm(x) w^T + b = rstd * (sum_k x[k] w'[n, k] - mean * s[n]) + c[n].
// The kernel reads d = x - x[0] (the row's first value: the shift keeps the sums small
// when |mean| >> std; LayerNorm(d) = LayerNorm(x)) and gathers sum d and sum d^2 from
// the same loads as the product, so the statistics cost no memory traffic.
layout(constant_id = 10) const uint LNFOLD = 0;

#if VKD_GEMM_FAMILY == 0
// +1 column of padding: the tile stores walk k (the stride) across invocations
const uint BMP = BM + 1;
const uint BNP = BN + 1;
shared VKD_GEMM_SH As[BK * BMP], Bs[BK * BNP];
shared float Shift[LNFOLD != 0 ? BM : 1]; // tiled kernel: ln_row_shift of its rows
#endif

// LNFOLD: take the row shift off a loaded value and add it to the row's sums
void ln_take(inout vec4 v, float sh, inout float s1, inout float s2)
{
    if (LNFOLD != 0) {
        v -= sh;
        s1 += (v.x + v.y) + (v.z + v.w);
        s2 += dot(v, v);
    }
}
void ln_take1(inout float v, float sh, inout float s1, inout float s2)
{
    if (LNFOLD != 0) {
        v -= sh;
        s1 += v;
        s2 = fma(v, v, s2);
    }
}

// LNFOLD: the normalised row times w from v = sum_k d[k] w'[n, k] and the row's sums
float ln_out(uint n, float v, float s1, float s2)
{
#if VKD_GEMM_CONV
    return v;
#else
    if (LNFOLD == 0)
        return v;
    float mean = s1 / float(pc.K);
    float var = max(s2 / float(pc.K) - mean * mean, 0.0);
    float rstd = 1.0 / sqrt(var + pc.ln_eps);
    return rstd * (v - mean * lnsc[pc.l_off + n]) + lnsc[pc.l_off + pc.N + n];
#endif
}

void gemm_epilogue(uint m, uint n, float v)
{
    if ((pc.flags & VKD_GEMM_BIAS) != 0)
        v += float(bias[pc.b_off + n]);
    uint o = m * pc.N + n;
    if ((pc.flags & VKD_GEMM_RESIDUAL) != 0)
        v += float(res[pc.r_off + o]);
    outp[pc.o_off + o] = T(v);
}

#if VKD_GEMM_FAMILY == 1 && !defined(VKD_F16_ARITH)
// DIRECT: invocation g owns rows g*TM .. g*TM+TM-1 and the workgroup's TN columns,
// reading A and w straight from memory (rows and columns past the edge are
// clamped: computed, never stored). With VEC4 the loads are 4-wide along k.
void gemm_direct()
{
    uint mb = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TM;
    uint n0 = gl_WorkGroupID.x * TN;
    if (mb >= pc.M)
        return;
    float acc[TM * TN], sh[TM], s1[TM], s2[TM];
    uint arow[TM], wrow[TN];
    [[unroll]] for (uint i = 0; i < TM * TN; i++)
        acc[i] = 0.0;
    [[unroll]] for (uint i = 0; i < TM; i++) {
        arow[i] = min(mb + i, pc.M - 1);
        sh[i] = LNFOLD != 0 ? ln_row_shift(arow[i]) : 0.0;
        s1[i] = 0.0, s2[i] = 0.0;
    }
    [[unroll]] for (uint j = 0; j < TN; j++)
        wrow[j] = pc.w_off + min(n0 + j, pc.N - 1) * pc.K;
    if (VEC4 != VKD_GEMM_LOAD_SCALAR) {
        for (uint k = 0; k < pc.K; k += 4) {
            vec4 av[TM], wv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) {
                av[i] = load_a4(arow[i], k);
                ln_take(av[i], sh[i], s1[i], s2[i]);
            }
            [[unroll]] for (uint j = 0; j < TN; j++)
                wv[j] = vec4(wt4[(wrow[j] + k) / 4]);
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    acc[i * TN + j] += dot(av[i], wv[j]);
        }
    } else {
        for (uint k = 0; k < pc.K; k++) {
            float av[TM];
            [[unroll]] for (uint i = 0; i < TM; i++) {
                av[i] = load_a(arow[i], k);
                ln_take1(av[i], sh[i], s1[i], s2[i]);
            }
            [[unroll]] for (uint j = 0; j < TN; j++) {
                float wv = float(wt[wrow[j] + k]);
                [[unroll]] for (uint i = 0; i < TM; i++)
                    acc[i * TN + j] = fma(av[i], wv, acc[i * TN + j]);
            }
        }
    }
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            if (mb + i < pc.M && n0 + j < pc.N)
                gemm_epilogue(mb + i, n0 + j, ln_out(n0 + j, acc[i * TN + j], s1[i], s2[i]));
}
#endif

#ifdef VKD_GEMM_SUBGROUP
// The subgroup kernel reads 32 bytes of A or w per load (8 fp32 or 16 fp16 values):
// two texels. K, the window offsets and (conv) Cin are multiples of E32, so a load
// never straddles a row, a tap or the two parts of a concatenated A (the host runs
// the direct kernel on shapes where they are not: vkd_gemm_vec_width).
const uint EPT = VKD_F16 != 0 ? 8u : 4u; // elements per 16-byte texel
const uint E32 = 2u * EPT;               // elements per load
const uint NQ = E32 / 4;                 // 4-vectors per load

void unpack32(uvec4 t0, uvec4 t1, out vec4 q[4])
{
#if VKD_F16
    q[0] = vec4(unpackHalf2x16(t0.x), unpackHalf2x16(t0.y));
    q[1] = vec4(unpackHalf2x16(t0.z), unpackHalf2x16(t0.w));
    q[2] = vec4(unpackHalf2x16(t1.x), unpackHalf2x16(t1.y));
    q[3] = vec4(unpackHalf2x16(t1.z), unpackHalf2x16(t1.w));
#else
    q[0] = uintBitsToFloat(t0);
    q[1] = uintBitsToFloat(t1);
    q[2] = vec4(0.0);
    q[3] = vec4(0.0);
#endif
}

// A(m, k .. k+E32-1), k a multiple of E32
void load_a32(uint m, uint k, out vec4 q[4])
{
#if VKD_GEMM_CONV
    uint ci;
    int p = conv_pixel(m, k, ci);
    int t = int((pc.a_off + uint(max(p, 0)) + ci) / EPT);
    uvec4 t0 = texelFetch(a_tex, t), t1 = texelFetch(a_tex, t + 1);
    if (p < 0) // the padding (a select: both fetches are in bounds)
        t0 = uvec4(0), t1 = uvec4(0);
    unpack32(t0, t1, q);
#else
    bool s;
    int t = int(a_index(m, k, s) / EPT);
    if (s) // if, not ?: -- a select would fetch from both bindings
        unpack32(texelFetch(a2_tex, t), texelFetch(a2_tex, t + 1), q);
    else
        unpack32(texelFetch(a_tex, t), texelFetch(a_tex, t + 1), q);
#endif
}

// DIRECT = 2 (the *_sg entry points, built with VKD_GEMM_SUBGROUP: subgroup shuffles,
// subgroup size 8, workgroup = one subgroup of 8 lanes): lane l owns rows l*TM ..
// l*TM+TM-1 of the workgroup's BM = 8*TM, and all lanes share TN columns (a multiple
// of 8). Lane l loads only weight rows n0 + jj*8 + l; the other lanes get them with
// subgroupShuffle from a constant lane. On llvmpipe every load is a per-lane gather,
// so loading each weight value once per subgroup cuts the weight loads 8-fold.
// Shuffle, not subgroupBroadcast: llvmpipe (Mesa 22.3) compiles a 32-bit shuffle to
// one vpermd on AVX2, but a broadcast to a loop over the lanes looking for an active
// one, then a store and a reload through the stack (~30 cycles; BENCHMARKS.md).
#define VKD_SG_COLQ(c)                                                     \
    [[unroll]] for (uint q = 0; q < NQ; q++) {                             \
        vec4 wv = subgroupShuffle(wq[jj][q], c);                           \
        [[unroll]] for (uint i = 0; i < TM; i++)                           \
            acc[i * TN + jj * 8 + c] += dot(aq[i][q], wv);                 \
    }
void gemm_subgroup()
{
    const uint NJ = TN / 8;
    uint lane = gl_LocalInvocationID.x;
    uint mb = gl_WorkGroupID.y * BM + lane * TM;
    uint n0 = gl_WorkGroupID.x * TN;
    float acc[TM * TN], sh[TM], s1[TM], s2[TM];
    uint arow[TM], wrow[NJ];
    [[unroll]] for (uint i = 0; i < TM * TN; i++)
        acc[i] = 0.0;
    // rows and columns past the edge are clamped (computed, never stored): every
    // lane stays active, as the shuffles need
    [[unroll]] for (uint i = 0; i < TM; i++) {
        arow[i] = min(mb + i, pc.M - 1);
        sh[i] = LNFOLD != 0 ? ln_row_shift(arow[i]) : 0.0;
        s1[i] = 0.0, s2[i] = 0.0;
    }
    [[unroll]] for (uint jj = 0; jj < NJ; jj++)
        wrow[jj] = pc.w_off + min(n0 + jj * 8 + lane, pc.N - 1) * pc.K;
    for (uint k = 0; k < pc.K; k += E32) {
        vec4 aq[TM][4], wq[NJ][4];
        [[unroll]] for (uint i = 0; i < TM; i++) {
            load_a32(arow[i], k, aq[i]);
            [[unroll]] for (uint q = 0; q < NQ; q++)
                ln_take(aq[i][q], sh[i], s1[i], s2[i]);
        }
        [[unroll]] for (uint jj = 0; jj < NJ; jj++) {
            int t = int((wrow[jj] + k) / EPT);
            unpack32(texelFetch(w_tex, t), texelFetch(w_tex, t + 1), wq[jj]);
        }
        [[unroll]] for (uint jj = 0; jj < NJ; jj++) {
            VKD_SG_COLQ(0) VKD_SG_COLQ(1) VKD_SG_COLQ(2) VKD_SG_COLQ(3)
            VKD_SG_COLQ(4) VKD_SG_COLQ(5) VKD_SG_COLQ(6) VKD_SG_COLQ(7)
        }
    }
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            if (mb + i < pc.M && n0 + j < pc.N)
                gemm_epilogue(mb + i, n0 + j, ln_out(n0 + j, acc[i * TN + j], s1[i], s2[i]));
}
#endif

#if VKD_GEMM_FAMILY == 3
// DIRECT = 3 (matmul_cm / conv2d_cm: fp16 only, built with GL_NV_cooperative_matrix):
// tensor-core GEMM for devices that offer 16 x 16 x 16 cooperative matrices with fp16
// inputs and fp32 accumulators at subgroup scope (host/vk/device.c checks the shape).
// fp16 x fp16 products are exact in fp32 and the sums stay fp32, as in the other
// kernels (DESIGN.md decision 3). The workgroup stages BM x BK of A and BN x BK of w in
// shared memory as fp16 each step, like the tiled kernel; its subgroups form a grid of
// (BM / 32) x (BN / 32), each owning a 32 x 32 block of the output as 2 x (32 / CMN)
// accumulator matrices of 16 x CMN (CMN = 16, or 8 where the device offers 16x8x16
// only, as NVIDIA's NV extension may); at the end the accumulators go through shared memory to the
// per-element epilogue (bias, residual, folded LayerNorm). Workgroup size: the number
// of subgroups times the device's subgroup size (host/ops/matmul.c).
const uint CMS = 16;       // rows of A and of the accumulators, and the k step
layout(constant_id = 11) const uint CMN = 16; // columns of B and of the accumulators: 16 or 8
const uint CTM = 2;        // accumulator matrices per subgroup along m
const uint CTN = 32 / CMN; // ... and along n
const uint CMA = CMS * CMN; // elements of an accumulator matrix
const uint BKP = BK + 8;   // staged row stride in halves: 16-byte aligned rows, staggered banks
const uint BNP = BN + 4;   // accumulator tile row stride in floats (16-byte aligned)
#ifdef VKD_CM_EMULATE
// The emulation (matmul_cmemu / conv2d_cmemu, for tests only: host/ops/matmul.h
// direct = 4): the same kernel with each cooperative-matrix operation done by the
// subgroup's lanes in plain shared memory, so every line around them (staging, edges,
// LayerNorm sums, epilogue) is checked on devices without cooperative matrices. A
// "loaded" matrix is its place in As / Bs; an accumulator is a 16 x CMN region of EmAcc,
// element e held by lane e % subgroup size. The loads read as the NV extension
// defines: row-major element (i, j) at offset + i * stride + j, column-major at
// offset + j * stride + i. Staged values are rounded to fp16 as the real kernel's are.
#define VKD_CM_SH float
float cm_sh(float v) { return unpackHalf2x16(packHalf2x16(vec2(v, 0.0))).x; }
shared float EmAcc[(BM / 32) * (BN / 32) * 1024]; // 32 x 32 outputs per subgroup
struct CmRef { uint off; bool col; };
#define VKD_CM_A CmRef
#define VKD_CM_B CmRef
#define VKD_CM_ACC_DECL uint acc0 = gl_SubgroupID * 1024u
#define VKD_CM_ZERO(i) for (uint e = gl_SubgroupInvocationID; e < CMA; e += gl_SubgroupSize) EmAcc[acc0 + (i) * CMA + e] = 0.0
#define VKD_CM_LOAD_A(m, o) m = CmRef(o, false)
#define VKD_CM_LOAD_B(m, o) m = CmRef(o, true)
#define VKD_CM_MULADD(i, a, b) cm_emu_muladd(acc0 + (i) * CMA, a, b)
#define VKD_CM_STORE(i, o) for (uint e = gl_SubgroupInvocationID; e < CMA; e += gl_SubgroupSize) Cs[(o) + (e / CMN) * BNP + e % CMN] = EmAcc[acc0 + (i) * CMA + e]
#elif defined(VKD_CM_KHR)
// matmul_cmk / conv2d_cmk: the same kernel on VK_KHR_cooperative_matrix (compiled only
// where the shader compiler knows GL_KHR_cooperative_matrix: CMakeLists.txt). KHR types
// carry their use (A, B, accumulator); the layouts and strides read as the NV ones.
#define VKD_CM_SH float16_t
float16_t cm_sh(float v) { return float16_t(v); }
#define VKD_CM_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define VKD_CM_B coopmat<float16_t, gl_ScopeSubgroup, 16, CMN, gl_MatrixUseB>
#define VKD_CM_ACC coopmat<float, gl_ScopeSubgroup, 16, CMN, gl_MatrixUseAccumulator>
#define VKD_CM_ACC_DECL VKD_CM_ACC acc[CTM * 4] // CTM * CTN of them used (CTN <= 4)
#define VKD_CM_ZERO(i) acc[i] = VKD_CM_ACC(0.0)
#define VKD_CM_LOAD_A(m, o) coopMatLoad(m, As, o, BKP, gl_CooperativeMatrixLayoutRowMajor)
#define VKD_CM_LOAD_B(m, o) coopMatLoad(m, Bs, o, BKP, gl_CooperativeMatrixLayoutColumnMajor)
#define VKD_CM_MULADD(i, a, b) acc[i] = coopMatMulAdd(a, b, acc[i])
#define VKD_CM_STORE(i, o) coopMatStore(acc[i], Cs, o, BNP, gl_CooperativeMatrixLayoutRowMajor)
#else
#define VKD_CM_SH float16_t
float16_t cm_sh(float v) { return float16_t(v); }
#define VKD_CM_A fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define VKD_CM_B fcoopmatNV<16, gl_ScopeSubgroup, 16, CMN>
#define VKD_CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, CMN>
#define VKD_CM_ACC_DECL VKD_CM_ACC acc[CTM * 4] // CTM * CTN of them used (CTN <= 4)
#define VKD_CM_ZERO(i) acc[i] = VKD_CM_ACC(0.0)
#define VKD_CM_LOAD_A(m, o) coopMatLoadNV(m, As, o, BKP, false)
#define VKD_CM_LOAD_B(m, o) coopMatLoadNV(m, Bs, o, BKP, true)
#define VKD_CM_MULADD(i, a, b) acc[i] = coopMatMulAddNV(a, b, acc[i])
#define VKD_CM_STORE(i, o) coopMatStoreNV(acc[i], Cs, o, BNP, false)
#endif
shared VKD_CM_SH As[BM * BKP]; // A(m0 + r, k0 + c) at r * BKP + c
shared VKD_CM_SH Bs[BN * BKP]; // w[n0 + r, k0 + c] at r * BKP + c: the GEMM's B, column-major
shared float Cs[BM * BNP];
shared float Shift[BM];        // LNFOLD: ln_row_shift of each row
shared float LnSum[2 * BM];    // LNFOLD: sum d and sum d^2 of each row, of the fp16 values multiplied

#ifdef VKD_CM_EMULATE
// acc region += a * b, a from As and b from Bs (16 x CMN x 16)
void cm_emu_muladd(uint acc, CmRef a, CmRef b)
{
    for (uint e = gl_SubgroupInvocationID; e < CMA; e += gl_SubgroupSize) {
        uint i = e / CMN, j = e % CMN;
        float s = EmAcc[acc + e];
        for (uint k = 0; k < 16u; k++) {
            float x = As[a.off + (a.col ? k * BKP + i : i * BKP + k)];
            float y = Bs[b.off + (b.col ? j * BKP + k : k * BKP + j)];
            s = fma(x, y, s);
        }
        EmAcc[acc + e] = s;
    }
}
#endif

// A(m, k .. k+7) (VEC4 = 2, K a multiple of 8) or A(m, k), less the row's shift, into
// the staged row r; zero past the edges (the shift is not applied there: zeros add
// nothing to the LayerNorm sums)
void cm_stage_a(uint r, uint c, uint m, uint k)
{
    float sh = Shift[r];
    if (VEC4 == VKD_GEMM_LOAD_HALF8) {
        vec4 lo = vec4(0.0), hi = vec4(0.0);
        if (m < pc.M && k < pc.K) {
            unpack8(load_a8(m, k), lo, hi);
            lo -= sh, hi -= sh;
        }
        [[unroll]] for (uint i = 0; i < 4; i++) {
            As[r * BKP + c + i] = cm_sh(lo[i]);
            As[r * BKP + c + 4 + i] = cm_sh(hi[i]);
        }
    } else {
        float v = 0.0;
        if (m < pc.M && k < pc.K)
            v = load_a(m, k) - sh;
        As[r * BKP + c] = cm_sh(v);
    }
}

void cm_stage_w(uint r, uint c, uint n, uint k)
{
    if (VEC4 == VKD_GEMM_LOAD_HALF8) {
        uvec4 u = uvec4(0);
        if (n < pc.N && k < pc.K)
            u = wt8[(pc.w_off + n * pc.K + k) / 8];
        [[unroll]] for (uint i = 0; i < 4; i++) {
            vec2 h = unpackHalf2x16(u[i]);
            Bs[r * BKP + c + 2 * i] = cm_sh(h.x);
            Bs[r * BKP + c + 2 * i + 1] = cm_sh(h.y);
        }
    } else {
        float v = 0.0;
        if (n < pc.N && k < pc.K)
            v = float(wt[pc.w_off + n * pc.K + k]);
        Bs[r * BKP + c] = cm_sh(v);
    }
}

#include "gemm_splitk.glsl" // split-K's reduce (phase 2) and last workgroup (phase 3)

// Software pipelining of the staging (VEC4 = 2): the next k step's A and w are read
// from global memory into registers before this step's matrix products, and written to
// shared memory after them, so that the loads' latency overlaps the arithmetic instead
// of stalling every step (one workgroup per SM took ~6 us per 32-wide step on the
// H200's small-M GEMMs). Groups of 8 halves per invocation and operand: at most PF
// (host/ops/matmul.c keeps BM * BK / 8 and BN * BK / 8 within PF * workgroup size).
const uint PF = 16;
uvec4 pre_a[PF], pre_w[PF];
bool pre_in[PF]; // A's group lies inside the matrix (the LayerNorm shift applies)

void cm_fetch(uint m0, uint n0, uint k0)
{
    const uint WG = gl_WorkGroupSize.x, G = BK / 8u; // groups per staged row
    [[unroll]] for (uint i = 0; i < PF; i++) {
        uint e = gl_LocalInvocationID.x + i * WG;
        if (e < BM * G) {
            uint m = m0 + e / G, k = k0 + (e % G) * 8u;
            pre_in[i] = m < pc.M && k < pc.K;
            pre_a[i] = pre_in[i] ? load_a8(m, k) : uvec4(0);
        }
        if (e < BN * G) {
            uint n = n0 + e / G, k = k0 + (e % G) * 8u;
            pre_w[i] = n < pc.N && k < pc.K ? wt8[(pc.w_off + n * pc.K + k) / 8] : uvec4(0);
        }
    }
}

void cm_put()
{
    const uint WG = gl_WorkGroupSize.x, G = BK / 8u;
    [[unroll]] for (uint i = 0; i < PF; i++) {
        uint e = gl_LocalInvocationID.x + i * WG;
        if (e < BM * G) {
            uint r = e / G, c = (e % G) * 8u;
            vec4 lo, hi;
            unpack8(pre_a[i], lo, hi);
            float sh = pre_in[i] ? Shift[r] : 0.0;
            [[unroll]] for (uint j = 0; j < 4; j++) {
                As[r * BKP + c + j] = cm_sh(lo[j] - sh);
                As[r * BKP + c + 4 + j] = cm_sh(hi[j] - sh);
            }
        }
        if (e < BN * G) {
            uint r = e / G, c = (e % G) * 8u;
            [[unroll]] for (uint j = 0; j < 4; j++) {
                vec2 h = unpackHalf2x16(pre_w[i][j]);
                Bs[r * BKP + c + 2 * j] = cm_sh(h.x);
                Bs[r * BKP + c + 2 * j + 1] = cm_sh(h.y);
            }
        }
    }
}

void gemm_coopmat()
{
    const uint WG = gl_WorkGroupSize.x;
    const uint SGN = BN / 32; // subgroups along n
    const uint EW = VEC4 == VKD_GEMM_LOAD_HALF8 ? 8u : 1u; // elements staged per store group
    if (pc.phase == 2) { // uniform across the dispatch: no barrier is skipped by part of a workgroup
        gemm_splitk_reduce();
        return;
    }
    // phases 1 and 3: this workgroup's chunk of k (a whole number of BK steps; LNFOLD is never split)
    uint kbeg = pc.phase != 0u ? gl_WorkGroupID.z * pc.kchunk : 0u;
    uint kend = pc.phase != 0u ? min(pc.K, kbeg + pc.kchunk) : pc.K;
    uint tid = gl_LocalInvocationID.x;
    uint sm = gl_SubgroupID / SGN, sn = gl_SubgroupID % SGN;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
    for (uint r = tid; r < BM; r += WG) {
        Shift[r] = LNFOLD != 0 ? ln_row_shift(min(m0 + r, pc.M - 1)) : 0.0;
        LnSum[2 * r] = 0.0, LnSum[2 * r + 1] = 0.0;
    }
    VKD_CM_ACC_DECL;
    [[unroll]] for (uint i = 0; i < CTM * CTN; i++)
        VKD_CM_ZERO(i);
    barrier();
    if (VEC4 == VKD_GEMM_LOAD_HALF8 && kbeg < kend)
        cm_fetch(m0, n0, kbeg);

    for (uint k0 = kbeg; k0 < kend; k0 += BK) {
        if (VEC4 == VKD_GEMM_LOAD_HALF8) { // this step's groups from the registers, then the next step's loads
            cm_put();
            barrier();
            if (k0 + BK < kend)
                cm_fetch(m0, n0, k0 + BK);
        } else {
            for (uint e = tid; e < BM * BK / EW; e += WG) {
                uint r = e / (BK / EW), c = (e % (BK / EW)) * EW;
                cm_stage_a(r, c, m0 + r, k0 + c);
            }
            for (uint e = tid; e < BN * BK / EW; e += WG) {
                uint r = e / (BK / EW), c = (e % (BK / EW)) * EW;
                cm_stage_w(r, c, n0 + r, k0 + c);
            }
            barrier();
        }
        if (LNFOLD != 0) // one invocation per row, from the values the matrices multiply
            for (uint r = tid; r < BM; r += WG) {
                float s1 = 0.0, s2 = 0.0;
                for (uint c = 0; c < BK; c++) {
                    float v = float(As[r * BKP + c]);
                    s1 += v, s2 = fma(v, v, s2);
                }
                LnSum[2 * r] += s1, LnSum[2 * r + 1] += s2;
            }
        for (uint kk = 0; kk < BK; kk += CMS) {
            VKD_CM_A a[CTM];
            VKD_CM_B b[4]; // CTN used
            [[unroll]] for (uint i = 0; i < CTM; i++)
                VKD_CM_LOAD_A(a[i], (sm * 32 + i * CMS) * BKP + kk);
            [[unroll]] for (uint j = 0; j < CTN; j++)
                VKD_CM_LOAD_B(b[j], (sn * 32 + j * CMN) * BKP + kk);
            [[unroll]] for (uint i = 0; i < CTM; i++)
                [[unroll]] for (uint j = 0; j < CTN; j++)
                    VKD_CM_MULADD(i * CTN + j, a[i], b[j]);
        }
        barrier();
    }

    [[unroll]] for (uint i = 0; i < CTM; i++)
        [[unroll]] for (uint j = 0; j < CTN; j++)
            VKD_CM_STORE(i * CTN + j, (sm * 32 + i * CMS) * BNP + sn * 32 + j * CMN);
    barrier();
    for (uint e = tid; e < BM * BN; e += WG) {
        uint r = e / BN, c = e % BN;
        uint m = m0 + r, n = n0 + c;
        if (m >= pc.M || n >= pc.N)
            continue;
        if (pc.phase != 0u)
            part[pc.s_off + (gl_WorkGroupID.z * pc.M + m) * pc.N + n] = Cs[r * BNP + c];
        else
            gemm_epilogue(m, n, ln_out(n, Cs[r * BNP + c], LnSum[2 * r], LnSum[2 * r + 1]));
    }
    if (pc.phase == 3u) // uniform across the dispatch
        gemm_splitk_last(m0, n0);
}
#endif

#include "gemm_f16.glsl" // (empty without VKD_F16_ARITH)
void gemm_main()
{
#if VKD_GEMM_FAMILY == 0 && defined(VKD_F16_ARITH)
    gemm_tiled_h();
#elif VKD_GEMM_FAMILY == 3
    gemm_coopmat();
#elif VKD_GEMM_FAMILY == 2
    gemm_subgroup();
#elif VKD_GEMM_FAMILY == 1
    gemm_direct();
#else
    const uint WX = BN / TN;
    const uint WG = (BM / TM) * WX;
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % WX, ty = tid / WX;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;

    float acc[TM * TN], s1[TM], s2[TM];
    [[unroll]] for (uint i = 0; i < TM * TN; i++)
        acc[i] = 0.0;
    [[unroll]] for (uint i = 0; i < TM; i++)
        s1[i] = 0.0, s2[i] = 0.0;
    if (LNFOLD != 0) {
        for (uint r = tid; r < BM; r += WG)
            Shift[r] = ln_row_shift(min(m0 + r, pc.M - 1));
        barrier();
    }

    for (uint k0 = 0; k0 < pc.K; k0 += BK) {
        for (uint e = tid; e < BM * BK; e += WG) {
            uint r = e / BK, c = e % BK;
            uint m = m0 + r, k = k0 + c;
            // LNFOLD: the shifted value (0 past the edge adds nothing to the sums)
            As[c * BMP + r] = (m < pc.M && k < pc.K) ? load_a(m, k) - (LNFOLD != 0 ? Shift[r] : 0.0) : 0.0;
        }
        for (uint e = tid; e < BN * BK; e += WG) {
            uint r = e / BK, c = e % BK;
            uint n = n0 + r, k = k0 + c;
            Bs[c * BNP + r] = (n < pc.N && k < pc.K) ? float(wt[pc.w_off + n * pc.K + k]) : 0.0;
        }
        barrier();
        for (uint k = 0; k < BK; k++) {
            float av[TM], bv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) {
                av[i] = As[k * BMP + ty + i * (BM / TM)];
                if (LNFOLD != 0)
                    s1[i] += av[i], s2[i] = fma(av[i], av[i], s2[i]);
            }
            [[unroll]] for (uint j = 0; j < TN; j++)
                bv[j] = Bs[k * BNP + tx + j * WX];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
        }
        barrier();
    }

    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint m = m0 + ty + i * (BM / TM);
        if (m >= pc.M)
            continue;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint n = n0 + tx + j * WX;
            if (n >= pc.N)
                continue;
            gemm_epilogue(m, n, ln_out(n, acc[i * TN + j], s1[i], s2[i]));
        }
    }
#endif
}

void main() { gemm_main(); }
