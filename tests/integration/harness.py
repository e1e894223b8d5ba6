"""Shared helpers for crashmail's integration tests.

Run with Debian's /usr/bin/python3 (it sees the supervisor and aiosmtpd packages). CTest sets
CRASHMAIL_BIN to the binary under test and PYTHONPATH to this directory.

What is here:
  CRASHMAIL                 path of the crashmail binary under test
  require(*tools)           exit 77 (skipped) when an executable or Python module is missing
  wait_until(pred, ...)     poll a predicate with a deadline; AssertionError naming `what`
  tmpdir(prefix)            a temporary directory removed at exit (kept with KEEP_TMP=1)
  Supervisord               a real supervisord in a temporary directory
  program_section(...)      text of a [program:x] section
  crash_once_program(...)   a program that crashes once (exit 3 after 0.5 s by default)
  eventlistener_section(...) text of an [eventlistener:x] section running crashmail
  stderr_path(logdir, name) where eventlistener_section puts a listener's stderr
  crashmail_supports(opt)   whether `crashmail --help` lists an option (e.g. "--spool")
  mail_store(dir)           a sendmail replacement script that stores each message in dir
                            (or, with exit_status=N, fails like a broken sendmail)
  read_mails(dir)           the stored messages, parsed, in delivery order
  wait_for_mails(dir, n)    wait until n messages are stored; returns read_mails(dir)
  count_attempts(dir)       how often a failing mail_store script ran
  run_crashmail(args)       run crashmail directly (no supervisord); text stdout/stderr

Every wait is bounded; every supervisord started here is stopped at exit, even on failure.
"""

from __future__ import annotations

import atexit
import email
import email.policy
import http.client
import importlib.util
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

SUPERVISORD = "/usr/bin/supervisord"
SUPERVISORCTL = "/usr/bin/supervisorctl"
KEEP_TMP = os.environ.get("KEEP_TMP") == "1"


def _find_crashmail() -> str:
    path = os.environ.get("CRASHMAIL_BIN")
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    fallback = os.path.normpath(os.path.join(here, "..", "..", "build", "crashmail"))
    if os.access(fallback, os.X_OK):
        return fallback
    raise SystemExit("harness: set CRASHMAIL_BIN to the crashmail binary under test "
                     "(ctest does this)")


CRASHMAIL = _find_crashmail()

# What every line crashmail logs starts with: its local time, milliseconds and UTC offset,
# then " crashmail: " ("2026-12-02T17:40:01.123+01:00 crashmail: ...").
LOG_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def without_log_times(text: str) -> str:
    """crashmail's stderr with each line's leading time taken off (lines without one are kept
    as they are, so that an exact comparison still fails for them)."""
    return re.sub(r"(?m)^" + LOG_TIME + r" (?=crashmail: )", "", text)


# --------------------------------------------------------------------------- skipping


def _have(tool: str) -> bool:
    if "/" in tool:
        return os.path.isfile(tool) and os.access(tool, os.X_OK)
    if shutil.which(tool):
        return True
    try:
        return importlib.util.find_spec(tool) is not None
    except (ImportError, ValueError):
        return False


def require(*tools: str) -> None:
    """Exits 77 (CTest: skipped) with a reason on stderr unless every tool is present.

    A tool with a '/' is an executable path; otherwise it may be an executable on PATH or an
    importable Python module (e.g. "aiosmtpd")."""
    missing = [t for t in tools if not _have(t)]
    if missing:
        sys.stderr.write("SKIP: missing %s (python: %s)\n" % (", ".join(missing), sys.executable))
        sys.stderr.flush()
        os._exit(77)


# --------------------------------------------------------------------------- waiting


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Calls predicate() until it returns something truthy, and returns that value.

    Raises AssertionError mentioning `what` (and the last value) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last value: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)


# --------------------------------------------------------------------------- temp dirs

_tmpdirs: list[str] = []


def _cleanup_tmpdirs() -> None:
    for d in _tmpdirs:
        if KEEP_TMP:
            sys.stderr.write("harness: kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def tmpdir(prefix: str = "crashmail-test-") -> str:
    """Returns a new temporary directory, removed at interpreter exit unless KEEP_TMP=1."""
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


# --------------------------------------------------------------------------- XML-RPC


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host):
        # Kept in _connection (as the base class does) so that close() closes it, also when
        # a request fails.
        if self._connection[1] is None:
            self._connection = host, _UnixHTTPConnection(self._path, self._timeout)
        return self._connection[1]


# --------------------------------------------------------------------------- sections

_priorities = itertools.count(1)


def _ini_value(value) -> str:
    """Escapes '%' for supervisord's %(name)s expansion; refuses newlines."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError("newline in a supervisord config value: %r" % text)
    return text.replace("%", "%%")


def program_section(name: str, command: str, **options) -> str:
    """Text of a [program:NAME] section. `command` is shell text used as-is except that '%'
    is escaped ('%%'); options are written verbatim as key=value (True/False become
    true/false; supervisord's %(...)s expansions work there)."""
    lines = ["[program:%s]" % name, "command=%s" % _ini_value(command)]
    lines += _option_lines(options)
    return "\n".join(lines) + "\n"


def _option_lines(options: dict) -> list[str]:
    """key=value lines written as given (so process_name=x_%(process_num)02d works)."""
    lines = []
    for key, value in options.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value)
        if "\n" in text or "\r" in text:
            raise ValueError("newline in a supervisord config value: %r" % text)
        lines.append("%s=%s" % (key, text))
    return lines


def crash_once_program(name: str, status: int = 3, delay: float = 0.5, **options) -> str:
    """A program that runs `delay` seconds and exits with `status` once (no restart)."""
    opts = dict(autorestart=False, startsecs=0, startretries=0, autostart=True)
    opts.update(options)
    return program_section(name, "/bin/sh -c 'sleep %s; exit %d'" % (delay, status), **opts)


_help_cache: dict[str, str] = {}


def crashmail_supports(option: str, binary: str | None = None) -> bool:
    """True if `crashmail --help` mentions `option` (e.g. "--spool")."""
    binary = binary or CRASHMAIL
    if binary not in _help_cache:
        try:
            done = subprocess.run([binary, "--help"], capture_output=True, timeout=10)
            _help_cache[binary] = (done.stdout + done.stderr).decode("utf-8", "replace")
        except (OSError, subprocess.TimeoutExpired):
            _help_cache[binary] = ""
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), _help_cache[binary]) is not None


def _has_option(args, option: str) -> bool:
    return any(str(a) == option or str(a).startswith(option + "=") for a in args)


def eventlistener_section(name: str, args, *, logdir: str, priority: int | None = None,
                          events: str = "PROCESS_STATE_EXITED,PROCESS_STATE_FATAL",
                          environment: dict | None = None, binary: str | None = None,
                          spool: bool = True, **options) -> str:
    """Text of an [eventlistener:NAME] section running crashmail with `args` (a list; each
    is shell-quoted, '%' escaped). stderr goes to `stderr_path(logdir, name)`. Each call gets
    a distinct priority unless one is given (shared priorities cause cross-pool redelivery).
    `environment` values are double-quoted for supervisord ('%' escaped); other keyword
    options are written verbatim as key=value. When crashmail has --spool and `args` do not
    give one, `--spool LOGDIR/spool` is added (spool=False to leave it out), so no test
    touches /var/spool/crashmail."""
    if priority is None:
        priority = -next(_priorities)
    args = list(args)
    if (spool and binary is None and not _has_option(args, "--spool")
            and crashmail_supports("--spool")):
        # Never the machine's /var/spool/crashmail: state from another run (or another test
        # running at the same time with the same listener name) would leak in.
        args += ["--spool", os.path.join(logdir, "spool")]
    command = " ".join(shlex.quote(str(a)) for a in [binary or CRASHMAIL, *args])
    lines = [
        "[eventlistener:%s]" % name,
        "command=%s" % _ini_value(command),
        "events=%s" % events,
        "buffer_size=100",
        "priority=%d" % priority,
        "autostart=true",
        "autorestart=true",
        "startsecs=0",
        "stderr_logfile=%s" % _ini_value(stderr_path(logdir, name)),
        "stderr_logfile_maxbytes=0",
    ]
    if environment:
        pairs = []
        for key, value in environment.items():
            v = str(value).replace("\\", "\\\\").replace('"', '\\"')
            pairs.append('%s="%s"' % (key, _ini_value(v)))
        lines.append("environment=%s" % ",".join(pairs))
    lines += _option_lines(options)
    return "\n".join(lines) + "\n"


def stderr_path(logdir: str, name: str) -> str:
    """Where eventlistener_section puts listener NAME's stderr."""
    return os.path.join(logdir, "%s.stderr.log" % name)


# --------------------------------------------------------------------------- supervisord

_running: list["Supervisord"] = []


class Supervisord:
    """A real supervisord (`/usr/bin/supervisord -n`) with everything under one directory.

        sup = Supervisord()                       # makes its own temp dir (sup.dir)
        store = mail_store(sup.path("store"))
        sup.add(crash_once_program("crashy"))
        sup.add_listener("cm", ["-p", "crashy", "-m", "ops@example.com", "-s", store])
        with sup:                                 # start() ... stop()
            sup.wait_for_log(r"exited: crashy ")

    `sections` (text) may also be given at construction. The directory is removed at stop()
    if Supervisord made it (and KEEP_TMP is not 1); a directory passed in is left alone."""

    def __init__(self, sections: str = "", dir: str | None = None, loglevel: str = "debug"):
        self._own_dir = dir is None
        self.dir = dir if dir is not None else tempfile.mkdtemp(prefix="crashmail-sup-")
        os.makedirs(self.dir, exist_ok=True)
        self.sock_path = os.path.join(self.dir, "sup.sock")
        self.log_path = os.path.join(self.dir, "supervisord.log")
        self.conf_path = os.path.join(self.dir, "supervisord.conf")
        self.pid_path = os.path.join(self.dir, "supervisord.pid")
        self.loglevel = loglevel
        self.sections: list[str] = [sections] if sections else []
        self.proc: subprocess.Popen | None = None
        self._output_path = os.path.join(self.dir, "supervisord.out")

    # ----- configuration

    def path(self, *parts: str) -> str:
        """A path under this supervisord's directory (not created)."""
        return os.path.join(self.dir, *parts)

    def add(self, text: str) -> "Supervisord":
        """Adds config section text (before start())."""
        self.sections.append(text)
        return self

    def add_listener(self, name: str, args, **kwargs) -> str:
        """Adds a crashmail [eventlistener:NAME] (see eventlistener_section); returns the path
        of its stderr log."""
        self.add(eventlistener_section(name, args, logdir=self.dir, **kwargs))
        return stderr_path(self.dir, name)

    def config_text(self) -> str:
        d = _ini_value(self.dir)
        head = f"""[unix_http_server]
file={d}/sup.sock

[supervisord]
nodaemon=true
logfile={d}/supervisord.log
logfile_maxbytes=0
pidfile={d}/supervisord.pid
childlogdir={d}
loglevel={self.loglevel}
identifier=crashmail-test

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d}/sup.sock

"""
        return head + "\n".join(s.rstrip("\n") + "\n" for s in self.sections)

    # ----- lifecycle

    def start(self, timeout: float = 30) -> "Supervisord":
        """Writes supervisord.conf, starts supervisord, waits until it answers XML-RPC."""
        if self.proc is not None:
            raise RuntimeError("supervisord already started")
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write(self.config_text())
        out = open(self._output_path, "wb")
        try:
            self.proc = subprocess.Popen([SUPERVISORD, "-n", "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        finally:
            out.close()
        _running.append(self)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("supervisord exited with %s:\n%s\n%s" % (
                    self.proc.returncode, self._read(self._output_path), self.log()))
            if not os.path.exists(self.sock_path):
                return False
            try:
                with self.rpc(timeout=2) as proxy:
                    return proxy.supervisor.getState()["statename"] == "RUNNING"
            except (OSError, xmlrpc.client.Error, http.client.HTTPException):
                return False

        try:
            wait_until(up, timeout, interval=0.05, what="supervisord to answer on its socket")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL supervisord and its children. Idempotent."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            child_pids = []
            try:
                with self.rpc(timeout=2) as proxy:
                    for info in proxy.supervisor.getAllProcessInfo():
                        if info.get("pid"):
                            child_pids.append(info["pid"])
            except Exception:
                pass
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write("harness: supervisord did not stop in %ss; killing\n" % timeout)
                proc.kill()
                proc.wait(10)
                for pid in child_pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if self in _running:
            _running.remove(self)
        if self._own_dir and proc is not None:
            if KEEP_TMP:
                sys.stderr.write("harness: kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            self._own_dir = False  # removed once

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "Supervisord":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- observing

    @staticmethod
    def _read(path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log(self) -> str:
        """supervisord.log so far (text; undecodable bytes replaced)."""
        return self._read(self.log_path)

    def count(self, regex: str) -> int:
        """How many times `regex` (multiline) matches supervisord.log."""
        return len(re.findall(regex, self.log(), re.M))

    def wait_for_log(self, regex: str, timeout: float = 20, count: int = 1):
        """Waits until `regex` matches supervisord.log at least `count` times; returns the
        last match object. AssertionError (with the log) on timeout."""
        def found():
            matches = list(re.finditer(regex, self.log(), re.M))
            return matches[-1] if len(matches) >= count else None
        try:
            return wait_until(found, timeout, what="%d x /%s/ in supervisord.log" % (count, regex))
        except AssertionError as e:
            raise AssertionError("%s\n--- supervisord.log ---\n%s" % (e, self.log()[-6000:]))

    def rpc(self, timeout: float = 10):
        """An xmlrpc.client proxy for supervisord's XML-RPC interface over the unix socket
        (usable as a context manager, which closes its connection)."""
        return xmlrpc.client.ServerProxy("http://localhost/RPC2",
                                         transport=_UnixTransport(self.sock_path, timeout))

    def state(self, name: str) -> str:
        """statename of process `name` ("group:proc", or a listener's name)."""
        with self.rpc() as proxy:
            return proxy.supervisor.getProcessInfo(name)["statename"]

    def wait_for_state(self, name: str, statename: str, timeout: float = 20) -> None:
        wait_until(lambda: self.state(name) == statename, timeout,
                   what="%s to be %s" % (name, statename))

    def listener_stderr(self, name: str) -> str:
        """The stderr log of listener NAME (the file set by add_listener, or the one
        supervisord made in childlogdir)."""
        path = stderr_path(self.dir, name)
        if os.path.exists(path):
            return self._read(path)
        import glob
        found = sorted(glob.glob(os.path.join(self.dir, "%s-stderr---*" % name)))
        return self._read(found[-1]) if found else ""

    def events_sent(self, listener: str) -> int:
        """Events supervisord has written to listener process LISTENER (needs loglevel debug)."""
        return self.count(r"event \d+ sent to listener %s$" % re.escape(listener))

    def events_processed(self, listener: str) -> int:
        """Events LISTENER has answered with OK (needs loglevel debug)."""
        return self.count(r"^.* DEBG %s: event was processed$" % re.escape(listener))

    def wait_listener_idle(self, listener: str, at_least: int, timeout: float = 30) -> int:
        """Waits until LISTENER has been sent at least `at_least` events and has answered every
        event sent to it; returns the number answered. Fails at once when supervisord logs a
        protocol error for it (bad result line, UNKNOWN state, rejected event)."""
        broken = re.compile(r"%s: (bad result line|has entered the UNKNOWN state|event was "
                            r"rejected|event caused an error)" % re.escape(listener))

        def idle():
            m = broken.search(self.log())
            if m:  # it will never answer again (or spins): fail now, not at the timeout
                raise AssertionError("listener %s broke the protocol: %s" % (listener, m.group(0)))
            sent, done = self.events_sent(listener), self.events_processed(listener)
            return done if sent >= at_least and done == sent else None
        try:
            return wait_until(idle, timeout,
                              what="listener %s to answer %d events" % (listener, at_least))
        except AssertionError as e:
            raise AssertionError("%s\n--- %s stderr ---\n%s\n--- supervisord.log ---\n%s" % (
                e, listener, self.listener_stderr(listener), self.log()[-6000:]))


def _stop_all() -> None:
    for sup in list(_running):
        try:
            sup.stop(timeout=15)
        except Exception as e:  # pragma: no cover - best effort at exit
            sys.stderr.write("harness: stopping supervisord failed: %s\n" % e)
    _cleanup_tmpdirs()


atexit.register(_stop_all)


def _on_sigterm(signum, frame):  # ctest timeout or Ctrl-C: still stop supervisord
    _stop_all()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


# --------------------------------------------------------------------------- mail store

_STORE_SCRIPT = r"""#!/bin/sh
# sendmail replacement written by crashmail's test harness: stores stdin as one message.
d=%(dir)s
n="$(date +%%s%%N)-$$"
cat > "$d/.tmp-$n" || exit 75
for a in "$@"; do printf '%%s\0' "$a"; done > "$d/mail-$n.argv"
%(action)s
"""


def mail_store(dir: str, exit_status: int = 0, output: str = "") -> str:
    """Creates `dir` and returns the path of an executable sendmail replacement (for `-s`).

    Each run reads the message on stdin. With exit_status 0 it stores it atomically as
    dir/mail-<time>-<pid>.eml (argv in the matching .argv file, NUL-separated). With another
    exit_status it keeps the attempt as dir/failed-<time>-<pid>.eml, prints `output` on
    stdout and exits with that status. The script lives next to dir (dir + ".sendmail")."""
    os.makedirs(dir, exist_ok=True)
    d = shlex.quote(os.path.abspath(dir))
    if exit_status == 0:
        action = 'mv "$d/.tmp-$n" "$d/mail-$n.eml"\n'
        if output:
            action += "printf '%%s\\n' %s\n" % shlex.quote(output)
        action += "exit 0"
    else:
        action = ('mv "$d/.tmp-$n" "$d/failed-$n.eml"\n'
                  "printf '%%s\\n' %s\nexit %d" % (shlex.quote(output), exit_status))
    script = os.path.abspath(dir).rstrip("/") + ".sendmail"
    with open(script, "w") as f:
        f.write(_STORE_SCRIPT % {"dir": d, "action": action})
    os.chmod(script, 0o755)
    return script


def _list(dir: str, prefix: str) -> list[str]:
    try:
        names = os.listdir(dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix) and n.endswith(".eml"))


def read_mails(dir: str) -> list:
    """The messages stored by mail_store(dir), oldest first, as email.message.EmailMessage
    (policy.default) with extra attributes: .raw (bytes), .path, .argv (list of str)."""
    mails = []
    for name in _list(dir, "mail-"):
        path = os.path.join(dir, name)
        with open(path, "rb") as f:
            raw = f.read()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        msg.raw = raw
        msg.path = path
        try:
            with open(path[:-len(".eml")] + ".argv", "rb") as f:
                msg.argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0")[:-1]]
        except FileNotFoundError:
            msg.argv = []
        mails.append(msg)
    return mails


def count_attempts(dir: str) -> int:
    """How many times a failing mail_store(dir, exit_status=N) script was run."""
    return len(_list(dir, "failed-"))


def wait_for_mails(dir: str, n: int, timeout: float = 20) -> list:
    """Waits until at least n messages are stored in dir; returns read_mails(dir)."""
    wait_until(lambda: len(_list(dir, "mail-")) >= n, timeout,
               what="%d mail(s) in %s" % (n, dir))
    return read_mails(dir)


def run_crashmail(args, env: dict | None = None, stdin: bytes = b"", timeout: float = 15,
                  inherit_env: bool = True) -> subprocess.CompletedProcess:
    """Runs crashmail directly (outside supervisord) with `args`; returns the completed
    process (stdout/stderr as text). SUPERVISOR_* variables are removed from the inherited
    environment; `env` adds to it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")} \
        if inherit_env else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    base.update(env or {})
    done = subprocess.run([CRASHMAIL, *args], input=stdin, env=base, capture_output=True,
                          timeout=timeout)
    done.stdout = done.stdout.decode("utf-8", errors="replace")
    done.stderr = done.stderr.decode("utf-8", errors="replace")
    return done
