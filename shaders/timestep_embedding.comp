#version 450
#extension GL_GOOGLE_include_directive : require
// CompVis ldm/modules/diffusionmodules/util.py `timestep_embedding`:
//   half = dim // 2; freqs = exp(-ln(max_period) * arange(half) / half)
//   args = t[:, None] * freqs; emb = cat(cos(args), sin(args)); zero column if dim is odd.
// t reaches 999 and freq 1, so args reach ~1000 rad: an fp32 argument alone is off by
// up to 3e-5 rad there, and Vulkan only bounds sin/cos error to 2^-11 on [-pi, pi].
// So freq_i = b^i and t * freq_i are formed in float-float (Dekker products, `precise`
// so nothing is contracted), reduced by pi/2 in float-float, and sin/cos are the
// Cephes minimax polynomials on [-pi/4, pi/4]: ~1e-7 absolute against double.
#include "common.glsl"
#include "push_timestep_embedding.h"

layout(std430, binding = 0) readonly buffer Ts { float ts[]; };
layout(std430, binding = 1) writeonly buffer O { T o[]; };

vec2 quick_two_sum(float a, float b)
{
    precise float s = a + b;
    precise float e = b - (s - a);
    return vec2(s, e);
}

// Veltkamp split into two 12-bit halves (works without a fused multiply-add)
vec2 split(float a)
{
    precise float t = 4097.0 * a;
    precise float hi = t - (t - a);
    precise float lo = a - hi;
    return vec2(hi, lo);
}

// a * b = p + e exactly (Dekker)
vec2 two_prod(float a, float b)
{
    vec2 as = split(a), bs = split(b);
    precise float p = a * b;
    precise float e = ((as.x * bs.x - p) + as.x * bs.y + as.y * bs.x) + as.y * bs.y;
    return vec2(p, e);
}

vec2 dd_mul(vec2 a, vec2 b)
{
    vec2 p = two_prod(a.x, b.x);
    precise float e = p.y + (a.x * b.y + a.y * b.x);
    return quick_two_sum(p.x, e);
}

// pi/2 = PIO2_HI + PIO2_LO (+ 1.6e-15, negligible for |k| < 2^20)
const float PIO2_HI = 1.57079637050628662109375;
const float PIO2_LO = -4.37113900018624283e-8;

void main()
{
    uint half_dim = pc.dim / 2u;
    uint gid = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (gid >= pc.n * half_dim)
        return;
    uint b = gid / half_dim;
    uint i = gid - b * half_dim;
    float t = ts[pc.t_off + b];

    // freq = b^i by binary powering in float-float
    vec2 f = vec2(1.0, 0.0), base = vec2(pc.b_hi, pc.b_lo);
    for (uint e = i; e != 0u; e >>= 1) {
        if ((e & 1u) != 0u)
            f = dd_mul(f, base);
        base = dd_mul(base, base);
    }
    // arg = t * freq = ah + al
    vec2 p = two_prod(t, f.x);
    precise float pl = p.y + t * f.y;
    vec2 a = quick_two_sum(p.x, pl);

    // r = arg - k * pi/2: k * PIO2_HI is exact as a pair and close to ah (Sterbenz)
    float k = roundEven(a.x * 0.636619772367581343);
    vec2 q = two_prod(k, PIO2_HI);
    precise float ql = q.y + k * PIO2_LO;
    precise float r = (a.x - q.x) + (a.y - ql);

    float z = r * r;
    float s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    float c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
    int quad = int(k) & 3;
    float cs = quad == 0 ? c : quad == 1 ? -s : quad == 2 ? -c : s;
    float sn = quad == 0 ? s : quad == 1 ? c : quad == 2 ? -s : -c;

    uint ob = pc.o_off + b * pc.dim;
    o[ob + i] = T(cs);
    o[ob + half_dim + i] = T(sn);
    if (i == 0u && (pc.dim & 1u) != 0u)
        o[ob + pc.dim - 1u] = T(0.0);
}
