/* Ctrl-C (SIGINT) and SIGTERM during a run: the first one sets a flag that the
 * progress callback and the PNG writer read, so generation stops within a step and a
 * file being written is removed instead of left half-done; a second one ends the
 * process at once (the default action). */
#ifndef VKD_CLI_INTERRUPT_H
#define VKD_CLI_INTERRUPT_H

void vkd_cli_interrupt_install(void);
/* the signal number received (SIGINT, SIGTERM), 0 if none */
int vkd_cli_interrupted(void);

#endif
