#!/usr/bin/env bash
# Installs the Debian 12 packages crashmail needs to BUILD (compile, man page, packages), when
# missing. Test tools are not here: tests/install-test-deps.sh installs them (it calls this
# script with its own list, so that one `apt-get update` serves both).
#
#   packaging/install-deps.sh                 the build dependencies
#   packaging/install-deps.sh PACKAGE...      the build dependencies and these packages
#   packaging/install-deps.sh --list          print the build dependencies, one a line
#
# Runs `apt-get update` once, and only when something is missing. Needs root (or sudo);
# without either it exits 77 naming what is missing. While it installs, daemons are not
# started (a temporary /usr/sbin/policy-rc.d, unless the machine has one already); disabling
# what a package enabled is the caller's business (tests/install-test-deps.sh does it).
set -euo pipefail

build_packages=(
  # compiler and build system
  g++ cmake ninja-build pkg-config
  # libraries
  libcurl4-openssl-dev libcli11-dev libfmt-dev catch2 nlohmann-json3-dev libssl-dev
  libpugixml-dev
  # packages: CPack DEB computes Depends with dpkg-shlibdeps (dpkg-dev) and needs `file`;
  # the man page is gzipped at configure time
  dpkg-dev file gzip
)

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${build_packages[@]}"
  exit 0
fi
case "${1:-}" in
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "usage: packaging/install-deps.sh [--list | PACKAGE...]" >&2; exit 64 ;;
esac

packages=("${build_packages[@]}" "$@")

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for package in "${packages[@]}"; do
  if ! installed "$package"; then
    case " ${missing[*]} " in *" $package "*) ;; *) missing+=("$package") ;; esac
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

# No daemon is started by the packages' maintainer scripts while we install (invoke-rc.d and
# deb-systemd-invoke ask policy-rc.d; 101 = "action not allowed"). A policy-rc.d that the
# machine already has (containers often have one) is left as it is.
policy=/usr/sbin/policy-rc.d
made_policy=no
restore_policy() {
  if [ "$made_policy" = yes ]; then
    $sudo rm -f "$policy"
  fi
}
trap restore_policy EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# crashmail install-deps.sh: no daemon starts while it installs\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 0755 "$policy"
  made_policy=yes
fi

echo "==> installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt or dpkg at work (a second engineer, unattended-upgrades): wait for its lock.
apt_options=(-o DPkg::Lock::Timeout=600)
$sudo apt-get "${apt_options[@]}" update -qq
$sudo apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${missing[@]}" \
  >/dev/null
still=()
for package in "${missing[@]}"; do
  installed "$package" || still+=("$package")
done
if [ ${#still[@]} -gt 0 ]; then
  echo "install-deps: apt-get did not install: ${still[*]}" >&2
  exit 1
fi
echo "==> installed ${#missing[@]} package(s)"
