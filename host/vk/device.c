/* Instance/device creation and feature probing. See device.h. */
#include "vk/device.h"

#include <pthread.h>

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vk/coopmat_khr.h"
#include "vk/memory.h"
#include "vk/pipeline.h"
#include "vk/vk_util.h"

#define NO_DRIVER_HINT                                                                       \
    "install a Vulkan driver: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers` (lavapipe " \
    "runs on any CPU), or your GPU vendor's driver"

void vkd_device_opts_init(vkd_device_opts *o)
{
    memset(o, 0, sizeof *o);
    o->device_index = -1;
    /* the test suite's second pass (tools/test.sh) sets it for every process it starts */
    o->emulate = getenv("VKD_EMULATE");
}

/* Lower the limits the kernels read to a phone GPU's (vkd_device_opts.emulate "mobile"):
 * the lowest of the families in docs/gpu-limits.md -- 16 KiB of shared memory as the
 * Adreno 605-612, 128 MiB bindings as Qualcomm's recent drivers and turnip, 1 GiB
 * allocations as panvk (Mali), 256 invocations -- and a GPU's device type,
 * so that the ops choose their GPU kernels and blockings rather than the CPU ones. The
 * driver's own limits are higher, so every kernel is also sized against these by
 * vkd_pipeline_get (shared memory through spirv_shared.h). */
static vkd_result emulate_caps(vkd_device_caps *c, const char *what)
{
    if (!what || !*what || !strcmp(what, "off"))
        return VKD_OK;
    if (strcmp(what, "mobile")) {
        VKD_ERROR("VKD_EMULATE=\"%s\": the emulated device is \"mobile\" (or \"off\")", what);
        return VKD_ERR_INVALID_ARG;
    }
    static const uint64_t gib = 1ull << 30, mib128 = 128ull << 20;
    c->type = VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
    if (c->max_shared > 16384)
        c->max_shared = 16384;
    if (c->max_wg_invocations > 256)
        c->max_wg_invocations = 256;
    if (!c->max_alloc || c->max_alloc > gib)
        c->max_alloc = gib;
    if (c->max_binding > mib128)
        c->max_binding = mib128;
    for (int i = 0; i < 3; i++)
        if (c->max_wg_count[i] > 65535)
            c->max_wg_count[i] = 65535;
    VKD_INFO("emulating a phone GPU's limits (VKD_EMULATE=mobile): 16 KiB shared memory, 256 invocations, "
             "1 GiB allocations, 128 MiB bindings, GPU kernels");
    return VKD_OK;
}

const char *vkd_device_type_str(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

/* The loader and driver are found at run time through volk, so a machine without
 * them gets a message instead of a dynamic-link failure. volk keeps its function
 * pointers in globals: load them once per process, safely from any thread (contexts
 * may be created on several threads). pthread_once is in Bionic and glibc alike. */
static pthread_once_t volk_once = PTHREAD_ONCE_INIT;
static VkResult volk_status = VK_ERROR_INITIALIZATION_FAILED;

static void volk_init_once(void) { volk_status = volkInitialize(); }

static vkd_result load_vulkan(void)
{
    pthread_once(&volk_once, volk_init_once);
    if (volk_status != VK_SUCCESS) {
        VKD_ERROR("the Vulkan loader (libvulkan) was not found; on Debian/Ubuntu `apt-get install "
                  "libvulkan1 mesa-vulkan-drivers`; " NO_DRIVER_HINT);
        return VKD_ERR_NO_VULKAN;
    }
    return VKD_OK;
}

/* The layer's specVersion (the Vulkan headers it was built with), 0 if not installed. */
static uint32_t layer_version(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *p = calloc(n, sizeof *p);
    if (!p)
        return 0;
    uint32_t found = 0;
    if (vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(p[i].layerName, name))
                found = p[i].specVersion ? p[i].specVersion : 1;
    free(p);
    return found;
}

static bool has_instance_ext(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    if (!p)
        return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(p[i].extensionName, name))
                found = true;
    free(p);
    return found;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data,
                                               void *user)
{
    vkd_device *d = user;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        d->validation_errors++;
        VKD_ERROR("validation: %s", data->pMessage);
    } else if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        d->validation_warnings++;
        VKD_WARN("validation: %s", data->pMessage);
    }
    return VK_FALSE;
}

/* The API version the instance asks for: the loader's, at most 1.3. A device's usable
 * version is the lesser of this and its own (VkApplicationInfo). */
static uint32_t instance_api_version(void)
{
    uint32_t loader_version = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion)
        vkEnumerateInstanceVersion(&loader_version);
    return loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : loader_version;
}

static vkd_result create_instance(vkd_device *d, bool validation, bool require)
{
    uint32_t loader_version = instance_api_version();
    if (loader_version < VK_API_VERSION_1_1) {
        VKD_ERROR("the Vulkan loader is version 1.0; vkdiff needs 1.1 or newer");
        return VKD_ERR_NO_VULKAN;
    }
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkdiff",
        .pEngineName = "vkdiff",
        .apiVersion = loader_version,
    };
    const char *layers[1];
    uint32_t n_layers = 0;
    const char *exts[4];
    uint32_t n_exts = 0;
    bool debug = false;
    if (validation) {
        if ((d->validation_layer = layer_version("VK_LAYER_KHRONOS_validation")))
            layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
        else if (require) {
            VKD_ERROR("validation required but VK_LAYER_KHRONOS_validation is not installed "
                      "(Debian: vulkan-validationlayers)");
            return VKD_ERR_UNSUPPORTED;
        } else
            VKD_WARN("validation requested but VK_LAYER_KHRONOS_validation is not installed "
                     "(Debian: vulkan-validationlayers)");
        if (has_instance_ext(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
            exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
            debug = true;
        } else if (require) { /* without the messenger, errors would go uncounted */
            VKD_ERROR("validation required but " VK_EXT_DEBUG_UTILS_EXTENSION_NAME " is missing: errors could not be "
                      "counted");
            return VKD_ERR_UNSUPPORTED;
        }
    }
    VkInstanceCreateFlags flags = 0;
    if (has_instance_ext(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        /* MoltenVK and other portability drivers are only listed when asked for. */
        exts[n_exts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
        .pUserData = d,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = debug ? &dbg : NULL,
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &d->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
        VKD_ERROR("no Vulkan driver is installed; " NO_DRIVER_HINT);
        return VKD_ERR_NO_VULKAN;
    }
    VK_TRY(r);
    volkLoadInstance(d->instance);
    if (debug)
        VK_TRY(vkCreateDebugUtilsMessengerEXT(d->instance, &dbg, NULL, &d->messenger));
    return VKD_OK;
}

static bool has_device_ext(const VkExtensionProperties *e, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(e[i].extensionName, name))
            return true;
    return false;
}

/* The cooperative-matrix shape for the DIRECT = 3 GEMM kernels (shaders/gemm.comp):
 * 16 x N x 16 (M x N x K), fp16 A and B, fp32 C and result, subgroup scope. Returns N:
 * 16 where offered, else 8 (NVIDIA's first implementations listed 16x8x16 and 16x8x8
 * only), else 0. The NV and KHR property structures differ in layout, not in values
 * (component types and scopes share their numbers). */
static uint32_t coopmat_pick_n(uint32_t m, uint32_t n, uint32_t k, uint32_t a, uint32_t b, uint32_t c, uint32_t r,
                               uint32_t scope, uint32_t best)
{
    bool ok = m == 16 && (n == 16 || n == 8) && k == 16 && a == VKD_COMPONENT_FLOAT16_KHR &&
              b == VKD_COMPONENT_FLOAT16_KHR && c == VKD_COMPONENT_FLOAT32_KHR && r == VKD_COMPONENT_FLOAT32_KHR &&
              scope == VKD_SCOPE_SUBGROUP_KHR;
    return ok && n > best ? n : best;
}

static uint32_t coopmat_nv_shape(VkPhysicalDevice pd)
{
    uint32_t n = 0;
    if (!vkGetPhysicalDeviceCooperativeMatrixPropertiesNV ||
        vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkCooperativeMatrixPropertiesNV *p = calloc(n, sizeof *p);
    if (!p)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    uint32_t best = 0;
    if (vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            best = coopmat_pick_n(p[i].MSize, p[i].NSize, p[i].KSize, p[i].AType, p[i].BType, p[i].CType,
                                  p[i].DType, p[i].scope, best);
    free(p);
    return best;
}

static uint32_t coopmat_khr_shape(VkInstance inst, VkPhysicalDevice pd)
{
    vkd_pfn_get_cooperative_matrix_properties_khr get = (vkd_pfn_get_cooperative_matrix_properties_khr)(
        void (*)(void))vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!get || get(pd, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    vkd_cooperative_matrix_properties_khr *p = calloc(n, sizeof *p);
    if (!p)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        p[i].sType = VKD_STYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    uint32_t best = 0;
    if (get(pd, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!p[i].saturatingAccumulation)
                best = coopmat_pick_n(p[i].MSize, p[i].NSize, p[i].KSize, p[i].AType, p[i].BType, p[i].CType,
                                      p[i].ResultType, p[i].scope, best);
    free(p);
    return best;
}

/* Reads caps of one physical device; *exts (caller frees) gets its extension list. */
/* probe_khr: query VK_KHR_cooperative_matrix (off where a validation layer that predates
 * it is loaded: it would report the extension's structures as errors) */
static vkd_result probe(VkInstance inst, bool probe_khr, VkPhysicalDevice pd, vkd_device_caps *c, VkExtensionProperties **exts,
                        uint32_t *n_exts, uint32_t *queue_family)
{
    memset(c, 0, sizeof *c);
    *exts = NULL;
    *n_exts = 0;
    VK_TRY(vkEnumerateDeviceExtensionProperties(pd, NULL, n_exts, NULL));
    *exts = calloc(*n_exts ? *n_exts : 1, sizeof **exts);
    if (!*exts)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    VK_TRY(vkEnumerateDeviceExtensionProperties(pd, NULL, n_exts, *exts));
    bool ext_f16i8 = has_device_ext(*exts, *n_exts, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
    bool ext_8bit = has_device_ext(*exts, *n_exts, VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
    bool ext_cm_nv = has_device_ext(*exts, *n_exts, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    bool ext_cm_khr = probe_khr && has_device_ext(*exts, *n_exts, VKD_KHR_COOPERATIVE_MATRIX_NAME);

    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    /* the cooperative-matrix stage masks, chained only where their extension is offered */
    VkPhysicalDeviceCooperativeMatrixPropertiesNV cmp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV, .pNext = &sub};
    vkd_physical_device_cooperative_matrix_properties_khr cmpk = {
        .sType = VKD_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR, .pNext = &sub};
    void *p2_next = &sub;
    if (ext_cm_nv) {
        cmp.pNext = p2_next;
        p2_next = &cmp;
    }
    if (ext_cm_khr) {
        cmpk.pNext = p2_next;
        p2_next = &cmpk;
    }
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = p2_next};
    sub.pNext = &m3;
    VkPhysicalDeviceProperties p0;
    vkGetPhysicalDeviceProperties(pd, &p0);
    uint32_t api = p0.apiVersion < instance_api_version() ? p0.apiVersion : instance_api_version();
    /* subgroup size control (core in 1.3): the cooperative-matrix kernels require full
     * subgroups of the size their workgroup was sized for (ops/matmul.c) */
    bool ext_sgc = api < VK_API_VERSION_1_3 && has_device_ext(*exts, *n_exts, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    bool sgc = api >= VK_API_VERSION_1_3 || ext_sgc;
    VkPhysicalDeviceSubgroupSizeControlProperties sgcp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    if (sgc) {
        sub.pNext = &sgcp;
        sgcp.pNext = &m3;
    }
    if (api >= VK_API_VERSION_1_2 || has_device_ext(*exts, *n_exts, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME))
        m3.pNext = &drv;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    snprintf(c->name, sizeof c->name, "%s", p->deviceName);
    if (drv.driverName[0])
        snprintf(c->driver, sizeof c->driver, "%s %s", drv.driverName, drv.driverInfo);
    else
        snprintf(c->driver, sizeof c->driver, "driver version 0x%x", p->driverVersion);
    c->type = p->deviceType;
    c->api_version = p->apiVersion;
    c->vendor_id = p->vendorID;
    c->device_id = p->deviceID;
    c->subgroup_size = sub.subgroupSize;
    c->subgroup_ops = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? sub.supportedOperations : 0;
    c->max_alloc = m3.maxMemoryAllocationSize;
    c->max_binding = p->limits.maxStorageBufferRange;
    c->ssbo_align = p->limits.minStorageBufferOffsetAlignment;
    c->texel_align = p->limits.minTexelBufferOffsetAlignment;
    c->max_texels = p->limits.maxTexelBufferElements;
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_UINT, &fp);
    c->texel_rgba32ui = (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
    c->max_wg_invocations = p->limits.maxComputeWorkGroupInvocations;
    memcpy(c->max_wg_count, p->limits.maxComputeWorkGroupCount, sizeof c->max_wg_count);
    c->max_shared = p->limits.maxComputeSharedMemorySize;
    c->timestamp_period = p->limits.timestampPeriod;
    memcpy(c->pipeline_cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);

    VkPhysicalDeviceShaderFloat16Int8Features f16i8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDevice8BitStorageFeatures s8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    void **tail = &s16.pNext;
    bool v12 = api >= VK_API_VERSION_1_2;
    if (v12 || ext_f16i8) {
        *tail = &f16i8;
        tail = &f16i8.pNext;
    }
    if (v12 || ext_8bit) {
        *tail = &s8;
        tail = &s8.pNext;
    }
    VkPhysicalDeviceVulkanMemoryModelFeatures vmm = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cmf = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    vkd_physical_device_cooperative_matrix_features_khr cmfk = {
        .sType = VKD_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    if (v12 && (ext_cm_nv || ext_cm_khr)) {
        *tail = &vmm;
        tail = &vmm.pNext;
    }
    if (v12 && ext_cm_nv) {
        *tail = &cmf;
        tail = &cmf.pNext;
    }
    if (v12 && ext_cm_khr) {
        *tail = &cmfk;
        tail = &cmfk.pNext;
    }
    VkPhysicalDeviceSubgroupSizeControlFeatures sgcf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    if (sgc) {
        *tail = &sgcf;
        tail = &sgcf.pNext;
    }
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    c->storage16 = s16.storageBuffer16BitAccess;
    c->int64 = f2.features.shaderInt64;
    c->fp16_arith = f16i8.shaderFloat16;
    c->int8_arith = f16i8.shaderInt8;
    c->storage8 = s8.storageBuffer8BitAccess;
    c->coop_matrix_khr_ext = ext_cm_khr;
    /* what both kernels' SPIR-V needs besides the extension: fp16 arithmetic, the Vulkan
     * memory model that glslang declares for them, subgroup ids */
    bool cm_base = v12 && vmm.vulkanMemoryModel && f16i8.shaderFloat16 && (c->subgroup_ops & VK_SUBGROUP_FEATURE_BASIC_BIT);
    bool cm_nv = cm_base && ext_cm_nv && cmf.cooperativeMatrix &&
                 (cmp.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT);
    bool cm_khr = cm_base && ext_cm_khr && cmfk.cooperativeMatrix &&
                  (cmpk.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT);
    c->coopmat_nv = cm_nv ? coopmat_nv_shape(pd) : 0;
    c->coopmat_khr = cm_khr ? coopmat_khr_shape(inst, pd) : 0;
    c->memory_budget = has_device_ext(*exts, *n_exts, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    c->subgroup_size_control = sgc && sgcf.subgroupSizeControl && sgcf.computeFullSubgroups &&
                               (sgcp.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT);
    c->subgroup_size_ext = c->subgroup_size_control && ext_sgc;
    c->subgroup_min = c->subgroup_size_control ? sgcp.minSubgroupSize : c->subgroup_size;
    c->subgroup_max = c->subgroup_size_control ? sgcp.maxSubgroupSize : c->subgroup_size;
    c->max_wg_subgroups = c->subgroup_size_control ? sgcp.maxComputeWorkgroupSubgroups : 0;

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties *q = calloc(nq ? nq : 1, sizeof *q);
    if (!q)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q);
    *queue_family = UINT32_MAX;
    /* Prefer a compute-only queue family (async compute on discrete GPUs), else any with compute. */
    for (uint32_t i = 0; i < nq; i++)
        if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
            *queue_family = i;
            break;
        }
    if (*queue_family == UINT32_MAX)
        for (uint32_t i = 0; i < nq; i++)
            if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
                *queue_family = i;
                break;
            }
    if (*queue_family != UINT32_MAX)
        c->timestamps = q[*queue_family].timestampValidBits > 0 && p->limits.timestampPeriod > 0;
    free(q);

    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mp.memoryHeaps[i].size > c->device_local_bytes)
            c->device_local_bytes = mp.memoryHeaps[i].size;
    if (*queue_family == UINT32_MAX)
        return VKD_ERR_NO_DEVICE;
    return VKD_OK;
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static vkd_result enumerate(VkInstance inst, VkPhysicalDevice **pds, uint32_t *n)
{
    *pds = NULL;
    *n = 0;
    VK_TRY(vkEnumeratePhysicalDevices(inst, n, NULL));
    if (*n == 0) {
        VKD_ERROR("the Vulkan loader found no device; " NO_DRIVER_HINT);
        return VKD_ERR_NO_VULKAN;
    }
    *pds = calloc(*n, sizeof **pds);
    if (!*pds)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    VK_TRY(vkEnumeratePhysicalDevices(inst, n, *pds));
    return VKD_OK;
}

static const char *yes(bool b) { return b ? "yes" : "no"; }

vkd_result vkd_device_list(FILE *f)
{
    vkd_result res = load_vulkan();
    if (res)
        return res;
    vkd_device tmp;
    memset(&tmp, 0, sizeof tmp);
    if ((res = create_instance(&tmp, false, false)))
        return res;
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    if ((res = enumerate(tmp.instance, &pds, &n)))
        goto done;
    for (uint32_t i = 0; i < n; i++) {
        vkd_device_caps c;
        VkExtensionProperties *exts = NULL;
        uint32_t n_exts = 0, qf = 0;
        vkd_result pr = probe(tmp.instance, true, pds[i], &c, &exts, &n_exts, &qf);
        free(exts);
        fprintf(f, "device %u: %s\n", i, c.name);
        fprintf(f, "  type:              %s\n", vkd_device_type_str(c.type));
        fprintf(f, "  driver:            %s\n", c.driver);
        fprintf(f, "  Vulkan:            %u.%u.%u\n", VK_API_VERSION_MAJOR(c.api_version),
                VK_API_VERSION_MINOR(c.api_version), VK_API_VERSION_PATCH(c.api_version));
        if (pr) {
            fprintf(f, "  (not usable: %s)\n", vkd_result_str(pr));
            continue;
        }
        VkPhysicalDeviceMemoryProperties mp;
        vkGetPhysicalDeviceMemoryProperties(pds[i], &mp);
        for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
            fprintf(f, "  memory heap %u:     %.2f GiB%s\n", h, mp.memoryHeaps[h].size / 1073741824.0,
                    (mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) ? " device-local" : "");
        fprintf(f, "  subgroup size:     %u\n", c.subgroup_size);
        fprintf(f, "  fp16 arithmetic:   %s\n", yes(c.fp16_arith));
        fprintf(f, "  16-bit storage:    %s\n", yes(c.storage16));
        fprintf(f, "  int8 arithmetic:   %s\n", yes(c.int8_arith));
        char khr[96], nv[64];
        if (c.coopmat_khr)
            snprintf(khr, sizeof khr, "fp16 16x%ux16%s", c.coopmat_khr,
                     vkd_kernel_built(VKD_KERNEL_MATMUL_CMK, VKD_VARIANT_F16) ? "" : " (this build has no KHR kernels: see README)");
        else
            snprintf(khr, sizeof khr, "%s", c.coop_matrix_khr_ext ? "no fp16 16x16x16 or 16x8x16" : "no");
        if (c.coopmat_nv)
            snprintf(nv, sizeof nv, "fp16 16x%ux16", c.coopmat_nv);
        else
            snprintf(nv, sizeof nv, "no");
        fprintf(f, "  cooperative matrix: KHR %s; NV %s\n", khr, nv);
        fprintf(f, "  memory budget:     %s\n", yes(c.memory_budget));
        fprintf(f, "  max allocation:    %.0f MiB\n", c.max_alloc / 1048576.0);
        fprintf(f, "  max binding range: %.0f MiB\n", c.max_binding / 1048576.0);
        fprintf(f, "  shared memory:     %u KiB\n", c.max_shared / 1024);
    }
done:
    free(pds);
    vkDestroyInstance(tmp.instance, NULL);
    return res;
}

static vkd_result pick(VkPhysicalDevice *pds, uint32_t n, int index, uint32_t *chosen)
{
    if (index >= 0) {
        if ((uint32_t)index >= n) {
            VKD_ERROR("--device %d: there are only %u Vulkan devices (see --list-devices)", index, n);
            return VKD_ERR_NO_DEVICE;
        }
        *chosen = (uint32_t)index;
        return VKD_OK;
    }
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pds[i], &p);
        if (p.apiVersion < VK_API_VERSION_1_1)
            continue;
        int rank = type_rank(p.deviceType);
        if (best < rank) {
            best = rank;
            *chosen = i;
        }
    }
    if (best < 0) {
        VKD_ERROR("no Vulkan 1.1 device found; " NO_DRIVER_HINT);
        return VKD_ERR_NO_DEVICE;
    }
    return VKD_OK;
}

static void cache_path_init(vkd_device *d, const char *dir)
{
    d->cache_path[0] = 0;
    if (!dir || !*dir)
        return;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        snprintf(uuid + 2 * i, 3, "%02x", d->caps.pipeline_cache_uuid[i]);
    /* The UUID changes with the driver build, so a cache from an old driver is never fed to a new one. */
    snprintf(d->cache_path, sizeof d->cache_path, "%s/pipelines-%08x-%08x-%s.bin", dir, d->caps.vendor_id,
             d->caps.device_id, uuid);
}

vkd_result vkd_device_create(const vkd_device_opts *opts, vkd_device **out)
{
    vkd_device_opts defaults;
    if (!opts) {
        vkd_device_opts_init(&defaults);
        opts = &defaults;
    }
    *out = NULL;
    vkd_result res = load_vulkan();
    if (res)
        return res;
    vkd_device *d = calloc(1, sizeof *d);
    if (!d)
        return VKD_ERR_OUT_OF_HOST_MEMORY;
    VkPhysicalDevice *pds = NULL;
    VkExtensionProperties *exts = NULL;
    uint32_t n = 0, n_exts = 0, chosen = 0;
    if ((res = create_instance(d, opts->validation, opts->require_validation)))
        goto fail;
    if ((res = enumerate(d->instance, &pds, &n)))
        goto fail;
    if ((res = pick(pds, n, opts->device_index, &chosen)))
        goto fail;
    d->phys = pds[chosen];
    bool old_layer = d->validation_layer && d->validation_layer < VK_MAKE_API_VERSION(0, 1, 3, 255);
    if ((res = probe(d->instance, !old_layer, d->phys, &d->caps, &exts, &n_exts, &d->queue_family))) {
        VKD_ERROR("device %u (%s) has no compute queue", chosen, d->caps.name);
        goto fail;
    }
    if ((res = emulate_caps(&d->caps, opts->emulate)))
        goto fail;
    d->max_device_bytes = opts->max_device_bytes;
    if (opts->max_binding_override && opts->max_binding_override < d->caps.max_binding)
        d->caps.max_binding = opts->max_binding_override & ~(uint64_t)255;
    vkGetPhysicalDeviceMemoryProperties(d->phys, &d->memprops);
    d->use_f16 = d->caps.storage16 && !opts->force_fp32;
    if (old_layer)
        VKD_INFO("the validation layer (%u.%u.%u) predates VK_KHR_cooperative_matrix (1.3.255): not probed",
                 VK_API_VERSION_MAJOR(d->validation_layer), VK_API_VERSION_MINOR(d->validation_layer),
                 VK_API_VERSION_PATCH(d->validation_layer));
    d->profile = vkd_kernel_profile_make(&d->caps, d->use_f16, vkd_kernel_built(VKD_KERNEL_MATMUL_CMK, VKD_VARIANT_F16),
                                         opts->coopmat);
    d->knobs = opts->knobs;
    bool use_coopmat = d->profile.coopmat != VKD_COOPMAT_NONE, cm_khr = d->profile.coopmat == VKD_COOPMAT_KHR;
    d->timestamps = opts->timestamps && d->caps.timestamps;
    d->poison = opts->poison;
    d->poison_pattern = opts->poison_pattern;

    /* Enable only what we use; everything optional was probed above. */
    const char *dev_exts[8];
    uint32_t n_dev_exts = 0;
    if (d->caps.memory_budget)
        dev_exts[n_dev_exts++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (has_device_ext(exts, n_exts, "VK_KHR_portability_subset"))
        dev_exts[n_dev_exts++] = "VK_KHR_portability_subset";
    VkPhysicalDevice16BitStorageFeatures s16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
        .storageBuffer16BitAccess = d->use_f16,
    };
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = d->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    /* fp16 arithmetic; the cooperative-matrix kernels: fp16 matrix types, and the Vulkan
     * memory model that glslang declares for them (probe() checked all three, on Vulkan 1.2+) */
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .shaderFloat16 = VK_TRUE};
    VkPhysicalDeviceVulkanMemoryModelFeatures vmm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES, .vulkanMemoryModel = VK_TRUE};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cmf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .cooperativeMatrix = VK_TRUE};
    vkd_physical_device_cooperative_matrix_features_khr cmfk = {
        .sType = VKD_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .cooperativeMatrix = VK_TRUE};
    void **tail = &s16.pNext;
    /* fp16 arithmetic wherever offered with fp16 tensors (the *_h kernels, the
     * cooperative-matrix ones); the extension below Vulkan 1.2 */
    if (d->profile.features & VKD_KF_FP16_ARITH) {
        if ((d->caps.api_version < VK_API_VERSION_1_2 || instance_api_version() < VK_API_VERSION_1_2) &&
            has_device_ext(exts, n_exts, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME))
            dev_exts[n_dev_exts++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
        *tail = &f16;
        tail = &f16.pNext;
    }
    if (use_coopmat) {
        dev_exts[n_dev_exts++] = cm_khr ? VKD_KHR_COOPERATIVE_MATRIX_NAME : VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
        *tail = &vmm;
        vmm.pNext = cm_khr ? (void *)&cmfk : (void *)&cmf;
        tail = cm_khr ? &cmfk.pNext : &cmf.pNext;
    }
    /* required subgroup sizes with full subgroups, for the cooperative-matrix kernels */
    VkPhysicalDeviceSubgroupSizeControlFeatures sgcf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
        .subgroupSizeControl = VK_TRUE, .computeFullSubgroups = VK_TRUE};
    if (d->caps.subgroup_size_control) {
        if (d->caps.subgroup_size_ext)
            dev_exts[n_dev_exts++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
        *tail = &sgcf;
        tail = &sgcf.pNext;
    }
    /* 64-bit integers: the CPU GEMM reads 32 bytes per load with them (ops/matmul.c) */
    f2.features.shaderInt64 = d->caps.int64;
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &f2,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_dev_exts,
        .ppEnabledExtensionNames = dev_exts,
    };
    VK_TRY_GOTO(vkCreateDevice(d->phys, &dci, NULL, &d->dev), res);
    vkGetDeviceQueue(d->dev, d->queue_family, 0, &d->queue);
    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = d->queue_family,
    };
    VK_TRY_GOTO(vkCreateCommandPool(d->dev, &pci, NULL, &d->cmd_pool), res);
    cache_path_init(d, opts->cache_dir);
    if ((res = vkd_memory_create(d, &d->mem)))
        goto fail;
    if ((res = vkd_pipelines_create(d, &d->pipes)))
        goto fail;
    VKD_INFO("device: %s (%s), %s, fp16 storage %s%s", d->caps.name, vkd_device_type_str(d->caps.type),
             d->caps.driver, d->use_f16 ? "on" : "off",
             !use_coopmat ? "" : cm_khr ? ", cooperative-matrix GEMM (KHR)" : ", cooperative-matrix GEMM (NV)");
    free(pds);
    free(exts);
    *out = d;
    return VKD_OK;
fail:
    free(pds);
    free(exts);
    vkd_device_destroy(d);
    return res;
}

vkd_result vkd_device_wait_idle(vkd_device *d)
{
    VK_TRY(vkDeviceWaitIdle(d->dev));
    return VKD_OK;
}

void vkd_device_destroy(vkd_device *d)
{
    if (!d)
        return;
    if (d->dev)
        vkDeviceWaitIdle(d->dev);
    vkd_pipelines_destroy(d, d->pipes);
    vkd_memory_destroy(d, d->mem);
    if (d->cmd_pool)
        vkDestroyCommandPool(d->dev, d->cmd_pool, NULL);
    if (d->dev)
        vkDestroyDevice(d->dev, NULL);
    if (d->messenger)
        vkDestroyDebugUtilsMessengerEXT(d->instance, d->messenger, NULL);
    if (d->instance)
        vkDestroyInstance(d->instance, NULL);
    free(d);
}

uint64_t vkd_device_memory_budget(vkd_device *d, bool *from_driver)
{
    *from_driver = false;
    if (!d->caps.memory_budget)
        return d->caps.device_local_bytes;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT mb = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &mb};
    vkGetPhysicalDeviceMemoryProperties2(d->phys, &mp);
    uint64_t best = 0, size = 0;
    for (uint32_t i = 0; i < mp.memoryProperties.memoryHeapCount; i++) {
        const VkMemoryHeap *h = &mp.memoryProperties.memoryHeaps[i];
        if ((h->flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && h->size > size)
            size = h->size, best = mb.heapBudget[i];
    }
    if (best == 0)
        return d->caps.device_local_bytes;
    *from_driver = true;
    return best;
}
