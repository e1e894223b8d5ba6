#!/usr/bin/env bash
# Runs the tests under the sanitizers (g++, Debian's libasan/libubsan/libtsan):
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer (with LeakSanitizer): the whole CTest
#         suite, unit and integration tests (the integration tests run the instrumented binary)
#   tsan  ThreadSanitizer: the unit tests of the code that runs threads: the delivery code, the
#         discard monitor, the crash-loop monitor's clock and the event loop beside it
#         ([dispatcher] [spool] [sendmail] [subprocess] [smtp] [webhook] [discard_monitor]
#         [crash_loop] [listener] [outbox] [crash_details] [channel_health] [retry_failed])
#   bash tests/sanitize.sh [asan|tsan|all]        (default all)
#   bash tests/sanitize.sh asan-build|asan-test|tsan-build|tsan-test   one half of a mode
#     (tests/run-all.sh builds the TSan tree while the ASan tests run)
#   BUILD_DIR_ASAN=build-asan BUILD_DIR_TSAN=build-tsan (defaults); extra arguments after the
#   mode go to ctest in asan mode, e.g. `bash tests/sanitize.sh asan -R unit:`.
#   CRASHMAIL_WERROR (default ON): warnings are errors, as in every CI build.
#   OPT_FLAGS (default: CMake's RelWithDebInfo, -O2 -g): optimisation and debug flags, e.g.
#     "-O0 -g1" (tests/run-all.sh: a sixth of the compile time, still line numbers in reports).
# Every sanitizer report is written to a file and makes the script fail, so a report from a
# child process (the crashmail binary run by an integration test) is not lost in a log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

mode=${1:-all}
if [ $# -gt 0 ]; then
  shift
fi
case "$mode" in
  asan | tsan | all | asan-build | asan-test | tsan-build | tsan-test) ;;
  *)
    echo "usage: bash tests/sanitize.sh [asan|tsan|all|asan-build|asan-test|tsan-build|tsan-test] [ctest arguments]" >&2
    exit 64
    ;;
esac

generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# absolute DIR: DIR, relative to the source root unless absolute.
absolute() {
  case "$1" in
    /*) echo "$1" ;;
    *) echo "$root/$1" ;;
  esac
}

# wants STEP: whether this run does STEP (asan-build, asan-test, tsan-build, tsan-test).
wants() {
  [ "$mode" = all ] || [ "$mode" = "$1" ] || [ "$mode" = "${1%-*}" ]
}

opt_flags=()
if [ -n "${OPT_FLAGS:-}" ]; then
  opt_flags=("-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$OPT_FLAGS -DNDEBUG")
fi

# build DIR TARGET OPTIONS...: configures quietly (the log is shown on failure), then builds
# TARGET (all: everything). Warnings are fatal (CRASHMAIL_WERROR); CMakeLists.txt turns off
# g++ 12's false -Wmaybe-uninitialized under sanitizers.
build() {
  local dir=$1 target=$2
  shift 2
  local log
  log=$(mktemp)
  echo "==> configuring $dir ($*)"
  if ! cmake -S "$root" -B "$dir" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${opt_flags[@]}" \
    -DCRASHMAIL_WERROR="${CRASHMAIL_WERROR:-ON}" "$@" >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "==> building $target in $dir"
  cmake --build "$dir" -j "$(nproc)" --target "$target"
}

# check_reports DIR: fails (printing them) when the sanitizers left any report in DIR.
check_reports() {
  local dir=$1
  local reports
  reports=$(find "$dir" -type f -name 'report*' 2>/dev/null | sort)
  if [ -n "$reports" ]; then
    echo "==> sanitizer reports:" >&2
    for report in $reports; do
      echo "---- $report" >&2
      cat "$report" >&2
    done
    return 1
  fi
}

status=0

asan_dir=$(absolute "${BUILD_DIR_ASAN:-build-asan}")
tsan_dir=$(absolute "${BUILD_DIR_TSAN:-build-tsan}")

if wants asan-build; then
  build "$asan_dir" all -DENABLE_SANITIZER_ADDRESS=ON -DENABLE_SANITIZER_UNDEFINED_BEHAVIOR=ON
fi

if wants asan-test; then
  dir=$asan_dir
  reports="$dir/sanitizer-reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  # log_path: one file per reporting process. exitcode/halt_on_error: a report fails the
  # test that triggered it as well.
  export ASAN_OPTIONS="log_path=$reports/report-asan:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:abort_on_error=0"
  export UBSAN_OPTIONS="log_path=$reports/report-ubsan:print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="log_path=$reports/report-lsan"
  echo "==> testing under AddressSanitizer + UndefinedBehaviorSanitizer"
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 300 "$@") || status=1
  check_reports "$reports" || status=1
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

if wants tsan-build; then
  # Only the unit tests run under ThreadSanitizer.
  build "$tsan_dir" unit_tests -DENABLE_SANITIZER_THREAD=ON
fi

if wants tsan-test; then
  dir=$tsan_dir
  reports="$dir/sanitizer-reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  export TSAN_OPTIONS="log_path=$reports/report-tsan:halt_on_error=1:second_deadlock_stack=1"
  echo "==> testing the threaded code under ThreadSanitizer"
  # Catch2 ORs tags separated by commas.
  "$dir/tests/unit_tests" "[dispatcher],[spool],[sendmail],[subprocess],[smtp],[webhook],[discard_monitor],[crash_loop],[listener],[outbox],[crash_details],[channel_health],[retry_failed]" || status=1
  check_reports "$reports" || status=1
  unset TSAN_OPTIONS
fi

if [ "$status" -ne 0 ]; then
  echo "==> sanitizer run FAILED" >&2
else
  echo "==> sanitizer run clean"
fi
exit "$status"
