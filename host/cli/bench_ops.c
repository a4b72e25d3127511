/* `vkdiff bench ops`: placeholder until the op benchmark lands. */
#include <stdio.h>

int vkd_cli_bench_ops(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vkdiff: bench ops is not built yet\n");
    return 1;
}
