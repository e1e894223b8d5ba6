"""States, exclusions and recovery with a real supervisord (4.2.5) and a real Prometheus
Alertmanager: a program that cannot start gives BACKOFF alerts (when asked) and one FATAL
alert that says why; -x excludes; --recovery sends a notice once a crashed program stays up,
and Alertmanager's alert is resolved, with or without --recovery.
"""

import os
import unittest

import harness as h
from alertmanager import ALERTMANAGER, Alertmanager

h.require(h.SUPERVISORD)

ADDR = "ops@example.com"

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)


def crash_then_run_program(name, dir):
    """Crashes once (exit 2 after 1.2 s), then runs for good."""
    mark = os.path.join(dir, name + ".ran")
    return h.program_section(
        name, "/bin/sh -c 'if [ -e %s ]; then exec sleep 600; fi; touch %s; sleep 1.2; exit 2'"
        % (mark, mark), autostart=True, autorestart=True, startsecs=1)


class TestStates(unittest.TestCase):
    def test_a_program_that_cannot_start(self):
        sup = h.Supervisord()
        defaults_dir = os.path.join(h.tmpdir(), "defaults")
        defaults = h.mail_store(defaults_dir)
        backoff_dir = os.path.join(h.tmpdir(), "backoff")
        backoff = h.mail_store(backoff_dir)
        sup.add(h.program_section("nocmd", "/nonexistent/crashmail-test-cmd", autostart=True,
                                  startretries=2, startsecs=1))
        sup.add_listener("cm_default", ["-a", "-m", ADDR, "-s", defaults],
                         events="PROCESS_STATE")
        sup.add_listener("cm_backoff", ["-a", "-m", ADDR, "-s", backoff,
                                        "--state", "EXITED,FATAL", "--state", "backoff"],
                         events="PROCESS_STATE")
        with sup:
            sup.wait_for_log(r"gave up: nocmd entered FATAL state", timeout=30)
            h.wait_for_mails(defaults_dir, 1)
            h.wait_for_mails(backoff_dir, 4)
            sup.wait_listener_idle("cm_default", at_least=1)
            sup.wait_listener_idle("cm_backoff", at_least=1)
        # Defaults (EXITED, FATAL): one mail, the FATAL, with supervisord's reason.
        mails = h.read_mails(defaults_dir)
        self.assertEqual(len(mails), 1, [m["Subject"] for m in mails])
        fatal = mails[0]
        self.assertRegex(fatal["Subject"], r"^nocmd is FATAL: supervisord gave up starting it at ")
        body = fatal.get_content()
        self.assertIn("could not be started and will not be retried", body)
        self.assertIn("Spawn error: can't find command '/nonexistent/crashmail-test-cmd'", body)
        # With BACKOFF: three failed starts (startretries=2: tries 1, 2, 3), then FATAL, which
        # says the story (3 events before it, none counted: 3 is the default limit).
        mails = h.read_mails(backoff_dir)
        subjects = [m["Subject"] for m in mails]
        self.assertEqual(sum("failed to start (BACKOFF)" in s for s in subjects), 3, subjects)
        self.assertEqual(sum(" is FATAL" in s for s in subjects), 1, subjects)
        fatal = [m for m in mails if " is FATAL" in m["Subject"]][0]
        self.assertIn("After 3 alert-worthy events since ",
                      fatal.get_content())
        first = [m for m in mails if "BACKOFF" in m["Subject"]][0].get_content()
        self.assertIn("First failed start of nocmd", first)

    def test_exclude(self):
        sup = h.Supervisord()
        store_dir = os.path.join(h.tmpdir(), "store")
        store = h.mail_store(store_dir)
        for name in ("keep_me", "skip_me", "skip_too"):
            sup.add(h.crash_once_program(name, delay=0.3))
        sup.add_listener("cm", ["-a", "-x", "skip_*", "-m", ADDR, "-s", store],
                         events="PROCESS_STATE")
        with sup:
            sup.wait_for_log(r"exited: skip_too ", timeout=20)
            sup.wait_for_log(r"exited: skip_me ", timeout=20)
            h.wait_for_mails(store_dir, 1)
            sup.wait_listener_idle("cm", at_least=6)
        subjects = [m["Subject"] for m in h.read_mails(store_dir)]
        self.assertEqual(len(subjects), 1, subjects)
        self.assertTrue(subjects[0].startswith("keep_me crashed at "), subjects)

    @unittest.skipUnless(os.access(ALERTMANAGER, os.X_OK), "prometheus-alertmanager missing")
    def test_recovery_notice_and_alertmanager_resolve(self):
        sup = h.Supervisord()
        notices_dir = os.path.join(h.tmpdir(), "notices")
        notices = h.mail_store(notices_dir)
        silent_dir = os.path.join(h.tmpdir(), "silent")
        silent = h.mail_store(silent_dir)
        sup.add(crash_then_run_program("flaky", sup.dir))
        with Alertmanager(h.tmpdir()) as am, Alertmanager(h.tmpdir()) as am2:
            sup.add_listener("cm_recovery", ["-p", "flaky", "-m", ADDR, "-s", notices,
                                             "--recovery", "--recovery-after", "2s",
                                             "--alertmanager", am.url],
                             events="PROCESS_STATE")
            sup.add_listener("cm_plain", ["-p", "flaky", "-m", ADDR, "-s", silent,
                                          "--recovery-after", "2s", "--alertmanager", am2.url],
                             events="PROCESS_STATE")
            with sup:
                for manager in (am, am2):
                    firing = manager.wait_for_alerts(
                        lambda a: a["labels"].get("process") == "flaky", timeout=20)
                    self.assertEqual(firing[0]["labels"]["alertname"], "ProcessCrashed")
                h.wait_for_mails(notices_dir, 2, timeout=20)
                for manager in (am, am2):
                    h.wait_until(lambda: not [a for a in manager.alerts()
                                              if a["labels"].get("process") == "flaky"],
                                 timeout=20, what="the flaky alert resolved")
                    every = manager.alerts(active_only=False)
                    self.assertFalse([a for a in every if a["labels"].get("process") == "flaky"
                                      and a["status"]["state"] == "active"], every)
                sup.wait_listener_idle("cm_plain", at_least=4)
        subjects = [m["Subject"] for m in h.read_mails(notices_dir)]
        self.assertEqual(len(subjects), 2, subjects)
        self.assertTrue(subjects[0].startswith("flaky crashed at "), subjects)
        self.assertTrue(subjects[1].startswith("flaky recovered at "), subjects)
        notice = h.read_mails(notices_dir)[1].get_content()
        self.assertIn("flaky is running again (pid ", notice)
        self.assertIn("(1 alert-worthy event)", notice)
        # Without --recovery: the crash mail only; Alertmanager resolved all the same.
        subjects = [m["Subject"] for m in h.read_mails(silent_dir)]
        self.assertEqual(len(subjects), 1, subjects)


if __name__ == "__main__":
    unittest.main()
