#!/bin/sh
# Scenario a (20,000 events, no crashes) for two crashmail builds, alternating, so that a
# change's cost per event is measured against the code before it on the same machine at the
# same time. Prints the driver's JSON line per run.
#
#   bench/compare.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]   (Release builds, default 5 rounds)
set -eu
old=$1
new=$2
rounds=${3:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SUPERVISOR_SERVER_URL=unix:///nonexistent SUPERVISOR_PROCESS_NAME=bench
unset SUPERVISOR_GROUP_NAME
i=0
while [ "$i" -lt "$rounds" ]; do
    for build in "$old" "$new"; do
        spool=$(mktemp -d "$work/spool-XXXXXX")
        "$new/bench/protocol_driver" --events 20000 --crash-share 0 --label "$build" \
            --stderr "$work/stderr" -- "$build/crashmail" -a -m ops@example.com \
            --smtp smtp://127.0.0.1:9 --timeout 2 --spool "$spool" | tail -n 1
    done
    i=$((i + 1))
done
