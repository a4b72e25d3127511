#define _GNU_SOURCE /* dl_iterate_phdr, RTLD_NOLOAD */
#include "common/pin_libs.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

static int pin_one(struct dl_phdr_info *info, size_t size, void *user)
{
    (void)size;
    (void)user;
    const char *n = info->dlpi_name;
    /* one more reference: the loader's dlclose then leaves it mapped */
    if (n && (strstr(n, "vulkan") || strstr(n, "VkLayer") || strstr(n, "LLVM")))
        dlopen(n, RTLD_LAZY | RTLD_NOLOAD);
    return 0;
}

void vkd_pin_driver_libs(void) { dl_iterate_phdr(pin_one, NULL); }
