/* See clock.h. clock_gettime is POSIX (glibc declares it under _POSIX_C_SOURCE; Bionic,
 * musl and macOS 10.12+ always). */
#define _POSIX_C_SOURCE 200809L
#include "common/clock.h"

#include <time.h>

double vkd_clock_ms(void)
{
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

uint64_t vkd_clock_wall_ns(void)
{
    struct timespec ts = {0, 0};
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
