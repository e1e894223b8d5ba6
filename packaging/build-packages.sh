#!/usr/bin/env bash
# Builds crashmail's packages with CPack:
#   crashmail_<version>-1_<arch>.deb    Debian package (Depends computed by dpkg-shlibdeps)
#   crashmail-<version>-Linux.tar.gz    binary tarball (bin/, share/man/man1/, share/doc/crashmail/)
#   crashmail-<version>-src.tar.gz      source tarball (the source tree without build trees)
#
#   packaging/build-packages.sh [--build-dir DIR] [OUTPUT_DIR]
#
# OUTPUT_DIR (default: build-pkg/ in the repository) receives the packages. Without
# --build-dir, a Release build (tests off) is configured and built in OUTPUT_DIR/build; with
# --build-dir, that already configured build tree is brought up to date and packaged.
# Needs cmake, a C++ toolchain, dpkg-dev and file (packaging/install-deps.sh).
# Prints the path of each package on stdout, one a line, after the progress on stderr.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir=""
out_dir=""

usage() {
    echo "usage: packaging/build-packages.sh [--build-dir DIR] [OUTPUT_DIR]" >&2
    exit 64
}

while [ $# -gt 0 ]; do
    case "$1" in
        --build-dir) [ $# -ge 2 ] || usage; build_dir="$2"; shift 2 ;;
        --build-dir=*) build_dir="${1#--build-dir=}"; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) usage ;;
        *) [ -z "$out_dir" ] || usage; out_dir="$1"; shift ;;
    esac
done
out_dir="${out_dir:-$repo/build-pkg}"

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-packages: error: %s\n' "$*" >&2; exit 1; }

for tool in cmake cpack dpkg-deb dpkg-shlibdeps dpkg-buildflags file; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing (run packaging/install-deps.sh; dpkg-shlibdeps is in dpkg-dev)"
done

mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

if [ -z "$build_dir" ]; then
    build_dir="$out_dir/build"
    generator=()
    if command -v ninja >/dev/null && [ ! -f "$build_dir/CMakeCache.txt" ]; then
        generator=(-G Ninja)
    fi
    # Debian's hardening flags (dpkg-buildflags, all of them: fortify, stack protector, PIE,
    # relro and bindnow), as a Debian package build would use; CMake reads CXXFLAGS and
    # LDFLAGS when it configures a new tree.
    export DEB_BUILD_MAINT_OPTIONS=hardening=+all
    step "configuring a Release build in $build_dir (dpkg-buildflags hardening)"
    CXXFLAGS="$(cd "$repo" && dpkg-buildflags --get CPPFLAGS) $(cd "$repo" &&
        dpkg-buildflags --get CXXFLAGS)" \
    LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
        cmake -S "$repo" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_TESTING=OFF >&2
    step "building"
    cmake --build "$build_dir" --target crashmail -j "$(nproc)" >&2
fi
[ -f "$build_dir/CPackConfig.cmake" ] ||
    die "$build_dir is not a configured crashmail build tree (no CPackConfig.cmake)"
build_dir="$(cd "$build_dir" && pwd)"
# CPack packages what the tree holds (with Ninja it builds nothing first): bring the binary
# and the generated files (the gzipped man page, the changelog) up to date.
step "bringing $build_dir up to date"
cmake --build "$build_dir" --target crashmail -j "$(nproc)" >&2

if command -v git >/dev/null && git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 &&
   [ -n "$(git -C "$repo" status --porcelain --untracked-files=normal 2>/dev/null)" ]; then
    step "note: the work tree has uncommitted changes; the source tarball includes them"
fi

# CPack writes its staging tree under OUTPUT_DIR/_CPack_Packages; it goes away at the end.
cleanup() { rm -rf "$out_dir/_CPack_Packages"; }
trap cleanup EXIT

step "packaging DEB and TGZ into $out_dir"
cpack --config "$build_dir/CPackConfig.cmake" -G "DEB;TGZ" -B "$out_dir" >&2
step "packaging the source tarball"
cpack --config "$build_dir/CPackSourceConfig.cmake" -G TGZ -B "$out_dir" >&2

version="$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")"
[ -n "$version" ] || die "no CPACK_PACKAGE_VERSION in $build_dir/CPackConfig.cmake"
found=0
for package in "$out_dir"/crashmail_"$version"-*.deb "$out_dir"/crashmail-"$version"-*.tar.gz; do
    if [ -f "$package" ]; then
        echo "$package"
        found=$((found + 1))
    fi
done
[ "$found" -ge 3 ] || die "expected 3 packages for version $version in $out_dir, found $found"
