/* The source revision this binary was built from (`git describe --always --dirty` at
 * build time, "unknown" outside a checkout): cmake/git_rev.cmake. */
#ifndef VKD_VERSION_H
#define VKD_VERSION_H
const char *vkd_git_revision(void);
#endif
