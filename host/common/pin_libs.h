/* Keeps the Vulkan loader's driver and layer libraries (and LLVM) loaded until process
 * exit. The loader unloads them when the instance goes away; the few allocations they
 * keep until exit then show in LeakSanitizer as leaks from "<unknown module>", which
 * tests/lsan.supp cannot name. Called by the tests and, in sanitizer builds
 * (VKD_SANITIZE_BUILD), by the CLI after it has a device. */
#ifndef VKD_PIN_LIBS_H
#define VKD_PIN_LIBS_H
void vkd_pin_driver_libs(void);
#endif
