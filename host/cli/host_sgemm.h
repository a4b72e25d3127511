/* OpenBLAS sgemm timing for `vkdiff bench ops` (host_sgemm.c). */
#ifndef VKD_CLI_HOST_SGEMM_H
#define VKD_CLI_HOST_SGEMM_H
#include <stdint.h>
/* Median wall ms of out[M, N] = a[M, K] w[N, K]^T over `repeat` runs after a warm-up;
 * < 0 without OpenBLAS. */
double vkd_cli_time_sgemm(int64_t m, int64_t k, int64_t n, int repeat);
#endif
