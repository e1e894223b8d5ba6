#!/bin/sh
# Runs every crashmail benchmark and prints one table (see BENCHMARKS.md).
#
#   bench/run.sh [--keep] [--rounds N] [--bursts-only] [--burst N] [--burst-rounds R]
#                [--compare OLD_CRASHMAIL] [--load [--load-jobs J]]
#                [--quiet-load L [--quiet-wait S]]
#
# --bursts-only runs only the bursts of crashes (e, e-slow, e-silent, e-tmpfs) and the strace
# runs that count flushes per alert (needs strace); --burst-rounds repeats each burst and
# reports medians; --compare runs every burst with an older crashmail binary too, in
# alternation; --load runs the bursts again while a parallel build of this project (a fresh
# configure in a temporary directory, -j2) loads the machine; --quiet-load 0.7 waits (at most
# 15 min) for the 1-minute load average to drop below 0.7 before the bursts.
#
# Builds crashmail and bench/ in Release into build-bench/ (configured once, rebuilt when
# sources changed), then runs bench/scenarios.py with Debian's Python (aiosmtpd, supervisor).
# Takes about two minutes on a 2-core machine after the first build. Environment: BUILD_DIR overrides build-bench.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build-bench}
python=/usr/bin/python3

for tool in cmake ninja /usr/bin/supervisord "$python"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is missing" >&2; exit 69; }
done
"$python" -c 'import aiosmtpd' 2>/dev/null ||
    { echo "bench: Debian's python3-aiosmtpd is missing" >&2; exit 69; }

if [ ! -f "$build/build.ninja" ]; then
    launcher=""
    command -v ccache >/dev/null 2>&1 && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
        $launcher >/dev/null
fi
if [ "$(cmake -L -N "$build" 2>/dev/null | sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p')" != Release ]; then
    echo "bench: $build is not a Release build; remove it or set BUILD_DIR" >&2
    exit 64
fi
log=$(mktemp)
if ! ninja -C "$build" crashmail protocol_driver minimal_listener fsync_cost rss_probe_plain \
    rss_probe_curl gap_check >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "bench: the build failed" >&2
    exit 70
fi
rm -f "$log"

# What following the pool serials (discarded events) costs per event, on its own.
"$build/bench/gap_check"
echo
exec "$python" "$here/scenarios.py" --build "$build" --json "$build/bench/last-run.json" "$@"
