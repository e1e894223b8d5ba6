"""A crash loop with a real supervisord (4.2.5) under flood control: a handful of mails, and
the counts in them add up to every crash supervisord logged.

A program crashes every ~1.5 s until it has crashed 8 times, then is stopped. crashmail runs
with the default count (3 alerts per window) and a 45 s window (the default window is 10 minutes; the
arithmetic is the same, and unit tests cover windows that follow one another). The first
three crashes are mailed one by one; every later crash is counted, and the window's end
brings one summary ("looper crashed 5 more times in the last 45 seconds"): alerts plus
the summary's count equal the "exited: looper" lines of supervisord's log.
"""

import os
import re
import signal
import unittest

import harness as h

h.require(h.SUPERVISORD)

ADDR = "ops@example.com"
def summary_count(subject):
    """The count a summary subject states, or None when it is not a summary."""
    match = re.match(r"^looper crashed (?:once more|(\d+) more times) in the last ", subject)
    if not match:
        return None
    return int(match.group(1)) if match.group(1) else 1


class TestCrashLoopFloodControl(unittest.TestCase):
    def test_a_crash_loop_gives_a_handful_of_mails_that_account_for_every_crash(self):
        sup = h.Supervisord()
        store_dir = os.path.join(h.tmpdir(), "store")
        store = h.mail_store(store_dir)
        sup.add(h.program_section("looper", "/bin/sh -c 'sleep 1.2; exit 1'",
                                  autostart=True, autorestart=True, startsecs=1,
                                  startretries=100))
        stderr = sup.add_listener("cm", ["-a", "-m", ADDR, "-s", store,
                                         "--rate-limit", "3/45s"],
                                  events="PROCESS_STATE")
        with sup:
            sup.wait_for_log(r"exited: looper ", timeout=35, count=8)
            rpc = sup.rpc()
            rpc.supervisor.stopProcess("looper")
            rpc("close")()
            crashes = sup.count(r"exited: looper \(exit status 1; not expected\)")
            self.assertGreaterEqual(crashes, 8)

            def accounted():
                mails = h.read_mails(store_dir)
                alerts = [m for m in mails if " crashed at " in m["Subject"]]
                counts = [summary_count(m["Subject"]) for m in mails]
                return len(alerts) + sum(c for c in counts if c)

            # The window ends 45 s after the first crash, some 30 s after the stop.
            h.wait_until(lambda: accounted() >= crashes, timeout=50,
                         what="every crash alerted or counted")
            with open(stderr, encoding="utf-8", errors="replace") as f:
                log = f.read()

        mails = h.read_mails(store_dir)
        subjects = [m["Subject"] for m in mails]
        alerts = [m for m in mails if " crashed at " in m["Subject"]]
        summaries = [m for m in mails if summary_count(m["Subject"])]
        # Three alerts, then one summary: a handful of mails, not one per crash.
        self.assertEqual(len(alerts), 3, subjects)
        self.assertEqual(len(summaries), 1, subjects)
        self.assertEqual(len(mails), 4, subjects)
        self.assertEqual(len(alerts) + sum(summary_count(m["Subject"]) for m in summaries),
                         crashes, subjects)
        # The story: the first says it is the first, the third that it is the last one.
        first = alerts[0].get_content()
        self.assertIn("First crash of looper; if more follow, up to 3 alerts per 45 seconds",
                      first)
        self.assertIn("Crash 3 of looper since ", alerts[2].get_content())
        self.assertIn("This is the last alert for looper until ", alerts[2].get_content())
        body = summaries[0].get_content()
        self.assertIn("flood control (at most 3 alerts per 45 seconds) counted them", body)
        self.assertIn("in the last 45 seconds", summaries[0]["Subject"])
        self.assertRegex(body, r"Last exit: exit status 1\n")
        # Every summary is one Message-ID of its own (no duplicates).
        ids = [m["Message-ID"] for m in mails]
        self.assertEqual(len(ids), len(set(ids)))
        # One line for the window's counted crashes, not one per crash; the summary's line
        # says how many.
        counted = re.findall(r"(?m)^.*counted by flood control \(no alert\).*$", log)
        self.assertEqual(len(counted), 1, log)
        self.assertRegex(counted[0], r"looper EXITED: counted by flood control \(no alert\); "
                                     r"further crashes of looper are counted until "
                                     r"\d\d:\d\d:\d\d, then summarised$")
        self.assertRegex(log, r"looper: %d events counted by flood control: summary "
                         % (crashes - 3))
        # Every line starts with its time (supervisord's log files have none).
        for line in log.splitlines():
            self.assertRegex(line, r"^" + h.LOG_TIME + r" crashmail: ")
        # Subjects: superlance's time, then the zone's offset.
        for alert in alerts:
            self.assertRegex(alert["Subject"], r"^looper crashed at \d{4}-\d\d-\d\d "
                                               r"\d\d:\d\d:\d\d,\d{3} [+-]\d{4}$")


    def test_sigkilled_crashmail_loses_no_count_and_counts_nothing_twice(self):
        sup = h.Supervisord()
        store_dir = os.path.join(h.tmpdir(), "store")
        store = h.mail_store(store_dir)
        sup.add(h.program_section("looper", "/bin/sh -c 'sleep 1.2; exit 1'",
                                  autostart=True, autorestart=True, startsecs=1,
                                  startretries=100))
        sup.add_listener("cm", ["-a", "-m", ADDR, "-s", store, "--rate-limit", "2/45s"],
                         events="PROCESS_STATE")
        with sup:
            for crashes in (4, 7):
                sup.wait_for_log(r"exited: looper ", timeout=35, count=crashes)
                rpc = sup.rpc()
                pid = rpc.supervisor.getProcessInfo("cm")["pid"]
                rpc("close")()
                os.kill(pid, signal.SIGKILL)
            sup.wait_for_log(r"exited: looper ", timeout=35, count=9)
            rpc = sup.rpc()
            rpc.supervisor.stopProcess("looper")
            rpc("close")()
            crashes = sup.count(r"exited: looper \(exit status 1; not expected\)")
            self.assertEqual(sup.count(r"exited: cm \(terminated by SIGKILL"), 2)

            def accounted():
                mails = h.read_mails(store_dir)
                alerts = [m for m in mails if " crashed at " in m["Subject"]]
                counts = [summary_count(m["Subject"]) for m in mails]
                return len(alerts) + sum(c for c in counts if c)

            h.wait_until(lambda: accounted() >= crashes, timeout=55,
                         what="every crash alerted or counted")
        mails = h.read_mails(store_dir)
        subjects = [m["Subject"] for m in mails]
        alerts = [m for m in mails if " crashed at " in m["Subject"]]
        summaries = [m for m in mails if summary_count(m["Subject"])]
        self.assertEqual(len(alerts), 2, subjects)
        self.assertEqual(len(summaries), 1, subjects)
        self.assertEqual(accounted(), crashes, subjects)


if __name__ == "__main__":
    unittest.main()
