// fp16 arithmetic for GEMM families 0 (shared-memory tiles) and 1 (direct): the modules
// matmul_h, conv2d_h, matmul_direct_h, conv2d_direct_h (kernels.txt, defined
// VKD_F16_ARITH, fp16 storage only, feature fp16_arith). Included by gemm.comp, whose
// loads, LayerNorm fold and epilogue these share. The rule (docs/fp16.md):
//   fp16: the values multiplied (A, less the LayerNorm shift, and w: staged in shared
//         memory as fp16 in family 0, half the bytes), their products, and the partial
//         sum of HC consecutive products along k (f16vec4 fma: 4 columns at a time);
//   fp32: the accumulator each partial sum is added to, the LayerNorm statistics and
//         fold, bias and residual, and the output before its one rounding to storage.
// HC = 16 bounds the rounding error of a partial sum at ~HC * 2^-11 of the sum of its
// |products| (worst case; ~sqrt(HC) typical), independent of K: summing all of K = 5120
// in fp16 would make it ~K * 2^-11 and overflow-prone (docs/fp16.md: the bound, and what
// tests/test_op_matmul.c measures against it).
#ifdef VKD_F16_ARITH
const uint HC = 16;

#if VKD_GEMM_FAMILY == 1
// DIRECT, fp16: as gemm_direct (gemm.comp), the multiply-adds in fp16 over HC-long
// runs of k, each run's sum added to the fp32 accumulator.
void gemm_direct()
{
    uint mb = (gl_WorkGroupID.y * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TM;
    uint n0 = gl_WorkGroupID.x * TN;
    if (mb >= pc.M)
        return;
    float acc[TM * TN], sh[TM], s1[TM], s2[TM];
    float16_t part[TM * TN];
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
    for (uint k0 = 0; k0 < pc.K; k0 += HC) {
        uint k1 = min(k0 + HC, pc.K);
        [[unroll]] for (uint i = 0; i < TM * TN; i++)
            part[i] = float16_t(0.0);
        if (VEC4 != VKD_GEMM_LOAD_SCALAR) {
            for (uint k = k0; k < k1; k += 4) {
                f16vec4 av[TM], wv[TN];
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    vec4 v = load_a4(arow[i], k);
                    ln_take(v, sh[i], s1[i], s2[i]);
                    av[i] = f16vec4(v);
                }
                [[unroll]] for (uint j = 0; j < TN; j++)
                    wv[j] = wt4[(wrow[j] + k) / 4];
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN; j++) {
                        f16vec4 p = av[i] * wv[j];
                        part[i * TN + j] += (p.x + p.y) + (p.z + p.w);
                    }
            }
        } else {
            for (uint k = k0; k < k1; k++) {
                float16_t av[TM];
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    float v = load_a(arow[i], k);
                    ln_take1(v, sh[i], s1[i], s2[i]);
                    av[i] = float16_t(v);
                }
                [[unroll]] for (uint j = 0; j < TN; j++) {
                    float16_t wv = wt[wrow[j] + k];
                    [[unroll]] for (uint i = 0; i < TM; i++)
                        part[i * TN + j] = fma(av[i], wv, part[i * TN + j]);
                }
            }
        }
        [[unroll]] for (uint i = 0; i < TM * TN; i++)
            acc[i] += float(part[i]);
    }
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++)
            if (mb + i < pc.M && n0 + j < pc.N)
                gemm_epilogue(mb + i, n0 + j, ln_out(n0 + j, acc[i * TN + j], s1[i], s2[i]));
}
#endif

#if VKD_GEMM_FAMILY == 0
// Shared-memory tiles, fp16 (the host takes it where TN % 4 == 0): as gemm_main's
// family 0 (gemm.comp), As and Bs hold fp16, and invocation (tx, ty)'s TN columns are
// multiplied 4 at a time (f16vec4 fma) into fp16 partial sums over HC steps of k.
void gemm_tiled_h()
{
    const uint WX = BN / TN;
    const uint WG = (BM / TM) * WX;
    const uint TN4 = TN / 4;
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % WX, ty = tid / WX;
    uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;

    float acc[TM * TN], s1[TM], s2[TM];
    f16vec4 part[TM * TN4];
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
            As[c * BMP + r] = float16_t((m < pc.M && k < pc.K) ? load_a(m, k) - (LNFOLD != 0 ? Shift[r] : 0.0) : 0.0);
        }
        for (uint e = tid; e < BN * BK; e += WG) {
            uint r = e / BK, c = e % BK;
            uint n = n0 + r, k = k0 + c;
            Bs[c * BNP + r] = (n < pc.N && k < pc.K) ? wt[pc.w_off + n * pc.K + k] : float16_t(0.0);
        }
        barrier();
        for (uint kc = 0; kc < BK; kc += HC) {
            [[unroll]] for (uint i = 0; i < TM * TN4; i++)
                part[i] = f16vec4(0.0);
            for (uint k = kc; k < min(kc + HC, BK); k++) {
                float16_t av[TM];
                f16vec4 bv[TN4];
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    av[i] = As[k * BMP + ty + i * (BM / TM)];
                    if (LNFOLD != 0) { // the sums of the values multiplied, in fp32
                        float v = float(av[i]);
                        s1[i] += v, s2[i] = fma(v, v, s2[i]);
                    }
                }
                [[unroll]] for (uint j = 0; j < TN4; j++)
                    [[unroll]] for (uint q = 0; q < 4; q++)
                        bv[j][q] = Bs[k * BNP + tx + (4 * j + q) * WX];
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN4; j++)
                        part[i * TN4 + j] = fma(f16vec4(av[i]), bv[j], part[i * TN4 + j]);
            }
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN4; j++)
                    [[unroll]] for (uint q = 0; q < 4; q++)
                        acc[i * TN + 4 * j + q] += float(part[i * TN4 + j][q]);
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
}
#endif
#endif
