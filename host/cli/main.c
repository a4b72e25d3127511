/* vkdiff command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vk/device.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkdiff [options]\n"
            "       vkdiff --list-devices          list Vulkan devices and their features\n"
            "       vkdiff bench ops [--device N]  time each op at SD1.5 512x512 shapes\n"
            "options:\n"
            "  --device N      use Vulkan device N (default: discrete, then integrated, then CPU)\n"
            "  -v              verbose\n"
            "  -h, --help      this help\n");
}

int vkd_cli_bench_ops(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "bench"))
        return vkd_cli_bench_ops(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list-devices")) {
            vkd_result r = vkd_device_list(stdout);
            if (r)
                fprintf(stderr, "vkdiff: %s\n", vkd_result_str(r));
            return r ? 1 : 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-v")) {
            vkd_log_set(NULL, NULL, VKD_LOG_DEBUG);
        } else {
            fprintf(stderr, "vkdiff: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    usage(stderr);
    return 2;
}
