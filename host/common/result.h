/* vkdiff result codes: the vkd_result enum and vkd_result_str() are public API,
 * defined in vkdiff.h (errors are values, grouped in ranges by kind of failure). */
#ifndef VKD_RESULT_H
#define VKD_RESULT_H

#include "vkdiff.h"

#endif
