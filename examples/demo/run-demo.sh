#!/usr/bin/env bash
# crashmail demo: set up, build, and watch crashmail report a real crash.
#
#   bash examples/demo/run-demo.sh
#
# 1. installs missing Debian packages: the build dependencies and supervisor
#    (packaging/install-deps.sh supervisor; asks sudo when needed; supervisor's own
#    supervisord service is stopped and disabled when this installs it),
# 2. builds crashmail into build/ with CMake,
# 3. starts a real supervisord in a temporary directory with a program that crashes and
#    crashmail as its event listener, delivering to a local catcher (a sendmail stand-in
#    that stores each message in a directory),
# 4. prints the alert that arrived, stops everything and exits 0.
# Nothing is installed into the system besides the Debian packages; nothing outlives the demo.

set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$repo/build"
supervisord_bin="${SUPERVISORD:-/usr/bin/supervisord}"
timeout_s=30

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'run-demo: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. dependencies
if [ -f "$repo/packaging/install-deps.sh" ]; then
    step "Checking build and demo dependencies (packaging/install-deps.sh supervisor)"
    had_supervisor=no
    dpkg-query -W -f='${Status}' supervisor 2>/dev/null | grep -q "install ok installed" &&
        had_supervisor=yes
    bash "$repo/packaging/install-deps.sh" supervisor
    if [ "$had_supervisor" = no ]; then
        # Debian's supervisor enables a system supervisord; the demo runs its own.
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now --quiet supervisor.service || true
        else
            $sudo /etc/init.d/supervisor stop >/dev/null 2>&1 || true
            $sudo update-rc.d supervisor disable >/dev/null 2>&1 || true
        fi
        echo "    installed supervisor; its system service is stopped and disabled"
    fi
fi
command -v cmake >/dev/null || die "cmake is missing (apt-get install cmake)"
[ -x "$supervisord_bin" ] || die "$supervisord_bin is missing (apt-get install supervisor)"

# ---------------------------------------------------------------- 2. build
step "Building crashmail into build/"
build_log="$(mktemp)"
if ! { cmake -S "$repo" -B "$build" &&
       cmake --build "$build" --target crashmail -j "$(nproc)"; } >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    die "the build failed (output above)"
fi
rm -f "$build_log"
crashmail="$build/crashmail"
[ -x "$crashmail" ] || die "the build did not produce $crashmail"
echo "    built $crashmail ($("$crashmail" --version 2>/dev/null | head -n 1 || true))"

# ---------------------------------------------------------------- 3. supervisord
demo="$(mktemp -d "${TMPDIR:-/tmp}/crashmail-demo.XXXXXX")"
sup_pid=""
cleanup() {
    local status=$?
    if [ -n "$sup_pid" ] && kill -0 "$sup_pid" 2>/dev/null; then
        kill -TERM "$sup_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do  # up to 15 s for supervisord to stop its children
            kill -0 "$sup_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$sup_pid" 2>/dev/null; then
            kill -KILL "$sup_pid" 2>/dev/null || true
        fi
        wait "$sup_pid" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "run-demo: kept $demo" >&2
    else
        rm -rf "$demo"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$demo/mail"

# The local catcher: stands in for /usr/sbin/sendmail and keeps each message as a file.
cat >"$demo/catch-mail" <<EOF
#!/bin/sh
# sendmail stand-in for the demo: stores the message read on stdin.
d='$demo/mail'
n="\$(date +%s%N)-\$\$"
cat >"\$d/.tmp-\$n" && mv "\$d/.tmp-\$n" "\$d/\$n.eml"
EOF
chmod +x "$demo/catch-mail"

# supervisord expands %(name)s in its config: a literal % must be written %%.
ini() { printf '%s' "$1" | sed 's/%/%%/g'; }
# Shell-style quoting that supervisord's shlex understands: plain words as they are, anything
# else in single quotes.
quote() {
    local word out=()
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+=("$word")
        else
            out+=("'${word//\'/\'\\\'\'}'")
        fi
    done
    printf '%s' "${out[*]}"
}
listener_args=(-p crashy -o '[demo]' -m ops@example.com -s "$demo/catch-mail")
if "$crashmail" --help 2>/dev/null | grep -q -- '--spool'; then
    listener_args+=(--spool "$demo/spool")  # keep the demo's outbox in the demo directory
fi
listener_cmd="$(quote "$crashmail" "${listener_args[@]}")"

cat >"$demo/supervisord.conf" <<EOF
[unix_http_server]
file=$(ini "$demo")/supervisor.sock

[supervisord]
nodaemon=true
logfile=$(ini "$demo")/supervisord.log
pidfile=$(ini "$demo")/supervisord.pid
childlogdir=$(ini "$demo")
identifier=crashmail-demo

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$(ini "$demo")/supervisor.sock

; A program that works for a second, then crashes (exit status 3 is not expected).
[program:crashy]
command=/bin/sh -c 'echo "crashy: working"; sleep 1; echo "crashy: out of cheese" >&2; exit 3'
autorestart=false
startsecs=0
startretries=0

; crashmail watches crashy and mails ops@example.com through the local catcher.
[eventlistener:crashmail]
command=$(ini "$listener_cmd")
events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL
buffer_size=100
priority=-1
autorestart=true
stderr_logfile=$(ini "$demo")/crashmail.stderr.log
EOF

step "Starting supervisord (config: $demo/supervisord.conf)"
sed -n '/^\[program:crashy\]/,$p' "$demo/supervisord.conf" | sed 's/^/    /'
"$supervisord_bin" -n -c "$demo/supervisord.conf" >"$demo/supervisord.out" 2>&1 &
sup_pid=$!

step "Waiting for crashy to crash and for crashmail's alert (at most ${timeout_s}s)"
deadline=$((SECONDS + timeout_s))
mail=""
while [ -z "$mail" ]; do
    mail="$(find "$demo/mail" -name '*.eml' -print -quit)"
    [ -n "$mail" ] && break
    if ! kill -0 "$sup_pid" 2>/dev/null; then
        cat "$demo/supervisord.out" "$demo/supervisord.log" >&2 2>/dev/null || true
        die "supervisord stopped unexpectedly (its output is above)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "--- supervisord.log ---" >&2
        cat "$demo/supervisord.log" >&2 2>/dev/null || true
        echo "--- crashmail's stderr ---" >&2
        cat "$demo/crashmail.stderr.log" >&2 2>/dev/null || true
        die "no alert arrived within ${timeout_s}s"
    fi
    sleep 0.2
done
grep -h 'exited: crashy' "$demo/supervisord.log" | sed 's/^/    supervisord: /' || true

step "The alert crashmail delivered (as the mail system receives it):"
echo
sed 's/\r$//; s/^/    /' "$mail"
echo

step "What crashmail logged (its stderr):"
sed 's/^/    /' "$demo/crashmail.stderr.log" 2>/dev/null || true

step "Stopping supervisord"
kill -TERM "$sup_pid"
wait "$sup_pid" 2>/dev/null || true
sup_pid=""
echo "    done. Next: README.md shows how to point crashmail at your real mail system."
