#!/bin/sh
# ctest install_consumer (cmake/install.cmake), issue 19: install the build into a
# temporary prefix and use it as an outsider would.
#   1. `cmake --install BUILD --prefix TMP` (nothing is rebuilt);
#   2. the installed vkdiff.h compiles alone: -std=c11 -Wall -Wextra -Werror -pedantic
#      with only the prefix's include/ on the include path, and includes only <...>;
#   3. libvkdiff.so has its SONAME and exports only functions vkdiff.h declares;
#   4. tests/install_consumer.c built with `pkg-config vkdiff` flags, against the shared
#      library (run through an rpath) and the static one (--static), each generating an
#      image with the installed shapes model;
#   5. the installed vkdiff finds that model without -m (<bin>/../share/vkdiff/weights),
#      also when run by name through PATH.
# Usage: install_test.sh BUILD SOURCE CMAKE CC PKG_CONFIG
set -eu
B=$1 S=$2 CMAKE=$3 CC=$4 PKG_CONFIG=$5
fail() { echo "install_test: FAIL: $*"; exit 1; }
[ -x "$PKG_CONFIG" ] || fail "no pkg-config (tools/deps.sh installs it)"
T=$(mktemp -d "$B/install_test.XXXXXX")
trap 'rm -rf "$T"' EXIT
P=$T/prefix

"$CMAKE" --install "$B" --prefix "$P" >"$T/install.log" || { cat "$T/install.log"; fail "cmake --install"; }
pcdir=$(dirname "$(find "$P" -name vkdiff.pc | head -n 1)")
[ -f "$pcdir/vkdiff.pc" ] || fail "no vkdiff.pc installed"
libdir=$(dirname "$pcdir")
for f in "$libdir/libvkdiff.a" "$libdir/libvkdiff.so" "$P/include/vkdiff.h" "$P/bin/vkdiff" \
         "$P/share/vkdiff/weights/shapes.safetensors" "$P/share/vkdiff/weights/README.md" \
         "$P/share/vkdiff/weights/shapes_taesd_decoder.safetensors" \
         "$P/share/vkdiff/weights/tokenizer/vocab.json" "$P/share/vkdiff/weights/tokenizer/merges.txt"; do
    [ -e "$f" ] || fail "not installed: $f"
done
echo "install_test: installed into $P"

# ---- the header alone ------------------------------------------------------------------
if grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$P/include/vkdiff.h"; then
    fail "the installed vkdiff.h includes a project header (above)"
fi
printf '#include <vkdiff.h>\nint main(void) { return vkd_result_str(VKD_ERR_INTERNAL) == 0; }\n' >"$T/header_alone.c"
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic -I"$P/include" -c "$T/header_alone.c" -o "$T/header_alone.o" ||
    fail "vkdiff.h is not self-contained"

# ---- the shared library's face -------------------------------------------------------
readelf -d "$libdir/libvkdiff.so" | grep -q 'SONAME.*\[libvkdiff\.so\.[0-9]*\]' || fail "libvkdiff.so has no SONAME"
exported=$(nm -D --defined-only "$libdir/libvkdiff.so" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }')
[ -n "$exported" ] || fail "libvkdiff.so exports nothing"
for sym in $exported; do
    grep -q "\\b$sym(" "$P/include/vkdiff.h" || fail "libvkdiff.so exports $sym, which vkdiff.h does not declare"
done
for sym in vkd_ctx_create vkd_generate vkd_result_str; do
    echo "$exported" | grep -qx "$sym" || fail "libvkdiff.so does not export $sym"
done
echo "install_test: libvkdiff.so exports $(echo "$exported" | wc -l) functions, all declared in vkdiff.h"

# ---- a program built through pkg-config ------------------------------------------------
export PKG_CONFIG_PATH="$pcdir"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR 2>/dev/null || true
cflags=$("$PKG_CONFIG" --cflags vkdiff) || fail "pkg-config --cflags vkdiff"
libs=$("$PKG_CONFIG" --libs vkdiff) || fail "pkg-config --libs vkdiff"
slibs=$("$PKG_CONFIG" --static --libs vkdiff) || fail "pkg-config --static --libs vkdiff"
echo "install_test: cflags: $cflags"
echo "install_test: libs: $libs"
echo "install_test: static libs: $slibs"
# shellcheck disable=SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic $cflags "$S/tests/install_consumer.c" -o "$T/consumer_shared" \
    $libs -Wl,-rpath,"$libdir" || fail "building against the shared library"
readelf -d "$T/consumer_shared" | grep -q 'NEEDED.*libvkdiff\.so' || fail "consumer_shared does not use libvkdiff.so"
# the static library: -l:libvkdiff.a, since -lvkdiff prefers the .so beside it
slibs_a=$(echo "$slibs" | sed 's/-lvkdiff\b/-l:libvkdiff.a/')
# shellcheck disable=SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic $cflags "$S/tests/install_consumer.c" -o "$T/consumer_static" \
    $slibs_a || fail "building against the static library"
if readelf -d "$T/consumer_static" | grep -q 'NEEDED.*libvkdiff'; then
    fail "consumer_static uses libvkdiff.so"
fi

# A sanitizer build's program: the loader's driver libraries keep allocations until exit
# (tests/lsan.supp), unloaded before LeakSanitizer could name them; leaks are the other
# tests' business, not this one's.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" # the last setting wins
export ASAN_OPTIONS
W=$P/share/vkdiff/weights
for kind in shared static; do
    "$T/consumer_$kind" "$W/shapes.safetensors" "$W/tokenizer" "$T/$kind.ppm" || fail "consumer_$kind"
    [ "$(head -c 2 "$T/$kind.ppm")" = P6 ] || fail "consumer_$kind wrote no PPM"
done
cmp -s "$T/shared.ppm" "$T/static.ppm" || fail "the shared and static builds drew different images"
cp "$T/shared.ppm" "$B/install_consumer.ppm"

# ---- the installed command finds the installed model ---------------------------------------
# -W 65 stops at the parameter check, after the model is chosen and before any Vulkan.
out=$(cd "$T" && "$P/bin/vkdiff" -W 65 2>&1 || true)
echo "$out" | grep -q "shipped shapes model $P/bin/../share/vkdiff/weights/shapes.safetensors" ||
    fail "the installed vkdiff did not choose the installed model: $out"
out=$(cd "$T" && PATH="$P/bin:$PATH" vkdiff -W 65 2>&1 || true)
echo "$out" | grep -q "shipped shapes model $P/bin/../share/vkdiff/weights/shapes.safetensors" ||
    fail "vkdiff run through PATH did not choose the installed model: $out"

# ---- the .deb (CPack), where dpkg-deb can list it ---------------------------------------------
CPACK=$(dirname "$CMAKE")/cpack
if [ -x "$CPACK" ] && command -v dpkg-deb >/dev/null 2>&1; then
    "$CPACK" -G DEB --config "$B/CPackConfig.cmake" -B "$T/deb" >"$T/cpack.log" 2>&1 ||
        { cat "$T/cpack.log"; fail "cpack -G DEB"; }
    deb=$(ls "$T"/deb/vkdiff_*.deb)
    dpkg-deb -c "$deb" >"$T/deb.list"
    for f in ./usr/bin/vkdiff ./usr/include/vkdiff.h ./usr/lib/libvkdiff.a ./usr/lib/libvkdiff.so \
             ./usr/lib/pkgconfig/vkdiff.pc ./usr/share/vkdiff/weights/shapes.safetensors \
             ./usr/share/vkdiff/weights/tokenizer/vocab.json; do
        grep -q " $f\( ->.*\)\?$" "$T/deb.list" || { cat "$T/deb.list"; fail "$f is not in $(basename "$deb")"; }
    done
    dpkg-deb -f "$deb" Depends | grep -q libvulkan1 || fail "the .deb does not depend on libvulkan1"
    echo "install_test: $(basename "$deb"): $(wc -l <"$T/deb.list") entries, Depends: $(dpkg-deb -f "$deb" Depends)"
else
    echo "install_test: no cpack or dpkg-deb: the .deb not checked"
fi
echo "install_test: OK"
