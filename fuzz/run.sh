#!/usr/bin/env bash
# Builds the libFuzzer targets (clang 16+, AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs each for a bounded time, one after the other.
#   bash fuzz/run.sh [SECONDS] [TARGET...]     SECONDS per target (default 60); targets
#     default to all this checkout has: fuzz_reader fuzz_event fuzz_mail, and fuzz_xmlrpc and
#     fuzz_templates when src/supervisor/xmlrpc.cpp and src/alert/templates.cpp exist.
#   BUILD_DIR (default build-fuzz), CXX (default: the newest clang++-NN >= 16 on PATH).
#   FUZZ_STEP=build|run|all (default all): only build, or only run what is built
#     (tests/run-all.sh builds while other tests run). OPT_FLAGS (default: RelWithDebInfo's
#     -O2 -g): optimisation and debug flags, e.g. "-O1 -g1".
# Seeds are fuzz/corpus/<name> (fuzz_reader reads fuzz/corpus/reader), read only; inputs that
# reach new code are kept in BUILD_DIR/fuzz-corpus/<name>, so later runs start from there.
# A crash leaves its input in BUILD_DIR/fuzz-crashes/<target>/ and fails the script; replay it
# with `BUILD_DIR/fuzz/<target> FILE` and turn it into a unit test.
# Exits 77 when no suitable clang is installed (Debian 12: clang-16 libclang-rt-16-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-60}
if [ $# -gt 0 ]; then
  shift
fi
case "$seconds" in
  '' | *[!0-9]*)
    echo "usage: bash fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 64
    ;;
esac

cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for version in 19 18 17 16; do
    if command -v "clang++-$version" >/dev/null; then
      cxx=clang++-$version
      break
    fi
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz: clang 16 or newer is needed (Debian 12: apt-get install clang-16 libclang-rt-16-dev)" >&2
  exit 77
fi

build_dir=${BUILD_DIR:-build-fuzz}
step=${FUZZ_STEP:-all}
case "$step" in
  build | run | all) ;;
  *)
    echo "fuzz: FUZZ_STEP must be build, run or all" >&2
    exit 64
    ;;
esac
opt_flags=()
if [ -n "${OPT_FLAGS:-}" ]; then
  opt_flags=("-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$OPT_FLAGS -DNDEBUG")
fi
generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ "$step" != run ]; then
  echo "==> configuring $build_dir with $cxx"
  cmake -S . -B "$build_dir" "${generator[@]}" "${launcher[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "${opt_flags[@]}" -DCRASHMAIL_FUZZ=ON -DBUILD_TESTING=OFF \
    -DENABLE_SANITIZER_ADDRESS=ON -DENABLE_SANITIZER_UNDEFINED_BEHAVIOR=ON >"$log" 2>&1 ||
    { cat "$log"; exit 1; }
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets <"$build_dir/fuzz/targets.txt"
fi
if [ "$step" != run ]; then
  echo "==> building ${targets[*]}"
  cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}"
fi
if [ "$step" = build ]; then
  exit 0
fi

# A report must stop the run (libFuzzer then saves the input); leaks count as crashes.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Stacks with function names and lines (Debian's clang-16 has no llvm-symbolizer of its own).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi

failed=()
printf '%-16s %10s %8s %8s %8s  %s\n' target runs "exec/s" cov corpus result
for target in "${targets[@]}"; do
  name=${target#fuzz_}
  seeds=fuzz/corpus/$name
  corpus=$build_dir/fuzz-corpus/$name
  crashes=$build_dir/fuzz-crashes/$target
  target_log=$build_dir/fuzz-logs/$target.log
  mkdir -p "$corpus" "$crashes" "$(dirname "$target_log")"
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
    -print_final_stats=1 -artifact_prefix="$crashes/")
  case "$name" in
    reader | event) options+=(-dict=fuzz/protocol.dict) ;;
    xmlrpc) options+=(-dict=fuzz/xmlrpc.dict) ;;
  esac
  # The listener logs ignored events to stderr; libFuzzer keeps its own output.
  options+=(-close_fd_mask=2)
  result=ok
  if ! "$build_dir/fuzz/$target" "${options[@]}" "$corpus" "$seeds" >"$target_log" 2>&1; then
    result=CRASH
    failed+=("$target")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$target_log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$target_log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$target_log" | tail -1 | cut -d' ' -f2)
  size=$(find "$corpus" -type f | wc -l)
  printf '%-16s %10s %8s %8s %8s  %s\n' "$target" "${runs:-?}" "${speed:-?}" "${cov:-?}" \
    "$size" "$result"
  if [ "$result" != ok ]; then
    grep -E 'ERROR|SUMMARY|#[0-9]+ .* in |Test unit written' "$target_log" | head -40 >&2 || true
    echo "    full log: $root/$target_log" >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "==> crashes in: ${failed[*]} (inputs in $build_dir/fuzz-crashes/)" >&2
  exit 1
fi
echo "==> no crash in ${#targets[@]} target(s), $seconds s each"
