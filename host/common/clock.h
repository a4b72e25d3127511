/* Clocks, kept out of C11's timespec_get: Bionic declares it only from Android 10
 * (API 29) and vkdiff builds for API 26, so every module asks here instead. */
#ifndef VKD_CLOCK_H
#define VKD_CLOCK_H

#include <stdint.h>

/* Milliseconds on a monotonic clock (arbitrary origin): for durations only. */
double vkd_clock_ms(void);

/* Nanoseconds since 1970 on the wall clock (may jump): for seeds, not durations.
 * Returns 0 if the clock cannot be read. */
uint64_t vkd_clock_wall_ns(void);

#endif
