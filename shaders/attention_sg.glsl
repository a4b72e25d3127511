// Shared by the subgroup attention kernels for CPU devices: attention_sg.comp (head
// dims up to 160, q held in registers) and attention_sgw.comp (wider heads, such as the
// VAE's 512, q re-read per key block and the output columns split over workgroups).
#include "common.glsl"
#include "push_attention.h"

layout(constant_id = 3) const uint R = 8;  // query rows per lane
layout(constant_id = 4) const uint D = 40; // head dim, a multiple of E

// q, k and v come through uniform texel buffers of 16-byte texels (vk/cmd.h
// VKD_TEXEL_FORMAT): on llvmpipe a texel fetch is a straight-line gather, where a
// storage-buffer load is a loop over the lanes with a branch per component.
layout(binding = 0) uniform usamplerBuffer q_tex;
layout(binding = 1) uniform usamplerBuffer k_tex;
layout(binding = 2) uniform usamplerBuffer v_tex;
#if VKD_F16
const uint E = 8; // elements per texel (packed halves)
void unpack(uvec4 u, out vec4 x[2])
{
    x[0] = vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    x[1] = vec4(unpackHalf2x16(u.z), unpackHalf2x16(u.w));
}
#else
const uint E = 4;
void unpack(uvec4 u, out vec4 x[2])
{
    x[0] = uintBitsToFloat(u);
    x[1] = vec4(0.0);
}
#endif
// elements e .. e+E-1 (e a multiple of E) as one or two 4-vectors
void load_q(uint e, out vec4 x[2]) { unpack(texelFetch(q_tex, int(e / E)), x); }
void load_k(uint e, out vec4 x[2]) { unpack(texelFetch(k_tex, int(e / E)), x); }
void load_v(uint e, out vec4 x[2]) { unpack(texelFetch(v_tex, int(e / E)), x); }
layout(std430, binding = 3) writeonly buffer O { T o[]; };

const uint NL = D / E; // loads per row
const uint NV = D / 4; // 4-vectors per row
const uint VPL = E / 4; // 4-vectors per load

// Masked scores: a finite sentinel, so that exp2(m_old - m_new) is 1 (not NaN) while
// a row has seen only masked keys; masked p are forced to 0 (as attention.comp).
const float NEG = -3.0e38;


// The online softmax step for one query row (index qrow in the whole sequence, for the
// causal mask) and keys k0 .. k0+7: s holds their scores in the log2 domain and leaves
// as the weights p; m and l are the row's running max and sum. Returns the factor for
// the row's output accumulators (1 while the row has seen only masked keys).
float softmax_step(inout float s[8], inout float m, inout float l, uint k0, uint qrow)
{
    float mx = m;
    [[unroll]] for (uint c = 0; c < 8; c++) {
        bool masked = k0 + c >= pc.lk || (pc.causal != 0 && k0 + c > qrow);
        s[c] = masked ? NEG : s[c];
        mx = max(mx, s[c]);
    }
    float alpha = exp2(m - mx); // 1 while both are NEG; acc and l are 0 then
    float sum = 0.0;
    [[unroll]] for (uint c = 0; c < 8; c++) {
        s[c] = s[c] == NEG ? 0.0 : exp2(s[c] - mx);
        sum += s[c];
    }
    m = mx;
    l = l * alpha + sum;
    return alpha;
}
