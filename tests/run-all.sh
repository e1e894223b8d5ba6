#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every test and check, as CI does (.ci/run):
#   deps          tests/install-test-deps.sh: installs the missing Debian packages (build
#                 and test, one apt-get update); leaves no test package's daemon running
#   format        clang-format-14 --dry-run --Werror     (tests/static-analysis.sh format)
#   cppcheck      cppcheck, suppressions with reasons    (tests/static-analysis.sh cppcheck)
#   asan build    g++, AddressSanitizer + UndefinedBehaviorSanitizer, warnings as errors
#   asan tests    the whole CTest suite (unit and integration tests; the integration tests run
#                 the instrumented binary), every sanitizer report fails it
#   tsan build    g++, ThreadSanitizer, the unit tests only        } built while the asan
#   fuzz build    clang-16 libFuzzer targets, ASan + UBSan         } tests run, niced
#   tsan tests    the unit tests of the threaded code under ThreadSanitizer
#   fuzz          each libFuzzer target for FUZZ_SECONDS (default 5) from its seed corpus
#   clang-tidy    the checked-in .clang-tidy over src/       (tests/static-analysis.sh tidy)
# Every step runs, even after a failure (one CI run shows every problem; a step whose build
# failed is skipped); a summary with each step's time follows, and the exit status is 1 if
# any step failed.
#   bash tests/run-all.sh [ctest arguments]
# Build trees: BUILD_DIR (default build-test: the ASan + UBSan build), build-test-tsan and
# build-test-fuzz next to it. Optimisation for these CI builds: OPT_FLAGS for the ASan build
# (default "-O0 -g1": under ASan + UBSan half the compile time of -O1, a sixth of -O2 -g's;
# the suite mostly waits on real peers, so the slower code costs it little; reports keep file
# and line numbers), TSAN_OPT_FLAGS (default "-O0 -g1") and FUZZ_OPT_FLAGS (default "-O1 -g1":
# the fuzzers run for seconds and want speed). FUZZ_SECONDS per fuzz target (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build-test}
export OPT_FLAGS=${OPT_FLAGS:-"-O0 -g1"}
export BUILD_DIR_ASAN=$build_dir BUILD_DIR_TSAN=$build_dir-tsan
fuzz_dir=$build_dir-fuzz
fuzz_seconds=${FUZZ_SECONDS:-5}
mkdir -p "$build_dir"
summary=$(pwd)/$build_dir/run-all-summary.txt
: >"$summary"
started=$SECONDS

# step NAME COMMAND...: prints a header, runs COMMAND, records NAME, seconds and ok/FAILED in
# the summary; returns COMMAND's status.
step() {
  local name=$1
  shift
  local start=$SECONDS result=ok
  echo
  echo "==> [$name] $*"
  "$@" || result=FAILED
  printf '%-12s %5d s  %s\n' "$name" $((SECONDS - start)) "$result" >>"$summary"
  echo "==> [$name] $result ($((SECONDS - start)) s)"
  [ "$result" = ok ]
}

# skip NAME WHY: records a step that could not run.
skip() {
  printf '%-12s %5s    %s\n' "$1" - "SKIPPED ($2)" >>"$summary"
  echo "==> [$1] SKIPPED ($2)"
}

# Without the packages nothing else can run.
step deps bash tests/install-test-deps.sh || { cat "$summary"; exit 1; }

step format bash tests/static-analysis.sh format || true
step cppcheck bash tests/static-analysis.sh cppcheck || true

asan_built=no
step "asan build" bash tests/sanitize.sh asan-build && asan_built=yes

# The test suite is mostly waiting on real peers (about a third of one core), so the other
# two builds run meanwhile, niced so that they take only what the tests leave; their output
# follows the tests' output.
background_log=$(pwd)/$build_dir/run-all-background.log
rm -f "$build_dir/.tsan-built" "$build_dir/.fuzz-built"
(
  # -O0: half the compile time of -O1; ThreadSanitizer finds the same races.
  step "tsan build" env OPT_FLAGS="${TSAN_OPT_FLAGS:-"-O0 -g1"}" nice -n 15 \
    bash tests/sanitize.sh tsan-build && touch "$build_dir/.tsan-built" || true
  step "fuzz build" env BUILD_DIR="$fuzz_dir" FUZZ_STEP=build OPT_FLAGS="${FUZZ_OPT_FLAGS:-"-O1 -g1"}" \
    nice -n 15 bash fuzz/run.sh \
    && touch "$build_dir/.fuzz-built" || true
) >"$background_log" 2>&1 &
background=$!

if [ "$asan_built" = yes ]; then
  step "asan tests" bash tests/sanitize.sh asan-test "$@" || true
else
  skip "asan tests" "asan build failed"
fi

wait "$background" || true
echo
echo "==> output of the builds made during the tests:"
cat "$background_log"

if [ -f "$build_dir/.tsan-built" ]; then
  step "tsan tests" bash tests/sanitize.sh tsan-test || true
else
  skip "tsan tests" "tsan build failed"
fi
if [ -f "$build_dir/.fuzz-built" ]; then
  step fuzz env BUILD_DIR="$fuzz_dir" FUZZ_STEP=run bash fuzz/run.sh "$fuzz_seconds" || true
else
  skip fuzz "fuzz build failed"
fi
step clang-tidy env BUILD_DIR="$build_dir-analysis" bash tests/static-analysis.sh tidy || true

echo
echo "==> summary ($((SECONDS - started)) s in all)"
cat "$summary"
if grep -q 'FAILED\|SKIPPED' "$summary"; then
  echo "==> run-all FAILED" >&2
  exit 1
fi
echo "==> run-all passed"
