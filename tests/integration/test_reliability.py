"""Fault tests for crashmail's outbox (issue 5): a real supervisord, real SMTP and HTTP
servers that are down, silent, slow, refusing or coming back, and crashmail killed, stopped
and restarted. Each test asserts on what the peers received.

Every crashmail started here gets `--spool` under a temporary directory. Retry timing under
test: the first retry ~5 s (+/-20%) after the first failure, doubling; Retry-After honoured;
permanent failures go to failed/ at once; on SIGTERM deliveries go on for up to 7 s.
"""

import email
import email.policy
import os
import random
import re
import signal
import subprocess
import time
import unittest

import harness as h

h.require("aiosmtpd", h.SUPERVISORD)

import reliability_helpers as rh  # noqa: E402  (imports aiosmtpd)
from http_sink import HttpSink, Reply  # noqa: E402
from smtp_sink import SilentServer, unused_port  # noqa: E402

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

EX_OK, EX_CONFIG = 0, 78
RCPT = "ops@example.com"
ALERT_LINE = r"crashy exited unexpectedly .*: alert (s\d+\.[0-9a-f]{16})$"


def alert_id_from(stderr: str) -> str:
    m = re.search(ALERT_LINE, stderr, re.M)
    assert m, "no alert line in crashmail's stderr:\n" + stderr
    return m.group(1)


class Base(unittest.TestCase):
    def setUp(self):
        self.started = time.monotonic()

    def tearDown(self):
        print("  %s: %.1f s" % (self.id().rsplit(".", 1)[-1], time.monotonic() - self.started))

    def supervisord(self, listener_args, *, programs=None, name="crashmail", **listener_opts):
        """A supervisord (not started) with `programs` (default: crashy, exit 3 once after
        0.5 s) and crashmail `listener_args` as listener NAME; self.spool is its spool root."""
        sup = h.Supervisord()
        self.spool = sup.path("spool")
        for text in programs or [h.crash_once_program("crashy", status=3)]:
            sup.add(text)
        sup.add_listener(name, [*listener_args, "--spool", self.spool], **listener_opts)
        return sup

    def stderr_of(self, sup, name="crashmail"):
        return sup.listener_stderr(name)

    def wait_stderr(self, sup, regex, timeout, name="crashmail", count=1):
        def found():
            matches = list(re.finditer(regex, self.stderr_of(sup, name), re.M))
            return matches[-1] if len(matches) >= count else None
        try:
            return h.wait_until(found, timeout, what="/%s/ in %s's stderr" % (regex, name))
        except AssertionError as e:
            raise AssertionError("%s\n--- stderr ---\n%s\n--- supervisord.log ---\n%s" % (
                e, self.stderr_of(sup, name), sup.log()[-4000:]))

    def assert_spool(self, name, pending, failed):
        self.assertEqual(len(rh.spool_ids(self.spool, name, "pending")), pending, "pending/")
        self.assertEqual(len(rh.spool_ids(self.spool, name, "failed")), failed, "failed/")


class TestMailServerDown(Base):
    def test_mail_server_down_at_the_crash_then_up_gives_exactly_one_mail(self):
        port = unused_port()
        sup = self.supervisord(["-p", "crashy", "-m", RCPT, "--smtp",
                                "smtp://127.0.0.1:%d" % port, "--timeout", "5"])
        with sup:
            sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
            self.wait_stderr(sup, r"alert \S+ \(crashy\) attempt 1 failed: .*retrying in", 10)
            failed_at = time.monotonic()
            alert_id = alert_id_from(self.stderr_of(sup))
            self.assertEqual(rh.spool_ids(self.spool, "crashmail", "pending"), [alert_id])
            with rh.PortSmtpSink(port) as sink:
                mails = sink.wait_for_messages(1, timeout=25)
                delay = mails[0].received_at - failed_at
                self.wait_stderr(sup, r"delivered alert %s .* on attempt 2$" % re.escape(alert_id),
                                 5)
                time.sleep(2)  # a duplicate would come now
                mails = sink.messages
            self.assertEqual(len(mails), 1, [m.header("Message-ID") for m in mails])
            self.assertEqual(mails[0].rcpt_tos, [RCPT])
            self.assertIn(alert_id, mails[0].header("Message-ID"))
            self.assertIn("crashy", mails[0].header("Subject"))
            # The retry waited for the backoff (5 s +/- 20%), it did not hammer.
            self.assertGreaterEqual(delay, 3.5)
            self.assert_spool("crashmail", pending=0, failed=0)
            print("  first retry delivered %.1f s after the first failure" % delay)


class TestKilledWhilePending(Base):
    def test_sigkill_while_pending_then_server_up_gives_exactly_one_mail(self):
        port = unused_port()
        sup = self.supervisord(["-p", "crashy", "-m", RCPT, "--smtp",
                                "smtp://127.0.0.1:%d" % port, "--timeout", "5"])
        with sup:
            sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
            self.wait_stderr(sup, r"\(crashy\) attempt 1 failed: .*retrying in", 10)
            alert_id = alert_id_from(self.stderr_of(sup))
            old_pid = rh.process_pid(sup, "crashmail")
            os.kill(old_pid, signal.SIGKILL)
            sup.wait_for_log(r"exited: crashmail \(terminated by SIGKILL; not expected\)")
            h.wait_until(lambda: rh.process_pid(sup, "crashmail") not in (0, old_pid), 15,
                         what="supervisord to restart crashmail")
            sup.wait_for_state("crashmail", "RUNNING")
            self.wait_stderr(sup, r"1 alert\(s\) pending from an earlier run", 10)
            self.assertEqual(rh.spool_ids(self.spool, "crashmail", "pending"), [alert_id])
            with rh.PortSmtpSink(port) as sink:
                sink.wait_for_messages(1, timeout=25)
                self.wait_stderr(sup, r"delivered alert %s " % re.escape(alert_id), 5)
                time.sleep(2)
                mails = sink.messages
            ids = [m.header("Message-ID") for m in mails]
            self.assertEqual(len(mails), 1, ids)
            self.assertEqual(len(set(ids)), len(ids), ids)
            self.assertRegex(ids[0], r"^<%s@[^>]+>$" % re.escape(alert_id))
            self.assert_spool("crashmail", pending=0, failed=0)
            # crashmail ignored its own EXITED event (no alert about itself).
            self.assertNotIn("crashmail exited unexpectedly", self.stderr_of(sup))


class TestSilentServer(Base):
    def test_server_that_never_answers_does_not_delay_events(self):
        programs = [h.crash_once_program("crashy%d" % i, status=3, delay=0.5 + 0.1 * i)
                    for i in range(3)]
        with SilentServer() as silent:
            sup = self.supervisord(["-a", "-m", RCPT, "--smtp", silent.url, "--timeout", "2"],
                                   programs=programs)
            with sup:
                sup.wait_for_log(r"exited: crashy\d \(exit status 3; not expected\)", count=3)
                # A listener that waited for the delivery (2 s timeout each) would need ~6 s.
                answered = sup.wait_listener_idle("crashmail", at_least=3, timeout=3)
                latencies = rh.event_latencies(sup, "crashmail")
                self.assertGreaterEqual(len(latencies), 3)
                self.assertEqual(sup.state("crashmail"), "RUNNING")
                self.assertEqual(sup.count(r"discarding event"), 0)
                worst = max(s for _, s in latencies)
                self.assertLess(worst, 0.5, latencies)
                # Each delivery times out after --timeout and is scheduled again...
                self.wait_stderr(sup, r"attempt 1 failed: .*(timed out|timeout).*; retrying in",
                                 8)
                # ...and really tried again (a fourth connection: the first alert's retry).
                h.wait_until(lambda: silent.accepted >= 4, 15,
                             what="a retry connection to the silent server")
                self.assertEqual(sup.events_sent("crashmail"), sup.events_processed("crashmail"))
                self.assertEqual(len(rh.spool_ids(self.spool, "crashmail", "pending")), 3)
                print("  %d events answered, worst %.3f s; %d connections" % (
                    answered, worst, silent.accepted))


class TestWebhookRetries(Base):
    def test_503_then_200_delivers_once_more_and_mail_is_not_repeated(self):
        with HttpSink() as hook, rh.PortSmtpSink() as smtp:
            hook.script(Reply(503, body="busy"), Reply(200))
            sup = self.supervisord(["-p", "crashy", "--webhook", hook.url("/hook"), "-m", RCPT,
                                    "--smtp", smtp.url])
            with sup:
                first = hook.wait_for_requests(1, timeout=10)[0]
                requests = hook.wait_for_requests(2, timeout=15)
                self.wait_stderr(sup, r"delivered alert \S+ \(crashy\) via .*on attempt 2$", 5)
                time.sleep(1.5)
                requests = hook.requests
                self.assertEqual(len(requests), 2)
                gap = requests[1].received_at - first.received_at
                self.assertGreaterEqual(gap, 3.9)  # 5 s - 20%
                self.assertLessEqual(gap, 7.0)     # 5 s + 20%, plus slack
                ids = {r.headers.get("X-Crashmail-Id") for r in requests}
                self.assertEqual(len(ids), 1, ids)
                self.assertEqual({r.json()["id"] for r in requests}, ids)
                # The mail channel succeeded at once and is not repeated by the webhook's retry.
                mails = smtp.messages
                self.assertEqual(len(mails), 1)
                self.assertIn(ids.pop(), mails[0].header("Message-ID"))
                self.assert_spool("crashmail", pending=0, failed=0)
                print("  503 -> retry after %.1f s" % gap)

    def test_429_retry_after_is_honoured(self):
        with HttpSink() as hook:
            hook.script(Reply(429, body="slow down", retry_after="7"), Reply(200))
            sup = self.supervisord(["-p", "crashy", "--webhook", hook.url("/hook")])
            with sup:
                hook.wait_for_requests(2, timeout=20)
                self.wait_stderr(sup, r"delivered alert \S+ \(crashy\) via .*on attempt 2$", 5)
                time.sleep(1)
                requests = hook.requests
                self.assertEqual(len(requests), 2)
                gap = requests[1].received_at - requests[0].received_at
                # Backoff alone waits at most 6 s (5 s + 20%): more than that is Retry-After.
                self.assertGreaterEqual(gap, 6.5)
                self.assertLessEqual(gap, 10)
                self.assertEqual(requests[0].headers.get("X-Crashmail-Id"),
                                 requests[1].headers.get("X-Crashmail-Id"))
                self.assert_spool("crashmail", pending=0, failed=0)
                print("  429 Retry-After: 7 -> retry after %.1f s" % gap)


class TestUnusableSpool(Base):
    """A spool that cannot be used does not stop the listener (a FATAL listener alerts
    nobody): it serves from memory, says why on stderr, and names the place."""
    ENV = {"SUPERVISOR_SERVER_URL": "unix:///nonexistent/sup.sock",
           "SUPERVISOR_PROCESS_NAME": "cm", "SUPERVISOR_GROUP_NAME": "cm"}

    def run_listener(self, spool):
        done = subprocess.run([h.CRASHMAIL, "-a", "--webhook", "http://127.0.0.1:9/hook",
                               "--spool", spool], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30, env={**os.environ, **self.ENV})
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    def assert_memory_only(self, code, out, err):
        self.assertEqual(code, EX_OK, err)  # served until the end of its input
        self.assertEqual(out, "READY\n")
        self.assertIn("warning: no spool: alerts are kept in memory only", err)
        self.assertIn("spool none (memory only)", err)

    def test_spool_path_is_a_regular_file(self):
        path = os.path.join(h.tmpdir(), "not-a-dir")
        with open(path, "w") as f:
            f.write("x")
        code, out, err = self.run_listener(path)
        self.assert_memory_only(code, out, err)
        self.assertIn("--spool: %s is not a directory" % path, err)

    def test_listener_directory_is_a_regular_file(self):
        root = h.tmpdir()
        with open(os.path.join(root, "cm"), "w") as f:
            f.write("x")
        code, out, err = self.run_listener(root)
        self.assert_memory_only(code, out, err)
        self.assertIn("%s is not a directory" % os.path.join(root, "cm"), err)

    def test_spool_in_use_by_another_crashmail(self):
        root = h.tmpdir()
        first = subprocess.Popen([h.CRASHMAIL, "-a", "--webhook", "http://127.0.0.1:9/hook",
                                  "--spool", root], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, **self.ENV})
        try:
            self.assertEqual(first.stdout.read(6), b"READY\n")
            code, out, err = self.run_listener(root)
            self.assert_memory_only(code, out, err)
            self.assertIn(os.path.join(root, "cm"), err)
            self.assertIn("in use by another crashmail", err)
            self.assertIn("give each listener its own process name", err)
        finally:
            first.stdin.close()  # end of input: an orderly exit
            self.assertEqual(first.wait(15), EX_OK)
            first.stdout.close()
            first.stderr.close()


class TestOrderlyStop(Base):
    def test_sigterm_while_delivering_exits_0_keeps_alert_and_restart_delivers(self):
        port = unused_port()
        with HttpSink(hang=True) as hook:
            sup = self.supervisord(["-p", "crashy", "-m", RCPT, "--smtp",
                                    "smtp://127.0.0.1:%d" % port, "--webhook", hook.url("/hook")])
            with sup:
                self.wait_stderr(sup, r"\(crashy\) attempt 1 failed: .*retrying in", 10)
                alert_id = alert_id_from(self.stderr_of(sup))
                hook.wait_for_requests(1, timeout=10)  # the webhook delivery hangs now
                started = time.monotonic()
                with sup.rpc(timeout=30) as proxy:
                    self.assertTrue(proxy.supervisor.stopProcess("crashmail"))
                took = time.monotonic() - started
                sup.wait_for_log(r"stopped: crashmail \(exit status 0\)", timeout=5)
                self.assertLess(took, 10)  # supervisord's default stopwaitsecs: no SIGKILL
                self.assertEqual(sup.count(r"killing crashmail .*SIGKILL"), 0)
                self.assertRegex(self.stderr_of(sup), r"left in the spool for the next start")
                self.assertEqual(rh.spool_ids(self.spool, "crashmail", "pending"), [alert_id])

                status = rh.crashmail_status(self.spool)
                # OK, or WARNING (1) once it has been pending longer than the first retry.
                self.assertIn(status.returncode, (EX_OK, 1), status.stderr)
                lines = [l for l in status.stdout.splitlines() if alert_id in l]
                self.assertEqual(len(lines), 2, status.stdout)  # one per channel
                smtp_line = [l for l in lines if "smtp://" in l]
                self.assertEqual(len(smtp_line), 1, status.stdout)
                # The SMTP retry (5 s after the first failure, with jitter) usually falls
                # within the 7 s grace and is made: 1 or 2 attempts.
                self.assertRegex(smtp_line[0],
                                 r"^pending +%s crashy .* pending attempts=[12] last error: "
                                 r".*127\.0\.0\.1 port %d" % (re.escape(alert_id), port))
                self.assertIn("1 pending, 0 failed", status.stdout)

                # Servers are back: the same crashmail, started again, delivers.
                hook.hang = False
                with rh.PortSmtpSink(port) as smtp:
                    with sup.rpc() as proxy:
                        proxy.supervisor.startProcess("crashmail")
                    mails = smtp.wait_for_messages(1, timeout=15)
                    requests = hook.wait_for_requests(2, timeout=15)
                    h.wait_until(lambda: not rh.spool_ids(self.spool, "crashmail", "pending"),
                                 10, what="pending/ to empty")
                    time.sleep(1)
                    self.assertEqual(len(smtp.messages), 1)
                self.assertIn(alert_id, mails[0].header("Message-ID"))
                self.assertEqual(len(hook.requests), 2)
                self.assertEqual({r.headers.get("X-Crashmail-Id") for r in requests}, {alert_id})
                self.assert_spool("crashmail", pending=0, failed=0)
                print("  stop took %.1f s" % took)


class TestPermanentFailure(Base):
    def test_550_and_404_go_to_failed_at_once_with_the_reason(self):
        with rh.PortSmtpSink(rcpt_reply={RCPT: "550 5.1.1 no such user here"}) as smtp, \
                HttpSink() as hook:
            hook.script(Reply(404, body="no such hook"))
            sup = self.supervisord(["-p", "crashy", "-m", RCPT, "--smtp", smtp.url,
                                    "--webhook", hook.url("/gone")])
            with sup:
                sup.wait_for_log(r"event \d+ sent to listener crashmail", timeout=10)
                crashed = time.monotonic()
                # Settled (failed/ written, then pending/ removed, then the log line).
                self.wait_stderr(sup, r"alert \S+ \(crashy\) moved to failed/", 3)
                took = time.monotonic() - crashed
                alert_id = alert_id_from(self.stderr_of(sup))
                # Each channel, dead, is told about through the other, which refuses that
                # notice too: two channel notices (ids "c...") join the alert in failed/.
                h.wait_until(lambda: len(rh.spool_ids(self.spool, "crashmail", "failed")) == 3,
                             10, what="the alert and two channel notices in failed/")
                failed = rh.spool_ids(self.spool, "crashmail", "failed")
                self.assertIn(alert_id, failed)
                self.assertEqual(sorted(i[0] for i in failed if i != alert_id), ["c", "c"])
                self.assertEqual(rh.spool_ids(self.spool, "crashmail", "pending"), [])
                stderr = self.stderr_of(sup)
                self.assertRegex(stderr, r"failed permanently: .*550")
                self.assertRegex(stderr, r"failed permanently: .*404")
                self.assertEqual(len(re.findall(r"channel .* is failing \(a delivery failed "
                                                r"for good\)", stderr)), 2, stderr)
                time.sleep(1)
                self.assertEqual(smtp.rcpts, [RCPT, RCPT])  # the alert, then one notice
                self.assertEqual(smtp.messages, [])
                self.assertEqual(len(hook.requests), 2)

                status = rh.crashmail_status(self.spool)
                self.assertEqual(status.returncode, 2, status.stderr)  # CRITICAL: failed/
                self.assertIn("0 pending, 3 failed", status.stdout)
                lines = [l for l in status.stdout.splitlines()
                         if l.startswith("failed ") and alert_id in l]
                self.assertEqual(len(lines), 2, status.stdout)
                joined = "\n".join(lines)
                self.assertRegex(joined, r"smtp://.* failed attempts=1 last error: .*550")
                self.assertRegex(joined, r"webhook .* failed attempts=1 last error: .*404")
                print("  in failed/ %.2f s after the event" % took)


class TestMaxAge(Base):
    def test_alert_older_than_max_age_moves_to_failed_with_the_reason(self):
        port = unused_port()
        sup = self.supervisord(["-p", "crashy", "-m", RCPT, "--smtp",
                                "smtp://127.0.0.1:%d" % port, "--max-age", "8s"])
        with sup:
            # Attempt 1 at once, attempt 2 ~5 s later; a third (~10 s after that) would be
            # past 8 s, so crashmail gives up after attempt 2.
            self.wait_stderr(sup, r"\(crashy\) attempt 1 failed: .*retrying in", 10)
            alert_id = alert_id_from(self.stderr_of(sup))
            self.wait_stderr(sup, r"alert %s \(crashy\) moved to failed/" % re.escape(alert_id),
                             12)
            self.assertRegex(self.stderr_of(sup), r"failed: .*gave up after 2 attempts")
            self.assertEqual(rh.spool_ids(self.spool, "crashmail", "failed"), [alert_id])
            self.assertEqual(rh.spool_ids(self.spool, "crashmail", "pending"), [])
            status = rh.crashmail_status(self.spool)
            self.assertEqual(status.returncode, 2, status.stderr)  # CRITICAL: failed/
            self.assertRegex(status.stdout, r"(?m)^failed +%s crashy .* failed attempts=2 last "
                             r"error: .*port %d.*gave up after 2 attempts$"
                             % (re.escape(alert_id), port))
            self.assertIn("0 pending, 1 failed", status.stdout)


class TestCrashStorm(Base):
    """The issue's "Done when": default buffer_size, a storm, a mail server at 0.3 s/message."""

    PROGRAMS = 4
    STORM_SECONDS = 8

    def test_storm_with_default_buffer_loses_no_event_and_mails_every_crash(self):
        sup = h.Supervisord()
        self.spool = sup.path("spool")
        flag = sup.path("storm.flag")
        with open(flag, "w"):
            pass
        # Crashes while the flag exists; afterwards the restarted process just runs.
        command = ("/bin/sh -c 'if [ -e %s ]; then sleep 0.5; exit 5; fi; exec sleep 600'"
                   % flag)
        names = ["storm%d" % i for i in range(self.PROGRAMS)]
        for name in names:
            sup.add(h.program_section(name, command, autostart=False, autorestart=True,
                                      startsecs=0, startretries=1000, stopwaitsecs=2))
        with rh.PortSmtpSink(delay=0.3) as smtp:
            sup.add(rh.listener_section("crashmail", ["-a", "-m", RCPT, "--smtp", smtp.url, "--rate-limit", "off"],
                                        logdir=sup.dir, spool=self.spool))
            self.assertNotIn("buffer_size", sup.config_text())
            with sup:
                self.wait_stderr(sup, r"crashmail: started", 10)
                # Start the storm once the listener serves (boot-time buffering is not the
                # point here).
                with sup.rpc() as proxy:
                    for name in names:
                        proxy.supervisor.startProcess(name, False)
                time.sleep(self.STORM_SECONDS)
                os.unlink(flag)
                # Crashes stop: every program ends up running `sleep 600`. A crashing
                # instance lives about 0.5 s, so the same pids RUNNING 1.5 s apart mean calm.
                def running_pids():
                    with sup.rpc() as proxy:
                        infos = [proxy.supervisor.getProcessInfo(n) for n in names]
                    return [i["pid"] if i["statename"] == "RUNNING" else None for i in infos]

                def calm():
                    before = running_pids()
                    time.sleep(1.5)
                    return None not in before and running_pids() == before
                h.wait_until(calm, 15, interval=0, what="the storm to end")
                crashes = len(rh.unexpected_exits(sup, exclude="crashmail"))
                self.assertGreater(crashes, 20, "not much of a storm")
                answered = sup.wait_listener_idle("crashmail", at_least=crashes, timeout=20)
                mails = smtp.wait_for_messages(crashes, timeout=crashes * 0.4 + 20)
                time.sleep(1)
                mails = smtp.messages
                discarded = sup.count(r"event buffer overflowed, discarding event")
                latencies = [s for _, s in rh.event_latencies(sup, "crashmail")]
                self.assertEqual(discarded, 0, "events discarded by supervisord")
                self.assertEqual(len(rh.unexpected_exits(sup, exclude="crashmail")), crashes,
                                 "crashes after the storm ended")
                self.assertEqual(len(mails), crashes, "mails vs crashes")
                ids = [m.header("Message-ID") for m in mails]
                self.assertEqual(len(set(ids)), crashes, "duplicate Message-IDs")
                self.assert_spool("crashmail", pending=0, failed=0)
                latencies.sort()
                print("  %d crashes in %d s, %d events answered, 0 discarded, %d mails; "
                      "event->answer p50 %.3f s, max %.3f s; mails took %.1f s" % (
                          crashes, self.STORM_SECONDS, answered, len(mails),
                          latencies[len(latencies) // 2], latencies[-1],
                          mails[-1].received_at - mails[0].received_at))


class TestKilledDuringStorm(Base):
    """Crash-safety: crashmail SIGKILLed again and again at random instants of a storm.

    buffer_size=100 (the documented recommendation) here: while crashmail is dead (killed,
    not yet restarted) events pile up in supervisord's buffer, ~8 crashes/s here, and with the
    default 10 supervisord may discard one before the new crashmail is READY: that loss is
    supervisord's, not crashmail's. (Seen once in ~45 runs with the default buffer, on a busy
    machine; restarts normally take 2-60 ms and the buffer holds at most 3.) This test is about
    what crashmail does with the events it was given; protocol errors are still checked."""

    def test_every_crash_is_mailed_despite_repeated_sigkill(self):
        sup = h.Supervisord()
        self.spool = sup.path("spool")
        flag = sup.path("storm.flag")
        with open(flag, "w"):
            pass
        command = ("/bin/sh -c 'if [ -e %s ]; then sleep 0.3; exit 5; fi; exec sleep 600'"
                   % flag)
        names = ["storm%d" % i for i in range(3)]
        for name in names:
            sup.add(h.program_section(name, command, autostart=False, autorestart=True,
                                      startsecs=0, startretries=1000, stopwaitsecs=2))
        seed = random.randrange(1 << 30)
        chance = random.Random(seed)
        with rh.PortSmtpSink(delay=0.05) as smtp:
            sup.add(rh.listener_section("crashmail", ["-a", "-m", RCPT, "--smtp", smtp.url, "--rate-limit", "off"],
                                        logdir=sup.dir, spool=self.spool, buffer_size=100))
            with sup:
                self.wait_stderr(sup, r"crashmail: started", 10)
                with sup.rpc() as proxy:
                    for name in names:
                        proxy.supervisor.startProcess(name, False)
                kills = 0
                end = time.monotonic() + 6
                while time.monotonic() < end:
                    time.sleep(chance.uniform(0.3, 1.0))
                    pid = rh.process_pid(sup, "crashmail")
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                        kills += 1
                os.unlink(flag)
                sup.wait_for_state("crashmail", "RUNNING")
                time.sleep(2)  # the last crashes of the storm
                crashes = len(rh.unexpected_exits(sup, exclude="crashmail"))

                def mailed_ids():
                    return {m.header("Message-ID") for m in smtp.messages}
                h.wait_until(lambda: len(mailed_ids()) >= crashes, 30,
                             what="a mail for each of %d crashes (seed %d)" % (crashes, seed))
                time.sleep(1)
                mails = smtp.messages
                self.assertEqual(len(rh.unexpected_exits(sup, exclude="crashmail")), crashes)
                self.assertGreaterEqual(kills, 5)
                troubles = re.findall(r"^.*(?:discarding event|crashmail: (?:bad result line|"
                                      r"has entered the UNKNOWN state|event was rejected)).*$",
                                      sup.log(), re.M)
                self.assertEqual(troubles, [], "seed %d" % seed)
                # At least once, and a duplicate is recognisable: one Message-ID per crash,
                # each naming one crashed pid.
                by_id = {}
                for mail in mails:
                    body = email.message_from_bytes(mail.content, policy=email.policy.default)
                    text = body.get_body(("plain",)).get_content()
                    pid = re.search(r"\(pid (\d+)\)", text).group(1)
                    by_id.setdefault(mail.header("Message-ID"), set()).add(pid)
                self.assertEqual(len(by_id), crashes, "seed %d" % seed)
                self.assertTrue(all(len(p) == 1 for p in by_id.values()), by_id)
                self.assertEqual(len(set().union(*by_id.values())), crashes)
                self.assert_spool("crashmail", pending=0, failed=0)
                print("  %d crashes, %d SIGKILLs (seed %d): %d mails, %d duplicates" % (
                    crashes, kills, seed, len(mails), len(mails) - crashes))



class TestSendmailReadsAFile(Base):
    def test_sigkill_while_the_command_reads_leaves_it_the_whole_message(self):
        """The rendered message is a file on the command's stdin, not a pipe fed while it
        reads: crashmail killed meanwhile cannot cut it (a pipe gave 65,536 bytes of ~137 KB,
        which a real sendmail would have sent)."""
        out = h.tmpdir()
        script = os.path.join(out, "slow-sendmail")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n: > %s/started.$$\nsleep 3\ncat > %s/part.$$ && "
                    "mv %s/part.$$ %s/message.$$\n" % (out, out, out, out))
        os.chmod(script, 0o755)
        # 1,000 lines of 100 characters on stderr, then the crash; --tail puts them in the mail.
        big = h.program_section(
            "big", "/bin/sh -c 'i=0; while [ $i -lt 1000 ]; do printf \"%0100d\\\\n\" $i >&2; "
                   "i=$((i+1)); done; sleep 0.5; exit 3'",
            autostart=True, autorestart=False, startsecs=0)
        sup = self.supervisord(["-p", "big", "-m", RCPT, "-s", script, "--tail", "1000"],
                               programs=[big])
        with sup:
            h.wait_until(lambda: any(n.startswith("started.") for n in os.listdir(out)), 30,
                         what="the sendmail command to start")
            pid = rh.process_pid(sup, "crashmail")
            os.kill(pid, signal.SIGKILL)
            sup.wait_for_log(r"exited: crashmail \(terminated by SIGKILL; not expected\)")
            h.wait_until(lambda: any(n.startswith("message.") for n in os.listdir(out)), 20,
                         what="the command to finish reading")
            time.sleep(1)
            messages = [n for n in os.listdir(out) if n.startswith("message.")]
            self.assertGreaterEqual(len(messages), 1)
            for name in messages:
                with open(os.path.join(out, name), "rb") as f:
                    raw = f.read()
                self.assertGreater(len(raw), 100000, name)
                mail = email.message_from_bytes(raw, policy=email.policy.default)
                body = mail.get_body(("plain",)).get_content()
                self.assertIn("Last 1000 lines of stderr", body)
                self.assertIn("%0100d" % 999, body)  # the last line arrived


if __name__ == "__main__":
    unittest.main()
