#!/usr/bin/env bash
# Renders man/crashmail.1 from man/crashmail.1.scd with scdoc (Debian package `scdoc`).
# The rendered page is committed so that building and packaging need no doc toolchain.
set -euo pipefail
cd "$(dirname "$0")"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)} scdoc < crashmail.1.scd > crashmail.1
groff -man -ww -z crashmail.1
echo "man/crashmail.1 rendered"
