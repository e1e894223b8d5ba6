"""SMTP integration tests: the real crashmail binary against real SMTP servers (aiosmtpd) on
127.0.0.1, with certificates made by openssl for the test.

`crashmail --test` (one test alert through every channel, outside supervisord) drives most
cases; assertions look at what the server received (envelope, commands, bytes), not only at
exit codes. The last class runs a real supervisord with crashing programs (the issue's "Done
when").
"""

import base64
import email
import email.policy
import email.utils
import os
import re
import subprocess
import sys
import time
import unittest

import harness as h

h.require("/usr/bin/openssl", "aiosmtpd", "/usr/bin/supervisord")

from smtp_sink import Certificates, SilentServer, SmtpSink, unused_port  # noqa: E402

USER = "ops"
PASSWORD = "s3cret-Pa55"
# What AUTH PLAIN would carry for USER/PASSWORD: must never appear on an unencrypted wire.
PLAIN_TOKEN = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
EX_UNAVAILABLE = 69  # --test: a channel failed permanently
EX_TEMPFAIL = 75     # --test: a channel failed, retrying may help

CERTS = Certificates(h.tmpdir("crashmail-smtp-certs-"))


def run_test_mode(args, password=None, timeout=60):
    """Runs `crashmail --test ARGS`; CRASHMAIL_SMTP_PASSWORD is set only when `password` is
    given. Returns (CompletedProcess with text output, seconds taken)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SUPERVISOR_") and k != "CRASHMAIL_SMTP_PASSWORD"}
    if password is not None:
        env["CRASHMAIL_SMTP_PASSWORD"] = password
    start = time.monotonic()
    done = subprocess.run([h.CRASHMAIL, "--test", *args], env=env, capture_output=True,
                          timeout=timeout)
    elapsed = time.monotonic() - start
    done.stdout = done.stdout.decode("utf-8", errors="replace")
    done.stderr = done.stderr.decode("utf-8", errors="replace")
    return done, elapsed


def parse(message):
    return email.message_from_bytes(message.content, policy=email.policy.default)


def assert_crlf_only(test, content):
    """Every line of `content` ends with CRLF: no bare LF or CR anywhere."""
    test.assertTrue(content.endswith(b"\r\n"), "message does not end with CRLF")
    stripped = content.replace(b"\r\n", b"")
    test.assertNotIn(b"\n", stripped, "bare LF in the message")
    test.assertNotIn(b"\r", stripped, "bare CR in the message")


class TestMode(unittest.TestCase):
    """crashmail --test against each kind of server."""

    def assert_one_result_line(self, done, word, url):
        lines = done.stdout.splitlines()
        self.assertEqual(len(lines), 1, "one line per channel expected:\n" + done.stdout)
        self.assertTrue(lines[0].startswith(word), lines[0])
        self.assertIn(url, lines[0])
        return lines[0]

    def assert_nothing_delivered(self, sink):
        self.assertEqual(sink.messages, [])
        self.assertNotIn("MAIL", sink.command_verbs())

    def test_plain_delivery_to_several_recipients_in_one_transaction(self):
        with SmtpSink() as sink:
            done, _ = run_test_mode(["-m", "a@example.com,b@example.com", "-m", "c@example.net",
                                     "--from", "alerts@example.org", "--smtp", sink.url])
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assert_one_result_line(done, "ok", sink.url)
            [message] = sink.wait_for_messages(1)
            verbs = sink.command_verbs()
        # Envelope: one transaction for every recipient.
        self.assertEqual(message.mail_from, "alerts@example.org")
        self.assertEqual(message.rcpt_tos, ["a@example.com", "b@example.com", "c@example.net"])
        self.assertEqual(verbs.count("MAIL"), 1)
        self.assertEqual(verbs.count("RCPT"), 3)
        self.assertEqual(verbs.count("DATA"), 1)
        self.assertFalse(message.tls)
        self.assertIsNone(message.login)
        # The bytes: RFC 5322 with CRLF everywhere, headers, a blank line, the body.
        assert_crlf_only(self, message.content)
        head, sep, body = message.content.partition(b"\r\n\r\n")
        self.assertEqual(sep, b"\r\n\r\n")
        self.assertIn(b"crashmail --test", body)
        for line in head.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)
            self.assertTrue(all(32 <= b < 127 or b == 9 for b in line), line)
        msg = parse(message)
        self.assertEqual(msg["From"].addresses[0].addr_spec, "alerts@example.org")
        self.assertEqual([a.addr_spec for a in msg["To"].addresses],
                         ["a@example.com", "b@example.com", "c@example.net"])
        self.assertRegex(msg["Message-ID"], r"^<[^<>@\s]+@[^<>@\s]+>$")
        self.assertIsNotNone(email.utils.parsedate_to_datetime(msg["Date"]))
        self.assertIn("crashmail test alert", msg["Subject"])
        self.assertEqual(msg["MIME-Version"], "1.0")

    def test_starttls_and_auth_with_password_from_environment(self):
        with SmtpSink(starttls=CERTS.server, users={USER: PASSWORD}) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER, "--cacert", CERTS.ca],
                                    password=PASSWORD)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assert_one_result_line(done, "ok", sink.url)
            [message] = sink.wait_for_messages(1)
            commands = sink.commands
            attempts = sink.auth_attempts
        self.assertTrue(message.tls)
        self.assertEqual(message.login, USER)
        self.assertEqual(message.rcpt_tos, ["ops@example.com"])
        assert_crlf_only(self, message.content)
        verbs = [c.text.split(" ")[0].upper() for c in commands]
        self.assertLess(verbs.index("STARTTLS"), verbs.index("AUTH"))
        for c in commands[verbs.index("STARTTLS") + 1:]:
            self.assertTrue(c.tls, "command after STARTTLS not over TLS: %r" % c.text)
        self.assertEqual([(a.login, a.success, a.tls) for a in attempts], [(USER, True, True)])

    def test_starttls_and_auth_with_password_from_file(self):
        path = os.path.join(h.tmpdir(), "smtp-password")
        with open(path, "w") as f:
            f.write(PASSWORD + "\nthis second line is not part of the password\n")
        os.chmod(path, 0o600)
        with SmtpSink(starttls=CERTS.server, users={USER: PASSWORD}) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER, "--smtp-password-file", path,
                                     "--cacert", CERTS.ca])
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            [message] = sink.wait_for_messages(1)
        self.assertTrue(message.tls)
        self.assertEqual(message.login, USER)

    def test_wrong_password_is_a_permanent_failure_with_the_servers_reply(self):
        with SmtpSink(starttls=CERTS.server, users={USER: PASSWORD}) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER, "--cacert", CERTS.ca],
                                    password="wrong")
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertIn("535 5.7.8 Authentication credentials invalid", line)
            self.assertIn("(permanent)", line)
            self.assertNotIn("wrong", line)
            self.assert_nothing_delivered(sink)
            attempts = sink.auth_attempts
        self.assertEqual([(a.login, a.success, a.tls) for a in attempts], [(USER, False, True)])

    def test_user_without_starttls_is_refused_before_any_password_is_sent(self):
        # The server offers AUTH in clear and no STARTTLS: a client must not take the bait.
        with SmtpSink(users={USER: PASSWORD}, auth_require_tls=False) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER], password=PASSWORD)
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertIn("STARTTLS", line)
            self.assertIn("(permanent)", line)
            verbs = sink.command_verbs()
            raw = b"".join(sink.raw_sessions)
            self.assertEqual(sink.auth_attempts, [])
            self.assert_nothing_delivered(sink)
        self.assertIn("EHLO", verbs)
        self.assertNotIn("AUTH", verbs)
        self.assertNotIn(PASSWORD.encode(), raw)
        self.assertNotIn(PLAIN_TOKEN, raw)
        self.assertNotIn(base64.b64encode(PASSWORD.encode()), raw)

    def test_starttls_required_without_user_refuses_a_server_without_tls(self):
        with SmtpSink() as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--starttls", "required"])
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            self.assertIn("STARTTLS", self.assert_one_result_line(done, "error", sink.url))
            self.assert_nothing_delivered(sink)

    def test_starttls_is_used_when_offered_even_without_user(self):
        with SmtpSink(starttls=CERTS.server) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--cacert", CERTS.ca])
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            [message] = sink.wait_for_messages(1)
        self.assertTrue(message.tls)

    def test_smtps_implicit_tls_with_auth(self):
        with SmtpSink(implicit_tls=CERTS.server, users={USER: PASSWORD}) as sink:
            self.assertTrue(sink.url.startswith("smtps://"))
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER, "--cacert", CERTS.ca],
                                    password=PASSWORD)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assert_one_result_line(done, "ok", sink.url)
            [message] = sink.wait_for_messages(1)
            verbs = sink.command_verbs()
        self.assertTrue(message.tls)
        self.assertEqual(message.login, USER)
        self.assertNotIn("STARTTLS", verbs)
        assert_crlf_only(self, message.content)

    def test_certificate_not_trusted_is_permanent_and_trusted_with_cacert_delivers(self):
        with SmtpSink(starttls=CERTS.server, users={USER: PASSWORD}) as sink:
            # The private CA is not in the system store: refused, before AUTH.
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER], password=PASSWORD)
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertIn("certificate", line)
            self.assertIn("(permanent)", line)
            self.assertNotIn("AUTH", sink.command_verbs())
            self.assert_nothing_delivered(sink)
            # The same server, with --cacert naming that CA: delivered.
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER, "--cacert", CERTS.ca],
                                    password=PASSWORD)
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            [message] = sink.wait_for_messages(1)
            self.assertTrue(message.tls)

    def test_self_signed_certificate_is_refused_even_with_starttls_auto(self):
        # A broken certificate is never a reason to fall back to plain text.
        with SmtpSink(starttls=CERTS.untrusted) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--cacert", CERTS.ca])
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertIn("certificate", line)
            self.assert_nothing_delivered(sink)

    def test_smtps_with_untrusted_certificate_is_permanent(self):
        with SmtpSink(implicit_tls=CERTS.untrusted) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url])
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            self.assertIn("certificate", self.assert_one_result_line(done, "error", sink.url))
            self.assertEqual(sink.messages, [])

    def test_server_down_is_transient(self):
        url = "smtp://127.0.0.1:%d" % unused_port()
        done, elapsed = run_test_mode(["-m", "ops@example.com", "--smtp", url])
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        line = self.assert_one_result_line(done, "error", url)
        self.assertIn("(transient)", line)
        self.assertRegex(line, r"(?i)connect")
        self.assertLess(elapsed, 10)

    def test_server_that_never_answers_gives_up_within_the_timeout(self):
        with SilentServer() as server:
            done, elapsed = run_test_mode(["-m", "ops@example.com", "--smtp", server.url,
                                           "--timeout", "2"], timeout=60)
            accepted = server.accepted
        sys.stderr.write("note: silent server: --timeout 2 gave up after %.2f s\n" % elapsed)
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        line = self.assert_one_result_line(done, "error", server.url)
        self.assertIn("(timeout)", line)
        self.assertGreaterEqual(accepted, 1, "crashmail never connected")
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLess(elapsed, 15)  # 2 s plus generous slack for a loaded machine

    def test_4xx_reply_is_transient_with_the_servers_words(self):
        with SmtpSink(data_reply="451 4.3.0 Mail queue full, try later") as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url])
            self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
        self.assertIn("451 4.3.0 Mail queue full, try later", line)
        self.assertIn("(transient)", line)

    def test_5xx_recipient_reply_is_permanent_with_the_servers_words(self):
        reply = "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        with SmtpSink(rcpt_reply={"nobody@example.com": reply}) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com,nobody@example.com",
                                     "--smtp", sink.url])
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertEqual(sink.messages, [])
        self.assertIn(reply, line)
        self.assertIn("(permanent)", line)


class DoneWhen(unittest.TestCase):
    """A real supervisord; crashmail -a -m ops@example.com --smtp ... --smtp-user ops
    --cacert ca.pem with the password in the listener's environment=, against a STARTTLS +
    AUTH server: one RFC 5322 mail per crash, over TLS, authenticated."""

    def test_one_mail_per_crash_over_tls_authenticated(self):
        with SmtpSink(starttls=CERTS.server, users={USER: PASSWORD},
                      require_starttls=True) as sink:
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy", delay=0.5))
            sup.add(h.crash_once_program("crashy2", delay=1.0))
            sup.add(h.crash_once_program("clean", status=0, delay=0.5))
            sup.add_listener("cm", ["-a", "-m", "ops@example.com", "--smtp", sink.url,
                                    "--smtp-user", USER, "--cacert", CERTS.ca],
                             environment={"CRASHMAIL_SMTP_PASSWORD": PASSWORD})
            with sup:
                sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
                sup.wait_for_log(r"exited: crashy2 \(exit status 3; not expected\)")
                sup.wait_for_log(r"exited: clean \(exit status 0; expected\)")
                messages = sink.wait_for_messages(2, timeout=30)
                sup.wait_listener_idle("cm", at_least=3)
                time.sleep(1.0)  # an extra (duplicate) mail would arrive by now
                messages = sink.messages
                stderr = sup.listener_stderr("cm")
                with open(sup.conf_path) as f:
                    conf = f.read()
                self.assertEqual(sup.state("cm"), "RUNNING")
                log = sup.log()
        self.assertEqual(len(messages), 2, "one mail per crash expected; listener stderr:\n"
                         + stderr)
        subjects = []
        ids = set()
        for message in messages:
            self.assertTrue(message.tls)
            self.assertEqual(message.login, USER)
            self.assertEqual(message.rcpt_tos, ["ops@example.com"])
            assert_crlf_only(self, message.content)
            msg = parse(message)
            self.assertRegex(msg["Message-ID"], r"^<[^<>@\s]+@[^<>@\s]+>$")
            ids.add(msg["Message-ID"])
            self.assertIsNotNone(email.utils.parsedate_to_datetime(msg["Date"]))
            self.assertEqual([a.addr_spec for a in msg["To"].addresses], ["ops@example.com"])
            self.assertEqual(msg["From"].addresses[0].addr_spec, message.mail_from)
            subjects.append(str(msg["Subject"]))
        self.assertEqual(len(ids), 2)
        names = sorted(re.match(r"^(\S+) crashed at ", s).group(1) for s in subjects)
        self.assertEqual(names, ["crashy", "crashy2"])
        # The secret stays out of command lines (visible in ps) and out of the logs.
        command_line = [line for line in conf.splitlines() if line.startswith("command=")]
        self.assertTrue(command_line)
        for line in command_line:
            self.assertNotIn(PASSWORD, line)
        self.assertNotIn(PASSWORD, stderr)
        self.assertNotIn(PASSWORD, log)
        for needle in ["bad result line", "UNKNOWN"]:
            self.assertNotIn(needle, log)


if __name__ == "__main__":
    unittest.main()
