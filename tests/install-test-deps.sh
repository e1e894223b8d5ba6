#!/usr/bin/env bash
# Installs what crashmail's tests need on Debian 12, when missing: the build dependencies
# (packaging/install-deps.sh) and the test tools below, with one `apt-get update` for both.
# tests/run-all.sh (the CI command) runs it as its first step.
#
#   bash tests/install-test-deps.sh            build and test dependencies
#   bash tests/install-test-deps.sh --list     print the test tools, one a line
#
# Some test packages come with a daemon that Debian enables and starts: supervisor (a
# supervisord for /etc/supervisor), prometheus-alertmanager (listens on every interface),
# postfix (a mail server). The tests start their own on 127.0.0.1 and stop them, so none of
# those daemons is left running or enabled: nothing starts while the packages install, and
# afterwards each daemon of a package installed now is stopped and disabled (systemctl where
# systemd runs, else update-rc.d and the init script), and checked. A daemon of a package
# that was installed before is left alone (it may be the machine's own) with a note.
# Needs root (or sudo); exits 77 without either when something is missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

test_packages=(
  # real peers on 127.0.0.1: supervisord and supervisorctl, SMTP servers (aiosmtpd), TLS
  # certificates (openssl), Alertmanager and amtool
  supervisor python3-aiosmtpd openssl ca-certificates prometheus-alertmanager
  # a real MTA (tests/integration/test_postfix.py starts and stops it on 127.0.0.1)
  postfix
  # the package checks (tests/integration/test_package.py): lintian, the maintainer scripts
  # checked as POSIX sh
  lintian shellcheck
  # the man page: `man`, groff's warnings, scdoc to re-render it (tests/integration/test_docs.py)
  groff-base man-db scdoc
  # proof tooling (tests/run-all.sh): libFuzzer targets need clang 16 (fuzz/run.sh); static
  # analysis (tests/static-analysis.sh). g++'s ASan/UBSan/TSan runtimes come with g++.
  clang-16 libclang-rt-16-dev clang-tidy-16 clang-format-14 cppcheck
)

# The test packages that bring a daemon; each one's init script and systemd unit have the
# package's name.
daemon_packages=(supervisor prometheus-alertmanager postfix)

case "${1:-}" in
  --list) printf '%s\n' "${test_packages[@]}"; exit 0 ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "usage: bash tests/install-test-deps.sh [--list]" >&2; exit 64 ;;
esac

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

sudo=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
  sudo="sudo"
fi

new_daemons=()
old_daemons=()
for daemon in "${daemon_packages[@]}"; do
  if installed "$daemon"; then
    old_daemons+=("$daemon")
  else
    new_daemons+=("$daemon")
  fi
done

if ! installed postfix; then
  # Postfix asks what kind of mail server this is: a local-only one (no mail leaves the
  # machine), named localhost. test_postfix.py sets its own loopback-only main.cf for the test.
  if [ -n "$sudo" ] || [ "$(id -u)" -eq 0 ]; then
    printf '%s\n' "postfix postfix/main_mailer_type select Local only" \
      "postfix postfix/mailname string localhost" | $sudo debconf-set-selections
  fi
fi

bash "$repo/packaging/install-deps.sh" "${test_packages[@]}"

systemd=no
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemd=yes
fi

# running DAEMON: 0 when it runs (its own status command, which reads its pid file)
running() {
  case "$1" in
    postfix) $sudo postfix status >/dev/null 2>&1 ;;
    *)
      if [ "$systemd" = yes ]; then
        systemctl is-active --quiet "$1.service"
      elif [ -x "/etc/init.d/$1" ]; then
        $sudo "/etc/init.d/$1" status >/dev/null 2>&1
      else
        return 1
      fi
      ;;
  esac
}

# enabled DAEMON: 0 when it would start at boot
enabled() {
  if [ "$systemd" = yes ]; then
    systemctl is-enabled --quiet "$1.service" 2>/dev/null
  else
    compgen -G "/etc/rc[2345].d/S[0-9][0-9]$1" >/dev/null
  fi
}

status=0
for daemon in ${new_daemons[@]+"${new_daemons[@]}"}; do
  if [ "$systemd" = yes ]; then
    $sudo systemctl disable --now --quiet "$daemon.service" || true
  else
    if running "$daemon"; then
      if [ "$daemon" = postfix ]; then
        $sudo postfix stop >/dev/null 2>&1 || true
      else
        $sudo "/etc/init.d/$daemon" stop >/dev/null 2>&1 || true
      fi
    fi
    if command -v update-rc.d >/dev/null && [ -x "/etc/init.d/$daemon" ]; then
      $sudo update-rc.d "$daemon" disable >/dev/null 2>&1 || true
    fi
  fi
  # Some init scripts only send SIGTERM (supervisor's): give the daemon 15 s to go.
  for _ in $(seq 1 30); do
    running "$daemon" || break
    sleep 0.5
  done
  if running "$daemon"; then
    echo "install-test-deps: $daemon still runs after stopping it" >&2
    status=1
  elif enabled "$daemon"; then
    echo "install-test-deps: $daemon is still enabled at boot after disabling it" >&2
    status=1
  else
    echo "==> $daemon: installed for the tests, stopped and disabled"
  fi
done
for daemon in ${old_daemons[@]+"${old_daemons[@]}"}; do
  if running "$daemon" || enabled "$daemon"; then
    echo "==> note: $daemon was installed before and is running or enabled; left alone" \
      "(the tests start their own on 127.0.0.1)"
  fi
done
exit $status
