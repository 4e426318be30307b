#!/usr/bin/env bash
# The native tests against an addon built with AddressSanitizer + UBSan.
#
# The sanitized build lives in a private copy of the package (a temp dir with
# its own build/), never in ./build: an ASan addon loaded by a plain `node`
# aborts ("ASan runtime does not come first"), so it must never be left where
# node-gyp-build would find it. node_modules is shared through a symlink.
#
# Fails when vitest fails or when any sanitizer report was written, whichever
# process wrote it. Leak detection is off: Node itself leaks at exit.
#
# Usage: test/asan/run.sh [vitest filters…]
# Default: test/native, plus the loader test, which checks that the mapped
# binary is the sanitized one.
set -euo pipefail

filters=("$@")
(( ${#filters[@]} )) || filters=(test/native test/build/loader.test.ts)

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/graceful-listener-asan.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
for lib in "$libasan" "$libubsan"; do
  [[ -e $lib ]] || { echo "asan: $lib not found (install gcc's sanitizer runtimes)" >&2; exit 1; }
done

cd "$root"
cp -R binding.gyp package.json tsconfig.json vitest.config.mts native src test "$work/"
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"

echo "asan: building the addon with -fsanitize=address,undefined in $work"
CXXFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1" \
LDFLAGS="-fsanitize=address,undefined" \
  npx --no-install node-gyp rebuild --loglevel=warn >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; exit 1; }
npx --no-install tsc -p tsconfig.json

addon=build/Release/graceful_listener.node
symbols=$(nm -D "$addon")
for symbol in __asan_report_load __ubsan_handle; do
  [[ $symbols == *"$symbol"* ]] || { echo "asan: $addon has no $symbol: not instrumented" >&2; exit 1; }
done

mkdir -p "$work/reports"
export LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$work/reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$work/reports/ubsan"
unset PREBUILDS_ONLY

loaded=$(node -p "require('node-gyp-build').resolve('$work')")
[[ $loaded == "$work/$addon" ]] || { echo "asan: node-gyp-build resolves $loaded, not the sanitized build" >&2; exit 1; }

# ASan reports go to log_path files (also from child processes whose output
# a test discards); UBSan prints to stderr whatever log_path says, so the
# output is searched too.
status=0
npx --no-install vitest run "${filters[@]}" 2>&1 | tee "$work/vitest.log" || status=$?

shopt -s nullglob
reports=("$work"/reports/*)
found=$(grep -aE 'ERROR: AddressSanitizer|: runtime error: |SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$work/vitest.log" || true)
if (( ${#reports[@]} > 0 )) || [[ -n $found ]]; then
  echo "asan: sanitizer reports found:" >&2
  (( ${#reports[@]} > 0 )) && cat "${reports[@]}" >&2
  [[ -n $found ]] && echo "$found" >&2
  exit 1
fi
echo "asan: no AddressSanitizer or UBSan reports"
exit "$status"
