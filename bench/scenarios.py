"""Runs every crashmail benchmark scenario and prints one table (bench/run.sh calls this).

Run with Debian's /usr/bin/python3 (aiosmtpd, supervisor). Needs the Release build of
crashmail and of bench/ in --build. Every server and process it starts is stopped at the end;
every wait is bounded. Raw results go to --json as well.

Scenarios (each runs crashmail and bench/minimal_listener on the same event stream):
  a  events that do not alert (PROCESS_STATE_RUNNING, TICK_5)
  b  10 % crashes, healthy local SMTP server
  b' the same with the spool on tmpfs: what crashmail costs apart from fsync
  c  10 % crashes, SMTP server taking 0.3 s per message
  d  10 % crashes, SMTP server that never answers (--timeout 2)
  e  a burst of 1,000 crashes, healthy server
  e-slow    the same burst, SMTP server taking 0.3 s per message
  e-silent  the same burst, SMTP server that never answers (--timeout 2)
  e-tmpfs   the healthy burst with the spool on tmpfs: the burst without the disk
     (all three with --rate-limit off: every crash is an alert stored durably before its
     answer; with --load they run again while a parallel build loads the machine, and a
     separate run of the healthy burst under strace counts crashmail's flushes per alert)
  f  crash-to-accepted-by-SMTP latency: isolated crashes every 50 ms
  g  a real supervisord crash storm, default buffer_size=10, server taking 0.3 s per message
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_sink import SilentSink, TimedSink  # noqa: E402

SUPERVISORD = "/usr/bin/supervisord"


class Bench:
    def __init__(self, build: str, work: str):
        self.crashmail = os.path.join(build, "crashmail")
        self.driver = os.path.join(build, "bench", "protocol_driver")
        self.minimal = os.path.join(build, "bench", "minimal_listener")
        self.build = build
        self.work = work
        self.env = dict(os.environ, SUPERVISOR_SERVER_URL="unix:///nonexistent",
                        SUPERVISOR_PROCESS_NAME="bench")
        self.env.pop("SUPERVISOR_GROUP_NAME", None)
        self.counter = 0

    def temp(self, name: str, tmpfs: bool = False) -> str:
        self.counter += 1
        base = "/dev/shm" if tmpfs else self.work
        path = tempfile.mkdtemp(prefix="%02d-%s-" % (self.counter, name), dir=base)
        return path

    def crashmail_cmd(self, url: str, spool: str, timeout: int = 2,
                      flood_control: bool = False) -> list[str]:
        """crashmail's command line. Without `flood_control` (--rate-limit off) every crash
        is an alert stored durably before its answer: the costly path, measured on its own.
        The storms keep the default flood control, as users run it."""
        return [self.crashmail, "-a", "-m", "ops@example.com", "--from", "bench@localhost",
                "--smtp", url, "--timeout", str(timeout), "--spool", spool,
                *([] if flood_control else ["--rate-limit", "off"])]

    def drive(self, label: str, command: list[str], events: int, share: float,
              extra: list[str] | None = None) -> dict:
        stderr = os.path.join(self.work, "%s.stderr" % label.replace(" ", "_"))
        args = [self.driver, "--events", str(events), "--crash-share", str(share),
                "--label", label, "--stderr", stderr, *(extra or []), "--", *command]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=240)
        if done.returncode != 0:
            raise SystemExit("bench: %s failed:\n%s\n%s" % (label, done.stderr,
                                                            _tail(stderr)))
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["stderr_file"] = stderr
        return result

    def startups(self, label: str, command: list[str], count: int) -> dict:
        args = [self.driver, "--startups", str(count), "--label", label,
                "--stderr", os.path.join(self.work, "startups.stderr"), "--", *command]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit("bench: %s failed:\n%s" % (label, done.stderr))
        return json.loads(done.stdout.strip().splitlines()[-1])


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def best_of(runs: list[dict]) -> dict:
    """The least disturbed of repeated runs (highest throughput): the machine is shared."""
    return max(runs, key=lambda r: r["events_per_s"])


# ---------------------------------------------------------------------------- scenarios


def pair(bench: Bench, name: str, url: str, events: int, share: float, rounds: int = 1,
         tmpfs: bool = False, timeout: int = 2) -> tuple[dict, dict]:
    """Runs crashmail and the minimal listener alternately `rounds` times on the same
    events; returns the best run of each."""
    ours, minimal = [], []
    for i in range(rounds):
        spool = bench.temp("spool-" + name, tmpfs=tmpfs)
        ours.append(bench.drive("%s crashmail %d" % (name, i),
                                bench.crashmail_cmd(url, spool, timeout), events, share))
        minimal.append(bench.drive("%s minimal %d" % (name, i), [bench.minimal], events, share))
        if tmpfs:
            shutil.rmtree(spool, ignore_errors=True)
    return best_of(ours), best_of(minimal)


def mail_latency(bench: Bench, sink: TimedSink, crashes: int, interval_ms: int) -> dict:
    sink.reset()
    send_log = os.path.join(bench.work, "send-times.txt")
    spool = bench.temp("spool-latency")
    run = bench.drive("f crashmail", bench.crashmail_cmd(sink.url, spool), crashes, 1.0,
                      ["--interval-us", str(interval_ms * 1000), "--send-log", send_log])
    # crashmail delivers for up to 7 s after end of input; the driver waited for its exit.
    sent = {}
    with open(send_log) as f:
        for line in f:
            serial, ns = line.split()
            sent[int(serial)] = int(ns)
    latencies = sorted((accepted - sent[serial]) / 1e6 for accepted, serial, _ in
                       sink.snapshot() if serial in sent)
    return {"crashes": crashes, "mails": len(latencies), "run": run,
            "p50_ms": _pct(latencies, 0.5), "p99_ms": _pct(latencies, 0.99),
            "max_ms": latencies[-1] if latencies else float("nan")}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    rank = max(1, min(len(values), int(-(-p * len(values) // 1))))
    return values[rank - 1]


def storm(bench: Bench, name: str, seconds: float, programs: int, after_ready: bool,
          drain_limit: float, buffer_size: int = 10) -> dict:
    """A real supervisord (buffer_size 10, supervisord's default, unless given), `programs`
    programs crash-looping for
    `seconds`, crashmail sending to a server that takes 0.3 s per message. With
    `after_ready` the programs are started only once the listener is RUNNING; otherwise
    they start with supervisord, as at a boot."""
    d = bench.temp("storm-" + name)
    stop_file = os.path.join(d, "stop")
    sections = []
    for i in range(programs):
        sections.append(
            "[program:crash%d]\n"
            "command=/bin/sh -c 'sleep 0.2; test -e %s && exit 0; exit 3'\n"
            "autostart=%s\nautorestart=unexpected\nstartsecs=0\nstartretries=1000\n"
            % (i, stop_file, "false" if after_ready else "true"))
    with TimedSink(delay=0.3) as sink:
        listener = " ".join(bench.crashmail_cmd(sink.url, os.path.join(d, "spool"), 5,
                                                flood_control=True))
        config = (
            "[unix_http_server]\nfile=%(d)s/sup.sock\n\n"
            "[supervisord]\nlogfile=%(d)s/supervisord.log\npidfile=%(d)s/supervisord.pid\n"
            "childlogdir=%(d)s\nloglevel=info\n\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
            "supervisor.rpcinterface:make_main_rpcinterface\n\n"
            "[supervisorctl]\nserverurl=unix://%(d)s/sup.sock\n\n"
            "[eventlistener:crashmail]\ncommand=%(listener)s\nevents=PROCESS_STATE\n"
            "buffer_size=%(buffer)d\n"
            "stderr_logfile=%(d)s/crashmail.stderr\nautorestart=true\n\n"
            % {"d": d, "listener": listener, "buffer": buffer_size}) + "\n".join(sections)
        conf = os.path.join(d, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(config)
        log = os.path.join(d, "supervisord.log")
        crashmail_log = os.path.join(d, "crashmail.stderr")
        pending = os.path.join(d, "spool", "crashmail", "pending")
        read = lambda path: open(path, errors="replace").read() if os.path.exists(path) else ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
        proc = subprocess.Popen([SUPERVISORD, "-n", "-c", conf], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if after_ready:
                if not wait_until(lambda: "crashmail entered RUNNING" in read(log), 20):
                    raise SystemExit("bench: storm: crashmail never reached RUNNING")
                subprocess.run(["/usr/bin/supervisorctl", "-c", conf, "start", "all"],
                               capture_output=True, timeout=30)
            time.sleep(seconds)
            open(stop_file, "w").close()
            time.sleep(1.5)  # the last runs see the stop file and exit 0 (expected)
            storm_end = time.time_ns()
            crashes = len(re.findall(r"exited: crash\d+ \(exit status 3; not expected\)",
                                     read(log)))
            alerts = lambda: read(crashmail_log).count("unexpectedly")
            wait_until(lambda: len(sink.snapshot()) >= alerts(), drain_limit, 0.25)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        text = read(log)
        accepted = sorted(t for t, _, _ in sink.snapshot())
    gaps = [(b - a) / 1e9 for a, b in zip(accepted, accepted[1:])]
    return {
        "name": name, "seconds": seconds, "programs": programs, "after_ready": after_ready,
        "buffer_size": buffer_size,
        "crashes": crashes,
        "discarded": text.count("event buffer overflowed, discarding event"),
        "rejected": text.count("event was rejected"),
        "bad_result": text.count("bad result line"),
        "alerts_stored": alerts(),
        "mails": len(accepted),
        "mails_after_storm": sum(1 for t in accepted if t > storm_end),
        "left_in_spool": len(os.listdir(pending)) if os.path.isdir(pending) else -1,
        "median_gap_s": statistics.median(gaps) if gaps else float("nan"),
        "drain_limit_s": drain_limit,
    }


# ---------------------------------------------------------------------------- bursts (issue 14)

# What strace counts in the flushes run: every way of flushing, renaming or removing a file.
TRACED = ("fsync", "fdatasync", "sync_file_range", "syncfs", "rename", "renameat",
          "renameat2", "unlink", "unlinkat")


def spool_files(spool: str) -> dict:
    """Records left in the spool after crashmail exited: pending/ (not yet delivered: sent at
    the next start) and failed/ (given up), wherever crashmail put its directory."""
    found = {"pending": 0, "failed": 0}
    for top, dirs, files in os.walk(spool):
        kind = os.path.basename(top)
        if kind in found:
            found[kind] += sum(1 for f in files if not f.startswith("."))
    return found


# crashmail's stderr lines every burst writes (the bench has no supervisord to ask for
# details; the silent server times out); any other kind is printed.
ROUTINE_STDERR = (r"^crashmail: started \(version", r"^crashmail: stopping \(end of input\)",
                  r"^crashmail: \S+ exited unexpectedly \(", r"^crashmail: delivered alert ",
                  r"^crashmail: warning: cannot ask supervisord why processes crash",
                  r"^crashmail: warning: alert \S+ \(\S+\): details unavailable: supervisord",
                  r"^crashmail: warning: smtp://\S+: alert \S+ \(\S+\) attempt \d+ failed: "
                  r"\S+ Operation timed out after")


def stderr_summary(path: str, top: int = 12) -> dict:
    """crashmail's stderr in a run: how many lines, and the most frequent kinds of line
    (digits and quoted text folded, so that 1,000 'alert s123 …' lines count as one kind)."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return {"lines": 0, "kinds": []}
    kinds: dict[str, list] = {}
    for line in lines:
        key = re.sub(r"\b[0-9a-f]{8,}\b", "H", line)
        key = re.sub(r"'[^']*'", "'…'", re.sub(r"\d+", "N", key))
        key = re.sub(r"^crashmail: \S+ exited", "crashmail: P exited", key)
        key = re.sub(r"\([^()]*\)", "(…)", key)[:160]
        entry = kinds.setdefault(key, [0, line])
        entry[0] += 1
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1][0])[:top]
    return {"lines": len(lines), "kinds": [{"count": n, "example": ex[:240]}
                                           for _, (n, ex) in ranked]}


def burst(bench: Bench, name: str, sink, crashes: int, timeout: int = 2,
          tmpfs: bool = False) -> dict:
    """`crashes` crash events back to back (--crash-share 1), crashmail with --rate-limit off;
    returns the driver's result plus what reached `sink` and what was left in the spool once
    crashmail had exited (it delivers for up to 7 s after the end of its input). `tmpfs`
    puts the spool on /dev/shm: what the burst costs without the disk."""
    healthy = isinstance(sink, TimedSink) and sink.delay == 0
    if isinstance(sink, TimedSink):
        sink.reset()
    connections_before = getattr(sink, "accepted", 0) if not isinstance(sink, TimedSink) else 0
    spool = bench.temp("spool-" + name.replace(" ", "-"), tmpfs=tmpfs)
    start = time.time_ns()
    try:
        run = bench.drive("%s crashmail" % name, bench.crashmail_cmd(sink.url, spool, timeout),
                          crashes, 1.0)
    finally:
        if tmpfs:
            left = spool_files(spool)
            shutil.rmtree(spool, ignore_errors=True)
    result = {"name": name, "run": run}
    if isinstance(sink, TimedSink):
        # crashmail has exited; the sink may still be recording a message it answered late
        wait_until(lambda: sink.count() >= run["crashes"], 10 if healthy else 1, 0.1)
        snap = sink.snapshot()
        result["mails"] = len(snap)
        result["alerts_mailed"] = len({s for _, s, _ in snap if s is not None})
        result["last_mail_s"] = ((max(t for t, _, _ in snap) - start) / 1e9 if snap
                                 else float("nan"))
    else:
        result["mails"] = 0
        result["alerts_mailed"] = 0
        result["connections"] = sink.accepted - connections_before
    result["left"] = left if tmpfs else spool_files(spool)
    result["stderr"] = stderr_summary(run["stderr_file"])
    return result


_TRACE_LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$")
_FD_PATH = re.compile(r"^\d+<([^>]*)>")


def _strace_calls(path: str) -> dict:
    """Counts the calls in an `strace -f -y -o` log: {syscall: {"calls", "errors",
    "main_thread"}}, and fsync/fdatasync split by target ("dir_fsync": a directory, still
    there after the run; "file_fsync": a file, renamed away since). The main thread (the
    event loop, the one that answers supervisord) is the one that made the execve."""
    calls: dict[str, dict] = {}
    main_pid = None
    with open(path, errors="replace") as f:
        for line in f:
            m = _TRACE_LINE.match(line.rstrip("\n"))
            if not m:
                continue
            pid = int(m.group(1))
            if m.group(2):  # "<... fsync resumed>) = 0": only its result
                if "= -1 " in m.group(3):
                    calls.setdefault(m.group(2), {"calls": 0, "errors": 0,
                                                  "main_thread": 0})["errors"] += 1
                continue
            name, rest = m.group(4), m.group(5)
            if name == "execve":
                if main_pid is None and rest.rstrip().endswith("= 0"):
                    main_pid = pid
                continue
            entry = calls.setdefault(name, {"calls": 0, "errors": 0, "main_thread": 0})
            entry["calls"] += 1
            entry["main_thread"] += 1 if pid == main_pid else 0
            if "= -1 " in rest:
                entry["errors"] += 1
            if name in ("fsync", "fdatasync"):
                target = _FD_PATH.match(rest)
                kind = ("dir_fsync" if target and os.path.isdir(target.group(1))
                        else "file_fsync")
                sub = calls.setdefault(kind, {"calls": 0, "errors": 0, "main_thread": 0})
                sub["calls"] += 1
                sub["main_thread"] += 1 if pid == main_pid else 0
    return calls


_GROUPS = (("flushes", ("fsync", "fdatasync", "sync_file_range", "syncfs")),
           ("file_fsyncs", ("file_fsync",)), ("dir_fsyncs", ("dir_fsync",)),
           ("renames", ("rename", "renameat", "renameat2")),
           ("unlinks", ("unlink", "unlinkat")))


def burst_syscalls(bench: Bench, bursts: list[tuple[str, object]], crashes: int,
                   tag: str = "") -> dict:
    """The bursts once more under `strace -f -y` (every thread): crashmail's fsyncs, renames
    and unlinks, less those of a run of as many events without a crash (start-up, recovery
    scan, shutdown), per alert. strace slows every system call: these runs' answer times are
    not reported."""
    strace = shutil.which("strace")
    if strace is None:
        return {"missing": "strace is not installed (Debian package strace)"}
    out: dict = {"traced": list(TRACED), "runs": {}}
    healthy = bursts[0][1]
    for name, sink, share in [("baseline", healthy, 0.0)] + [(n, s, 1.0) for n, s in bursts]:
        if isinstance(sink, TimedSink):
            sink.reset()
        spool = bench.temp("spool-strace-%s-%s" % (tag, name))
        log = os.path.join(bench.work, "strace-%s-%s.txt" % (tag, name))
        command = [strace, "-f", "-y", "-o", log,
                   "-e", "trace=execve," + ",".join(TRACED),
                   *bench.crashmail_cmd(sink.url, spool)]
        run = bench.drive("strace %s %s" % (tag, name), command, crashes, share,
                          ["--answer-timeout-ms", "30000", "--exit-timeout-ms", "60000"])
        if share > 0 and isinstance(sink, TimedSink) and sink.delay == 0:
            wait_until(lambda: sink.count() >= run["crashes"], 30, 0.1)
        out["runs"][name] = {"crashes": run["crashes"],
                             "mails": sink.count() if isinstance(sink, TimedSink) else 0,
                             "calls": _strace_calls(log), "left": spool_files(spool),
                             "stderr": stderr_summary(run["stderr_file"])}
    base = out["runs"]["baseline"]["calls"]
    total = lambda calls, names, key="calls": sum(calls.get(n, {}).get(key, 0) for n in names)
    for name, _ in bursts:
        r = out["runs"][name]
        alerts = r["crashes"]
        per = {}
        for label, names in _GROUPS:
            n, b = total(r["calls"], names), total(base, names)
            main = total(r["calls"], names, "main_thread") - total(base, names, "main_thread")
            per[label] = {"burst": n, "baseline": b,
                          "per_alert": (n - b) / alerts if alerts else float("nan"),
                          "main_thread_per_alert": main / alerts if alerts else float("nan"),
                          "errors": total(r["calls"], names, "errors")}
        r["per_alert"] = per
    return out


def _session_members(sid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the live processes in session `sid`: a build started with
    start_new_session and everything it started (ninja gives each command a process group of
    its own, but they stay in the session)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            members.append((int(entry), comm))
    return members


class LoadBuild:
    """A parallel build loading the machine: a fresh CMake configure of the project in a
    temporary directory, then `cmake --build -jJOBS -- -k 0` (ninja goes on past a failing
    file: sources may be in the middle of an edit), cleaned and started again whenever it
    ends, in a session of its own. Bounded: the build is stopped at `limit` seconds at the
    latest, and always on exit (SIGTERM to its process group, ninja passes it on to its
    commands; then SIGKILL to whatever of the session is left); the directory is removed."""

    def __init__(self, source: str, jobs: int = 2, limit: float = 1800.0):
        self.source = source
        self.jobs = jobs
        self.limit = limit
        self.dir = ""
        self.proc: subprocess.Popen | None = None
        self.log = ""
        self._timer = None

    def __enter__(self) -> "LoadBuild":
        self.dir = tempfile.mkdtemp(prefix="crashmail-load-build-")
        self.log = os.path.join(self.dir, "build.log")
        try:
            done = subprocess.run(["cmake", "-S", self.source, "-B", self.dir, "-G", "Ninja"],
                                  capture_output=True, text=True, timeout=180)
            if done.returncode != 0:
                raise SystemExit("bench: --load: configuring %s failed:\n%s"
                                 % (self.dir, done.stderr[-2000:]))
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen(
                    ["/bin/sh", "-c",
                     'while :; do cmake --build "$0" -j"$1" -- -k 0; echo "BUILD PASS ENDED";'
                     ' cmake --build "$0" --target clean; done', self.dir, str(self.jobs)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
            self._timer = threading.Timer(self.limit, self.kill)
            self._timer.daemon = True
            self._timer.start()
            if not wait_until(lambda: self.compilers() > 0 or self.proc.poll() is not None,
                              120, 0.2):
                raise SystemExit("bench: --load: the build never started compiling")
            if self.proc.poll() is not None:
                raise SystemExit("bench: --load: the build ended before the bursts:\n%s"
                                 % _tail(self.log))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def compilers(self) -> int:
        """Compilers (cc1plus) of the build running now."""
        if self.proc is None or self.proc.poll() is not None:
            return 0
        return sum(1 for _, c in _session_members(self.proc.pid) if c == "cc1plus")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def passes(self) -> int:
        """Builds finished so far (each is cleaned and started again)."""
        try:
            with open(self.log, errors="replace") as f:
                return f.read().count("BUILD PASS ENDED")
        except OSError:
            return 0

    def kill(self) -> None:
        if self.proc is None:
            return
        sid = self.proc.pid
        try:
            os.killpg(sid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_until(lambda: self.proc.poll() is not None and not _session_members(sid), 10, 0.1)
        for pid, _ in _session_members(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        wait_until(lambda: not _session_members(sid), 10, 0.1)

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.kill()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_quiet(threshold: float, limit: float, step: float, progress) -> dict:
    """Waits (polling every `step` s, at most `limit` s) until the 1-minute load average is
    below `threshold`; returns the load seen and whether it got there."""
    start = time.monotonic()
    while True:
        load = os.getloadavg()
        if load[0] < threshold:
            return {"quiet": True, "load": load, "waited_s": time.monotonic() - start}
        if time.monotonic() - start >= limit:
            return {"quiet": False, "load": load, "waited_s": time.monotonic() - start}
        progress("waiting for a quiet machine: load average %.2f %.2f %.2f (want < %.2f)"
                 % (load + (threshold,)))
        time.sleep(step)


# The bursts: (scenario, sink, spool on tmpfs).
BURSTS = (("e", "healthy", False), ("e-slow", "slow", False), ("e-silent", "silent", False),
          ("e-tmpfs", "healthy", True))


def run_bursts(bench: Bench, crashes: int, sinks: dict, binaries: list[tuple[str, str]],
               rounds: int, load: LoadBuild | None = None) -> list[dict]:
    """`rounds` rounds of e, e-slow, e-silent and e-tmpfs (e with the spool on tmpfs), each
    run once per crashmail in `binaries` ((tag, path); their order alternates between rounds,
    so that a drift of the machine hits both alike), then the minimal listener once. Each
    result notes the load average (and with `load` the build's compilers) before and after,
    and the CPU time of this process (the SMTP sinks' threads) per event."""
    out = []
    machine = lambda: {"load": os.getloadavg(), "compilers": load.compilers() if load else 0,
                       "build_running": load.running() if load else False}
    default = bench.crashmail
    try:
        for r in range(rounds):
            order = binaries if r % 2 == 0 else list(reversed(binaries))
            for scenario, sink_name, tmpfs in BURSTS:
                for tag, binary in order:
                    bench.crashmail = binary
                    before = machine()
                    cpu = resource.getrusage(resource.RUSAGE_SELF)
                    result = burst(bench, "%s %s%s %d" % (scenario, tag,
                                                          " loaded" if load else "", r),
                                   sinks[sink_name], crashes, tmpfs=tmpfs)
                    used = resource.getrusage(resource.RUSAGE_SELF)
                    result.update({"scenario": scenario, "binary": tag, "round": r,
                                   "machine": {"before": before, "after": machine()},
                                   "sink_cpu_us_per_event":
                                       ((used.ru_utime + used.ru_stime) -
                                        (cpu.ru_utime + cpu.ru_stime)) * 1e6 / crashes})
                    out.append(result)
            before = machine()
            run = bench.drive("minimal%s %d" % (" loaded" if load else "", r), [bench.minimal],
                              crashes, 1.0)
            out.append({"scenario": "minimal", "binary": "-", "round": r, "run": run,
                        "mails": 0, "alerts_mailed": 0, "left": {"pending": 0, "failed": 0},
                        "stderr": {"lines": 0, "kinds": []}, "sink_cpu_us_per_event": 0.0,
                        "machine": {"before": before, "after": machine()}})
    finally:
        bench.crashmail = default
    return out


def summarize_bursts(results: list[dict], state: str) -> list[dict]:
    """One summary per (scenario, crashmail) over the rounds: medians of p50, p99, events/s
    and CPU, the range of p99, the largest max; deliveries and load ranges."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["binary"]), []).append(r)
    out = []
    med = lambda rs, key: statistics.median(r["run"][key] for r in rs)
    for (scenario, binary), rs in groups.items():
        out.append({
            "scenario": scenario, "binary": binary, "state": state, "runs": len(rs),
            "crashes": rs[0]["run"]["crashes"],
            "p50_ms": med(rs, "p50_ms"), "p99_ms": med(rs, "p99_ms"),
            "p99_min_ms": min(r["run"]["p99_ms"] for r in rs),
            "p99_max_ms": max(r["run"]["p99_ms"] for r in rs),
            "max_ms": max(r["run"]["max_ms"] for r in rs),
            "events_per_s": med(rs, "events_per_s"),
            "cpu_us_per_event": med(rs, "cpu_us_per_event"),
            "cpu_main_us_per_event": statistics.median(
                r["run"].get("cpu_main_us_per_event", float("nan")) for r in rs),
            "sink_cpu_us_per_event": statistics.median(r["sink_cpu_us_per_event"] for r in rs),
            "alerts_mailed": [r["alerts_mailed"] for r in rs],
            "connections": [r.get("connections", 0) for r in rs],
            "pending": [r["left"]["pending"] for r in rs],
            "failed": [r["left"]["failed"] for r in rs],
            "stderr_lines": max(r["stderr"]["lines"] for r in rs),
            "load_min": min(r["machine"]["before"]["load"][0] for r in rs),
            "load_max": max(max(r["machine"]["before"]["load"][0],
                                r["machine"]["after"]["load"][0]) for r in rs),
            "compilers_min": min(min(r["machine"]["before"]["compilers"],
                                     r["machine"]["after"]["compilers"]) for r in rs),
            "compilers_max": max(max(r["machine"]["before"]["compilers"],
                                     r["machine"]["after"]["compilers"]) for r in rs),
            "build_ended": any(not r["machine"]["after"]["build_running"] for r in rs),
        })
    return out


def _span(values: list) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else "%s–%s" % (lo, hi)


def burst_row(s: dict) -> list[str]:
    minimal = s["scenario"] == "minimal"
    if minimal:
        delivered, left = "(the minimal listener)", ""
    else:
        delivered = ("%s/%d mailed" % (_span(s["alerts_mailed"]), s["crashes"])
                     if s["scenario"] != "e-silent" else
                     "0 mailed, %s connections" % _span(s["connections"]))
        left = "%s pending, %s failed" % (_span(s["pending"]), _span(s["failed"]))
    p99 = "%.2f" % s["p99_ms"]
    if s["runs"] > 1:
        p99 += " (%.2f–%.2f)" % (s["p99_min_ms"], s["p99_max_ms"])
    return [s["scenario"], s["binary"], s["state"], str(s["runs"]), str(s["crashes"]),
            "%.0f" % s["events_per_s"], "%.3f" % s["p50_ms"], p99, "%.1f" % s["max_ms"],
            "%.0f" % s["cpu_us_per_event"], "%.0f" % s["cpu_main_us_per_event"],
            "%.0f" % s["sink_cpu_us_per_event"], delivered, left,
            "%.2f–%.2f" % (s["load_min"], s["load_max"]),
            ("%d–%d%s" % (s["compilers_min"], s["compilers_max"],
                          " (build ended)" if s["build_ended"] else ""))
            if s["state"] == "loaded" else "",
            str(s["stderr_lines"])]


def print_bursts(rows: list[list[str]]) -> None:
    header = ["burst", "crashmail", "machine", "runs", "crashes", "events/s", "p50 ms",
              "p99 ms (range)", "max ms", "CPU us/ev", "main thread", "sink CPU",
              "alerts delivered", "left in spool", "load 1 min", "compilers", "stderr lines"]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def fsync_cost(bench: Bench) -> dict:
    d = bench.temp("fsync")
    done = subprocess.run([os.path.join(bench.build, "bench", "fsync_cost"), d, "100"],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def rss_probe(bench: Bench, name: str) -> dict:
    done = subprocess.run([os.path.join(bench.build, "bench", name)], capture_output=True,
                          text=True, timeout=30, check=True)
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------- report


def mb(kb: float) -> str:
    return "%.1f" % (kb / 1024.0)


def row(scenario: str, run: dict, minimal: dict | None, note: str = "") -> list[str]:
    share = ("%.0f%%" % (100.0 * run["events_per_s"] / minimal["events_per_s"])
             if minimal else "")
    listener = "minimal" if "minimal" in run["label"].split() else "crashmail"
    return [scenario, listener, str(run["events"]), str(run["crashes"]),
            "%.0f" % run["events_per_s"], share, "%.3f" % run["p50_ms"], "%.3f" % run["p99_ms"],
            "%.1f" % run["max_ms"], "%.1f" % run["cpu_us_per_event"], mb(run["vm_hwm_kb"]),
            note]


def print_table(rows: list[list[str]]) -> None:
    header = ["scenario", "listener", "events", "crashes", "events/s", "vs min", "p50 ms",
              "p99 ms", "max ms", "CPU us/ev", "RSS MB", "notes"]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    parser.add_argument("--crashmail", default="", metavar="PATH",
                        help="measure this crashmail binary instead of BUILD/crashmail (an "
                             "older build, against the same driver)")
    parser.add_argument("--json", default="")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bursts-only", action="store_true",
                        help="only the bursts (e, e-slow, e-silent), their flushes run and, "
                             "with --load, the loaded bursts")
    parser.add_argument("--burst", type=int, default=1000, metavar="N",
                        help="crashes per burst (default 1000)")
    parser.add_argument("--load", action="store_true",
                        help="run the bursts a second time while a parallel build (a fresh "
                             "configure of this project in a temporary directory) loads the "
                             "machine")
    parser.add_argument("--load-jobs", type=int, default=2, metavar="J",
                        help="the parallel build's -j (default 2)")
    parser.add_argument("--quiet-load", type=float, default=0.0, metavar="L",
                        help="before the bursts, wait until the 1-minute load average is "
                             "below L (polling every 30 s, at most --quiet-wait s; default: "
                             "do not wait)")
    parser.add_argument("--quiet-wait", type=float, default=900.0, metavar="S")
    parser.add_argument("--burst-rounds", type=int, default=1, metavar="R",
                        help="run each burst R times (alternating with --compare) and report "
                             "medians (default 1)")
    parser.add_argument("--compare", default="", metavar="CRASHMAIL",
                        help="run every burst with this crashmail binary too (an older build), "
                             "alternating with BUILD's, under the same driver")
    args = parser.parse_args()

    # SIGTERM (a bounded caller, a CI timeout) ends like Ctrl-C: every server, the parallel
    # build and the listeners are stopped by the `finally`/`with` blocks below.
    def interrupted(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, interrupted)

    work = tempfile.mkdtemp(prefix="crashmail-bench-")
    bench = Bench(os.path.abspath(args.build), work)
    if args.crashmail:
        bench.crashmail = os.path.abspath(args.crashmail)
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results: dict = {"work": work, "burst_crashes": args.burst, "crashmail": bench.crashmail}
    rows: list[list[str]] = []
    full = not args.bursts_only
    t0 = time.monotonic()
    progress = lambda what: print("bench: [%5.1f s] %s" % (time.monotonic() - t0, what),
                                  file=sys.stderr, flush=True)
    try:
        with TimedSink() as healthy, TimedSink(delay=0.3) as slow, SilentSink() as silent:
            if full:
                progress("a: events that do not alert")
                a, a_min = pair(bench, "a", healthy.url, 20000, 0.0, rounds=args.rounds)
                rows += [row("a no alerts", a, a_min), row("a no alerts", a_min, None)]

                progress("b: 10% crashes, healthy SMTP")
                healthy.reset()
                b, b_min = pair(bench, "b", healthy.url, 3000, 0.1)
                wait_until(lambda: healthy.count() >= b["crashes"], 30)
                rows += [row("b 10% crashes, healthy SMTP", b, b_min,
                             "%d/%d mails" % (healthy.count(), b["crashes"])),
                         row("b 10% crashes, healthy SMTP", b_min, None)]

                progress("b': the same, spool on tmpfs (no fsync cost)")
                healthy.reset()
                bt, bt_min = pair(bench, "b'", healthy.url, 3000, 0.1, tmpfs=True)
                wait_until(lambda: healthy.count() >= bt["crashes"], 30)
                rows += [row("b' same, spool on tmpfs", bt, bt_min,
                             "%d/%d mails" % (healthy.count(), bt["crashes"])),
                         row("b' same, spool on tmpfs", bt_min, None)]

                progress("c: 10% crashes, SMTP 0.3 s per message")
                slow.reset()
                c, c_min = pair(bench, "c", slow.url, 2000, 0.1)
                rows += [row("c 10% crashes, SMTP 0.3 s/msg", c, c_min,
                             "%d mails in the run+7 s grace" % slow.count()),
                         row("c 10% crashes, SMTP 0.3 s/msg", c_min, None)]

                progress("d: 10% crashes, SMTP never answers")
                d, d_min = pair(bench, "d", silent.url, 2000, 0.1)
                rows += [row("d 10% crashes, SMTP silent", d, d_min,
                             "%d connections" % silent.accepted),
                         row("d 10% crashes, SMTP silent", d_min, None)]

            binaries = [("new", bench.crashmail)]
            if args.compare:
                binaries.append(("before", os.path.abspath(args.compare)))
            sinks = {"healthy": healthy, "slow": slow, "silent": silent}
            if args.quiet_load > 0:
                progress("bursts: waiting until the 1-minute load average is below %.2f "
                         "(at most %.0f s)" % (args.quiet_load, args.quiet_wait))
                results["quiet_wait"] = wait_for_quiet(args.quiet_load, args.quiet_wait, 30,
                                                       progress)
            progress("bursts of %d crashes, %d round(s) (load average %.2f %.2f %.2f)"
                     % ((args.burst, args.burst_rounds) + os.getloadavg()))
            quiet = run_bursts(bench, args.burst, sinks, binaries, args.burst_rounds)
            results["bursts_quiet"] = quiet
            summaries = summarize_bursts(quiet, "quiet")
            first = {r["scenario"]: r for r in reversed(quiet) if r["binary"] in ("new", "-")}
            e, e_min = first["e"]["run"], first["minimal"]["run"]
            label = "e burst of %d crashes" % args.burst
            rows += [row(label, e, e_min, "%d mails, last %.1f s after the first event"
                         % (first["e"]["mails"], first["e"]["last_mail_s"])),
                     row(label, e_min, None),
                     row("e-slow same, SMTP 0.3 s/msg", first["e-slow"]["run"], e_min,
                         "%d mails in the run+7 s grace, %d left pending"
                         % (first["e-slow"]["mails"], first["e-slow"]["left"]["pending"])),
                     row("e-silent same, SMTP silent", first["e-silent"]["run"], e_min,
                         "%d connections, %d left pending"
                         % (first["e-silent"]["connections"],
                            first["e-silent"]["left"]["pending"])),
                     row("e-tmpfs same as e, spool on tmpfs", first["e-tmpfs"]["run"], e_min,
                         "%d mails" % first["e-tmpfs"]["mails"])]

            flushes = {}
            for tag, binary in binaries:
                progress("flushes per alert of %s (e, e-slow, e-silent once more, under "
                         "strace)" % tag)
                bench.crashmail = binary
                try:
                    flushes[tag] = burst_syscalls(bench, [("e", healthy), ("e-slow", slow),
                                                          ("e-silent", silent)],
                                                  args.burst, tag)
                finally:
                    bench.crashmail = binaries[0][1]
            results["flushes"] = flushes

            if args.load:
                progress("bursts again while a parallel build (-j%d) loads the machine"
                         % args.load_jobs)
                with LoadBuild(source, args.load_jobs) as build:
                    progress("the build is compiling (%d compilers; load average %.2f)"
                             % (build.compilers(), os.getloadavg()[0]))
                    loaded = run_bursts(bench, args.burst, sinks, binaries, args.burst_rounds,
                                        load=build)
                    results["load_build"] = {"passes": build.passes(), "jobs": args.load_jobs,
                                             "log_tail": _tail(build.log, 5)}
                results["bursts_loaded"] = loaded
                summaries += summarize_bursts(loaded, "loaded")
            order = {name: i for i, (name, _, _) in enumerate(BURSTS + (("minimal", 0, 0),))}
            summaries.sort(key=lambda s: (order[s["scenario"]], s["binary"] != "new",
                                          s["state"] != "quiet"))
            results["burst_summaries"] = summaries
            burst_rows = [burst_row(s) for s in summaries]

            if full:
                progress("f: crash-to-SMTP latency")
                f = mail_latency(bench, healthy, 100, 50)

                progress("start-up to READY")
                start_ours = bench.startups("startup crashmail",
                                            bench.crashmail_cmd(healthy.url,
                                                                bench.temp("spool-start")), 20)
                start_min = bench.startups("startup minimal", [bench.minimal], 20)

        if full:
            progress("g: supervisord crash storm from boot (15 s + 20 s of delivery)")
            g = storm(bench, "boot", 15, 4, False, 20)
            progress("g': supervisord crash storm once crashmail is RUNNING (15 s + 20 s)")
            g2 = storm(bench, "running", 15, 4, True, 20)
            progress("g100: the storm from boot with the recommended buffer_size=100 "
                     "(15 s + 20 s)")
            g100 = storm(bench, "boot-100", 15, 4, False, 20, buffer_size=100)
            progress("fsync cost and RSS probes")
            fs = fsync_cost(bench)
            probes = [rss_probe(bench, "rss_probe_plain"), rss_probe(bench, "rss_probe_curl")]
    finally:
        results["elapsed_s"] = time.monotonic() - t0

    if full:
        results.update({"a": [a, a_min], "b": [b, b_min], "b_tmpfs": [bt, bt_min],
                        "c": [c, c_min], "d": [d, d_min], "e": [e, e_min], "f": f,
                        "startup": [start_ours, start_min], "g": g, "g_running": g2,
                        "g_boot_100": g100, "fsync": fs, "rss_probes": probes})
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)

    print()
    print_table(rows)
    print()
    print_bursts(burst_rows)
    print()
    for tag, fl in flushes.items():
        if "missing" in fl:
            print("flushes per alert: not measured: %s" % fl["missing"])
            break
        print("per alert (%s), under strace -f -y, less a run of %d events without crashes "
              "(baseline: %s); [the event loop's share]:" % (tag, args.burst, ", ".join(
                  "%d %s" % (v["baseline"], k) for k, v in
                  fl["runs"]["e"]["per_alert"].items())))
        for name in ("e", "e-slow", "e-silent"):
            r = fl["runs"][name]
            pa = r["per_alert"]
            print("  %-8s %d alerts: %.2f fsync (%.2f file + %.2f directory) [%.2f], "
                  "%.2f renames [%.2f], %.2f unlinks [%.2f]; %d mails, %d left pending"
                  % (name, r["crashes"], pa["flushes"]["per_alert"],
                     pa["file_fsyncs"]["per_alert"], pa["dir_fsyncs"]["per_alert"],
                     pa["flushes"]["main_thread_per_alert"], pa["renames"]["per_alert"],
                     pa["renames"]["main_thread_per_alert"], pa["unlinks"]["per_alert"],
                     pa["unlinks"]["main_thread_per_alert"], r["mails"],
                     r["left"]["pending"]))
    kinds: dict[str, list] = {}
    for r in results.get("bursts_quiet", []) + results.get("bursts_loaded", []):
        for kind in r["stderr"].get("kinds", []):
            key = "%s %s: %s" % (r["scenario"], r["binary"],
                                 re.sub(r"\d+", "N", kind["example"])[:60])
            entry = kinds.setdefault(key, [0, 0, kind["example"]])
            entry[0] += 1
            entry[1] += kind["count"]
    unexpected = 0
    for key, (runs, count, example) in kinds.items():
        if any(re.search(p, example) for p in ROUTINE_STDERR):
            continue
        unexpected += 1
        print("stderr %s: %d lines in %d runs, e.g. %s" % (key.split(":")[0], count, runs,
                                                           example))
    if kinds and not unexpected:
        print("stderr: only the expected lines (start, stop, one per alert stored, delivered, "
              "'details unavailable' (no supervisord), timeouts of the silent server)")
    if "load_build" in results:
        print("parallel build: -j%d, %d complete pass(es) during the loaded bursts"
              % (results["load_build"]["jobs"], results["load_build"]["passes"]))
    if "quiet_wait" in results:
        q = results["quiet_wait"]
        print("quiet bursts: load average %.2f %.2f %.2f after waiting %.0f s (%s)"
              % (q["load"] + (q["waited_s"], "below the threshold" if q["quiet"]
                              else "NOT below the threshold: measured anyway")))
    if full:
        print("f crash-to-accepted-by-SMTP (isolated crashes every 50 ms, healthy server): "
              "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d/%d mails)"
              % (f["p50_ms"], f["p99_ms"], f["max_ms"], f["mails"], f["crashes"]))
        for run in (g, g2, g100):
            print("g storm %s (%d programs crash-looping %d s, buffer_size=%d, SMTP 0.3 s/msg, "
                  "events=PROCESS_STATE): %d crashes logged by supervisord, %d events "
                  "discarded, %d rejected, %d alerts stored by crashmail, %d mails received "
                  "(%d within %d s after the storm; median %.2f s between mails), %d left in "
                  "the spool at stop"
                  % ("after crashmail is RUNNING" if run["after_ready"] else "from boot",
                     run["programs"], run["seconds"], run["buffer_size"], run["crashes"],
                     run["discarded"], run["rejected"], run["alerts_stored"], run["mails"],
                     run["mails_after_storm"], run["drain_limit_s"], run["median_gap_s"],
                     run["left_in_spool"]))
        print("start-up exec-to-READY (20 starts): crashmail p50 %.1f ms, max %.1f ms; minimal "
              "p50 %.1f ms, max %.1f ms" % (start_ours["ready_p50_ms"],
                                            start_ours["ready_max_ms"],
                                            start_min["ready_p50_ms"],
                                            start_min["ready_max_ms"]))
        print("disk: one durable spool write (write, fsync file, rename, fsync dir) p50 %.1f ms "
              "p99 %.1f ms; fsync file only p50 %.1f ms; dir only p50 %.1f ms; no fsync p50 "
              "%.3f ms" % (fs["file_and_dir_p50_ms"], fs["file_and_dir_p99_ms"],
                           fs["file_only_p50_ms"], fs["dir_only_p50_ms"], fs["none_p50_ms"]))
        print("RSS: trivial C++ program %s MB; the same linking and initialising libcurl %s MB; "
              "crashmail in a: %s MB (anon %s MB, file-backed %s MB, PSS %s MB, %d threads)"
              % (mb(probes[0]["maxrss_kb"]), mb(probes[1]["maxrss_kb"]), mb(a["vm_hwm_kb"]),
                 mb(a["rss_anon_kb"]), mb(a["rss_file_kb"]), mb(a["pss_kb"]), a["threads"]))

    burst_p99 = max(s["p99_ms"] for s in results["burst_summaries"]
                    if s["scenario"] in ("e", "e-slow", "e-silent") and s["binary"] == "new"
                    and s["state"] == "quiet")
    checks = [("burst answer p99 <= 2 ms (e, e-slow, e-silent)", burst_p99 <= 2.0,
               "worst p99 %.2f ms" % burst_p99)]
    if full:
        worst_p99 = max(r["p99_ms"] for r in (a, b, c, d, e))
        checks += [
            ("answer p99 < 2 ms in every case", worst_p99 < 2.0,
             "worst p99 %.2f ms" % worst_p99),
            ("throughput >= 90% of minimal (a)",
             a["events_per_s"] >= 0.9 * a_min["events_per_s"],
             "%.0f%%" % (100.0 * a["events_per_s"] / a_min["events_per_s"])),
            ("peak RSS <= 10 MB", max(r["vm_hwm_kb"] for r in (a, b, c, d, e)) <= 10 * 1024,
             "max %s MB" % mb(max(r["vm_hwm_kb"] for r in (a, b, c, d, e)))),
            ("crash-to-SMTP p50 < 50 ms", f["p50_ms"] < 50, "%.1f ms" % f["p50_ms"]),
            ("start-up to READY < 20 ms", start_ours["ready_p50_ms"] < 20,
             "p50 %.1f ms" % start_ours["ready_p50_ms"]),
            ("zero discarded events (g, g')", g["discarded"] == 0 and g2["discarded"] == 0,
             "%d discarded from boot, %d once RUNNING; %d from boot with buffer_size=100"
             % (g["discarded"], g2["discarded"], g100["discarded"])),
        ]
    print()
    for name, met, value in checks:
        print("target %-46s %-6s (%s)" % (name, "met" if met else "MISSED", value))
    print("\nbench: %.0f s; raw results in %s; work directory %s%s"
          % (results["elapsed_s"], args.json or "(not kept)", work,
             "" if args.keep else " (removed)"))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
