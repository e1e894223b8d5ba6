"""Foundation integration tests: a real supervisord with crashing programs and crashmail as
its event listener(s), delivering through `-s <a script that stores each message>`.

One supervisord run (SelectionRun) hosts several crashmail listeners, each with its own
arguments, store and priority, so that every selection rule is checked against the same set
of real crashes. The issue's "Done when" scenario has its own run (DoneWhen).
Start-up checks run crashmail directly (StartupErrors).
"""

import email.utils
import re
import socket
import time
import unittest

import harness as h

h.require("/usr/bin/supervisord")

ADDR = "ops@example.com"
# Every successful store also prints this on stdout: crashmail must send a child's stdout to
# stderr, never to the protocol pipe (supervisord would log "bad result line" / UNKNOWN).
NOISE = "250 2.0.0 queued as NOISE"
# Settle time after the expected mails have arrived, before asserting "no other mail". Every
# listener has answered every event by then, so an extra mail would already be queued.
SETTLE = 0.7
PROTOCOL_ERRORS = ["bad result line", "UNKNOWN", "event was rejected", "event caused an error",
                   "buffer overflowed"]


def subject_name(msg):
    """'crashy' from 'crashy crashed at ...' (after an optional 'PREFIX: ')."""
    m = re.match(r"^(?:.*?: )?(\S+) crashed at \S", str(msg["Subject"]))
    return m.group(1) if m else None


def spawned_pid(sup, process):
    m = sup.wait_for_log(r"spawned: '%s' with pid (\d+)" % re.escape(process))
    return int(m.group(1))


def common_programs(slow=1.5):
    """crashy, grp (worker_00, worker_01) crash after 0.5 s; other after `slow` s."""
    return "\n".join([
        h.crash_once_program("crashy"),
        h.crash_once_program("other", delay=slow),
        h.program_section("worker", "/bin/sh -c 'sleep 0.5; exit 3'",
                          process_name="worker_%(process_num)02d", numprocs=2,
                          autorestart=False, startsecs=0, startretries=0),
        "[group:grp]\nprograms=worker\n",
    ])


def assert_no_protocol_errors(test, sup, listeners):
    log = sup.log()
    for needle in PROTOCOL_ERRORS:
        test.assertNotIn(needle, log, "supervisord.log shows a protocol problem")
    for name in listeners:
        test.assertEqual(sup.state(name), "RUNNING", "listener %s is not RUNNING" % name)
        test.assertEqual(sup.events_sent(name), sup.events_processed(name),
                         "listener %s left an event unanswered" % name)


class SelectionRun(unittest.TestCase):
    """One supervisord; 7 processes exit (5 crashes, 1 clean exit, 1 expected exit 3)."""

    # listener name -> (crashmail args without -s, names expected in mail subjects)
    LISTENERS = {
        "sel_p_name": (["-p", "crashy", "-m", ADDR], ["crashy"]),
        "sel_p_group_proc": (["-p", "grp:worker_01", "-m", ADDR], ["grp:worker_01"]),
        "sel_p_group_star": (["-p", "grp:*", "-m", ADDR], ["grp:worker_00", "grp:worker_01"]),
        "sel_p_glob": (["-p", "crash*", "-m", ADDR], ["crashy"]),
        "sel_p_nonascii": (["-p", "wörker", "-m", ADDR], ["wörker"]),
        "sel_any": (["-a", "-m", ADDR],
                    ["crashy", "other", "grp:worker_00", "grp:worker_01", "wörker"]),
        "sel_any_overrides_p": (["-a", "-p", "crashy", "-m", ADDR],
                                ["crashy", "other", "grp:worker_00", "grp:worker_01", "wörker"]),
        "sel_none": (["-m", ADDR],
                     ["crashy", "other", "grp:worker_00", "grp:worker_01", "wörker"]),
        "sel_long": (["--program=other", "--optionalheader=LONG",
                      "--email=a@example.com,b@example.com", "--email", "c@example.com"],
                     ["other"]),
    }
    FAILING = "sel_failing_sendmail"
    EXITS = 7

    @classmethod
    def setUpClass(cls):
        sup = cls.sup = h.Supervisord()
        try:
            sup.add(common_programs())
            sup.add(h.crash_once_program("wörker", delay=1.5))
            sup.add(h.program_section("clean", "/bin/sh -c 'sleep 0.5; exit 0'",
                                      autorestart=False, startsecs=0, startretries=0))
            sup.add(h.program_section("expected3", "/bin/sh -c 'sleep 0.5; exit 3'",
                                      exitcodes="0,3", autorestart=False, startsecs=0,
                                      startretries=0))
            cls.stores = {}
            for name, (args, _) in cls.LISTENERS.items():
                store = cls.stores[name] = sup.path("store-" + name)
                sup.add_listener(name, [*args, "-s", h.mail_store(store, output=NOISE)])
            failing = cls.stores[cls.FAILING] = sup.path("store-failing")
            sup.add_listener(cls.FAILING, ["-p", "crashy", "-m", ADDR, "-s",
                                           h.mail_store(failing, exit_status=75, output="boom")])
            sup.start()
            sup.wait_for_log(r"exited: \S+ \(", timeout=30, count=cls.EXITS)
            for name in [*cls.LISTENERS, cls.FAILING]:
                sup.wait_listener_idle(name, cls.EXITS, timeout=30)
            for name, (_, expected) in cls.LISTENERS.items():
                try:
                    h.wait_for_mails(cls.stores[name], len(expected), timeout=20)
                except AssertionError:
                    pass  # the test for this listener reports what did arrive
            h.wait_until(lambda: h.count_attempts(failing) >= 1, 20,
                         what="the failing sendmail to be run")
            time.sleep(SETTLE)  # see SETTLE: only to catch extra mails
            cls.mails = {name: h.read_mails(store) for name, store in cls.stores.items()}
        except BaseException:
            sup.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sup.stop()

    def names(self, listener):
        return sorted(subject_name(m) for m in self.mails[listener])

    def assert_mails_for(self, listener):
        _, expected = self.LISTENERS[listener]
        self.assertEqual(self.names(listener), sorted(expected),
                         "%s: mails for the wrong processes; stderr:\n%s"
                         % (listener, self.sup.listener_stderr(listener)))

    def test_p_process_name_mails_only_that_process(self):
        self.assert_mails_for("sel_p_name")
        (msg,) = self.mails["sel_p_name"]
        pid = spawned_pid(self.sup, "crashy")
        self.assertIn("Process crashy in group crashy exited unexpectedly (pid %d) from state "
                      "RUNNING" % pid, msg.get_content())
        self.assertEqual(msg["To"], ADDR)

    def test_p_group_colon_process(self):
        self.assert_mails_for("sel_p_group_proc")
        (msg,) = self.mails["sel_p_group_proc"]
        pid = spawned_pid(self.sup, "worker_01")
        self.assertIn("Process worker_01 in group grp exited unexpectedly (pid %d) from state "
                      "RUNNING" % pid, msg.get_content())

    def test_p_group_star_mails_every_process_of_the_group(self):
        self.assert_mails_for("sel_p_group_star")

    def test_p_glob(self):
        self.assert_mails_for("sel_p_glob")

    def test_a_mails_every_crash(self):
        self.assert_mails_for("sel_any")

    def test_a_overrides_p(self):
        self.assert_mails_for("sel_any_overrides_p")

    def test_no_selection_mails_everything_and_warns_once(self):
        self.assert_mails_for("sel_none")
        warn = re.compile(r"(?i)warn.*(-a\b|--any)")
        lines = [l for l in self.sup.listener_stderr("sel_none").splitlines() if warn.search(l)]
        self.assertEqual(len(lines), 1, "expected exactly one warning about -a/-p, got %r\n%s"
                         % (lines, self.sup.listener_stderr("sel_none")))
        self.assertFalse(warn.search(self.sup.listener_stderr("sel_p_name")),
                         "a listener given -p must not warn about -a/-p")

    def test_long_options_and_address_lists(self):
        self.assert_mails_for("sel_long")
        (msg,) = self.mails["sel_long"]
        self.assertTrue(str(msg["Subject"]).startswith("LONG: other crashed at "), msg["Subject"])
        to = sorted(addr for _, addr in email.utils.getaddresses([str(msg["To"])]))
        self.assertEqual(to, ["a@example.com", "b@example.com", "c@example.com"])

    def test_expected_and_clean_exits_are_never_mailed(self):
        self.assertEqual(self.sup.count(r"exited: clean \(exit status 0; expected\)"), 1)
        self.assertEqual(self.sup.count(r"exited: expected3 \(exit status 3; expected\)"), 1)
        for listener, mails in self.mails.items():
            for msg in mails:
                text = str(msg["Subject"]) + msg.get_content()
                self.assertNotIn("clean", text, listener)
                self.assertNotIn("expected3", text, listener)

    def test_non_ascii_name_intact_and_subject_rfc2047(self):
        self.assert_mails_for("sel_p_nonascii")
        (msg,) = self.mails["sel_p_nonascii"]
        head = msg.raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        self.assertTrue(head.isascii(), "raw header block is not ASCII:\n%r" % head)
        raw_subject = re.search(rb"(?im)^Subject:(.*(?:\r?\n[ \t].*)*)", head).group(1)
        self.assertRegex(raw_subject.decode(), r"(?i)=\?utf-8\?[bq]\?",
                         "the Subject is not RFC 2047-encoded")
        self.assertTrue(str(msg["Subject"]).startswith("wörker crashed at "), msg["Subject"])
        pid = spawned_pid(self.sup, "wörker")
        self.assertIn("Process wörker in group wörker exited unexpectedly (pid %d) from state "
                      "RUNNING" % pid, msg.get_content())

    def test_failing_sendmail_is_logged_and_listener_keeps_answering(self):
        self.assertEqual(self.mails[self.FAILING], [])
        self.assertGreaterEqual(h.count_attempts(self.stores[self.FAILING]), 1)
        stderr = h.wait_until(
            lambda: (lambda s: s if "boom" in s and re.search(r"\b75\b", s) else None)(
                self.sup.listener_stderr(self.FAILING)),
            10, what="the sendmail failure (status 75, output 'boom') on the listener's stderr")
        self.assertIn("boom", stderr)
        # the crash of `other` and `wörker` came a second after crashy's failed delivery
        self.assertEqual(self.sup.events_processed(self.FAILING), self.EXITS)
        self.assertEqual(self.sup.state(self.FAILING), "RUNNING")

    def test_child_stdout_and_protocol_stay_clean(self):
        assert_no_protocol_errors(self, self.sup, [*self.LISTENERS, self.FAILING])
        for name in [*self.LISTENERS, self.FAILING]:
            self.assertEqual(self.sup.count(r"exited: %s " % name), 0,
                             "listener %s exited" % name)


class DoneWhen(unittest.TestCase):
    """The issue's acceptance scenario: `crashmail -p crashy -p grp:worker_01 -o [prod]
    -m ops@example.com -s <store>` with crashy, other and grp all crashing once."""

    def test_exactly_two_mails_with_superlance_sentence_prefix_and_valid_headers(self):
        sup = h.Supervisord()
        self.addCleanup(sup.stop)
        store = sup.path("store")
        sup.add(common_programs(slow=0.5))
        sup.add_listener("crashmail", ["-p", "crashy", "-p", "grp:worker_01", "-o", "[prod]",
                                       "-m", ADDR, "-s", h.mail_store(store, output=NOISE)])
        sup.start()
        sup.wait_for_log(r"exited: \S+ \(", timeout=30, count=4)
        sup.wait_listener_idle("crashmail", 4, timeout=30)
        h.wait_for_mails(store, 2, timeout=20)
        time.sleep(SETTLE)
        mails = h.read_mails(store)
        by_name = {subject_name(m): m for m in mails}
        self.assertEqual(sorted(subject_name(m) for m in mails), ["crashy", "grp:worker_01"],
                         "stderr:\n" + sup.listener_stderr("crashmail"))

        sentences = {
            "crashy": "Process crashy in group crashy exited unexpectedly (pid %d) from state "
                      "RUNNING" % spawned_pid(sup, "crashy"),
            "grp:worker_01": "Process worker_01 in group grp exited unexpectedly (pid %d) from "
                             "state RUNNING" % spawned_pid(sup, "worker_01"),
        }
        hosts = {socket.gethostname(), socket.getfqdn()}
        for name, msg in by_name.items():
            with self.subTest(name=name):
                self.assertRegex(str(msg["Subject"]),
                                 r"^\[prod\]: %s crashed at \S.*\d\d:\d\d:\d\d" % re.escape(name))
                body = msg.get_content()
                self.assertIn(sentences[name], body)
                self.assertTrue(any(n in body for n in hosts),
                                "the host name (%s) is not in the body" % " or ".join(hosts))
                self.assertEqual(msg["To"], ADDR)
                (_, sender), = email.utils.getaddresses([str(msg["From"])])
                self.assertRegex(sender, r"^[^@\s]+@[^@\s]+$")
                date = email.utils.parsedate_to_datetime(str(msg["Date"]))
                self.assertIsNotNone(date.tzinfo, "Date has no zone")
                self.assertRegex(str(msg["Message-ID"]), r"^<[^<>@\s]+@[^<>@\s]+>$")
                self.assertEqual(str(msg["MIME-Version"]).strip(), "1.0")
                self.assertEqual(msg.get_content_type(), "text/plain")
                self.assertEqual(msg.get_content_charset(), "utf-8")
                self.assertEqual(msg.defects, [], "parse defects")
                for header in ("Subject", "To", "From", "Date", "Message-ID"):
                    self.assertEqual(len(msg.get_all(header)), 1, header)
        self.assertNotEqual(by_name["crashy"]["Message-ID"], by_name["grp:worker_01"]["Message-ID"])
        assert_no_protocol_errors(self, sup, ["crashmail"])


class StartupErrors(unittest.TestCase):
    """crashmail run directly, outside supervisord."""

    def test_without_supervisor_server_url_exits_non_zero_with_a_clear_message(self):
        done = h.run_crashmail(["-a", "-m", ADDR, "-s", "/bin/true"])
        self.assertNotEqual(done.returncode, 0, done.stderr)
        self.assertRegex(done.stderr, r"(?i)supervisor", "no clear message")
        self.assertNotIn("READY", done.stdout)

    def test_no_recipient_and_no_channel_exits_64(self):
        done = h.run_crashmail(["-a", "-s", "/bin/true"],
                               env={"SUPERVISOR_SERVER_URL": "unix:///nonexistent.sock"})
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertRegex(done.stderr, r"(?i)(-m\b|--email|e-?mail|recipient|channel|deliver)")
        self.assertNotIn("READY", done.stdout)

    def test_unknown_option_exits_64(self):
        done = h.run_crashmail(["--no-such-option", "-m", ADDR],
                               env={"SUPERVISOR_SERVER_URL": "unix:///nonexistent.sock"})
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertIn("no-such-option", done.stderr)
        self.assertNotIn("READY", done.stdout)


if __name__ == "__main__":
    unittest.main()
