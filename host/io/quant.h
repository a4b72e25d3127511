/* ggml's block-quantized weight formats, byte for byte (issue 25).
 *
 * A row of n values (n a multiple of the type's block size) is stored as n / block
 * blocks of `block_bytes` each. Two sets of quantizers, as ggml's ggml_quantize_chunk:
 * the reference ones (ggml/src/ggml-quants.c quantize_row_*_ref, no importance matrix:
 * vkd_quantize_row) and the weighted ones (quantize_row_*_impl: vkd_quantize_rows with
 * an importance matrix), which stable-diffusion.cpp runs with a matrix of ones, so that a
 * file quantized by vkdiff that way holds sd.cpp's bytes (docs/gguf.md). The
 * dequantizers are ggml's dequantize_row_*.
 * Tested against an independent numpy implementation (tools/oracle/quant_ref.py,
 * tests/data/quant_golden.bin, tests/test_quant.c).
 *
 * Layouts (little-endian, fp16 scales "d"/"m"/"dmin"; K-quants: super-blocks of 256):
 *   Q4_0  32 values, 18 bytes: d, qs[16] (low nibbles: values 0..15, high: 16..31)
 *   Q4_1  32 values, 20 bytes: d, m, qs[16]
 *   Q5_0  32 values, 22 bytes: d, qh[4] (fifth bits), qs[16]
 *   Q5_1  32 values, 24 bytes: d, m, qh[4], qs[16]
 *   Q8_0  32 values, 34 bytes: d, qs[32] (int8)
 *   Q2_K 256 values, 84 bytes: scales[16], qs[64], d, dmin
 *   Q3_K 256 values, 110 bytes: hmask[32], qs[64], scales[12], d
 *   Q4_K 256 values, 144 bytes: d, dmin, scales[12] (6-bit), qs[128]
 *   Q5_K 256 values, 176 bytes: d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K 256 values, 210 bytes: ql[128], qh[64], scales[16] (int8), d
 * Q2_K, Q3_K and Q5_K are dequantized only (files may hold them). Only Q8_0 has one
 * quantizer: for Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K the two sets give other bytes. */
#ifndef VKD_IO_QUANT_H
#define VKD_IO_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum vkd_qtype {
    VKD_Q4_0 = 0,
    VKD_Q4_1,
    VKD_Q5_0,
    VKD_Q5_1,
    VKD_Q8_0,
    VKD_Q2_K,
    VKD_Q3_K,
    VKD_Q4_K,
    VKD_Q5_K,
    VKD_Q6_K,
    VKD_QTYPE_COUNT
} vkd_qtype;

const char *vkd_qtype_name(vkd_qtype t);   /* "Q4_K"; "?" when out of range */
size_t vkd_qtype_block(vkd_qtype t);       /* values per block: 32 or 256; 0 when out of range */
size_t vkd_qtype_block_bytes(vkd_qtype t); /* bytes per block; 0 when out of range */
int vkd_qtype_can_quantize(vkd_qtype t);   /* 1 for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K */

/* n values (a multiple of the block size) from n / block blocks at src. Returns 0, or
 * -1 when t is out of range or n is not a multiple of the block. */
int vkd_dequantize_row(vkd_qtype t, const void *src, float *dst, size_t n);
/* n values to n / block blocks at dst (caller-owned, n / block * block_bytes bytes).
 * Returns 0, or -1 when t cannot quantize or n is not a multiple of the block.
 * Inputs must be finite (as in ggml, NaN and inf give unspecified bytes). */
int vkd_quantize_row(vkd_qtype t, const float *src, void *dst, size_t n);
/* ggml_quantize_chunk: nrows rows of n_per_row values (a multiple of the block) with an
 * importance matrix of n_per_row weights. imatrix NULL: the reference quantizers above.
 * Non-NULL: ggml's weighted ones (quantize_row_{q4_0,q4_1,q5_0,q5_1,q4_K,q6_K}_impl;
 * Q8_0 ignores the matrix), which depend on the whole row (its mean square). This is
 * what stable-diffusion.cpp runs, with a matrix of ones (docs/gguf.md). Returns 0 or -1. */
int vkd_quantize_rows(vkd_qtype t, const float *src, void *dst, size_t nrows, size_t n_per_row, const float *imatrix);

#endif
