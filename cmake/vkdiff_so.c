/* The shared library's own translation unit. libvkdiff.so is the static vkdiff_core
 * linked whole (cmake/install.cmake), exporting only the functions host/vkdiff.h
 * declares; CMake wants at least one source file for a library target. */
typedef int vkd_so_unit;
