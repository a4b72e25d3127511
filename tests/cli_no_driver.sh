#!/bin/sh
# With no Vulkan driver, `vkdiff --list-devices` exits non-zero and names the package.
out=$(VK_ICD_FILENAMES=/nonexistent/icd.json VK_DRIVER_FILES=/nonexistent/icd.json "$1" --list-devices 2>&1)
rc=$?
echo "$out"
[ $rc -ne 0 ] || { echo "FAIL: exit code 0"; exit 1; }
echo "$out" | grep -q "mesa-vulkan-drivers" || { echo "FAIL: message does not name mesa-vulkan-drivers"; exit 1; }
echo "exit $rc, message names the package: ok"
