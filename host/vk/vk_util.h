/* Small helpers shared by the Vulkan runtime modules. */
#ifndef VKD_VK_UTIL_H
#define VKD_VK_UTIL_H
#include <volk.h>

#include "common/log.h"
#include "common/result.h"

const char *vkd_vk_result_name(VkResult r);
vkd_result vkd_from_vk(VkResult r);

/* Run a Vulkan call; on failure log the call, the VkResult's name and file:line, and
 * return the matching vkd_result from the enclosing function. */
#define VK_TRY(call)                                                                       \
    do {                                                                                   \
        VkResult vk_try_r_ = (call);                                                       \
        if (vk_try_r_ != VK_SUCCESS) {                                                     \
            VKD_ERROR("%s failed: %s (%s:%d)", #call, vkd_vk_result_name(vk_try_r_), __FILE__, \
                      __LINE__);                                                           \
            return vkd_from_vk(vk_try_r_);                                                 \
        }                                                                                  \
    } while (0)

/* Same, but jumps to `fail` with `res` set, for create functions. */
#define VK_TRY_GOTO(call, res)                                                             \
    do {                                                                                   \
        VkResult vk_try_r_ = (call);                                                       \
        if (vk_try_r_ != VK_SUCCESS) {                                                     \
            VKD_ERROR("%s failed: %s (%s:%d)", #call, vkd_vk_result_name(vk_try_r_), __FILE__, \
                      __LINE__);                                                           \
            res = vkd_from_vk(vk_try_r_);                                                  \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)

#endif
