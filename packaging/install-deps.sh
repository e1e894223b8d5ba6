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
  # tests: a real MTA (tests/integration/test_postfix.py starts and stops it on 127.0.0.1)
  postfix
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

installing_postfix=no
for package in "${missing[@]}"; do
  [ "$package" = postfix ] && installing_postfix=yes
done

echo "==> installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "$installing_postfix" = yes ]; then
  # Postfix asks what kind of mail server this is: a local-only one (no mail leaves the
  # machine), named localhost. test_postfix.py sets its own loopback-only main.cf for the test.
  printf '%s\n' "postfix postfix/main_mailer_type select Local only" \
    "postfix postfix/mailname string localhost" | $sudo debconf-set-selections
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ "$installing_postfix" = yes ]; then
  # The package may start (invoke-rc.d) and enable its daemon. No mail server is left
  # running or started at boot: test_postfix.py starts Postfix itself and stops it again.
  if $sudo postfix status >/dev/null 2>&1; then
    $sudo postfix stop >/dev/null 2>&1 || true
  fi
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now --quiet postfix.service || true
  elif command -v update-rc.d >/dev/null; then
    $sudo update-rc.d postfix disable >/dev/null 2>&1 || true
  fi
  if $sudo postfix status >/dev/null 2>&1; then
    echo "install-deps: postfix is still running after 'postfix stop'" >&2
    exit 1
  fi
fi
echo "==> installed ${#missing[@]} package(s)"
