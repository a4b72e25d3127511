#!/bin/sh
# Issue 23 (vkdiff serve): runs one of the server's tests (tests/serve/CASE_test.js, Node 18 or later).
#   tests/serve/run.sh VKDIFF SOURCE_DIR CASE     CASE: openai, a1111, faults, load, page
# The servers run from SOURCE_DIR, so the shipped model in weights/ is found. tests/serve/node_modules
# comes from `npm ci` (run here when it is missing). The cases share one pipeline cache,
# VKD_CACHE_DIR=${VKD_BUILD:-/tmp}/serve-cache, unless VKD_CACHE_DIR is set. page: a server started
# here, then page_test.js URL OUTDIR (OUTDIR: ${VKD_BUILD:-/tmp}/serve-page, its screenshot).
# The exit code is the test's; the server must exit 0 on SIGTERM with no sanitizer report.
# Environment: VKD_SERVE_TEST_TIMEOUT (a test's hard limit, default 1200 s), VKD_SERVE_START_TIMEOUT (a
# server's start, 400 s: a cold lavapipe start compiles every pipeline), VKD_SERVE_TEST_VERBOSE=1 (the
# servers' stderr as it comes), VKD_SERVE_LOAD_REQUESTS (load: 200), NGINX (load: the nginx binary).
set -u
[ $# -eq 3 ] || { echo "usage: $0 VKDIFF SOURCE_DIR openai|a1111|faults|load|page"; exit 2; }
V=$1 SRC=$2 CASE=$3
fail() { echo "FAIL: $*"; exit 1; }
case "$V" in /*) ;; *) V="$(pwd)/$V" ;; esac # the tests start it from SOURCE_DIR
SRC=$(cd "$SRC" && pwd) || fail "no source dir $2"
T=$(cd "$(dirname "$0")" && pwd) # the tests beside this script
[ -x "$V" ] || fail "no binary $V"
command -v node >/dev/null || fail "no node (tools/deps.sh --test installs nodejs)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' ||
  fail "node $(node --version) is too old (18 or later)"
if [ ! -d "$T/node_modules" ]; then
  command -v npm >/dev/null || fail "no npm, and no $T/node_modules"
  (cd "$T" && npm ci --no-audit --no-fund) || fail "npm ci in $T"
fi
if [ -z "${VKD_CACHE_DIR+set}" ]; then
  VKD_CACHE_DIR="${VKD_BUILD:-/tmp}/serve-cache"
  export VKD_CACHE_DIR
  mkdir -p "$VKD_CACHE_DIR"
fi

case "$CASE" in
openai | a1111 | faults | load)
  exec node "$T/${CASE}_test.js" "$V" "$SRC"
  ;;
page) ;;
*) echo "unknown case $CASE (openai, a1111, faults, load, page)"; exit 2 ;;
esac

# page: a server on a free port, the page test against it, then SIGTERM
W=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$W"' EXIT
OUT="${VKD_BUILD:-/tmp}/serve-page"
mkdir -p "$OUT"
(cd "$SRC" && exec "$V" serve --port 0) 2>"$W/err.txt" &
pid=$!
url="" i=0
while [ $i -lt 4000 ]; do # 400 s: a cold start on lavapipe compiles every pipeline
  url=$(sed -n 's|.*vkdiff serve: listening on \(http://127\.0\.0\.1:[0-9][0-9]*\).*|\1|p' "$W/err.txt" | head -n 1)
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || { cat "$W/err.txt"; pid=; fail "the server exited before listening"; }
  sleep 0.1
  i=$((i + 1))
done
[ -n "$url" ] || { cat "$W/err.txt"; fail "the server is not listening after 400 s"; }
echo "server at $url (pid $pid)"
timeout -k 10 600 node "$T/page_test.js" "$url" "$OUT"
rc=$?
kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do
  sleep 0.1
  i=$((i + 1))
done
kill -0 $pid 2>/dev/null && { kill -9 $pid; echo "FAIL: the server did not exit within 60 s of SIGTERM"; rc=1; }
wait $pid
src=$?
pid=
[ $src -eq 0 ] || { echo "FAIL: the server exited $src after SIGTERM"; rc=1; }
if grep -E "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:" "$W/err.txt"; then
  echo "FAIL: sanitizer report in the server's stderr:"
  tail -n 60 "$W/err.txt"
  rc=1
fi
[ $rc -eq 0 ] && echo "page: passed" || echo "page: failed (screenshot in $OUT)"
exit $rc
