/* The kernels this build embeds, what each needs of a device, and what a device offers.
 *
 * shaders/kernels.txt lists every kernel once (docs/kernels.md); the build turns it into
 * the enum vkd_kernel (vkd_kernels.h, generated) and vkd_kernel_table below. At device
 * creation the probed capabilities become one vkd_kernel_profile (vk/device.h
 * vkd_kernel_profile_make); the ops choose their kernels from the profile, never from
 * the device type, and look kernels up by enum (vk/pipeline.h). */
#ifndef VKD_KERNEL_H
#define VKD_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkd_kernels.h" /* generated from shaders/kernels.txt: enum vkd_kernel */

/* A kernel's variants, indexed as vkd_dtype (ops/tensor.h): the tensors' storage type. */
#define VKD_VARIANT_F32 0u
#define VKD_VARIANT_F16 1u
#define VKD_VARIANTS 2u

/* What a kernel needs of the device (kernels.txt's features column) and what a profile
 * offers. */
#define VKD_KF_SUBGROUP_BASIC 0x01u   /* compute subgroups with the basic operations */
#define VKD_KF_SUBGROUP_SHUFFLE 0x02u /* ... and shuffles (basic included) */
#define VKD_KF_SUBGROUP_BALLOT 0x04u  /* ... and ballots */
#define VKD_KF_FP16_ARITH 0x08u       /* shaderFloat16, enabled on the device (with fp16 storage) */
#define VKD_KF_COOPMAT_NV 0x10u       /* VK_NV_cooperative_matrix, enabled: 16xNx16 fp16 x fp16 + fp32 */
#define VKD_KF_COOPMAT_KHR 0x20u      /* VK_KHR_cooperative_matrix, the same */
#define VKD_KF_TEXEL16 0x40u          /* R32G32B32A32_UINT uniform texel buffers whose windows may start
                                       * on any 16 bytes (vk/cmd.h VKD_TEXEL_*); implied by a texel mask */

typedef struct vkd_kernel_info {
    const char *name;                           /* the manifest's name, e.g. "matmul_sg" */
    const uint32_t *spirv[VKD_VARIANTS];        /* per variant; NULL where not built */
    const size_t *spirv_bytes[VKD_VARIANTS];
    uint32_t bindings;                          /* storage buffers 0 .. bindings - 1 */
    uint32_t texel_mask;                        /* bit i: binding i is a uniform texel buffer */
    uint32_t features;                          /* VKD_KF_* it needs */
} vkd_kernel_info;

extern const vkd_kernel_info vkd_kernel_table[VKD_KERNEL_COUNT];

/* Whether this build has the SPIR-V of kernel k's variant (the KHR cooperative-matrix
 * kernels exist only where the shader compiler knows the extension). */
static inline bool vkd_kernel_built(vkd_kernel k, uint32_t variant)
{
    return (unsigned)k < VKD_KERNEL_COUNT && variant < VKD_VARIANTS && vkd_kernel_table[k].spirv[variant] != NULL;
}

/* Which cooperative-matrix kernels the fp16 GEMMs take. */
typedef enum vkd_coopmat_kind {
    VKD_COOPMAT_NONE = 0,
    VKD_COOPMAT_NV,  /* *_cm:  VK_NV_cooperative_matrix */
    VKD_COOPMAT_KHR, /* *_cmk: VK_KHR_cooperative_matrix */
} vkd_coopmat_kind;

/* What the kernels may count on, chosen once at device creation. */
typedef struct vkd_kernel_profile {
    /* A CPU-type device (lavapipe, SwiftShader): there shared memory and barriers cost
     * coroutine switches and a storage-buffer load is a loop over the SIMD lanes, so the
     * ops take kernels and blockings without them, and texel fetches (gathers) */
    bool cpu;
    uint32_t features;        /* VKD_KF_* this device offers, as enabled */
    vkd_coopmat_kind coopmat; /* the fp16 GEMMs on cooperative matrices (fp16 storage, a shape offered) */
    uint32_t coopmat_n;       /* the accumulators' columns: 16 or 8 (0: none) */
    /* The subgroup size the cooperative-matrix kernels and their emulation are sized for
     * (workgroup = subgroups x this); required of their pipelines, with full subgroups,
     * where the device allows (cm_subgroup_required): 32 where it may (NVIDIA's warps;
     * AMD's wave32, which RDNA3's matrix instructions run in), else the default */
    uint32_t cm_subgroup;
    bool cm_subgroup_required;
    /* 8-lane compute subgroups with shuffles and 16-byte texel windows: the CPU
     * subgroup kernels (GEMM family 2, attention_sg / attention_sgw) can run */
    bool subgroup8;
    /* fp16 tensors multiply in fp16 (the *_h kernels: docs/fp16.md): a GPU with
     * shaderFloat16 and no cooperative matrices (Mali, Adreno, Intel, AMD before RDNA3),
     * where fp16 arithmetic runs at twice the fp32 rate. Not on CPU devices: LLVM on x86
     * without AVX512-FP16 converts each half operation to float and back (lavapipe ran
     * them slower: BENCHMARKS.md); not with cooperative matrices (their GEMMs multiply in
     * fp16 already). vkd_knobs.fp16_arith overrides it. */
    bool fp16_arith;
} vkd_kernel_profile;

/* Whether a device with profile p can run kernel k's variant: built, and every feature
 * it needs offered. */
static inline bool vkd_kernel_usable(const vkd_kernel_profile *p, vkd_kernel k, uint32_t variant)
{
    return vkd_kernel_built(k, variant) && (vkd_kernel_table[k].features & ~p->features) == 0;
}

/* Tile shape of the GEMM core (spec constants 3..7 of the matmul / conv2d kernels;
 * ops/matmul.h says what each family makes of it). */
typedef struct vkd_gemm_tile {
    uint32_t bm, bn, bk, tm, tn;
    uint32_t direct; /* the kernel family: 0 shared-memory tiles, 1 direct, 2 subgroup,
                      * 3 cooperative matrices, 4 their emulation (ops/matmul.h) */
} vkd_gemm_tile;

/* Group norm's kernels a dispatch may take (vkd_knobs.groupnorm_kernels). */
typedef enum vkd_gn_kernels {
    VKD_GN_KERNELS_ALL = 0, /* the default: 4 channels per invocation, texel fetches on CPU devices */
    VKD_GN_KERNELS_SCALAR,  /* APPLY one element per invocation, plain loads */
    VKD_GN_KERNELS_VEC4,    /* APPLY 4 channels per invocation, plain loads */
} vkd_gn_kernels;

/* Developer knobs: for tests and benchmarks only, never for a generation. They live on
 * the device (vkd_device_opts.knobs, copied to vkd_device.knobs at creation; a test may
 * change the device's copy between recordings, as it records nothing meanwhile). Zero
 * is the default throughout. */
typedef struct vkd_knobs {
    /* developer knob: bm != 0 forces this GEMM tile on every device, so that the GPU
     * kernel is checked on lavapipe and vice versa (tests, bench ops --tile) */
    vkd_gemm_tile gemm_tile;
    /* developer knob: the workgroups split-K aims for (ops/matmul.h); 0: the default
     * VKD_SPLITK_TARGET_WG; < 0: no split-K, to time the kernels without it (bench
     * ops/model --split-k) */
    int split_k;
    /* developer knob: split-K's partial sums added up by a reduce dispatch after the
     * GEMM's (phase 2), instead of by the last workgroup of each output tile (phase 3), so
     * that tests check both and a benchmark can time them (bench ops/model --splitk-reduce) */
    bool splitk_reduce;
    /* developer knob: attention's AUTO never takes the cooperative-matrix kernel, to
     * time it against the flash kernel in one run (bench ops/model --attention flash) */
    bool attention_no_coopmat;
    /* developer knob: limits group norm's kernels (tests: each APPLY kernel checked) */
    vkd_gn_kernels groupnorm_kernels;
    /* developer knob: < 0 keeps the models' 3x3 convs off the Winograd kernel (bench model
     * --winograd off, to time it against the implicit GEMM); 0: where the device's rule
     * says it wins (ops/winograd.h vkd_conv2d_winograd_worth) */
    int winograd;
    /* developer knob: the fp16-arithmetic kernels (the profile's fp16_arith) forced on
     * where the device offers VKD_KF_FP16_ARITH (1) or off (-1); 0: the profile's choice
     * (tests; bench ops --fp16-arith on|off) */
    int fp16_arith;
} vkd_knobs;

/* Whether ops on fp16 tensors take the fp16-arithmetic kernels (*_h): the profile's
 * choice or the knob's, and only where the device offers fp16 arithmetic. */
static inline bool vkd_fp16_arith_on(const vkd_kernel_profile *p, const vkd_knobs *k)
{
    if (!(p->features & VKD_KF_FP16_ARITH) || k->fp16_arith < 0)
        return false;
    return k->fp16_arith > 0 || p->fp16_arith;
}

#endif
