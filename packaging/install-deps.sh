#!/usr/bin/env bash
# Installs the Debian 12 packages crashmail needs to build, test and package, when missing.
# Runs `apt-get update` once, and only when something is missing. Needs root (or sudo).
#   packaging/install-deps.sh          build, test and proof-tooling dependencies
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build pkg-config
  libcurl4-openssl-dev libcli11-dev libfmt-dev catch2 nlohmann-json3-dev libssl-dev
  libpugixml-dev
  # tests: real peers on 127.0.0.1
  supervisor python3-aiosmtpd prometheus-alertmanager openssl ca-certificates
  # packages: CPack DEB computes Depends with dpkg-shlibdeps (dpkg-dev) and needs `file`
  dpkg-dev file
  # man page
  groff-base man-db scdoc
  # proof tooling (tests/run-all.sh): libFuzzer targets need clang 16 (fuzz/run.sh); static
  # analysis (tests/static-analysis.sh). g++'s ASan/UBSan/TSan runtimes come with g++.
  clang-16 libclang-rt-16-dev clang-tidy-16 clang-format-14 cppcheck
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> all ${#packages[@]} Debian packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo="sudo"
  else
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 77
  fi
fi

echo "==> installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> installed ${#missing[@]} package(s)"
