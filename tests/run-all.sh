#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every test: installs missing packages, builds
# with warnings as errors, runs the unit and integration tests under CTest.
#   bash tests/run-all.sh            (BUILD_DIR=build-test by default)
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

build_dir=${BUILD_DIR:-build-test}
generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
echo "==> configuring $build_dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCRASHMAIL_WERROR=ON >"$log" 2>&1 || { cat "$log"; exit 1; }
echo "==> building"
cmake --build "$build_dir" -j "$(nproc)"
echo "==> testing"
cd "$build_dir"
ctest --output-on-failure -j 2 --timeout 300 "$@"
