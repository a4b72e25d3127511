/* The kernel profile: a device's capabilities read once into what the kernels may count
 * on (vk/kernel.h, vk/device.h vkd_kernel_profile_make). */
#include <string.h>

#include "common/log.h"
#include "vk/device.h"

/* Which cooperative-matrix kernels the fp16 GEMMs take (see vkd_kernel_profile_make). */
static vkd_coopmat_kind coopmat_select(const vkd_device_caps *c, bool use_f16, bool khr_built, const char *env,
                                       uint32_t *n)
{
    bool want_khr = !env || !strcmp(env, "khr"), want_nv = !env || !strcmp(env, "nv");
    if (env && !want_khr && !want_nv && strcmp(env, "off"))
        VKD_WARN("cooperative matrices \"%s\" (VKD_COOPMAT): expected off, nv or khr; taking off", env);
    /* KHR modules below SPIR-V 1.6 must run in full subgroups (the Vulkan spec's
     * VUID-RuntimeSpirv-OpTypeCooperativeMatrixKHR-10770): only with subgroup size control */
    bool khr = want_khr && c->coopmat_khr && khr_built && c->subgroup_size_control;
    bool nv = want_nv && c->coopmat_nv;
    if (env && (want_khr || want_nv) && !khr && !nv)
        VKD_WARN("cooperative matrices \"%s\" (VKD_COOPMAT): not usable here%s; no cooperative-matrix GEMM", env,
                 !want_khr || !c->coopmat_khr ? " (not offered by this device)"
                 : !khr_built                 ? " (this build has no KHR kernels: its shader tools predate them)"
                                              : " (the device has no subgroup size control)");
    *n = 0;
    if (!use_f16 || (!khr && !nv))
        return VKD_COOPMAT_NONE;
    *n = khr ? c->coopmat_khr : c->coopmat_nv;
    return khr ? VKD_COOPMAT_KHR : VKD_COOPMAT_NV;
}

vkd_kernel_profile vkd_kernel_profile_make(const vkd_device_caps *c, bool use_f16, bool khr_built,
                                           const char *coopmat)
{
    vkd_kernel_profile p;
    memset(&p, 0, sizeof p);
    p.cpu = c->type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    p.coopmat = coopmat_select(c, use_f16, khr_built, coopmat, &p.coopmat_n);
    uint32_t ops = c->subgroup_ops;
    if (ops & VK_SUBGROUP_FEATURE_BASIC_BIT) {
        p.features |= VKD_KF_SUBGROUP_BASIC;
        if (ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT)
            p.features |= VKD_KF_SUBGROUP_SHUFFLE;
        if (ops & VK_SUBGROUP_FEATURE_BALLOT_BIT)
            p.features |= VKD_KF_SUBGROUP_BALLOT;
    }
    /* vkd_device_create enables shaderFloat16 wherever it is offered and tensors are
     * fp16 (the cooperative-matrix kernels need it; the memory model only for them) */
    if ((use_f16 && c->fp16_arith) || p.coopmat != VKD_COOPMAT_NONE)
        p.features |= VKD_KF_FP16_ARITH;
    if (p.coopmat != VKD_COOPMAT_NONE)
        p.features |= p.coopmat == VKD_COOPMAT_KHR ? VKD_KF_COOPMAT_KHR : VKD_KF_COOPMAT_NV;
    p.fp16_arith = (p.features & VKD_KF_FP16_ARITH) && !p.cpu && p.coopmat == VKD_COOPMAT_NONE;
    /* texel windows start on a texel: binding windows start on minStorageBufferOffsetAlignment */
    if (c->texel_rgba32ui && c->texel_align <= 16 && c->ssbo_align % 16 == 0)
        p.features |= VKD_KF_TEXEL16;
    uint32_t sg8 = VKD_KF_SUBGROUP_SHUFFLE | VKD_KF_TEXEL16;
    p.subgroup8 = c->subgroup_size == 8 && (p.features & sg8) == sg8;
    p.cm_subgroup_required = c->subgroup_size_control;
    p.cm_subgroup = c->subgroup_size_control && c->subgroup_min <= 32 && 32 <= c->subgroup_max ? 32 : c->subgroup_size;
    return p;
}
