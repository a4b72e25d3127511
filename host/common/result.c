#include "common/result.h"

const char *vkd_result_str(vkd_result r)
{
    switch (r) {
    case VKD_OK: return "success";
    case VKD_ERR_INVALID_ARG: return "invalid argument";
    case VKD_ERR_IO: return "file input/output error";
    case VKD_ERR_FORMAT: return "damaged or malformed file";
    case VKD_ERR_UNSUPPORTED: return "unsupported";
    case VKD_ERR_SHAPE: return "tensor shapes do not match";
    case VKD_ERR_CANCELLED: return "cancelled";
    case VKD_ERR_NON_FINITE: return "the model produced NaN/Inf values";
    case VKD_ERR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VKD_ERR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VKD_ERR_TOO_LARGE: return "larger than a device limit";
    case VKD_ERR_NO_VULKAN: return "no Vulkan driver";
    case VKD_ERR_NO_DEVICE: return "no usable Vulkan device";
    case VKD_ERR_VULKAN: return "Vulkan error";
    case VKD_ERR_DEVICE_LOST: return "Vulkan device lost";
    case VKD_ERR_NO_SHADER: return "shader not found";
    case VKD_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
