/* GPU time of a recorded command by op family (dispatch label), largest first: the
 * bench's tables and the first UNet evaluation's INFO log (-vv). */
#ifndef VKD_PIPELINE_OP_PROFILE_H
#define VKD_PIPELINE_OP_PROFILE_H

#include <stdint.h>
#include <stdio.h>

#include "vk/cmd.h"

enum { VKD_PROFILE_MAX_OPS = 48 };
typedef struct vkd_op_profile {
    int k;                              /* distinct labels */
    char name[VKD_PROFILE_MAX_OPS][40]; /* copies: the labels live only as long as the recording */
    double ms[VKD_PROFILE_MAX_OPS];
    double flops[VKD_PROFILE_MAX_OPS];  /* counted work of the family's dispatches */
    int count[VKD_PROFILE_MAX_OPS];
    double total;                       /* summed over dispatches */
    uint32_t n;                         /* dispatches timed */
} vkd_op_profile;

/* The last submission of cmd, by label. */
void vkd_op_profile_get(vkd_cmd *cmd, vkd_op_profile *p);
/* First-use cost by label: each dispatch's warm-up time (first[]) minus its time in the
 * last submission. Drivers that compile at the first dispatch (lavapipe: LLVM) pay it
 * there, so on a cold shader cache this is what each kernel costs to compile. */
void vkd_op_profile_first_use(vkd_cmd *cmd, const double *first, uint32_t n_first, vkd_op_profile *p);
/* At INFO level: "<what> GPU time by op" and one line per label. */
void vkd_op_profile_log(vkd_cmd *cmd, const char *what);
/* As a markdown table on f. */
void vkd_op_profile_print(FILE *f, const char *stage, const char *which, const vkd_op_profile *p);

#endif
