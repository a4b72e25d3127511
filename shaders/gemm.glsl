// Tiled GEMM core shared by matmul.comp and conv2d.comp:
//   out[m, n] = sum_k A(m, k) * w[n * K + k]  (+ bias[n])  (+ res[m, n])
// The including shader declares the bindings and `float load_a(uint m, uint k)`
// (called with m < pc.M, k < pc.K only).
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

// +1 column of padding: the tile stores walk k (the stride) across invocations
const uint BMP = BM + 1;
const uint BNP = BN + 1;
shared float As[BK * BMP];
shared float Bs[BK * BNP];

float load_a(uint m, uint k);

void gemm_main()
{
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
            float v = acc[i * TN + j];
            if ((pc.flags & VKD_GEMM_BIAS) != 0)
                v += float(bias[pc.b_off + n]);
            uint o = m * pc.N + n;
            if ((pc.flags & VKD_GEMM_RESIDUAL) != 0)
                v += float(res[pc.r_off + o]);
            outp[pc.o_off + o] = T(v);
        }
    }
}
