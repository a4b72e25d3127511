/* vkdiff result codes: errors are values, grouped in ranges by kind of failure.
 * Every function that can fail returns vkd_result; 0 (VKD_OK) is success. */
#ifndef VKD_RESULT_H
#define VKD_RESULT_H

typedef enum vkd_result {
    VKD_OK = 0,
    /* 1xx: the caller's input or a file's format */
    VKD_ERR_INVALID_ARG = 100,
    VKD_ERR_IO = 101,              /* open/read/write/mmap of a file failed */
    VKD_ERR_FORMAT = 102,          /* a file is damaged or not what it claims */
    VKD_ERR_UNSUPPORTED = 103,     /* valid but not supported (dtype, model family, pickle) */
    VKD_ERR_SHAPE = 104,           /* tensor shapes do not fit the op */
    VKD_ERR_CANCELLED = 105,       /* the caller's progress callback asked to stop */
    VKD_ERR_NON_FINITE = 106,      /* a stage's output holds NaN or Inf (never drawn as a black image) */
    /* 2xx: memory */
    VKD_ERR_OUT_OF_HOST_MEMORY = 200,
    VKD_ERR_OUT_OF_DEVICE_MEMORY = 201,
    VKD_ERR_TOO_LARGE = 202,       /* over a device limit (allocation size, binding range) */
    /* 3xx: Vulkan */
    VKD_ERR_NO_VULKAN = 300,       /* no loader / no driver */
    VKD_ERR_NO_DEVICE = 301,       /* no usable device, or --device out of range */
    VKD_ERR_VULKAN = 302,          /* a Vulkan call failed */
    VKD_ERR_DEVICE_LOST = 303,
    VKD_ERR_NO_SHADER = 304,       /* a shader name missing from the embedded table */
    /* 9xx: a bug in vkdiff */
    VKD_ERR_INTERNAL = 900,
} vkd_result;

/* A short, static description of a result ("out of device memory"). Never NULL. */
const char *vkd_result_str(vkd_result r);

#endif
