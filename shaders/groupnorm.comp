#version 450
#extension GL_GOOGLE_include_directive : require
// Group norm, three passes (host/ops/push_groupnorm.h), four modules (shaders/kernels.txt):
// groupnorm (STATS and COMBINE, and APPLY), groupnorm_apply (APPLY alone:
// VKD_GN_APPLY_ONLY), groupnorm_apply_tx (APPLY through texel buffers: VKD_GN_TEXEL)
// and groupnorm_tx (STATS and COMBINE through texel buffers: VKD_GN_STATS_TX). Statistics in fp32: each
// block takes its mean first and then the centered sum of squares (no E[x^2]-E[x]^2
// cancellation); blocks are merged with Chan's pairwise update.
#include "common.glsl"
#include "push_groupnorm.h"

// APPLY: this invocation's index on the 2D grid (host/ops/op.h vkd_op_grid_1d)
uint apply_index()
{
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}

// APPLY: element e of the dispatch is sample z, element r of that sample, channel c
void apply_place(uint e, out uint z, out uint r, out uint c)
{
    uint per = pc.rows * pc.c;
    z = e / per;
    r = e - z * per;
    c = r % pc.c;
}

// The element of x holding (sample z of the dispatch, row from the dispatch's first,
// channel ch): in binding 0, or in binding 6 (second) for a split's channels c1..
uint x_index(uint z, uint row, uint ch, out bool second)
{
    second = pc.c1 != 0u && ch >= pc.c1;
    if (pc.c1 == 0u)
        return pc.x_off + z * pc.stride_n + row * pc.c + ch;
    if (!second)
        return pc.x_off + z * pc.stride_1 + row * pc.c1 + ch;
    return pc.x2_off + z * pc.stride_2 + row * (pc.c - pc.c1) + (ch - pc.c1);
}

#ifndef VKD_GN_TEXEL // (the texel APPLY module binds these as texel buffers: below)
layout(std430, binding = 1) readonly buffer Gm { T gamma[]; };
layout(std430, binding = 2) readonly buffer Bt { T beta[]; };
layout(std430, binding = 3) buffer S { float s[]; };
layout(std430, binding = 4) writeonly buffer O { T o[]; };
#ifdef VKD_GN_STATS_TX
// groupnorm_tx.comp: STATS and COMBINE reading x, x2 and e through uniform texel buffers
// of 16-byte texels (vk/cmd.h VKD_TEXEL_FORMAT), one element picked from each fetch: on
// llvmpipe a texel fetch is a straight-line gather, a storage load a loop over the lanes
layout(binding = 0) uniform usamplerBuffer x_tex;
layout(binding = 5) uniform usamplerBuffer e_tex;
layout(binding = 6) uniform usamplerBuffer x2_tex;
#if VKD_F16
float half_of(uint e, uvec4 u)
{
    vec2 h = unpackHalf2x16(u[(e >> 1u) & 3u]);
    return (e & 1u) != 0u ? h.y : h.x;
}
#define VKD_FETCH1(tex, e) half_of(e, texelFetch(tex, int((e) >> 3u)))
#else
#define VKD_FETCH1(tex, e) uintBitsToFloat(texelFetch(tex, int((e) >> 2u))[(e) & 3u])
#endif
#define VKD_XL(i) VKD_FETCH1(x_tex, i)
#define VKD_X2L(i) VKD_FETCH1(x2_tex, i)
#define VKD_EL(i) VKD_FETCH1(e_tex, i)
#else
layout(std430, binding = 0) readonly buffer X { T x[]; };
layout(std430, binding = 5) readonly buffer E { T ev[]; }; // [N, e_stride]: columns 0..C-1 added to x before the norm (pc.add)
layout(std430, binding = 6) readonly buffer X2 { T x2[]; }; // pc.c1 > 0: channels c1.. (a skip concatenation read in place)
#define VKD_XL(i) float(x[i])
#define VKD_X2L(i) float(x2[i])
#define VKD_EL(i) float(ev[i])
#endif

// x[sample z of the dispatch, row (from the dispatch's first), channel ch]
float xin(uint z, uint row, uint ch)
{
    bool second;
    uint i = x_index(z, row, ch, second);
    if (second) // if, not ?: -- a select would read both bindings
        return VKD_X2L(i);
    return VKD_XL(i);
}
#endif

#ifdef VKD_GN_APPLY_ONLY
// VEC = 4: each invocation takes 4 channels of one pixel (host/ops/groupnorm.c checks that
// C, the channel split and every offset are multiples of 4, and that 4 aligned channels
// span at most two groups). On llvmpipe each storage load is a loop over the SIMD lanes
// whatever its width, so 4-wide loads and one 16-byte load of a group's finals cut the
// loads per element from ~7 to ~2.
layout(constant_id = 3) const uint VEC = 1;
#ifdef VKD_GN_TEXEL
// groupnorm_apply_tx.comp: the reads go through uniform texel buffers of 16-byte texels
// (vk/cmd.h VKD_TEXEL_FORMAT): on llvmpipe a texel fetch is a straight-line gather,
// where each storage-buffer load above costs a loop over the lanes (BENCHMARKS.md)
layout(binding = 0) uniform usamplerBuffer x_tex;
layout(binding = 1) uniform usamplerBuffer g_tex;
layout(binding = 2) uniform usamplerBuffer b_tex;
layout(binding = 3) uniform usamplerBuffer s_tex;
layout(binding = 5) uniform usamplerBuffer e_tex;
layout(binding = 6) uniform usamplerBuffer x2_tex;
// elements e .. e+3 (e a multiple of 4) of a texel-bound tensor
#if VKD_F16
#define VKD_FETCH4(tex, e) unpack_half4((e) & 4u, texelFetch(tex, int((e) / 8u)))
vec4 unpack_half4(uint hi, uvec4 u)
{
    uvec2 h = hi != 0u ? u.zw : u.xy;
    return vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
}
#else
#define VKD_FETCH4(tex, e) uintBitsToFloat(texelFetch(tex, int((e) / 4u)))
#endif
#define VKD_X4(e) VKD_FETCH4(x_tex, e)
#define VKD_X24(e) VKD_FETCH4(x2_tex, e)
#define VKD_G4(e) VKD_FETCH4(g_tex, e)
#define VKD_B4(e) VKD_FETCH4(b_tex, e)
#define VKD_E4(e) VKD_FETCH4(e_tex, e)
#define VKD_FIN(i) uintBitsToFloat(texelFetch(s_tex, int(i)))
#else
layout(std430, binding = 0) readonly buffer X4 { T4 x4[]; };
layout(std430, binding = 1) readonly buffer Gm4 { T4 gamma4[]; };
layout(std430, binding = 2) readonly buffer Bt4 { T4 beta4[]; };
layout(std430, binding = 3) readonly buffer S4 { vec4 s4[]; };
layout(std430, binding = 5) readonly buffer E4 { T4 ev4[]; };
layout(std430, binding = 6) readonly buffer X24 { T4 x24[]; };
#define VKD_X4(e) vec4(x4[(e) / 4u])
#define VKD_X24(e) vec4(x24[(e) / 4u])
#define VKD_G4(e) vec4(gamma4[(e) / 4u])
#define VKD_B4(e) vec4(beta4[(e) / 4u])
#define VKD_E4(e) vec4(ev4[(e) / 4u])
#define VKD_FIN(i) s4[i]
#endif
layout(std430, binding = 4) writeonly buffer O4 { T4 o4[]; };

vec4 xin4(uint z, uint row, uint ch)
{
    bool second;
    uint i = x_index(z, row, ch, second);
    if (second)
        return VKD_X24(i);
    return VKD_X4(i);
}

void apply4()
{
    uint e = apply_index() * 4u; // the block's first element
    if (e >= pc.n)
        return;
    uint z, r, c;
    apply_place(e, z, r, c);
    vec4 xv = xin4(z, r / pc.c, c);
    if (pc.add != 0u)
        xv += VKD_E4(pc.e_off + (pc.n0 + z) * pc.e_stride + c);
    // the finals of the (at most two) groups of channels c .. c+3, found by comparing
    // with the next group's first channel: llvmpipe has no vector integer division and
    // runs each one lane by lane (divisions set this pass's speed there)
    uint g0 = c / pc.cpg, next = (g0 + 1u) * pc.cpg;
    bvec4 second = greaterThanEqual(uvec4(c) + uvec4(0u, 1u, 2u, 3u), uvec4(next));
    uint fb = (pc.fin_off / VKD_GN_FINAL_STRIDE) + (pc.n0 + z) * pc.groups;
    vec4 f0 = VKD_FIN(fb + g0), f1 = VKD_FIN(fb + min(g0 + 1u, pc.groups - 1u));
    vec4 k = mix(vec4(f0.x), vec4(f1.x), second);
    vec4 m = mix(vec4(f0.y), vec4(f1.y), second);
    vec4 rs = mix(vec4(f0.z), vec4(f1.z), second);
    vec4 y = ((xv - k) - m) * rs;
    y = y * VKD_G4(pc.g_off + c) + VKD_B4(pc.b_off + c);
    if (pc.silu != 0u)
        y = y / (1.0 + exp(-y));
    o4[(pc.o_off + z * pc.stride_n + r) / 4u] = T4(y);
}
#else
shared float sh_a[gl_WorkGroupSize.x];
shared float sh_b[gl_WorkGroupSize.x];
shared uint sh_n[gl_WorkGroupSize.x];

float wg_sum(float v)
{
    uint l = gl_LocalInvocationID.x;
    sh_a[l] = v;
    barrier();
    for (uint h = gl_WorkGroupSize.x / 2; h > 0; h >>= 1) {
        if (l < h)
            sh_a[l] += sh_a[l + h];
        barrier();
    }
    float r = sh_a[0];
    barrier();
    return r;
}

// Chan et al.: merge (nb, mb, qb) into (na, ma, qa); q = centered sum of squares.
void merge(inout uint na, inout float ma, inout float qa, uint nb, float mb, float qb)
{
    if (nb == 0u)
        return;
    uint n = na + nb;
    float d = mb - ma;
    float fb = float(nb) / float(n);
    ma += d * fb;
    qa += qb + d * d * float(na) * fb;
    na = n;
}

void stats()
{
    uint l = gl_LocalInvocationID.x;
    uint bx = gl_WorkGroupID.x, g = gl_WorkGroupID.y, z = gl_WorkGroupID.z;
    uint r0 = bx * pc.block_rows;
    uint nr = min(pc.block_rows, pc.rows - r0);
    uint cnt = nr * pc.cpg;
    uint c0 = g * pc.cpg; // the group's first channel
    // Shifting by the block's first value keeps the sums small when |mean| >> std
    // (x - k is exact for nearby values), so the block mean is good to ~1 ulp.
    // pc.add: the values are x + ev[sample, channel] (a ResBlock's time embedding)
    uint eb = pc.e_off + (pc.n0 + z) * pc.e_stride + g * pc.cpg;
    float k = xin(z, r0, c0) + (pc.add != 0u ? VKD_EL(eb) : 0.0);
#ifdef VKD_GN_STATS_TX
    // CPU devices: invocation l takes rows l, l + WG, ... and walks each row's cpg
    // channels, so the 8 SIMD lanes read 8 rows (8 cache lines in flight) and the
    // channels after the first come from lines already fetched. With lanes on adjacent
    // channels of one row the pass waited on one cache miss at a time (the VAE's
    // [1, 256x256, 256]: 0.8 s; BENCHMARKS.md).
    const uint WG = gl_WorkGroupSize.x;
    float acc = 0.0;
    for (uint r = l; r < nr; r += WG)
        for (uint ch = 0; ch < pc.cpg; ch++)
            acc += (xin(z, r0 + r, c0 + ch) + (pc.add != 0u ? VKD_EL(eb + ch) : 0.0)) - k;
    float dm = wg_sum(acc) / float(cnt);
    acc = 0.0;
    for (uint r = l; r < nr; r += WG)
        for (uint ch = 0; ch < pc.cpg; ch++) {
            float d = ((xin(z, r0 + r, c0 + ch) + (pc.add != 0u ? VKD_EL(eb + ch) : 0.0)) - k) - dm;
            acc += d * d;
        }
#else
    // element e = l, l + WG, ... of the block: row e / cpg, channel e % cpg (adjacent
    // invocations read adjacent channels: coalesced on GPUs)
    float acc = 0.0;
    for (uint e = l; e < cnt; e += gl_WorkGroupSize.x) {
        uint r = e / pc.cpg, ch = e - r * pc.cpg;
        acc += (xin(z, r0 + r, c0 + ch) + (pc.add != 0u ? VKD_EL(eb + ch) : 0.0)) - k;
    }
    float dm = wg_sum(acc) / float(cnt);
    acc = 0.0;
    for (uint e = l; e < cnt; e += gl_WorkGroupSize.x) {
        uint r = e / pc.cpg, ch = e - r * pc.cpg;
        float d = ((xin(z, r0 + r, c0 + ch) + (pc.add != 0u ? VKD_EL(eb + ch) : 0.0)) - k) - dm;
        acc += d * d;
    }
#endif

    float q = wg_sum(acc);
    if (l == 0u) {
        uint i = pc.s_off + (((pc.n0 + z) * pc.groups + g) * pc.nblk + pc.blk0 + bx) * 4u;
        s[i] = uintBitsToFloat(cnt);
        s[i + 1u] = k;
        s[i + 2u] = dm;
        s[i + 3u] = q;
        if (pc.finals != 0u) { // the only block of its group: the finals as COMBINE writes them
            uint f = pc.fin_off + ((pc.n0 + z) * pc.groups + g) * VKD_GN_FINAL_STRIDE;
            s[f] = k;
            s[f + 1u] = dm;
            s[f + 2u] = 1.0 / sqrt(q / float(cnt) + pc.eps);
        }
    }
}

void combine()
{
    uint l = gl_LocalInvocationID.x;
    uint g = gl_WorkGroupID.x, n = gl_WorkGroupID.y;
    uint base = pc.s_off + (n * pc.groups + g) * pc.nblk * 4u;
    // Merge block means relative to the first block's shift: k_b - k0 is exact for
    // nearby values, so the group mean keeps bits below fp32's ulp of |mean|.
    float k0 = s[base + 1u];
    uint cn = 0u;
    float m = 0.0, q = 0.0;
    for (uint b = l; b < pc.nblk; b += gl_WorkGroupSize.x) {
        uint i = base + b * 4u;
        merge(cn, m, q, floatBitsToUint(s[i]), (s[i + 1u] - k0) + s[i + 2u], s[i + 3u]);
    }
    sh_n[l] = cn;
    sh_a[l] = m;
    sh_b[l] = q;
    barrier();
    for (uint h = gl_WorkGroupSize.x / 2; h > 0; h >>= 1) {
        if (l < h) {
            merge(cn, m, q, sh_n[l + h], sh_a[l + h], sh_b[l + h]);
            sh_n[l] = cn;
            sh_a[l] = m;
            sh_b[l] = q;
        }
        barrier();
    }
    if (l == 0u) {
        uint f = pc.fin_off + (n * pc.groups + g) * VKD_GN_FINAL_STRIDE;
        s[f] = k0;
        s[f + 1u] = m;
        s[f + 2u] = 1.0 / sqrt(q / float(cn) + pc.eps);
    }
}

#endif

#if !defined(VKD_GN_TEXEL) && !defined(VKD_GN_STATS_TX)
void apply()
{
    uint i = apply_index();
    if (i >= pc.n)
        return;
    uint z, r, c;
    apply_place(i, z, r, c);
    uint f = pc.fin_off + ((pc.n0 + z) * pc.groups + c / pc.cpg) * VKD_GN_FINAL_STRIDE;
    float xv = xin(z, r / pc.c, c);
    if (pc.add != 0u)
        xv += VKD_EL(pc.e_off + (pc.n0 + z) * pc.e_stride + c);
    float y = ((xv - s[f]) - s[f + 1u]) * s[f + 2u];
    y = y * float(gamma[pc.g_off + c]) + float(beta[pc.b_off + c]);
    if (pc.silu != 0u)
        y = silu(y);
    o[pc.o_off + z * pc.stride_n + r] = T(y);
}
#endif

void main()
{
#if defined(VKD_GN_TEXEL)
    apply4();
#elif defined(VKD_GN_APPLY_ONLY)
    if (VEC == 4)
        apply4();
    else
        apply();
#else
    if (pc.mode == VKD_GN_STATS)
        stats();
    else if (pc.mode == VKD_GN_COMBINE)
        combine();
#ifndef VKD_GN_STATS_TX
    else
        apply();
#endif
#endif
}
