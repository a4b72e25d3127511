// Tiled GEMM core shared by matmul.comp and conv2d.comp:
//   out[m, n] = sum_k A(m, k) * w[n * K + k]  (+ bias[n])  (+ res[m, n])
// The including shader declares the bindings and `float load_a(uint m, uint k)`
// (called with m < pc.M, k < pc.K only), and `vec4 load_a4(uint m, uint k)`
// (A(m, k..k+3), k a multiple of 4; used when VEC4 is set).
//
// A workgroup computes a BM x BN output tile; it stages BK-wide slices of A and w
// in shared memory (as fp32, k-major so the inner loop reads along m and n), and
// each invocation accumulates TM x TN outputs in registers. Invocation (tx, ty)
// owns rows ty + i*(BM/TM) and columns tx + j*(BN/TN): neighbouring invocations
// read neighbouring shared words and write neighbouring outputs.

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
// VEC4 = 1 (DIRECT only): K, and every row start of A and w, are multiples of 4, so
// A and w are read as 4-vectors. llvmpipe turns each storage-buffer load into a loop
// over the SIMD lanes whatever the address; a 4-wide load costs about what a
// scalar one does, so this quarters the load count.
layout(constant_id = 9) const uint VEC4 = 0;

// +1 column of padding: the tile stores walk k (the stride) across invocations
const uint BMP = BM + 1;
const uint BNP = BN + 1;
shared float As[BK * BMP];
shared float Bs[BK * BNP];

float load_a(uint m, uint k);
vec4 load_a4(uint m, uint k);

void gemm_epilogue(uint m, uint n, float v)
{
    if ((pc.flags & VKD_GEMM_BIAS) != 0)
        v += float(bias[pc.b_off + n]);
    uint o = m * pc.N + n;
    if ((pc.flags & VKD_GEMM_RESIDUAL) != 0)
        v += float(res[pc.r_off + o]);
    outp[pc.o_off + o] = T(v);
}

// DIRECT: invocation g owns rows g*TM .. g*TM+TM-1 and the workgroup's TN columns,
// reading A and w straight from memory (rows and columns past the edge are
// clamped: computed, never stored). With VEC4 the loads are 4-wide along k.
void gemm_direct()
{
    uint mb = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TM;
    uint n0 = gl_WorkGroupID.x * TN;
    if (mb >= pc.M)
        return;
    float acc[TM * TN];
    uint arow[TM], wrow[TN];
    [[unroll]] for (uint i = 0; i < TM * TN; i++)
        acc[i] = 0.0;
    [[unroll]] for (uint i = 0; i < TM; i++)
        arow[i] = min(mb + i, pc.M - 1);
    [[unroll]] for (uint j = 0; j < TN; j++)
        wrow[j] = pc.w_off + min(n0 + j, pc.N - 1) * pc.K;
    if (VEC4 != 0) {
        for (uint k = 0; k < pc.K; k += 4) {
            vec4 av[TM], wv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++)
                av[i] = load_a4(arow[i], k);
            [[unroll]] for (uint j = 0; j < TN; j++)
                wv[j] = vec4(wt4[(wrow[j] + k) / 4]);
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    acc[i * TN + j] += dot(av[i], wv[j]);
        }
    } else {
        for (uint k = 0; k < pc.K; k++) {
            float av[TM];
            [[unroll]] for (uint i = 0; i < TM; i++)
                av[i] = load_a(arow[i], k);
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
                gemm_epilogue(mb + i, n0 + j, acc[i * TN + j]);
}

void gemm_main()
{
    if (DIRECT != 0) {
        gemm_direct();
        return;
    }
    const uint WX = BN / TN;
    const uint WG = (BM / TM) * WX;
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % WX, ty = tid / WX;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;

    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; i++)
        acc[i] = 0.0;

    for (uint k0 = 0; k0 < pc.K; k0 += BK) {
        for (uint e = tid; e < BM * BK; e += WG) {
            uint r = e / BK, c = e % BK;
            uint m = m0 + r, k = k0 + c;
            As[c * BMP + r] = (m < pc.M && k < pc.K) ? load_a(m, k) : 0.0;
        }
        for (uint e = tid; e < BN * BK; e += WG) {
            uint r = e / BK, c = e % BK;
            uint n = n0 + r, k = k0 + c;
            Bs[c * BNP + r] = (n < pc.N && k < pc.K) ? float(wt[pc.w_off + n * pc.K + k]) : 0.0;
        }
        barrier();
        for (uint k = 0; k < BK; k++) {
            float av[TM], bv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++)
                av[i] = As[k * BMP + ty + i * (BM / TM)];
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
            gemm_epilogue(m, n, acc[i * TN + j]);
        }
    }
}
