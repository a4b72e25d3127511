#version 450
#extension GL_GOOGLE_include_directive : require
// ggml's quantized blocks (q8_0, q4_0, q4_1, q5_0, q5_1, q2_K .. q6_K) to T: a weight
// kept quantized in device memory becomes fp16 (or fp32) just before the GEMM that reads
// it (host/ops/dequant.c). The blocks are the bytes of the file, as ggml lays them out
// (ggml-common.h); each invocation writes one group of 32 consecutive elements: a whole
// block of the 32-element formats, an eighth of a 256-element K-quant block. The
// arithmetic is ggml's dequantize_row_* (ggml-quants.c), float by float.
#include "common.glsl"
#include "push_dequant.h"

layout(std430, binding = 0) readonly buffer Q { uint q[]; };
uint qw(uint w) { return q[w]; } // (a texel-buffer read instead: 17% faster on llvmpipe, not kept)
layout(std430, binding = 1) writeonly buffer O { T o[]; };

uint base; // byte offset of the binding window's first word

uint u8(uint b)
{
    b += base;
    return (qw(b >> 2) >> ((b & 3u) * 8u)) & 0xffu;
}
int i8(uint b) { return int(u8(b) << 24) >> 24; }
float f16at(uint b) // halves sit at even byte offsets in every block
{
    b += base;
    return unpackHalf2x16((qw(b >> 2) >> ((b & 2u) * 8u)) & 0xffffu).x;
}
uint u32at(uint b) { return u8(b) | (u8(b + 1u) << 8) | (u8(b + 2u) << 16) | (u8(b + 3u) << 24); }

// get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 scale bytes at s
void scale_min_k4(uint j, uint s, out uint d, out uint m)
{
    if (j < 4u) {
        d = u8(s + j) & 63u;
        m = u8(s + j + 4u) & 63u;
    } else {
        d = (u8(s + j + 4u) & 0xfu) | ((u8(s + j - 4u) >> 6) << 4);
        m = (u8(s + j + 4u) >> 4) | ((u8(s + j) >> 6) << 4);
    }
}

// q3_K's 16 signed 6-bit scales from its 12 bytes at s (the kmask shuffle of ggml)
int q3k_scale(uint s, uint i)
{
    uint a0 = u32at(s), a1 = u32at(s + 4u), tmp = u32at(s + 8u);
    const uint k1 = 0x03030303u, k2 = 0x0f0f0f0fu;
    uint w;
    if (i < 4u)
        w = (a0 & k2) | (((tmp >> 0) & k1) << 4);
    else if (i < 8u)
        w = (a1 & k2) | (((tmp >> 2) & k1) << 4);
    else if (i < 12u)
        w = ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4);
    else
        w = ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4);
    return int((w >> ((i & 3u) * 8u)) & 0xffu);
}

// The group's 32 elements are written in order through put(): a row is whole blocks, so
// they share a row; conv weights go from ggml's [Cout, Cin, kh, kw] rows to vkdiff's
// [Cout, kh, kw, Cin] (tap and ci advanced step by step: no division per element).
// (One element per invocation instead, so that lanes write neighbours, measured 3x slower
// on llvmpipe: its per-lane loads dominate; BENCHMARKS.md.)
uint out_row, tap, ci;

void put_begin(uint e0)
{
    uint e = e0 % pc.row;
    out_row = pc.o_off + (e0 - e);
    tap = e % pc.taps;
    ci = e / pc.taps;
}

void put(float v)
{
    o[out_row + tap * pc.cin + ci] = T(v);
    if (++tap == pc.taps) {
        tap = 0u;
        ci++;
    }
}

// The 32-element formats' block (at most 34 bytes: 10 words) read once into registers
uint blk[10];
uint boff; // the block's first byte within blk[0]
void load_block(uint b)
{
    uint w0 = (base + b) >> 2;
    boff = (base + b) & 3u;
    [[unroll]] for (uint k = 0u; k < 10u; k++)
        blk[k] = qw(w0 + k);
}
uint b8(uint j)
{
    j += boff;
    return (blk[j >> 2] >> ((j & 3u) * 8u)) & 0xffu;
}
float bf16(uint j) // a half at an even byte offset of the block
{
    j += boff;
    return unpackHalf2x16((blk[j >> 2] >> ((j & 2u) * 8u)) & 0xffffu).x;
}

void main()
{
    uint grp = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (grp >= pc.groups)
        return;
    base = pc.q_off * 4u;
    uint t = pc.type;
    uint e0 = grp * 32u; // first element of the group
    put_begin(e0);
    if (t == VKD_QT_Q8_0 || t == VKD_QT_Q4_0 || t == VKD_QT_Q4_1 || t == VKD_QT_Q5_0 || t == VKD_QT_Q5_1) {
        // the last block's 10 words may run past its bytes: the host pads the blocks
        // tensor with VKD_DEQUANT_PAD_WORDS (ops/dequant.h)
        load_block(grp * pc.block_bytes);
        float d = bf16(0u);
        if (t == VKD_QT_Q8_0) {
            for (uint j = 0u; j < 32u; j++)
                put(float(int(b8(2u + j) << 24) >> 24) * d);
        } else if (t == VKD_QT_Q4_0) {
            for (uint j = 0u; j < 16u; j++)
                put(float(int(b8(2u + j) & 0xfu) - 8) * d);
            for (uint j = 0u; j < 16u; j++)
                put(float(int(b8(2u + j) >> 4) - 8) * d);
        } else if (t == VKD_QT_Q4_1) {
            float m = bf16(2u);
            for (uint j = 0u; j < 16u; j++)
                put(float(b8(4u + j) & 0xfu) * d + m);
            for (uint j = 0u; j < 16u; j++)
                put(float(b8(4u + j) >> 4) * d + m);
        } else {
            bool one = t == VKD_QT_Q5_1;
            float m = one ? bf16(2u) : 0.0;
            uint h0 = one ? 4u : 2u, qs = one ? 8u : 6u;
            uint qh = b8(h0) | (b8(h0 + 1u) << 8) | (b8(h0 + 2u) << 16) | (b8(h0 + 3u) << 24);
            for (uint hi = 0u; hi < 2u; hi++)
                for (uint j = 0u; j < 16u; j++) {
                    uint v = b8(qs + j);
                    // fifth bits: value j from bit j, value j + 16 from bit j + 12 (ggml)
                    uint x = hi == 0u ? (v & 0xfu) | (((qh >> j) << 4) & 0x10u)
                                      : (v >> 4) | ((qh >> (j + 12u)) & 0x10u);
                    put(one ? float(x) * d + m : float(int(x) - 16) * d);
                }
        }
        return;
    }
    // K-quants: 256-element blocks, group g of 8
    uint b = (grp >> 3) * pc.block_bytes, g = grp & 7u;
    if (t == VKD_QT_Q4_K || t == VKD_QT_Q5_K) {
        float d = f16at(b), dmin = f16at(b + 2u);
        uint jp = g >> 1, hi = g & 1u, sc, mn;
        scale_min_k4(2u * jp + hi, b + 4u, sc, mn);
        float d1 = d * float(sc), m1 = dmin * float(mn);
        uint qs = b + (t == VKD_QT_Q4_K ? 16u : 48u) + 32u * jp;
        uint u = 1u << (2u * jp + hi);
        for (uint l = 0u; l < 32u; l++) {
            uint v = u8(qs + l);
            uint nib = hi != 0u ? v >> 4 : v & 0xfu;
            if (t == VKD_QT_Q5_K)
                nib += (u8(b + 16u + l) & u) != 0u ? 16u : 0u;
            put(d1 * float(nib) - m1);
        }
    } else if (t == VKD_QT_Q6_K) {
        float d = f16at(b + 208u);
        uint nh = g >> 2, qd = g & 3u;
        uint ql = b + 64u * nh, qh = b + 128u + 32u * nh, sc = b + 192u + 8u * nh;
        for (uint l = 0u; l < 32u; l++) {
            uint lo = u8(ql + l + ((qd & 1u) != 0u ? 32u : 0u));
            uint nib = qd < 2u ? lo & 0xfu : lo >> 4;
            int v = int(nib | (((u8(qh + l) >> (2u * qd)) & 3u) << 4)) - 32;
            float s = float(i8(sc + l / 16u + 2u * qd));
            put(d * s * float(v));
        }
    } else if (t == VKD_QT_Q2_K) {
        float d = f16at(b + 80u), dmin = f16at(b + 82u);
        uint nh = g >> 2, j = g & 3u, shift = 2u * j;
        uint qs = b + 16u + 32u * nh;
        for (uint half_ = 0u; half_ < 2u; half_++) {
            uint sc = u8(b + 8u * nh + 2u * j + half_);
            float dl = d * float(sc & 0xfu), ml = dmin * float(sc >> 4);
            for (uint l = 0u; l < 16u; l++)
                put(dl * float((u8(qs + 16u * half_ + l) >> shift) & 3u) - ml);
        }
    } else if (t == VKD_QT_Q3_K) {
        float d = f16at(b + 108u);
        uint nh = g >> 2, j = g & 3u, shift = 2u * j, m = 1u << (4u * nh + j);
        uint qs = b + 32u + 32u * nh;
        for (uint half_ = 0u; half_ < 2u; half_++) {
            float dl = d * float(q3k_scale(b + 96u, 8u * nh + 2u * j + half_) - 32);
            for (uint l = 0u; l < 16u; l++) {
                uint k = 16u * half_ + l;
                int v = int((u8(qs + k) >> shift) & 3u) - ((u8(b + k) & m) != 0u ? 0 : 4);
                put(dl * float(v));
            }
        }
    }
}
