"""--batch digests under a real supervisord: the crashes of one window reach mail (a sendmail
replacement) and a webhook (http_sink.HttpSink) as ONE digest each, and held alerts survive a
SIGKILL of crashmail: after supervisord restarts it, their digest goes out.
"""

import os
import re
import signal
import time
import unittest

import harness as h
from http_sink import HttpSink

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

RCPT = "ops@example.com"


def listener_pid(sup: h.Supervisord, name: str) -> int:
    with sup.rpc() as proxy:
        return int(proxy.supervisor.getProcessInfo(name)["pid"])


class TestDigest(unittest.TestCase):
    def setUp(self):
        h.require("/usr/bin/supervisord")
        if not h.crashmail_supports("--batch"):
            self.skipTest("crashmail has no --batch")

    def test_crashes_within_the_window_make_one_mail_and_one_post(self):
        mails_dir = os.path.join(h.tmpdir(), "mails")
        store = h.mail_store(mails_dir)
        with HttpSink() as hook:
            sup = h.Supervisord()
            for i, name in enumerate(["web", "worker", "db"]):
                sup.add(h.crash_once_program(name, status=3 + i, delay=0.5 + 0.3 * i))
            sup.add_listener("crashmail", ["-a", "-m", RCPT, "-s", store, "--webhook",
                                           hook.url("/hook"), "--batch", "4s"])
            with sup:
                for name in ["web", "worker", "db"]:
                    sup.wait_for_log(r"exited: %s \(exit status \d; not expected\)" % name)
                h.wait_for_mails(mails_dir, 1, timeout=15)
                hook.wait_for_requests(1, timeout=10)
                time.sleep(2)  # nothing else follows
                mails = h.read_mails(mails_dir)
                requests = hook.requests
                stderr = sup.listener_stderr("crashmail")
        self.assertEqual(len(mails), 1, [m["Subject"] for m in mails])
        self.assertEqual(len(requests), 1)
        subject = str(mails[0]["Subject"])
        self.assertRegex(subject, r"^crashmail: 3 alerts from \S+ \(")
        for name in ["web", "worker", "db"]:
            self.assertIn("%s crashed" % name, subject)
        body = mails[0].get_content()
        for name in ["web", "worker", "db"]:
            self.assertIn("Process %s in group %s exited unexpectedly" % (name, name), body)
        document = requests[0].json()
        self.assertEqual(document["kind"], "digest")
        self.assertEqual(document["subject"], subject)
        self.assertEqual([item["process"] for item in document["items"]],
                         ["web", "worker", "db"])
        for item in document["items"]:
            self.assertEqual(item["kind"], "alert")
            self.assertEqual(item["state"], "EXITED")
        self.assertIn(document["id"], str(mails[0]["Message-ID"]))
        self.assertIn("holding alerts for a digest", stderr)
        self.assertNotIn("error", stderr.lower(), stderr)

    def test_held_alerts_survive_sigkill(self):
        mails_dir = os.path.join(h.tmpdir(), "mails")
        store = h.mail_store(mails_dir)
        sup = h.Supervisord()
        sup.add(h.crash_once_program("crashy", status=3))
        sup.add_listener("crashmail", ["-a", "-m", RCPT, "-s", store, "--batch", "4s"])
        with sup:
            sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
            h.wait_until(lambda: "holding alerts for a digest"
                         in sup.listener_stderr("crashmail"), 10, what="the alert to be held")
            old_pid = listener_pid(sup, "crashmail")
            os.kill(old_pid, signal.SIGKILL)
            sup.wait_for_log(r"exited: crashmail \(terminated by SIGKILL; not expected\)")
            h.wait_until(lambda: listener_pid(sup, "crashmail") not in (0, old_pid), 15,
                         what="supervisord to restart crashmail")
            self.assertEqual(h.read_mails(mails_dir), [])
            mails = h.wait_for_mails(mails_dir, 1, timeout=15)
            time.sleep(1.5)
            mails = h.read_mails(mails_dir)
            stderr = sup.listener_stderr("crashmail")
            pending = os.path.join(sup.dir, "spool", "crashmail", "pending")
            h.wait_until(lambda: not [n for n in os.listdir(pending) if n.endswith(".json")],
                         5, what="an empty pending spool")
        self.assertEqual(len(mails), 1, [m["Subject"] for m in mails])
        self.assertRegex(str(mails[0]["Subject"]),
                         r"^crashmail: 1 alert from \S+ \(crashy crashed\)$")
        self.assertIn("Process crashy in group crashy exited unexpectedly", mails[0].get_content())
        self.assertIn("held for a digest by an earlier run", stderr)


if __name__ == "__main__":
    unittest.main()
