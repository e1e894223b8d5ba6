"""The outbox when the spool refuses records (issue 14): a real supervisord, a real HTTP sink
and the real crashmail, with the spool on a small tmpfs filled to ENOSPC, and a channel
removed from the configuration between two runs. Each test asserts on what the sink received,
what is left in the spool, what crashmail logged and what `crashmail --status` says.

The disk tests mount a tmpfs and need root (skipped otherwise, and when the mount fails).
Retry timing under test: a webhook's first retry ~5 s after the first failure, then ~10 s;
the outbox retries the spool after 0.5 s, doubling; on SIGTERM deliveries go on for up to
7 s. The waits below are guards, not measurements.
"""

import errno
import os
import re
import shutil
import subprocess
import time
import unittest

import harness as h

h.require(h.SUPERVISORD, h.SUPERVISORCTL)

from http_sink import HttpSink, Reply  # noqa: E402

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

LISTENER = "crashmail"
CRASHES = 6
# "crashmail: crasher exited unexpectedly (pid N, from state RUNNING, event K of its story):
# alert ID"
ALERT_LINE = r"crashmail: %s exited unexpectedly \(pid (\d+),.*: alert (\S+)$"
STARTED = r"crashmail: started "
SPOOL_SUBJECT = r"^crashmail on \S+: spool not writable; (\d+) alerts? not durable$"


# --------------------------------------------------------------------------- helpers


class StatusSink(HttpSink):
    """An HttpSink that also records, on each request, the status it was answered with
    (request.status), under the same lock that picks the reply: a request recorded after
    script() is known to have had the new answer."""

    def _record(self, request):
        with self._cond:
            reply = self._replies[min(self._next_reply, len(self._replies) - 1)]
            self._next_reply += 1
            request.status = reply.status
            self._requests.append(request)
            self._cond.notify_all()
            return reply

    def script(self, *replies):
        """As HttpSink.script; a request recorded after it returns has one of `replies`."""
        with self._cond:
            self._replies = list(replies) or [Reply()]
            self._next_reply = 0


def documents(sink, status=None):
    """The JSON documents the sink received (with status `status`, if given), oldest first."""
    out = []
    for request in sink.requests:
        if status is not None and request.status != status:
            continue
        try:
            out.append(request.json())
        except ValueError:
            pass
    return out


def spool_notice_ids(sink):
    return {d["id"] for d in documents(sink) if d.get("kind") == "spool"}


def spool_ids(root, area):
    """Alert ids in ROOT/<listener>/AREA."""
    try:
        names = os.listdir(os.path.join(root, LISTENER, area))
    except FileNotFoundError:
        return []
    return sorted(n[:-len(".json")] for n in names if n.endswith(".json"))


def status(root):
    done = h.run_crashmail(["--status", "--spool", root])
    # 0 OK, 1 WARNING (in memory, lost, late), 2 CRITICAL (failed/): never 3 (no spool).
    assert done.returncode in (0, 1, 2), "crashmail --status: exit %d\n%s%s" % (
        done.returncode, done.stdout, done.stderr)
    return done.stdout


def pid_of(sup, name):
    with sup.rpc() as proxy:
        return proxy.supervisor.getProcessInfo(name)["pid"]


def supervisorctl(sup, *args):
    done = subprocess.run([h.SUPERVISORCTL, "-c", sup.conf_path, *args], capture_output=True,
                          text=True, timeout=60)
    return done.stdout + done.stderr


def fill(path):
    """Writes `path` until the file system says ENOSPC, in ever smaller pieces, so that not
    even one more byte (one more page on a tmpfs) fits."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) == 0:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def write_fails_with_enospc(directory):
    probe = os.path.join(directory, ".probe")
    try:
        with open(probe, "wb", buffering=0) as f:
            f.write(b"x")
            os.fsync(f.fileno())
        return False
    except OSError as e:
        return e.errno == errno.ENOSPC
    finally:
        try:
            os.unlink(probe)
        except FileNotFoundError:
            pass


def crasher_program(counter, crashes):
    """`crasher`: each start counts itself in COUNTER; the first CRASHES instances exit 1
    after 0.3 s (unexpected: RUNNING at once, startsecs=0), the next one just runs."""
    command = ("/bin/sh -c 'n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; "
               "if [ $n -le %d ]; then sleep 0.3; exit 1; fi; exec sleep 600'"
               % (counter, counter, crashes))
    return h.program_section("crasher", command, autostart=False, autorestart=True,
                             startsecs=0, startretries=100, stopwaitsecs=2)


class Base(unittest.TestCase):
    def setUp(self):
        self.started = time.monotonic()

    def tearDown(self):
        print("  %s: %.1f s" % (self.id().rsplit(".", 1)[-1], time.monotonic() - self.started))

    # ----- crashmail's stderr

    def stderr(self, sup):
        return sup.listener_stderr(LISTENER)

    def wait_stderr(self, sup, regex, timeout, count=1):
        def found():
            matches = list(re.finditer(regex, self.stderr(sup), re.M))
            return matches[-1] if len(matches) >= count else None
        try:
            return h.wait_until(found, timeout, what="%d x /%s/ in crashmail's stderr"
                                % (count, regex))
        except AssertionError as e:
            raise AssertionError("%s\n--- stderr ---\n%s\n--- supervisord.log ---\n%s" % (
                e, self.stderr(sup)[-6000:], sup.log()[-4000:]))

    def run_stderr(self, sup, run):
        """The part of crashmail's stderr written by its RUN-th start (1-based)."""
        text = self.stderr(sup)
        starts = [m.start() for m in re.finditer(STARTED, text)]
        self.assertGreaterEqual(len(starts), run, text)
        begin = text.rfind("\n", 0, starts[run - 1]) + 1
        end = text.rfind("\n", 0, starts[run]) + 1 if len(starts) > run else len(text)
        return text[begin:end]

    # ----- the tmpfs

    def mount_tmpfs(self, size="2m"):
        """A fresh tmpfs of SIZE; unmounted at cleanup (lazily if busy). Skips without root."""
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a tmpfs")
        if not shutil.which("mount") or not shutil.which("umount"):
            self.skipTest("needs mount and umount")
        mountpoint = os.path.join(h.tmpdir("crashmail-outbox-"), "spool")
        os.mkdir(mountpoint, 0o700)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                               "tmpfs", mountpoint], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % (done.stderr or done.stdout).strip())
        self.addCleanup(self._unmount, mountpoint)
        return mountpoint

    @staticmethod
    def _unmount(mountpoint):
        done = subprocess.run(["umount", mountpoint], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, timeout=30)

    # ----- the scenario both disk tests share

    def crashes_on_a_full_disk(self, sink):
        """supervisord with `crasher` and crashmail (--webhook to SINK, spool on a full
        tmpfs); CRASHES crashes happen while the disk is full. Returns (sup, root, filler,
        alerts), alerts being {id: pid} from crashmail's log lines; sup is running."""
        root = self.mount_tmpfs()
        sup = h.Supervisord()
        self.addCleanup(sup.stop)  # before the unmount (cleanups run last first)
        sup.add(crasher_program(sup.path("starts"), CRASHES))
        sup.add_listener(LISTENER, ["-p", "crasher", "--rate-limit", "off", "--webhook",
                                    sink.url("/hook"), "--timeout", "5", "--spool", root],
                         priority=-1)
        sup.start()
        self.wait_stderr(sup, STARTED, 15)
        listener_pid = pid_of(sup, LISTENER)

        filler = os.path.join(root, "filler")
        fill(filler)
        self.assertTrue(write_fails_with_enospc(os.path.join(root, LISTENER)),
                        "the tmpfs still takes writes after filling it")

        with sup.rpc() as proxy:
            proxy.supervisor.startProcess("crasher", False)
        h.wait_until(lambda: sup.count(r"exited: crasher \(exit status 1; not expected\)$")
                     >= CRASHES, 30, what="%d crashes of crasher" % CRASHES)
        sup.wait_for_state("crasher", "RUNNING")
        # crashmail answered every event, with the disk full all along.
        sup.wait_listener_idle(LISTENER, at_least=CRASHES, timeout=20)
        self.assertEqual(sup.count(r"exited: crasher \(exit status 1; not expected\)$"), CRASHES)
        self.assertTrue(write_fails_with_enospc(os.path.join(root, LISTENER)),
                        "the disk was not full until the last crash")

        self.wait_stderr(sup, ALERT_LINE % "crasher", 10, count=CRASHES)
        alerts = {m.group(2): int(m.group(1))
                  for m in re.finditer(ALERT_LINE % "crasher", self.stderr(sup), re.M)}
        self.assertEqual(len(alerts), CRASHES, self.stderr(sup))
        stderr = self.stderr(sup)
        self.assertRegex(stderr, r"crashmail: (error: )?the spool refuses records \(.*\); alert "
                         r"\S+ waits in memory and is retried until the spool takes it")
        for alert_id in alerts:  # none of them was stored
            self.assertRegex(stderr, r"cannot store alert %s in the spool .*waits in memory"
                             % re.escape(alert_id))

        # The listener kept serving: RUNNING, the same process.
        self.assertRegex(supervisorctl(sup, "status", LISTENER), r"%s\s+RUNNING" % LISTENER)
        self.assertEqual(pid_of(sup, LISTENER), listener_pid)
        self.assertEqual(spool_ids(root, "pending"), [])

        # One notice through the channel (the sink records it even when answering 503).
        h.wait_until(lambda: spool_notice_ids(sink), 15, what="a spool notice at the sink")
        notice = next(d for d in documents(sink) if d.get("kind") == "spool")
        self.assertRegex(notice["subject"], SPOOL_SUBJECT)
        notices = len(spool_notice_ids(sink))
        self.assertEqual(notices, 1, "one spool notice per episode")

        return sup, root, filler, alerts

    def assert_status_in_memory(self, sup, root, waiting):
        """`crashmail --status` says WAITING alerts wait in memory (read from outbox.mark,
        which the running crashmail rewrites on a full disk)."""
        def in_memory():
            text = status(root)
            m = re.search(r"(?m)^in memory: (\d+) alert\(s\) not durable since \S+", text)
            return text if m and int(m.group(1)) == waiting else None
        try:
            text = h.wait_until(in_memory, 10, interval=0.2,
                                what="--status to say %d in memory" % waiting)
        except AssertionError as e:
            mark = os.path.join(root, LISTENER, "outbox.mark")
            raise AssertionError("%s\n--- status ---\n%s--- outbox.mark: %s bytes ---\n"
                                 "--- stderr ---\n%s" % (
                                     e, status(root), os.path.getsize(mark)
                                     if os.path.exists(mark) else "no file",
                                     self.stderr(sup)[-6000:]))
        self.assertRegex(text, r"(?m)^0 pending, 0 failed, %d in memory$" % waiting)


# --------------------------------------------------------------------------- tests


class TestDiskFull(Base):
    def test_alerts_refused_by_a_full_spool_are_delivered_after_space_comes_back(self):
        with StatusSink() as sink:
            sink.script(Reply(503, body="busy"))
            sup, root, filler, alerts = self.crashes_on_a_full_disk(sink)
            # Every alert (and the notice) waits in memory, none is durable. (A subtest: when
            # it fails, the rest still runs.)
            with self.subTest("--status says in memory"):
                self.assert_status_in_memory(sup, root, CRASHES + len(spool_notice_ids(sink)))
            # Every alert was tried from memory (and refused by the sink).
            h.wait_until(lambda: {d["id"] for d in documents(sink)} >= set(alerts), 15,
                         what="a first attempt of every alert")

            os.unlink(filler)  # space is back
            out = supervisorctl(sup, "restart", LISTENER)
            self.assertIn("started", out)
            self.wait_stderr(sup, STARTED, 15, count=2)
            sink.script(Reply(200))  # every request from now on is answered 200
            run1 = self.run_stderr(sup, 1)
            self.assertNotRegex(run1, r"alert\(s\) lost")
            m = re.search(r"(?m)^" + h.LOG_TIME + r" crashmail: (?:warning: )?(\d+) alert\(s\) left in the spool "
                          r"for the next start$", run1)
            self.assertTrue(m, run1)
            notice_ids = spool_notice_ids(sink)
            self.assertEqual(int(m.group(1)), CRASHES + len(notice_ids), run1)

            # Every crash reaches the sink with a 200, each under its own id; so does the
            # notice.
            wanted = set(alerts) | notice_ids

            def delivered():
                return {d["id"] for d in documents(sink, status=200)} >= wanted
            try:
                h.wait_until(delivered, 40, interval=0.2,
                             what="every alert answered 200 by the sink")
            except AssertionError as e:
                raise AssertionError("%s\n--- stderr ---\n%s\n--- status ---\n%s" % (
                    e, self.stderr(sup)[-6000:], status(root)))
            h.wait_until(lambda: not spool_ids(root, "pending"), 10,
                         what="pending/ to empty")
            time.sleep(1)  # a stray extra delivery would come now

            ok = [d for d in documents(sink, status=200) if d.get("kind") == "alert"]
            pids = {}
            for d in ok:
                self.assertEqual(d["process"], "crasher")
                pids.setdefault(d["id"], set()).add(d["pid"])
            self.assertEqual(set(pids), set(alerts), "alert ids at the sink vs crashmail's log")
            for alert_id, pid in alerts.items():
                self.assertEqual(pids[alert_id], {pid}, alert_id)
            self.assertEqual(len({a for a in alerts.values()}), CRASHES, "one pid per crash")
            self.assertEqual(len(spool_notice_ids(sink)), 1, "one spool notice in all")
            self.assertEqual(spool_ids(root, "pending"), [])
            self.assertEqual(spool_ids(root, "failed"), [])
            text = status(root)
            self.assertRegex(text, r"(?m)^0 pending, 0 failed$")
            self.assertNotIn("in memory", text)
            print("  %d crashes on a full disk, %d requests, %d answered 200" % (
                CRASHES, len(sink.requests), len(documents(sink, status=200))))


class TestDiskFullAtStop(Base):
    def test_stop_with_the_disk_still_full_says_exactly_how_many_alerts_are_lost(self):
        with StatusSink() as sink:
            sink.script(Reply(503, body="busy"))  # never delivered: nothing leaves memory
            sup, root, filler, alerts = self.crashes_on_a_full_disk(sink)
            notice_ids = spool_notice_ids(sink)

            out = supervisorctl(sup, "restart", LISTENER)  # the disk stays full
            self.assertIn("started", out)
            self.wait_stderr(sup, STARTED, 15, count=2)
            self.assertTrue(write_fails_with_enospc(os.path.join(root, LISTENER)))
            run1 = self.run_stderr(sup, 1)
            m = re.search(r"(?m)^" + h.LOG_TIME + r" crashmail: (?:error: )?(\d+) alert\(s\) lost: the spool never "
                          r"took them \((.*)\)", run1)
            self.assertTrue(m, "no 'alert(s) lost' line:\n" + run1)
            lost = int(m.group(1))
            alert_lines = len(re.findall(ALERT_LINE % "crasher", run1, re.M))
            self.assertEqual(alert_lines, CRASHES)
            # Every alert crashmail logged is lost, and the spool notice (an alert record
            # that never reached the spool either).
            self.assertEqual(lost, alert_lines + len(notice_ids),
                             "lost vs %d crash alerts + %d notice(s)\n%s"
                             % (alert_lines, len(notice_ids), run1))
            self.assertIn("No space left on device", m.group(2))
            self.assertNotRegex(run1, r"alert\(s\) left in the spool")
            self.assertEqual(spool_ids(root, "pending"), [])
            self.assertEqual(spool_ids(root, "failed"), [])

            # --status says so after the stop (the new crashmail runs, with nothing in memory).
            text = status(root)
            self.assertRegex(supervisorctl(sup, "status", LISTENER), r"%s\s+RUNNING" % LISTENER)
            self.assertRegex(text, r"(?m)^lost: %d alert\(s\) when crashmail stopped at \S+: the "
                             r"spool never took them \(.*No space left on device.*\)$" % lost)
            self.assertRegex(text, r"(?m)^0 pending, 0 failed, %d lost$" % lost)
            self.assertNotIn("in memory", text)
            print("  %d crashes on a full disk through the restart: %d alert(s) lost" % (
                CRASHES, lost))


class TestRemovedChannel(Base):
    def test_a_record_pending_only_for_a_removed_channel_is_removed_not_failed(self):
        with StatusSink() as a, StatusSink() as b:
            a.script(Reply(200))
            b.script(Reply(503, body="busy"))
            sup = h.Supervisord()
            self.addCleanup(sup.stop)
            root = sup.path("spool")
            program = h.crash_once_program("crashy", status=3)
            sup.add(program)

            def listener(*hooks):
                args = ["-p", "crashy"]
                for hook in hooks:
                    args += ["--webhook", hook.url("/hook")]
                return h.eventlistener_section(LISTENER, [*args, "--spool", root],
                                               logdir=sup.dir, priority=-1)
            sup.add(listener(a, b))
            sup.start()
            # Run 1: delivered to A, refused by B (retried in ~5 s).
            self.wait_stderr(sup, r"attempt 1 failed: .*retrying in", 15)
            m = self.wait_stderr(sup, r"delivered alert (\S+) \(crashy\) via", 10)
            alert_id = m.group(1)
            self.assertEqual(re.findall(ALERT_LINE % "crashy", self.stderr(sup), re.M)[0][1],
                             alert_id)
            self.assertEqual(spool_ids(root, "pending"), [alert_id])
            text = status(root)
            self.assertRegex(text, r"(?m)^pending +%s crashy .* delivered attempts=1$"
                             % re.escape(alert_id))
            self.assertRegex(text, r"(?m)^pending +%s crashy .* pending attempts=1 last error: "
                             r".*503" % re.escape(alert_id))
            out = supervisorctl(sup, "stop", LISTENER)
            self.assertIn("stopped", out)
            self.assertRegex(self.run_stderr(sup, 1),
                             r"(?m)^" + h.LOG_TIME + r" crashmail: (?:warning: )?1 alert\(s\) left in the spool")
            self.assertEqual(spool_ids(root, "pending"), [alert_id])
            to_b = len(b.requests)

            # Run 2: B is gone from the configuration.
            sup.sections = [program, listener(a)]
            with open(sup.conf_path, "w", encoding="utf-8") as f:
                f.write(sup.config_text())
            out = supervisorctl(sup, "reread")
            self.assertRegex(out, r"%s: changed" % LISTENER)
            supervisorctl(sup, "update")
            self.wait_stderr(sup, STARTED, 15, count=2)
            sup.wait_for_state(LISTENER, "RUNNING")
            try:
                h.wait_until(lambda: not spool_ids(root, "pending"), 15, interval=0.1,
                             what="the record to leave pending/")
            except AssertionError as e:
                raise AssertionError("%s\n--- stderr ---\n%s\n--- status ---\n%s" % (
                    e, self.stderr(sup), status(root)))
            time.sleep(1.5)  # a second delivery to A would come now
            run2 = self.run_stderr(sup, 2)
            self.assertEqual(spool_ids(root, "failed"), [], run2)
            self.assertEqual(spool_ids(root, "pending"), [], run2)
            self.assertEqual([r.headers.get("X-Crashmail-Id") for r in a.requests], [alert_id],
                             "A got the alert once")
            self.assertEqual(len(b.requests), to_b)
            self.assertEqual([l for l in run2.splitlines() if "fail" in l.lower()], [], run2)
            self.assertNotIn("moved to failed/", self.stderr(sup))
            self.assertRegex(status(root), r"(?m)^0 pending, 0 failed$")


if __name__ == "__main__":
    unittest.main()
