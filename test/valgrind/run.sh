#!/usr/bin/env bash
# The native tests under valgrind (memcheck), against an addon built with
# debug info (-g -O1) in a private copy of the package, as test/asan/run.sh
# does: ./build is never touched.
#
# vitest's main process runs as usual; fork.cjs starts the fork that runs the
# test files under valgrind, which follows it into the Node children the tests
# spawn (the --expose-gc finalizer test, the consumer-style children) — worker
# threads live in the fork itself. python3, sh, strace, unshare and ip
# children are not followed (ip leaks a netlink buffer of its own at exit;
# nothing under unshare is followed either, the tcp_migrate_req test's Node
# child included). Node runs with --jitless under valgrind: no code is
# generated at run time, so valgrind needs no --smc-check for it (which made the fork's
# start-up alone exceed vitest's limit), and it is faster.
#
# Fails when vitest fails or when any valgrind error was reported, whichever
# process reported it: invalid reads and writes, uses of uninitialised values,
# bad frees, and memory definitely lost. node.supp holds what Node and V8 do
# on their own (never the addon). Child processes exit with 86 on an error.
#
# Usage: test/valgrind/run.sh [vitest filters…]
# Default: test/native without consumer.test.ts (it packs the package and
# type-checks its declarations: nothing of the addon's memory), and the
# loader test, which checks that the addon loaded is the copy built here.
set -euo pipefail

filters=("$@")
(( ${#filters[@]} )) || filters=(test/native test/build/loader.test.ts --exclude test/native/consumer.test.ts)

command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 1; }

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/graceful-listener-valgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

cd "$root"
cp -R binding.gyp package.json tsconfig.json vitest.config.mts native src test "$work/"
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"

echo "valgrind: building the addon with -g -O1 in $work"
CXXFLAGS="-g -O1 -fno-omit-frame-pointer" \
  npx --no-install node-gyp rebuild --loglevel=warn >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; exit 1; }
npx --no-install tsc -p tsconfig.json
unset PREBUILDS_ONLY

addon=build/Release/graceful_listener.node
loaded=$(node -p "require('node-gyp-build').resolve('$work')")
[[ $loaded == "$work/$addon" ]] || { echo "valgrind: node-gyp-build resolves $loaded, not the build made here" >&2; exit 1; }

mkdir -p "$work/reports"
GL_VALGRIND_ARGS=$(node -p 'JSON.stringify(process.argv.slice(1))' -- \
  --tool=memcheck \
  --trace-children=yes \
  '--trace-children-skip=*python3*,*/sh,*/bash,*/strace,*/unshare,*/ip' \
  --suppressions="$work/test/valgrind/node.supp" \
  --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --error-exitcode=86 \
  --log-file="$work/reports/valgrind.%p.log")
export GL_VALGRIND_ARGS
export GL_VALGRIND_NODE_OPTIONS=--jitless
export GL_TEST_HANG_SCALE=10

started=$SECONDS
status=0
NODE_OPTIONS="--require $work/test/valgrind/fork.cjs${NODE_OPTIONS:+ $NODE_OPTIONS}" \
  npx --no-install vitest run "${filters[@]}" \
  --maxWorkers=2 --testTimeout=600000 --hookTimeout=600000 \
  2>&1 | tee "$work/vitest.log" || status=$?
echo "valgrind: vitest took $((SECONDS - started)) s"

shopt -s nullglob
logs=("$work"/reports/valgrind.*.log)
(( ${#logs[@]} > 0 )) || { echo "valgrind: no valgrind logs: nothing ran under valgrind" >&2; exit 1; }
failed=()
forks=0 gc=0 unfinished=0
for log in "${logs[@]}"; do
  if grep -qE '== ERROR SUMMARY: [1-9]' "$log"; then failed+=("$log"); fi
  grep -q '== ERROR SUMMARY:' "$log" || unfinished=$((unfinished + 1))
  grep -qE '== Command: .*/workers/forks\.js' "$log" && forks=$((forks + 1))
  grep -qE '== Command: .* --expose-gc ' "$log" && gc=$((gc + 1))
done
echo "valgrind: followed ${#logs[@]} processes: $forks vitest forks (the worker-thread tests run in them)," \
  "$gc --expose-gc children, $((${#logs[@]} - forks - gc)) other Node children;" \
  "$unfinished killed before valgrind could report"
(( forks > 0 )) || { echo "valgrind: no vitest fork ran under valgrind" >&2; exit 1; }
if (( ${#failed[@]} > 0 )); then
  echo "valgrind: errors reported by ${#failed[@]} of ${#logs[@]} processes:" >&2
  cat "${failed[@]}" >&2
  exit 1
fi
echo "valgrind: no errors in ${#logs[@]} processes"
exit "$status"
