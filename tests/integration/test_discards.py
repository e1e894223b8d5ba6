"""Events supervisord discarded (a full listener buffer) with a real supervisord (4.2.5):
crashmail notices the gap in its pool serials, recovers the crashes of the discarded events
from supervisord's log, accounts for every crash exactly once, and tells people once per
flood-control window (a webhook document of kind "dropped").

How discards are made: four programs crash-loop from supervisord's start, crashmail's pool
keeps supervisord's default buffer_size=10 and crashmail is SIGSTOPped for a few seconds;
supervisord then drops the oldest buffered events, logging
`pool cm event buffer overflowed, discarding event <serial>` for each.

What makes the assertions exact:
  - supervisord numbers every event a pool accepts (poolserial) and every event once
    (serial, given by the first pool that accepts it). Here every listener pool subscribes to
    PROCESS_STATE and exists from boot, so an event's serial equals its poolserial in every
    pool: the serials of the overflow lines are exactly the pool serials crashmail can never
    see, and crashmail's warnings must name exactly those.
  - a recording listener (a few lines of Python, its own pool, buffer_size=10000) sees every
    event with its serial, so the discarded events that were crashes (EXITED, expected:0) are
    known: that is the number crashmail must recover from the log.
  - every discard is followed by at least buffer_size delivered events (a discard only
    happens when the buffer is full, and the programs are stopped afterwards, which makes
    more events), so no gap stays unseen at the end.
  - crash accounting: per process, the alerts for EXITED (one each) plus the `suppressed` of
    every document (summaries; FATAL and recovery messages would count the same way) equal
    the `exited: NAME (exit status 1; not expected)` lines of supervisord's log.

The tests:
  - boot storm (buffer_size=10, --rate-limit 3/20s, crashmail paused 4 s): every crash
    accounted for once, notices for exactly the discarded events, the recovered count is
    exactly the crashes among them; stderr warnings and --status agree.
  - the same storm with supervisord's XML-RPC out of reach: notices with recovered_crashes
    null that say why; what arrived is still counted exactly once.
  - every event of two crash loops discarded: their first crashes alerted from the log
    (from_log true, serial 0), the rest counted.
  - crashmail restarted (stop/start, supervisorctl restart, SIGKILL) with buffer_size=100:
    no gap, no notice.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import time
import unittest
import xmlrpc.client

import harness as h
from http_sink import HttpSink

h.require(h.SUPERVISORD)

# Loopback requests must not wander off to a proxy from the caller's environment; supervisord
# (and so the listener) inherits this process's environment.
for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

STORM = ["storm1", "storm2", "storm3", "storm4"]
LISTENER = "cm"
WINDOW = "3/20s"  # flood control: summaries (and the second discard notice) after 20 s
NOT_RUNNING = 70  # supervisor.xmlrpc.Faults.NOT_RUNNING

CRASH_LINE = re.compile(r"exited: (\S+) \(exit status 1; not expected\)")
DISCARD_LINE = re.compile(r"pool (\S+) event buffer overflowed, discarding event (\d+)")
WARNING = re.compile(
    r"crashmail: warning: supervisord discarded (\d+) events?(?:\(s\))? of pool (\S+) "
    r"\(pool serials? (?:within )?(\d+)(?: to (\d+))?(?:, [^)]*)?\); its buffer was full: set "
    r"buffer_size=100 or "
    r"more in \[eventlistener:(\S+)\]")
RECOVERED = re.compile(
    r"crashmail: (?:info: )?recovered (\d+) crash(?:es|\(es\))? of the (\d+) discarded "
    r"events?(?:\(s\))? from supervisord's log")
CANNOT = re.compile(
    r"crashmail: warning: cannot recover the crashes of (\d+) discarded events?(?:\(s\))?: "
    r"(.+)")
RECOVERED_EVENT_LINE = ("Event: PROCESS_STATE_EXITED (discarded by supervisord; recovered "
                        "from its log)")

# A listener that records every event it is sent (serial, poolserial, name, payload), one
# line each, and answers at once.
RECORDER = r"""
import sys
out = open(sys.argv[1], "a", buffering=1, encoding="utf-8")
while True:
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        break
    headers = dict(token.split(":", 1) for token in line.split())
    payload = sys.stdin.read(int(headers["len"]))
    out.write("%s %s %s %s\n" % (headers["serial"], headers["poolserial"],
                                 headers["eventname"], payload.replace("\n", " ")))
    sys.stdout.write("RESULT 2\nOK")
    sys.stdout.flush()
"""


# --------------------------------------------------------------------------- set-up


def listener_section(sup: h.Supervisord, args, buffer_size: int, **kwargs) -> str:
    """crashmail's [eventlistener:cm] (harness's section) with `buffer_size` instead of the
    harness's 100."""
    text = h.eventlistener_section(LISTENER, args, logdir=sup.dir, **kwargs)
    assert "\nbuffer_size=100\n" in text, text
    return text.replace("\nbuffer_size=100\n", "\nbuffer_size=%d\n" % buffer_size)


def add_recorder(sup: h.Supervisord) -> str:
    """Adds the recording listener [eventlistener:rec]; returns the path of its record."""
    script = sup.path("recorder.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(RECORDER)
    record = sup.path("events.rec")
    sup.add("\n".join([
        "[eventlistener:rec]",
        "command=/usr/bin/python3 -u %s %s" % (script, record),
        "events=PROCESS_STATE",
        "buffer_size=10000",
        "priority=500",
        "autostart=true",
        "autorestart=true",
        "startsecs=0",
        "stderr_logfile=%s" % sup.path("rec.stderr.log"),
        "stderr_logfile_maxbytes=0",
    ]) + "\n")
    return record


def storm_supervisord(hook_url: str, environment: dict | None = None):
    """supervisord with four programs crash-looping from its start, the recorder, and
    crashmail (default buffer_size=10, every PROCESS_STATE event, --webhook). Returns
    (sup, record path, crashmail's stderr path)."""
    sup = h.Supervisord(loglevel="info")
    for name in STORM:
        sup.add(h.program_section(name, "/bin/sh -c 'sleep 0.05; exit 1'", autostart=True,
                                  autorestart=True, startsecs=0, startretries=1000))
    record = add_recorder(sup)
    sup.add(listener_section(sup, ["-a", "--webhook", hook_url, "--rate-limit", WINDOW],
                             buffer_size=10, events="PROCESS_STATE", environment=environment))
    return sup, record, h.stderr_path(sup.dir, LISTENER)


def pid_of(sup: h.Supervisord, name: str) -> int:
    with sup.rpc() as rpc:
        pid = rpc.supervisor.getProcessInfo(name)["pid"]
    assert pid > 0, "%s has no pid" % name
    return pid


def stop_programs(sup: h.Supervisord, names, timeout: float = 30) -> None:
    """stopProcess for each; a crash-looping program is briefly EXITED between its runs
    (NOT_RUNNING): try again until it is STOPPED."""
    deadline = time.monotonic() + timeout
    with sup.rpc(timeout=15) as rpc:
        for name in names:
            while True:
                try:
                    rpc.supervisor.stopProcess(name)
                    break
                except xmlrpc.client.Fault as fault:
                    if fault.faultCode != NOT_RUNNING:
                        raise
                if rpc.supervisor.getProcessInfo(name)["statename"] == "STOPPED":
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("could not stop %s" % name)
                time.sleep(0.01)
    for name in names:
        sup.wait_for_state(name, "STOPPED")


def storm(sup: h.Supervisord, pause: float = 4.0) -> None:
    """Lets the storm run, SIGSTOPs crashmail for `pause` seconds, lets it catch up, then
    stops the programs."""
    sup.wait_for_log(r"exited: storm4 ", timeout=20, count=10)
    time.sleep(1.5)
    pid = pid_of(sup, LISTENER)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(pause)
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.5)
    stop_programs(sup, STORM)
    # The listener is still the same process: it was paused, not restarted.
    assert pid_of(sup, LISTENER) == pid


def wait_caught_up(sup: h.Supervisord, listener: str, timeout: float = 30) -> None:
    """Waits until `listener` has answered every event it was sent (needs loglevel debug).
    Unlike harness's wait_listener_idle this survives restarts: an event a listener was busy
    with when it stopped is sent again (same serial) to its successor."""
    line = re.compile(r"event (\d+) sent to listener %s$|%s: event was processed$"
                      % (re.escape(listener), re.escape(listener)), re.M)

    def caught_up():
        matches = list(line.finditer(sup.log()))
        sent = {m.group(1) for m in matches if m.group(1)}
        processed = sum(1 for m in matches if not m.group(1))
        return bool(matches) and matches[-1].group(1) is None and processed >= len(sent)

    time.sleep(0.5)  # lets supervisord hand on the events of the last state changes
    h.wait_until(caught_up, timeout, what="%s to answer every event sent to it" % listener)


# --------------------------------------------------------------------------- reading


def read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def crashes_logged(sup: h.Supervisord) -> collections.Counter:
    return collections.Counter(CRASH_LINE.findall(sup.log()))


def discarded_serials(sup: h.Supervisord, pool: str) -> list[int]:
    return [int(serial) for name, serial in DISCARD_LINE.findall(sup.log()) if name == pool]


def recorded_events(sup: h.Supervisord, record: str, programs=STORM) -> dict[int, tuple[str, str]]:
    """serial -> (event name, payload) of every event the recorder was sent, once it has
    recorded every crash of `programs` supervisord logged; asserts that serial == poolserial
    for each (what the exact assertions rest on)."""
    def read_record():
        events = {}
        for line in read(record).splitlines():
            serial, pool_serial, name, payload = line.split(" ", 3)
            assert serial == pool_serial, line
            events[int(serial)] = (name, payload)
        return events

    def complete():
        events = read_record()
        logged = collections.Counter({p: n for p, n in crashes_logged(sup).items()
                                      if p in programs})
        seen = collections.Counter(filter(None, (is_crash(e, programs)
                                                 for e in events.values())))
        return events if seen == logged else None

    return h.wait_until(complete, 20, interval=0.2, what="the recorder to record every crash")


def is_crash(event: tuple[str, str], programs=STORM) -> str | None:
    """The process name when the recorded event is an unexpected exit of one of `programs`."""
    name, payload = event
    if name != "PROCESS_STATE_EXITED" or " expected:0 " not in payload + " ":
        return None
    match = re.match(r"processname:(\S+) ", payload)
    return match.group(1) if match and match.group(1) in programs else None


def documents(sink: HttpSink) -> list[dict]:
    return [r.json() for r in sink.requests]


def accounted(docs) -> collections.Counter:
    """Per process: alerts for EXITED (one each) plus what every document says it counted
    (`suppressed` of summaries, FATAL alerts, recovery notices)."""
    counts = collections.Counter()
    for doc in {d["id"]: d for d in docs}.values():
        if doc.get("kind") == "dropped" or not doc.get("process"):
            continue
        if doc["kind"] == "alert" and doc["state"] == "EXITED":
            counts[doc["process"]] += 1
        counts[doc["process"]] += doc.get("suppressed") or 0
    return counts


STATUS_LINE = re.compile(
    r"(?m)^supervisord discarded (\d+) events?(?:\(s\))?: (\d+) crash(?:es|\(es\))? "
    r"recovered from its log, (\d+) events?(?:\(s\))? not recoverable")


def status(sup: h.Supervisord) -> str:
    """`crashmail --status` for the spool the harness gave the listener."""
    done = h.run_crashmail(["--status", "--spool", sup.path("spool")])
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def keep_documents(sup: h.Supervisord, docs) -> None:
    """With KEEP_TMP=1, the webhook documents are kept beside supervisord's log."""
    if h.KEEP_TMP:
        with open(sup.path("documents.json"), "w", encoding="utf-8") as f:
            json.dump(docs, f, indent=1)


def dropped(docs) -> list[dict]:
    return [d for d in docs if d.get("kind") == "dropped"]


NOTICE_LOGGED = re.compile(r"crashmail: (?:info: )?notice (\S+): (\d+) discarded event")


def all_told(docs, stderr: str, discards: int) -> bool:
    """Whether the notices for `discards` discarded events have arrived: their documents say
    so, or (so that a wrong document fails an assertion below rather than this wait)
    crashmail logged notices for that many and documents with their ids arrived."""
    if sum(d.get("discarded") or 0 for d in dropped(docs)) >= discards:
        return True
    logged = NOTICE_LOGGED.findall(stderr)
    ids = {d["id"] for d in docs}
    return (sum(int(n) for _, n in logged) >= discards
            and all(notice_id in ids for notice_id, _ in logged))


def check_warnings(test: unittest.TestCase, stderr: str, pool: str, discards: list[int],
                   note: str) -> None:
    """crashmail's discard warnings against the serials supervisord logged as discarded.

    A warning names a gap's first and last pool serial and how many events it lost; gaps
    found while an earlier one was being recovered may be reported together, so the serials
    between first and last need not all be lost, but first and last are, the counts add up
    to supervisord's discards, and every discarded serial lies in exactly one reported span."""
    found = WARNING.findall(stderr)
    test.assertEqual(len(found), stderr.count("warning: supervisord discarded "), note)
    lost = set(discards)
    covered = collections.Counter()
    total = 0
    for count, name, first, last, section in found:
        first, count = int(first), int(count)
        last = int(last) if last else first
        test.assertEqual((name, section), (pool, pool), note)
        test.assertIn(first, lost, note)
        test.assertIn(last, lost, note)
        inside = sum(1 for serial in lost if first <= serial <= last)
        test.assertEqual(count, inside, "warning for %d..%d says %d, supervisord discarded %d "
                         "there\n%s" % (first, last, count, inside, note))
        covered.update(serial for serial in lost if first <= serial <= last)
        total += count
    test.assertEqual(total, len(discards), note)
    test.assertEqual(set(covered), lost, note)
    test.assertEqual(max(covered.values(), default=1), 1, note)


def report(stderr: str, docs, extra="") -> str:
    """What a failed assertion shows: the documents in short, and crashmail's stderr less the
    lines about single events and deliveries."""
    summary = ["%s %s %s serial=%s discarded=%s recovered=%s suppressed=%s from_log=%s" % (
        d.get("kind"), d.get("process"), d.get("state"), d.get("serial"), d.get("discarded"),
        d.get("recovered_crashes"), d.get("suppressed"), d.get("from_log")) for d in docs]
    routine = re.compile(r"counted by flood control \(no alert\)|exited unexpectedly \(pid|"
                         r": exit status \d|delivered alert|details unavailable")
    interesting = [line for line in stderr.splitlines() if not routine.search(line)]
    return "%s\n--- documents ---\n%s\n--- crashmail stderr (in part) ---\n%s" % (
        extra, "\n".join(summary), "\n".join(interesting[-150:]))


# --------------------------------------------------------------------------- tests


class TestDiscardedEvents(unittest.TestCase):
    maxDiff = None

    def test_boot_storm_every_crash_is_accounted_for_once(self):
        with HttpSink() as sink:
            sup, record, stderr_path = storm_supervisord(sink.url("/hook"))
            with sup:
                storm(sup)
                crashes = crashes_logged(sup)
                discards = discarded_serials(sup, LISTENER)
                events = recorded_events(sup, record)
                # The setup really makes supervisord discard events meant for crashmail, and
                # none meant for the recorder (whose record is complete).
                self.assertGreater(len(discards), 0, "no discards: the setup is wrong")
                self.assertEqual(discarded_serials(sup, "rec"), [])
                self.assertEqual(sorted(crashes), STORM)
                self.assertEqual(collections.Counter(filter(None, map(is_crash,
                                                                      events.values()))),
                                 crashes)
                lost_crashes = [events[s] for s in discards if is_crash(events[s])]

                def complete():
                    docs = documents(sink)
                    counts = accounted(docs)
                    return (all(counts[p] >= crashes[p] for p in STORM)
                            and all_told(docs, read(stderr_path), len(discards))
                            and RECOVERED.search(read(stderr_path)) is not None)

                try:
                    h.wait_until(complete, timeout=50, interval=0.25,
                                 what="every crash accounted for and the discards told")
                except AssertionError as e:
                    keep_documents(sup, documents(sink))
                    raise AssertionError(report(read(stderr_path), documents(sink), "%s\n"
                                                "crashes %s, discards %d" % (e, dict(crashes),
                                                                             len(discards))))
                time.sleep(2)  # anything counted twice would show up now
                docs = documents(sink)
                keep_documents(sup, docs)
                stderr = read(stderr_path)
                status_text = status(sup)
        sys_note = report(stderr, docs, "crashes %s (%d), discards %d, of them "
                          "crashes %d" % (dict(crashes), sum(crashes.values()), len(discards),
                                          len(lost_crashes)))
        print("\nboot storm: %d crashes logged, %d events discarded (%d of them crashes), "
              "%d documents, %d notices" % (sum(crashes.values()), len(discards),
                                           len(lost_crashes), len(docs), len(dropped(docs))))

        # Each document once; every crash alerted or counted exactly once.
        ids = [d["id"] for d in docs]
        self.assertEqual(len(ids), len(set(ids)), sys_note)
        self.assertEqual(dict(accounted(docs)), dict(crashes), sys_note)

        # The discard notices: few, and together they tell every discarded event once.
        notices = dropped(docs)
        self.assertGreaterEqual(len(notices), 1, sys_note)
        self.assertLessEqual(len(notices), 3, sys_note)
        self.assertEqual(sum(n["discarded"] for n in notices), len(discards), sys_note)
        for notice in notices:
            self.assertEqual(notice["version"], 1)
            self.assertIsInstance(notice["discarded"], int)
            self.assertNotIsInstance(notice["discarded"], bool)
            self.assertGreater(notice["discarded"], 0)
            self.assertIsInstance(notice["recovered_crashes"], int, sys_note)
            self.assertNotIsInstance(notice["recovered_crashes"], bool)
            self.assertRegex(notice["subject"], r"^supervisord discarded %d events? meant for "
                             r"crashmail on \S" % notice["discarded"])
            for field in ("process", "group", "state"):
                self.assertIsNone(notice[field], field)
            self.assertIn("buffer_size=100", notice["message"])
        # Every discarded crash was recovered from the log. A crash logged after the event
        # that ended its gap may be recovered too when that event names no pid (STARTING,
        # BACKOFF, FATAL: crashmail bounds the gap by the latest such line); its own event
        # then arrives and is dropped as a duplicate, with a log line each. So the recovered
        # count is the discarded crashes plus exactly those.
        already = stderr.count("recovered from supervisord's log already; not counted again")
        self.assertEqual(sum(n["recovered_crashes"] for n in notices),
                         len(lost_crashes) + already, sys_note)

        # crashmail's stderr names exactly the serials supervisord discarded, and what it
        # recovered of them.
        check_warnings(self, stderr, LISTENER, discards, sys_note)
        recovered = RECOVERED.findall(stderr)
        self.assertEqual(sum(int(k) for k, _ in recovered), len(lost_crashes) + already,
                         sys_note)
        self.assertEqual(sum(int(n) for _, n in recovered), len(discards), sys_note)
        self.assertNotIn("cannot recover", stderr, sys_note)
        # --status keeps the totals (the recovered count as the notices give it: the
        # duplicates dropped later, `already`, included).
        self.assertEqual([tuple(map(int, m)) for m in STATUS_LINE.findall(status_text)],
                         [(len(discards), len(lost_crashes) + already, 0)], status_text)

        # Recovered alerts say where they come from.
        alerts = [d for d in docs if d["kind"] == "alert"]
        for alert in alerts:
            self.assertIsInstance(alert.get("from_log"), bool, alert)
        for alert in (a for a in alerts if a["from_log"]):
            self.assertEqual(alert["serial"], 0, alert)
            self.assertEqual(alert["state"], "EXITED", alert)
            self.assertIn(RECOVERED_EVENT_LINE, alert["message"])
        self.assertLessEqual(sum(1 for a in alerts if a["from_log"]), len(lost_crashes))
        for alert in (a for a in alerts if not a["from_log"]):
            self.assertGreater(alert["serial"], 0, alert)
            self.assertNotIn("discarded by supervisord", alert["message"])

    def test_unreadable_log_tells_the_discards_without_a_recovered_count(self):
        with HttpSink() as sink:
            # The listener is told a socket nobody listens on: no readLog, no crash details.
            sup, record, stderr_path = storm_supervisord(
                sink.url("/hook"),
                environment={"SUPERVISOR_SERVER_URL": "unix://%s" % os.path.join(
                    h.tmpdir(), "nobody.sock")})
            with sup:
                storm(sup)
                crashes = crashes_logged(sup)
                discards = discarded_serials(sup, LISTENER)
                events = recorded_events(sup, record)
                self.assertGreater(len(discards), 0, "no discards: the setup is wrong")
                self.assertEqual(discarded_serials(sup, "rec"), [])
                lost = collections.Counter(filter(None, (is_crash(events[s])
                                                         for s in discards)))
                arrived = crashes - lost  # the crashes crashmail was sent

                def complete():
                    docs = documents(sink)
                    counts = accounted(docs)
                    return (all(counts[p] >= arrived[p] for p in STORM)
                            and all_told(docs, read(stderr_path), len(discards))
                            and "cannot recover" in read(stderr_path))

                try:
                    h.wait_until(complete, timeout=50, interval=0.25,
                                 what="the crashes that arrived accounted for and the "
                                      "discards told")
                except AssertionError as e:
                    keep_documents(sup, documents(sink))
                    raise AssertionError(report(read(stderr_path), documents(sink), "%s\n"
                                                "crashes %s, discards %d" % (e, dict(crashes),
                                                                             len(discards))))
                time.sleep(2)
                docs = documents(sink)
                keep_documents(sup, docs)
                stderr = read(stderr_path)
                status_text = status(sup)
        note = report(stderr, docs, "crashes %s, discards %d, of them crashes %d" % (
            dict(crashes), len(discards), sum(lost.values())))
        print("\nunreadable log: %d crashes logged, %d events discarded (%d of them crashes), "
              "%d notices" % (sum(crashes.values()), len(discards), sum(lost.values()),
                              len(dropped(docs))))

        notices = dropped(docs)
        self.assertGreaterEqual(len(notices), 1, note)
        self.assertLessEqual(len(notices), 3, note)
        # Gaps are found from the pool serials alone: every discard is still told once.
        self.assertEqual(sum(n["discarded"] for n in notices), len(discards), note)
        for notice in notices:
            self.assertIsNone(notice["recovered_crashes"], note)
            self.assertRegex(notice["subject"], r"^supervisord discarded %d events? meant for "
                             r"crashmail on \S" % notice["discarded"])
            self.assertRegex(notice["message"],
                             r"(?i)(could not|cannot|can't|couldn't|were not|not) "
                             r"(be )?recover", note)
            self.assertIn("buffer_size=100", notice["message"])
        # What arrived is counted exactly once; nothing is made up for what did not.
        self.assertEqual(dict(accounted(docs)), dict(+arrived), note)
        self.assertFalse(any(d.get("from_log") for d in docs), note)
        check_warnings(self, stderr, LISTENER, discards, note)
        self.assertEqual(sum(int(n) for n, _ in CANNOT.findall(stderr)), len(discards), note)
        self.assertIsNone(RECOVERED.search(stderr), note)
        self.assertEqual([tuple(map(int, m)) for m in STATUS_LINE.findall(status_text)],
                         [(len(discards), 0, len(discards))], status_text)

    def test_crashes_whose_every_event_was_discarded_are_alerted_from_the_log(self):
        # crashmail is paused before two programs start crash-looping and is resumed only
        # after they stopped and a quiet program's starts and stops pushed every one of their
        # events out of the buffer: all it knows of the crashes is supervisord's log. The
        # first crashes of each story are alerted from it, the rest counted.
        with HttpSink() as sink:
            sup = h.Supervisord()
            lost = ["lost1", "lost2"]
            for name in lost:
                sup.add(h.program_section(name, "/bin/sh -c 'sleep 0.05; exit 1'",
                                          autostart=False, autorestart=True, startsecs=0,
                                          startretries=1000))
            sup.add(h.program_section("quiet", "sleep 1000", autostart=False,
                                      autorestart=False, startsecs=0, stopwaitsecs=5))
            record = add_recorder(sup)
            sup.add(listener_section(sup, ["-a", "--webhook", sink.url("/hook"),
                                           "--rate-limit", "3/10s"],
                                     buffer_size=10, events="PROCESS_STATE"))
            stderr_path = h.stderr_path(sup.dir, LISTENER)
            with sup:
                sup.wait_for_state(LISTENER, "RUNNING")
                wait_caught_up(sup, LISTENER)
                pid = pid_of(sup, LISTENER)
                os.kill(pid, signal.SIGSTOP)
                try:
                    with sup.rpc(timeout=15) as rpc:
                        for name in lost:
                            rpc.supervisor.startProcess(name)
                    sup.wait_for_log(r"exited: lost2 ", timeout=20, count=8)
                    stop_programs(sup, lost)
                    with sup.rpc(timeout=15) as rpc:
                        for _ in range(3):  # 4 events each; the buffer holds 10
                            rpc.supervisor.startProcess("quiet")
                            rpc.supervisor.stopProcess("quiet")
                finally:
                    os.kill(pid, signal.SIGCONT)
                crashes = crashes_logged(sup)
                discards = discarded_serials(sup, LISTENER)
                events = recorded_events(sup, record, lost)
                self.assertEqual(sorted(crashes), lost)
                self.assertEqual(discarded_serials(sup, "rec"), [])
                # The setup: every crash event was discarded.
                self.assertEqual(collections.Counter(filter(None, (is_crash(events[s], lost)
                                                                   for s in discards))),
                                 crashes)

                def complete():
                    docs = documents(sink)
                    counts = accounted(docs)
                    return (all(counts[p] >= crashes[p] for p in lost)
                            and all_told(docs, read(stderr_path), len(discards)))

                try:
                    h.wait_until(complete, timeout=40, interval=0.25,
                                 what="every crash accounted for and the discards told")
                except AssertionError as e:
                    keep_documents(sup, documents(sink))
                    raise AssertionError(report(read(stderr_path), documents(sink), "%s\n"
                                                "crashes %s, discards %d" % (e, dict(crashes),
                                                                             len(discards))))
                time.sleep(2)
                docs = documents(sink)
                keep_documents(sup, docs)
                stderr = read(stderr_path)
        note = report(stderr, docs, "crashes %s, discards %d" % (dict(crashes), len(discards)))
        print("\nall lost: %d crashes logged, %d events discarded, %d documents" % (
            sum(crashes.values()), len(discards), len(docs)))
        self.assertEqual(dict(accounted(docs)), dict(crashes), note)
        for name in lost:
            alerts = [d for d in docs if d["kind"] == "alert" and d["process"] == name]
            self.assertEqual(len(alerts), 3, note)
            for alert in alerts:
                self.assertIs(alert["from_log"], True, note)
                self.assertEqual(alert["serial"], 0, note)
                self.assertEqual(alert["state"], "EXITED", note)
                self.assertEqual(alert["group"], name, note)
                self.assertIs(alert["expected"], False, note)
                self.assertIn(RECOVERED_EVENT_LINE, alert["message"], note)
        notices = dropped(docs)
        self.assertGreaterEqual(len(notices), 1, note)
        self.assertLessEqual(len(notices), 2, note)
        self.assertEqual(sum(n["discarded"] for n in notices), len(discards), note)
        self.assertEqual(sum(n["recovered_crashes"] for n in notices),
                         sum(crashes.values()), note)
        check_warnings(self, stderr, LISTENER, discards, note)
        self.assertEqual(sum(int(k) for k, _ in RECOVERED.findall(stderr)),
                         sum(crashes.values()), note)


class TestNoDiscards(unittest.TestCase):
    """Restarts of crashmail lose no events (the pool's buffer keeps them): no notice."""

    def run_restarts(self, restart):
        with HttpSink() as sink:
            sup = h.Supervisord()
            sup.add(h.program_section("slow", "/bin/sh -c 'sleep 2; exit 1'", autostart=True,
                                      autorestart=True, startsecs=0, startretries=1000))
            stderr_path = sup.add_listener(LISTENER, ["-a", "--webhook", sink.url("/hook")],
                                           events="PROCESS_STATE")
            with sup:
                crashes = 2
                sup.wait_for_log(r"exited: slow ", timeout=20, count=crashes)
                for _ in range(2):
                    old = pid_of(sup, LISTENER)
                    restart(sup)
                    sup.wait_for_state(LISTENER, "RUNNING")
                    self.assertNotEqual(pid_of(sup, LISTENER), old)
                    crashes += 2
                    sup.wait_for_log(r"exited: slow ", timeout=20, count=crashes)
                stop_programs(sup, ["slow"])
                wait_caught_up(sup, LISTENER)
                # The first alerts (3 per window by default) went out; a notice would be sent
                # at once, so it would be here by now.
                h.wait_until(lambda: sum(1 for d in documents(sink)
                                         if d["kind"] == "alert") >= 3,
                             timeout=20, what="three alerts")
                time.sleep(2)
                docs = documents(sink)
                stderr = read(stderr_path)
                logged = crashes_logged(sup)["slow"]
                self.assertEqual(discarded_serials(sup, LISTENER), [], "the setup is wrong")
                status_text = status(sup)
        print("\nrestarts: %d crashes logged, %d documents" % (logged, len(docs)))
        self.assertEqual(dropped(docs), [], stderr)
        self.assertNotIn("discarded", stderr)
        self.assertNotIn("cannot recover", stderr)
        self.assertFalse(any(d.get("from_log") for d in docs), docs)
        self.assertNotIn("discarded", status_text)

    def test_restarted_crashmail_sees_no_gap(self):
        def restart(sup):
            with sup.rpc(timeout=30) as rpc:
                rpc.supervisor.stopProcess(LISTENER)
                time.sleep(2.5)  # a crash happens while crashmail is down
                rpc.supervisor.startProcess(LISTENER)

        self.run_restarts(restart)

    def test_supervisorctl_restart_and_sigkill_see_no_gap(self):
        rounds = iter(["supervisorctl", "kill"])

        def restart(sup):
            if next(rounds) == "supervisorctl":
                done = subprocess.run([h.SUPERVISORCTL, "-c", sup.conf_path, "restart",
                                       LISTENER], capture_output=True, text=True, timeout=30)
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            else:
                # Killed (no chance to save anything at exit); supervisord restarts it and
                # redelivers the event it was busy with, if any.
                os.kill(pid_of(sup, LISTENER), signal.SIGKILL)
                sup.wait_for_log(r"exited: %s \(terminated by SIGKILL" % LISTENER)

        self.run_restarts(restart)


if __name__ == "__main__":
    unittest.main()
