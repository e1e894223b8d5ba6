#!/usr/bin/env bash
# Static analysis, each step must be clean:
#   clang-tidy    with the checked-in .clang-tidy, over src/ (compile_commands.json of a
#                 configured build; nothing is compiled)
#   cppcheck      --enable=warning,performance,portability over src/, tests/unit/, bench/, fuzz/
#                 (suppressions, each with its reason: tests/cppcheck-suppressions.txt)
#   clang-format  --dry-run --Werror over src/, tests/unit/, bench/, fuzz/
#   bash tests/static-analysis.sh [tidy|cppcheck|format|all]     (default all)
#   BUILD_DIR (default build-analysis), CLANG_TIDY, CLANG_FORMAT to choose the tools.
# Exits 77 when a tool is missing (Debian 12: clang-tidy-16 cppcheck clang-format-14).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case "$mode" in
  tidy | cppcheck | format | all) ;;
  *)
    echo "usage: bash tests/static-analysis.sh [tidy|cppcheck|format|all]" >&2
    exit 64
    ;;
esac

# first_tool NAME...: the first of NAME... on PATH, or nothing.
first_tool() {
  for tool in "$@"; do
    if command -v "$tool" >/dev/null; then
      echo "$tool"
      return
    fi
  done
}

# clang-tidy before 16 cannot parse libstdc++ 12's std::expected (see fuzz/CMakeLists.txt).
clang_tidy=${CLANG_TIDY:-$(first_tool clang-tidy-19 clang-tidy-18 clang-tidy-17 clang-tidy-16)}
clang_format=${CLANG_FORMAT:-$(first_tool clang-format-14 clang-format)}
missing=()
if [ "$mode" = all ] || [ "$mode" = tidy ]; then
  [ -n "$clang_tidy" ] || missing+=(clang-tidy-16)
fi
if [ "$mode" = all ] || [ "$mode" = cppcheck ]; then
  command -v cppcheck >/dev/null || missing+=(cppcheck)
fi
if [ "$mode" = all ] || [ "$mode" = format ]; then
  [ -n "$clang_format" ] || missing+=(clang-format-14)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "static-analysis: missing tools; Debian 12: apt-get install ${missing[*]}" >&2
  exit 77
fi

# The C++ files we own: sources, unit tests, benchmarks and fuzz targets.
mapfile -t sources < <(find src tests/unit bench fuzz -type f \( -name '*.cpp' -o -name '*.hpp' \) \
  2>/dev/null | sort)
status=0

if [ "$mode" = all ] || [ "$mode" = format ]; then
  echo "==> clang-format ($("$clang_format" --version | grep -o 'version [0-9.]*')): ${#sources[@]} files"
  "$clang_format" --dry-run --Werror "${sources[@]}" || status=1
fi

if [ "$mode" = all ] || [ "$mode" = cppcheck ]; then
  echo "==> cppcheck ($(cppcheck --version))"
  # --std=c++20: cppcheck 2.10 knows nothing newer.
  cppcheck_dirs=(src tests/unit fuzz)
  if [ -d bench ]; then
    cppcheck_dirs+=(bench)
  fi
  cppcheck --quiet --error-exitcode=1 --inline-suppr \
    --enable=warning,performance,portability --std=c++20 --language=c++ \
    --suppressions-list=tests/cppcheck-suppressions.txt \
    -I src -j "$(nproc)" \
    "${cppcheck_dirs[@]}" || status=1
fi

if [ "$mode" = all ] || [ "$mode" = tidy ]; then
  build_dir=${BUILD_DIR:-build-analysis}
  generator=()
  if command -v ninja >/dev/null; then
    generator=(-G Ninja)
  fi
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$log" 2>&1 || { cat "$log"; exit 1; }
  echo "==> $("$clang_tidy" --version | grep -o 'LLVM version [0-9.]*' | sed 's/LLVM/clang-tidy/')"
  # CMake asks g++ for -std=c++23, which clang 16 and 17 spell c++2b; the last flag wins.
  extra=(--extra-arg=-std=c++2b)
  version=$("$clang_tidy" --version | grep -o 'version [0-9]*' | grep -o '[0-9]*$')
  if [ "$version" -lt 19 ]; then
    # libstdc++ 12 declares std::expected only when __cpp_concepts >= 202002L, and clang
    # before 19 reports 201907L although clang 16 implements all that <expected> uses.
    extra+=(--extra-arg=-Wno-builtin-macro-redefined --extra-arg=-U__cpp_concepts
      --extra-arg=-D__cpp_concepts=202002L)
  fi
  mapfile -t tidy_files < <(find src -type f -name '*.cpp' | sort)
  # Two at a time: clang-tidy's memory and the 2-core machine. xargs fails if one fails.
  printf '%s\n' "${tidy_files[@]}" |
    xargs -P "$(nproc)" -n 1 "$clang_tidy" -p "$build_dir" --quiet "${extra[@]}" || status=1
fi

if [ "$status" -ne 0 ]; then
  echo "==> static analysis FAILED" >&2
else
  echo "==> static analysis clean"
fi
exit "$status"
