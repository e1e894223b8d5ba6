"""`crashmail --retry-failed` and `crashmail --status` as a monitoring check, with a real
supervisord, a real crashmail listener and a webhook receiver (http_sink) on 127.0.0.1.

- The receiver answers 400: the alert lands in failed/, `--status` exits 2 (CRITICAL) and says
  so on its first line. The receiver fixed (200), `--retry-failed` moves it back and the
  RUNNING listener delivers it within seconds (inotify on the spool's retry/ area); `--status`
  exits 0 (OK).
- The same with the listener stopped: `--retry-failed` says the next start sends it, and the
  next start does.
"""

import os
import re
import time
import unittest

import harness as h
from http_sink import HttpSink, Reply

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

LISTENER = "crashmail"
CHECK_LINE = re.compile(r"^CRASHMAIL (OK|WARNING|CRITICAL|UNKNOWN) - (\d+) failed, (\d+) "
                        r"pending(?:, [^|]*)? \| failed=(\d+) pending=(\d+)(?: \S+=\d+)*$")


def ids_in(root, area):
    try:
        names = os.listdir(os.path.join(root, LISTENER, area))
    except FileNotFoundError:
        return []
    return sorted(n[:-len(".json")] for n in names if n.endswith(".json"))


def status(root):
    """(exit code, first line, whole text) of `crashmail --status --spool ROOT`."""
    done = h.run_crashmail(["--status", "--spool", root])
    first = done.stdout.split("\n", 1)[0]
    m = CHECK_LINE.match(first)
    assert m, "not a check line: %r\n%s%s" % (first, done.stdout, done.stderr)
    return done.returncode, first, done.stdout


class RetryFailed(unittest.TestCase):
    def setUp(self):
        h.require("/usr/bin/supervisord")

    def start(self, hook):
        sup = h.Supervisord()
        sup.add(h.crash_once_program("crashy", status=3))
        sup.add_listener(LISTENER, ["-p", "crashy", "--webhook", hook.url("/hook")])
        return sup

    def failed_alert(self, sup, hook, root):
        """Waits for the crash's alert to be refused (400) and to land in failed/."""
        sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
        first = hook.wait_for_requests(1, timeout=20)[0]
        alert_id = first.json()["id"]
        h.wait_until(lambda: ids_in(root, "failed") == [alert_id], 10,
                     what="alert %s in failed/" % alert_id)
        code, line, text = status(root)
        self.assertEqual(code, 2, text)
        # The webhook, the only channel, failed for good: it is down too (channel health).
        self.assertTrue(line.startswith("CRASHMAIL CRITICAL - 1 failed, 0 pending, 1 channel(s) "
                                        "failing | failed=1 pending=0"), line)
        self.assertIn(" channels_down=1", line)
        self.assertRegex(text, r"(?m)^failed +%s crashy .* failed attempts=1 last error: .*400"
                         % re.escape(alert_id))
        return alert_id

    def delivered_again(self, hook, alert_id, timeout):
        """Seconds until the hook got alert_id a second time (with 200)."""
        started = time.monotonic()
        h.wait_until(lambda: [r for r in hook.requests
                              if r.json()["id"] == alert_id][1:], timeout,
                     what="alert %s delivered again" % alert_id)
        return time.monotonic() - started

    def test_a_failed_alert_is_sent_again_through_the_running_listener(self):
        with HttpSink() as hook:
            hook.script(Reply(400, body="bad request"))
            sup = self.start(hook)
            root = sup.path("spool")
            with sup:
                alert_id = self.failed_alert(sup, hook, root)
                hook.script(Reply(200))
                done = h.run_crashmail(["--retry-failed", "--spool", root])
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
                self.assertRegex(done.stdout, r"^requeued %s \(crashy\) in %s: webhook "
                                 r"http://127\.0\.0\.1:\d+/hook renewed; a running listener "
                                 r"\(pid \d+\) sends it within seconds\n$"
                                 % (re.escape(alert_id), re.escape(os.path.join(root, LISTENER))))
                took = self.delivered_again(hook, alert_id, 10)
                self.assertLess(took, 5)
                h.wait_until(lambda: ids_in(root, "pending") == [], 10, what="pending/ empty")
                self.assertEqual(ids_in(root, "failed"), [])
                self.assertEqual(ids_in(root, "retry"), [])
                code, line, text = status(root)
                self.assertEqual(code, 0, text)
                self.assertTrue(line.startswith("CRASHMAIL OK - 0 failed, 0 pending |"), line)
                # Nothing left: said, exit 0; an unknown id: named, exit 65 (EX_DATAERR).
                again = h.run_crashmail(["--retry-failed", "--spool", root])
                self.assertEqual(again.returncode, 0, again.stderr)
                self.assertEqual(again.stdout, "nothing in failed/ under %s\n" % root)
                unknown = h.run_crashmail(["--retry-failed", alert_id, "--spool", root])
                self.assertEqual(unknown.returncode, 65, unknown.stdout + unknown.stderr)
                self.assertIn("no failed alert %s under %s" % (alert_id, root), unknown.stderr)
                stderr = sup.listener_stderr(LISTENER)
            self.assertRegex(stderr, r"alert %s \(crashy\) requeued by --retry-failed"
                             % re.escape(alert_id))
            print("  delivered %.2f s after --retry-failed" % took)

    def test_without_a_running_listener_the_next_start_sends_it(self):
        with HttpSink() as hook:
            hook.script(Reply(400, body="bad request"))
            sup = self.start(hook)
            root = sup.path("spool")
            with sup:
                alert_id = self.failed_alert(sup, hook, root)
                with sup.rpc() as proxy:
                    proxy.supervisor.stopProcess(LISTENER)
                hook.script(Reply(200))
                # One listener directory picked by --spool pointing at it.
                done = h.run_crashmail(["--retry-failed", alert_id, "--spool",
                                        os.path.join(root, LISTENER)])
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
                self.assertRegex(done.stdout, r"^requeued %s \(crashy\) .*; no listener is "
                                 r"running: the next start sends it\n$" % re.escape(alert_id))
                self.assertEqual(ids_in(root, "retry"), [alert_id])
                self.assertEqual(ids_in(root, "failed"), [])
                time.sleep(1)
                self.assertEqual(len(hook.requests), 1)  # nobody sent it yet
                code, line, text = status(root)
                self.assertIn(code, (0, 1), text)  # pending (WARNING once it waits > 5 s)
                self.assertRegex(line, r"^CRASHMAIL (OK|WARNING) - 0 failed, 1 pending")
                self.assertRegex(text, r"(?m)^retry +%s crashy " % re.escape(alert_id))
                with sup.rpc() as proxy:
                    proxy.supervisor.startProcess(LISTENER)
                self.delivered_again(hook, alert_id, 15)
                h.wait_until(lambda: ids_in(root, "pending") == [] and
                             ids_in(root, "retry") == [], 10, what="spool empty")
                code, line, text = status(root)
                self.assertEqual(code, 0, text)
                stderr = sup.listener_stderr(LISTENER)
            self.assertRegex(stderr, r"1 alert\(s\) requeued by --retry-failed while no "
                             r"listener ran")


if __name__ == "__main__":
    unittest.main()
