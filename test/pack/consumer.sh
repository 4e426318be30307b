#!/usr/bin/env bash
# The package as a user gets it from the registry. `npm pack` (its prepack
# compiles TypeScript into a clean dist/ and prebuildifies the addon), then
# the tarball is installed into fresh consumer projects in a temp dir:
#
# 1. Install scripts not run (--ignore-scripts: what an install gets when
#    the package's script is denied in allowScripts; npm 11 runs scripts not
#    approved with a warning today, and a future npm blocks them). The
#    prebuilt binary in the tarball is what loads. require() and import serve requests on 127.0.0.1 and close
#    the listener; the declarations type-check a consumer .cts and .mts under
#    module node16 and nodenext; the `graceful-listener` bin runs;
#    `graceful-listener/testing` loads and drives the requests.
# 2. The source-build fallback: the same tarball without prebuilds/, its
#    install script approved (allowScripts, --strict-allow-scripts): node-gyp
#    builds the addon from native/ and binding.gyp at install, and it loads.
#
# Needs the npm registry (the package's dependencies) and, for 2, python3,
# make, g++ and Node's headers: npm_config_nodedir as .ci/run sets it, so
# that node-gyp downloads nothing. TypeScript and @types/node are the
# project's own. Every step is bounded; the temp dir is removed on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/graceful-listener-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
# The consumers choose their own binary; nothing inherited may choose for them.
unset PREBUILDS_ONLY npm_config_build_from_source

say() { printf 'pack: %s\n' "$*"; }
fail() { printf 'pack: FAIL: %s\n' "$*" >&2; exit 1; }
bounded() { timeout --kill-after=10 "$@"; }
npm_install() { bounded 600 npm install --no-audit --no-fund --loglevel=warn "$@"; }

# A project with nothing but a package.json (and `extra` fields for it).
new_consumer() {
  local dir=$1 extra=${2:-}
  mkdir "$dir"
  printf '{ "name": "consumer", "version": "1.0.0", "private": true%s }\n' "$extra" >"$dir/package.json"
}

# Runs the compiled checks in `dir`; the addon must load from under `expect`.
run_checks() {
  local dir=$1 expect=$2
  (cd "$dir" && EXPECT_ADDON=$expect bounded 60 node out/check.cjs && EXPECT_ADDON=$expect bounded 60 node out/check.mjs)
}

say 'npm pack (prepack: TypeScript into a clean dist/, prebuildify)'
(cd "$root" && bounded 900 npm pack --pack-destination "$work" >"$work/pack.log" 2>&1) || { cat "$work/pack.log" >&2; fail 'npm pack'; }
tarballs=("$work"/graceful-listener-*.tgz)
(( ${#tarballs[@]} == 1 )) && [[ -f ${tarballs[0]} ]] || fail "expected one tarball in $work"
tarball=${tarballs[0]}
version=$(node -p 'require(process.argv[1]).version' "$root/package.json")

contents=$(tar -tzf "$tarball")
for file in package.json README.md LICENSE binding.gyp native/addon.cc \
  dist/index.js dist/index.mjs dist/index.d.ts dist/index.d.mts \
  dist/testing/index.js dist/testing/index.mjs dist/testing/index.d.ts dist/testing/index.d.mts dist/cli/main.js; do
  grep -qx "package/$file" <<<"$contents" || fail "the tarball has no $file"
done
grep -qE '^package/prebuilds/linux-x64/[^/]+\.node$' <<<"$contents" || fail 'the tarball has no prebuilds/linux-x64/*.node'
if unwanted=$(grep -E '^package/(build|src|test|node_modules)/|\.map$' <<<"$contents"); then
  fail "the tarball ships what it must not: ${unwanted//$'\n'/ }"
fi
say "$(basename "$tarball"): $(wc -l <<<"$contents") files, $(stat -c %s "$tarball") bytes"

say '1. consumer: npm install <tarball> --ignore-scripts'
first=$work/prebuilt
new_consumer "$first"
(cd "$first" && npm_install --ignore-scripts "$tarball")
[[ ! -e $first/node_modules/graceful-listener/build ]] || fail 'an install without scripts built something'

cp "$root/test/pack/check.cts" "$root/test/pack/check.mts" "$first/"
cat >"$first/tsconfig.json" <<EOF
{
  "compilerOptions": {
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "es2022",
    "lib": ["es2022"],
    "strict": true,
    "skipLibCheck": false,
    "typeRoots": ["$root/node_modules/@types"],
    "types": ["node"],
    "rootDir": ".",
    "outDir": "out"
  },
  "files": ["check.cts", "check.mts"]
}
EOF
say 'types: tsc on check.cts and check.mts, module node16, then nodenext'
(cd "$first" && bounded 120 "$root/node_modules/.bin/tsc" -p . --module node16 --moduleResolution node16 --noEmit)
(cd "$first" && bounded 120 "$root/node_modules/.bin/tsc" -p .)
run_checks "$first" prebuilds/linux-x64

say 'bin: graceful-listener'
help=$(cd "$first" && bounded 30 npx --no-install graceful-listener --help)
[[ $help == 'Usage: graceful-listener <command>'* ]] || fail "graceful-listener --help printed: $help"
printed=$(cd "$first" && bounded 30 npx --no-install graceful-listener --version)
[[ $printed == "$version" ]] || fail "graceful-listener --version printed $printed, not $version"
demo=$(cd "$first" && bounded 60 npx --no-install graceful-listener demo-socket --clients 20)
[[ $demo == *'20 of 20 answered, 0 reset'* ]] || fail "graceful-listener demo-socket printed: $demo"
say "graceful-listener --help, --version ($printed), demo-socket: 20 of 20 answered, 0 reset"

say '2. source-build fallback: the tarball without prebuilds/, install script approved'
mkdir "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
rm -r "$work/unpacked/package/prebuilds"
source_tarball=$work/source-only/$(basename "$tarball")
mkdir "$work/source-only"
tar -czf "$source_tarball" -C "$work/unpacked" package
second=$work/source-build
new_consumer "$second" ", \"allowScripts\": { \"file:$source_tarball\": true }"
(cd "$second" && npm_install --strict-allow-scripts --foreground-scripts "$source_tarball" >"$work/source-build.log" 2>&1) \
  || { cat "$work/source-build.log" >&2; fail 'the source build'; }
installed=$second/node_modules/graceful-listener
[[ ! -e $installed/prebuilds ]] || fail 'the source-only tarball had prebuilds/'
[[ -f $installed/build/Release/graceful_listener.node ]] || { cat "$work/source-build.log" >&2; fail 'node-gyp built nothing'; }
compiled=$(grep -c 'CXX(target)' "$work/source-build.log" || true)
(( compiled > 0 )) || { cat "$work/source-build.log" >&2; fail 'node-gyp compiled no source at install'; }
say "node-gyp compiled $compiled sources at install into build/Release/graceful_listener.node"
cp -R "$first/out" "$second/"
run_checks "$second" build/Release

say 'OK'
