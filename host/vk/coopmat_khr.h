/* VK_KHR_cooperative_matrix for Vulkan headers that predate it (1.3.255; Debian 12 ships
 * 1.3.239). The values and layouts below are the extension's (vk.xml, spec version 2),
 * under vkd_ names so that they never clash with newer headers or with volk, which
 * loads no entry point its headers lack: the one function is fetched with
 * vkGetInstanceProcAddr (host/vk/device.c). */
#ifndef VKD_COOPMAT_KHR_H
#define VKD_COOPMAT_KHR_H
#include <volk.h>

#define VKD_KHR_COOPERATIVE_MATRIX_NAME "VK_KHR_cooperative_matrix"
#define VKD_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VKD_STYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
#define VKD_STYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506002)
#define VKD_COMPONENT_FLOAT16_KHR 0u /* VkComponentTypeKHR */
#define VKD_COMPONENT_FLOAT32_KHR 1u
#define VKD_SCOPE_SUBGROUP_KHR 3u /* VkScopeKHR */

typedef struct vkd_cooperative_matrix_properties_khr { /* VkCooperativeMatrixPropertiesKHR */
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    uint32_t AType, BType, CType, ResultType; /* VkComponentTypeKHR (a 32-bit enum) */
    VkBool32 saturatingAccumulation;
    uint32_t scope; /* VkScopeKHR */
} vkd_cooperative_matrix_properties_khr;

typedef struct vkd_physical_device_cooperative_matrix_features_khr { /* ...FeaturesKHR */
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} vkd_physical_device_cooperative_matrix_features_khr;

typedef struct vkd_physical_device_cooperative_matrix_properties_khr { /* ...PropertiesKHR */
    VkStructureType sType;
    void *pNext;
    VkShaderStageFlags cooperativeMatrixSupportedStages;
} vkd_physical_device_cooperative_matrix_properties_khr;

typedef VkResult(VKAPI_PTR *vkd_pfn_get_cooperative_matrix_properties_khr)(
    VkPhysicalDevice physicalDevice, uint32_t *pPropertyCount, vkd_cooperative_matrix_properties_khr *pProperties);

#endif
