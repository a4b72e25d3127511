#version 450
#extension GL_GOOGLE_include_directive : require
// Winograd F(2x2,3x3) convolution (Lavin & Gray 2015, "Fast Algorithms for Convolutional
// Neural Networks"; docs/winograd.md): 3x3, stride 1, padding 1, channels-last
//   x [N, H*W, Cin] -> out [N, H*W, Cout] (+ bias[co]) (+ res, out's layout)
// Each 2x2 output tile Y = A^T [ sum_ci (G g G^T) .* (B^T d B) ] A, d the tile's 4x4 input
// patch. The weights' transform U = G g G^T is the winograd_u entry (VKD_WINO_U); the
// conv (winograd, winograd_sg) fuses the input transform into its loads and the output
// transform, bias and residual into its store, and accumulates the 16 element-wise
// products over Cin in fp32 registers. No shared memory and no barriers (llvmpipe
// compiles those as coroutines: gemm.comp). An invocation owns TT tiles side by side
// along x (their 4 x (2TT+2) input strip loaded once) and the workgroup's TC output
// channels, so each transformed input value feeds TC output channels.
//   winograd     (generic): any Cin; workgroups of 64 invocations sharing the TC channels
//                (U loads at one address across the workgroup); scalar input loads.
//   winograd_sg  (VKD_WINO_SG, CPU devices with 8-lane shuffles: profile.subgroup8): one
//                8-lane subgroup per workgroup; x and U through 16-byte texel fetches
//                (Cin a multiple of a texel's 4 fp32 / 8 fp16 values); lane l loads the U
//                of channel n0 + 8jj + l and the other lanes take it by subgroupShuffle
//                from a constant lane -- the subgroup GEMM's scheme (gemm.comp).
#if VKD_WINO_SG
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"
#include "push_winograd.h"

#if VKD_WINO_U
// U[co, e, ci] = (G g G^T)[e / 4, e % 4] for g = w[co, :, :, ci] (the re-laid [Cout, 3, 3, Cin]),
// zero for ci in [cin, cinp): one invocation per (co, ci). In fp32, stored in the storage type.
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
layout(std430, binding = 0) readonly buffer Wt { T wt[]; };
layout(std430, binding = 1) writeonly buffer Uo { T uo[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.cout * pc.cinp)
        return;
    uint co = i / pc.cinp, ci = i - co * pc.cinp;
    float g[9], t[12];
    [[unroll]] for (uint k = 0; k < 9; k++)
        g[k] = ci < pc.cin ? float(wt[pc.a_off + (co * 9u + k) * pc.cin + ci]) : 0.0;
    [[unroll]] for (uint c = 0; c < 3; c++) { // t = G g (4 x 3)
        t[c] = g[c];
        t[3 + c] = 0.5 * (g[c] + g[3 + c] + g[6 + c]);
        t[6 + c] = 0.5 * (g[c] - g[3 + c] + g[6 + c]);
        t[9 + c] = g[6 + c];
    }
    [[unroll]] for (uint r = 0; r < 4; r++) { // U = t G^T (4 x 4)
        float u[4] = {t[r * 3], 0.5 * (t[r * 3] + t[r * 3 + 1] + t[r * 3 + 2]),
                      0.5 * (t[r * 3] - t[r * 3 + 1] + t[r * 3 + 2]), t[r * 3 + 2]};
        [[unroll]] for (uint c = 0; c < 4; c++)
            uo[pc.u_off + (co * 16u + r * 4u + c) * pc.cinp + ci] = T(u[c]);
    }
}
#else
layout(constant_id = 3) const uint TT = 2; // 2x2 tiles per invocation, side by side along x
layout(constant_id = 4) const uint TC = 8; // output channels per workgroup (a multiple of 8 for _sg)
const uint SW = 2u * TT + 2u;              // the input strip's width in pixels

#if VKD_WINO_SG
layout(binding = 0) uniform usamplerBuffer a_tex;
layout(binding = 1) uniform usamplerBuffer u_tex;
const uint EPT = VKD_F16 != 0 ? 8u : 4u; // channels per step: one 16-byte texel
#else
layout(std430, binding = 0) readonly buffer A { T a[]; };
// U read 4 channels a load (u_off, like cinp, a multiple of 4: the host checks): llvmpipe
// makes every storage load a loop over the lanes, and with scalar U loads this module took
// 49 s (fp32) and 90 s (fp16) to JIT in an ASan process, against 10 s for winograd_sg
layout(std430, binding = 1) readonly buffer U4 { T4 u4[]; };
const uint EPT = 4u;
#endif
const uint NQ = EPT / 4u; // 4-vectors per step
layout(std430, binding = 2) readonly buffer Bias { T bias[]; };
layout(std430, binding = 3) readonly buffer Res { T res[]; };
layout(std430, binding = 4) writeonly buffer O { T outp[]; };

#if VKD_WINO_SG
void unpack_texel(uvec4 t, out vec4 q0, out vec4 q1)
{
#if VKD_F16
    q0 = vec4(unpackHalf2x16(t.x), unpackHalf2x16(t.y));
    q1 = vec4(unpackHalf2x16(t.z), unpackHalf2x16(t.w));
#else
    q0 = uintBitsToFloat(t);
    q1 = vec4(0.0);
#endif
}
#endif

// Channels c0 .. c0+EPT-1 of the pixel whose channel 0 is element p of the window
// (p < 0: outside the image, zeros) as NQ 4-vectors q0, q1.
void load_px(int p, uint c0, out vec4 q0, out vec4 q1)
{
#if VKD_WINO_SG
    uvec4 t = texelFetch(a_tex, int((pc.a_off + uint(max(p, 0)) + c0) / EPT));
    if (p < 0) // a select: the fetch is in bounds either way
        t = uvec4(0);
    unpack_texel(t, q0, q1);
#else
    q0 = vec4(0.0), q1 = vec4(0.0);
    if (p >= 0) // channels past cin read as zero (U is zero there, but x may hold NaN)
        [[unroll]] for (uint i = 0; i < 4; i++)
            if (c0 + i < pc.cin)
                q0[i] = float(a[pc.a_off + uint(p) + c0 + i]);
#endif
}

// U[co, e, c0 .. c0+EPT-1]
void load_u(uint co, uint e, uint c0, out vec4 q0, out vec4 q1)
{
    uint i = pc.u_off + (co * 16u + e) * pc.cinp + c0;
#if VKD_WINO_SG
    unpack_texel(texelFetch(u_tex, int(i / EPT)), q0, q1);
#else
    q0 = vec4(u4[i / 4u]);
    q1 = vec4(0.0);
#endif
}

void epilogue(uint o, uint co, float v)
{
    if ((pc.flags & VKD_WINO_BIAS) != 0u)
        v += float(bias[pc.b_off + co]);
    if ((pc.flags & VKD_WINO_RESIDUAL) != 0u)
        v += float(res[pc.r_off + o]);
    outp[pc.o_off + o] = T(v);
}

#if VKD_WINO_SG
// acc[t][jj*8 + c][e] += V[t][e] . U[channel of lane c][e], U taken from lane c
#define VKD_WINO_COL(c)                                                              \
    [[unroll]] for (uint e = 0; e < 16; e++) {                                       \
        vec4 s0 = subgroupShuffle(uq[e * 2u], c);                                    \
        vec4 s1 = NQ > 1u ? subgroupShuffle(uq[e * 2u + 1u], c) : vec4(0.0);         \
        [[unroll]] for (uint t = 0; t < TT; t++) {                                   \
            uint ai = (t * TC + jj * 8u + c) * 16u + e;                              \
            acc[ai] += dot(v[(t * 16u + e) * 2u], s0);                               \
            if (NQ > 1u)                                                             \
                acc[ai] += dot(v[(t * 16u + e) * 2u + 1u], s1);                      \
        }                                                                            \
    }
#endif

void main()
{
#if VKD_WINO_SG
    uint lane = gl_LocalInvocationID.x;
    uint g = gl_WorkGroupID.y * 8u + lane;
#else
    uint g = gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (g >= pc.groups)
        return;
#endif
    // tile groups past the end are clamped: computed, never stored (the shuffles need
    // every lane)
    bool live = g < pc.groups;
    uint gg = min(g, pc.groups - 1u);
    uint per_img = pc.th * pc.twg;
    uint img = gg / per_img, rem = gg - img * per_img;
    uint ty = pc.ty0 + rem / pc.twg, tx0 = (rem % pc.twg) * TT;
    uint n0 = gl_WorkGroupID.x * TC;
    // the strip: input rows 2ty-1 .. 2ty+2, columns 2tx0-1 .. 2tx0+2TT (padding 1)
    int pix[4 * SW];
    [[unroll]] for (uint r = 0; r < 4; r++)
        [[unroll]] for (uint c = 0; c < SW; c++) {
            int iy = int(2u * ty + r) - 1, ix = int(2u * tx0 + c) - 1;
            bool in_img = iy >= 0 && iy < int(pc.h) && ix >= 0 && ix < int(pc.w);
            pix[r * SW + c] = in_img ? int(((img * pc.h + uint(iy) - pc.iy_lo) * pc.w + uint(ix)) * pc.cin) : -1;
        }
    float acc[TT * TC * 16];
    [[unroll]] for (uint i = 0; i < TT * TC * 16; i++)
        acc[i] = 0.0;

    for (uint c0 = 0; c0 < pc.cin; c0 += EPT) {
        vec4 s[4 * SW * 2];
        [[unroll]] for (uint i = 0; i < 4 * SW; i++)
            load_px(pix[i], c0, s[i * 2u], s[i * 2u + 1u]);
        // V = B^T d B per tile, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]: additions only
        vec4 v[TT * 16 * 2];
        [[unroll]] for (uint t = 0; t < TT; t++)
            [[unroll]] for (uint q = 0; q < NQ; q++) {
                vec4 b[16]; // B^T d: rows combined, column c of the tile's patch
                [[unroll]] for (uint c = 0; c < 4; c++) {
                    vec4 d0 = s[(0u * SW + 2u * t + c) * 2u + q], d1 = s[(1u * SW + 2u * t + c) * 2u + q];
                    vec4 d2 = s[(2u * SW + 2u * t + c) * 2u + q], d3 = s[(3u * SW + 2u * t + c) * 2u + q];
                    b[c] = d0 - d2, b[4 + c] = d1 + d2, b[8 + c] = d2 - d1, b[12 + c] = d1 - d3;
                }
                [[unroll]] for (uint r = 0; r < 4; r++) { // (B^T d) B: the same on columns
                    uint o = (t * 16u + r * 4u) * 2u + q;
                    v[o] = b[r * 4] - b[r * 4 + 2];
                    v[o + 2u] = b[r * 4 + 1] + b[r * 4 + 2];
                    v[o + 4u] = b[r * 4 + 2] - b[r * 4 + 1];
                    v[o + 6u] = b[r * 4 + 1] - b[r * 4 + 3];
                }
            }
#if VKD_WINO_SG
        [[unroll]] for (uint jj = 0; jj < TC / 8u; jj++) {
            vec4 uq[32];
            uint co = min(n0 + jj * 8u + lane, pc.cout - 1u);
#if VKD_WINO_G
            // U = G g G^T of this lane's channel, from its 3x3 taps (binding 1 holds the re-laid
            // weight [Cout, 3, 3, Cin]): 9 texels instead of U's 16, and ~28 vector operations
            // that feed 8 lanes x TT tiles x 16 dot products; no U pass, no U in memory
            vec4 gq[18];
            [[unroll]] for (uint k = 0; k < 9; k++)
                unpack_texel(texelFetch(u_tex, int((pc.u_off + (co * 9u + k) * pc.cin + c0) / EPT)), gq[k * 2u],
                             gq[k * 2u + 1u]);
            [[unroll]] for (uint q = 0; q < 2u; q++) {
                vec4 t[12]; // t = G g (4 x 3), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
                [[unroll]] for (uint c = 0; c < 3; c++) {
                    vec4 g0 = gq[c * 2u + q], g1 = gq[(3u + c) * 2u + q], g2 = gq[(6u + c) * 2u + q];
                    t[c] = g0;
                    t[3 + c] = 0.5 * (g0 + g1 + g2);
                    t[6 + c] = 0.5 * (g0 - g1 + g2);
                    t[9 + c] = g2;
                }
                [[unroll]] for (uint r = 0; r < 4; r++) { // U = t G^T (4 x 4), as winograd_u computes it
                    vec4 a = t[r * 3u], b = t[r * 3u + 1u], cc = t[r * 3u + 2u];
                    uq[(r * 4u) * 2u + q] = a;
                    uq[(r * 4u + 1u) * 2u + q] = 0.5 * (a + b + cc);
                    uq[(r * 4u + 2u) * 2u + q] = 0.5 * (a - b + cc);
                    uq[(r * 4u + 3u) * 2u + q] = cc;
                }
            }
#else
            [[unroll]] for (uint e = 0; e < 16; e++)
                load_u(co, e, c0, uq[e * 2u], uq[e * 2u + 1u]);
#endif
            VKD_WINO_COL(0) VKD_WINO_COL(1) VKD_WINO_COL(2) VKD_WINO_COL(3)
            VKD_WINO_COL(4) VKD_WINO_COL(5) VKD_WINO_COL(6) VKD_WINO_COL(7)
        }
#else
        [[unroll]] for (uint j = 0; j < TC; j++) {
            uint co = min(n0 + j, pc.cout - 1u);
            [[unroll]] for (uint e = 0; e < 16; e++) {
                vec4 u0, u1;
                load_u(co, e, c0, u0, u1);
                [[unroll]] for (uint t = 0; t < TT; t++)
                    acc[(t * TC + j) * 16u + e] += dot(v[(t * 16u + e) * 2u], u0);
            }
        }
#endif
    }

    // Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1]; then bias and residual; edge tiles store
    // only their outputs inside the image
    if (!live)
        return;
    [[unroll]] for (uint t = 0; t < TT; t++)
        [[unroll]] for (uint j = 0; j < TC; j++) {
            uint co = n0 + j;
            uint tx = tx0 + t;
            if (co >= pc.cout || 2u * tx >= pc.w)
                continue;
            uint a0 = (t * TC + j) * 16u;
            float r0[4], r1[4];
            [[unroll]] for (uint c = 0; c < 4; c++) {
                r0[c] = acc[a0 + c] + acc[a0 + 4 + c] + acc[a0 + 8 + c];
                r1[c] = acc[a0 + 4 + c] - acc[a0 + 8 + c] - acc[a0 + 12 + c];
            }
            float y[4] = {r0[0] + r0[1] + r0[2], r0[1] - r0[2] - r0[3], r1[0] + r1[1] + r1[2], r1[1] - r1[2] - r1[3]};
            [[unroll]] for (uint k = 0; k < 4; k++) {
                uint oy = 2u * ty + k / 2u, ox = 2u * tx + k % 2u;
                if (oy < pc.h && ox < pc.w)
                    epilogue(((img * pc.h + oy - 2u * pc.ty0) * pc.w + ox) * pc.cout + co, co, y[k]);
            }
        }
}
#endif
