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
        # One "ok"/"error" line per channel; the other lines are a host name without a dot
        # (a VM's "vm": "warning ...", see HostName), a line per recipient ("      accepted
        # ...", "      refused ...") and the delivery's notes ("note  ...").
        lines = [line for line in done.stdout.splitlines()
                 if line.startswith("ok ") or line.startswith("error ")]
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

    def test_certificate_not_trusted_is_refused_and_trusted_with_cacert_delivers(self):
        with SmtpSink(starttls=CERTS.server, users={USER: PASSWORD}) as sink:
            # The private CA is not in the system store: refused, before AUTH. A certificate
            # problem is retried for an hour (the relay's admin may fix it), so --test says
            # "temporary" (75) and why.
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--smtp-user", USER], password=PASSWORD)
            self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertIn("certificate", line)
            self.assertIn("retried for up to 1 h", line)
            self.assertIn("(transient)", line)
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
            self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "error", sink.url)
            self.assertIn("certificate", line)
            self.assert_nothing_delivered(sink)

    def test_smtps_with_untrusted_certificate_is_refused(self):
        with SmtpSink(implicit_tls=CERTS.untrusted) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url])
            self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
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
        # The others get the mail; --test prints a line per recipient and exits 69.
        reply = "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        with SmtpSink(rcpt_reply={"nobody@example.com": reply}) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com,nobody@example.com",
                                     "--smtp", sink.url])
            self.assertEqual(done.returncode, EX_UNAVAILABLE, done.stdout + done.stderr)
            line = self.assert_one_result_line(done, "ok", sink.url)
            [message] = sink.wait_for_messages(1)
        self.assertIn("1 of 2 recipient(s)", line)
        self.assertEqual(message.rcpt_tos, ["ops@example.com"])
        self.assertIn("      accepted ops@example.com", done.stdout)
        refused = [l for l in done.stdout.splitlines() if l.startswith("      refused  nobody@")]
        self.assertEqual(len(refused), 1, done.stdout)
        self.assertIn(reply, refused[0])
        self.assertIn("(permanent)", refused[0])

    def test_every_recipient_refused_is_a_failure_naming_each(self):
        reply = "550 5.1.1 <nobody@example.com>: Recipient address rejected"
        with SmtpSink(rcpt_reply={"nobody@example.com": reply}) as sink:
            done, _ = run_test_mode(["-m", "nobody@example.com", "--smtp", sink.url])
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


def crashmail_fqdn():
    """The name crashmail takes for this host without --hostname (util/host): gethostname(),
    or when it has no dot, the canonical name getaddrinfo() gives for it."""
    import socket
    name = socket.gethostname() or "localhost"
    if "." in name:
        return name
    try:
        canon = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)[0][3]
    except OSError:
        canon = ""
    return canon or name


def unqualified_warning(name):
    return ("warning host name '%s' is not fully qualified: strict mail relays (Postfix "
            "reject_non_fqdn_helo_hostname) refuse it in EHLO; give one with --hostname NAME"
            % name)


class HostName(unittest.TestCase):
    """--hostname NAME: the EHLO name the server sees (aiosmtpd's session.host_name), the
    default sender, Message-ID, the Host: line and the webhook's host; the warning for a name
    without a dot; bad names refused (exit 64)."""

    def send(self, *args):
        from http_sink import HttpSink
        with SmtpSink() as sink, HttpSink() as hook:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--webhook", hook.url("/hook"), *args])
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            [message] = sink.wait_for_messages(1)
            [request] = hook.wait_for_requests(1)
        return done, message, request.json()

    def assert_named(self, name, done, message, document):
        self.assertEqual(message.helo, name)
        self.assertEqual(message.mail_from, "crashmail@" + name)
        msg = parse(message)
        self.assertEqual(msg["From"].addresses[0].addr_spec, "crashmail@" + name)
        self.assertTrue(msg["Message-ID"].endswith("@%s>" % name), msg["Message-ID"])
        self.assertRegex(msg.get_content(), r"\nHost: %s\r?\n" % re.escape(name))
        self.assertEqual(msg["X-Crashmail-Host"], name)
        self.assertEqual(document["host"], name)
        ok = [line for line in done.stdout.splitlines() if line.startswith("ok ")]
        self.assertEqual(len(ok), 2, done.stdout)

    def test_hostname_names_this_host_in_ehlo_sender_message_id_body_and_webhook(self):
        name = "relay-client.example.net"
        done, message, document = self.send("--hostname", name)
        self.assert_named(name, done, message, document)
        self.assertNotIn("warning", done.stdout)
        self.assertNotIn("not fully qualified", done.stderr)

    def test_without_hostname_the_ehlo_name_is_the_fqdn(self):
        name = crashmail_fqdn()
        done, message, document = self.send()
        self.assert_named(name, done, message, document)
        warnings = [line for line in done.stdout.splitlines() if line.startswith("warning ")]
        self.assertEqual(warnings, [] if "." in name else [unqualified_warning(name)],
                         done.stdout)

    def test_a_name_without_a_dot_is_used_and_warned_about_once(self):
        done, message, document = self.send("--hostname", "vm")
        self.assert_named("vm", done, message, document)
        self.assertEqual(done.stdout.count("not fully qualified"), 1, done.stdout)
        self.assertEqual(done.stdout.splitlines()[0], unqualified_warning("vm"))
        self.assertNotIn("not fully qualified", done.stderr)  # --test: the report says it

    def test_webhooks_alone_are_not_warned_about(self):
        from http_sink import HttpSink
        with HttpSink() as hook:
            done, _ = run_test_mode(["--webhook", hook.url("/hook"), "--hostname", "vm"])
            [request] = hook.wait_for_requests(1)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertEqual(request.json()["host"], "vm")
        self.assertNotIn("not fully qualified", done.stdout + done.stderr)

    def test_the_start_up_warning_is_logged_once_when_serving(self):
        spool = h.tmpdir()
        env = {"SUPERVISOR_SERVER_URL": "unix://" + os.path.join(spool, "none.sock")}
        for name, expected in (("vm", 1), ("vm.example.net", 0)):
            done = h.run_crashmail(["-a", "-m", "ops@example.com", "-s", "cat >/dev/null",
                                    "--spool", spool, "--hostname", name], env=env)
            self.assertEqual(done.stdout.count("not fully qualified"), 0, done.stdout)
            self.assertEqual(done.stderr.count("not fully qualified"), expected, done.stderr)
            if expected:
                self.assertIn("crashmail: " + unqualified_warning(name).replace(
                    "warning ", "warning: ", 1), done.stderr)

    def test_a_bad_hostname_is_a_usage_error(self):
        for name in ("web_1.example.com", "example.com.", "-x.example.com", "a" * 254, ""):
            done, _ = run_test_mode(["-m", "ops@example.com", "--hostname", name])
            self.assertEqual(done.returncode, 64, done.stderr)
            self.assertTrue(h.without_log_times(done.stderr).startswith(
                "crashmail: error: --hostname '"), done.stderr)
            self.assertEqual(done.stdout, "")


class SendmailEnvelopeSender(unittest.TestCase):
    """-s CMD with {from}: the sender reaches the command as one argument whatever it holds;
    a command without {from} gets exactly the arguments it always got (superlance)."""

    def run_store(self, command_tail, *args):
        d = h.tmpdir()
        store = h.mail_store(os.path.join(d, "store"))
        done, _ = run_test_mode(["-m", "ops@example.com", "-s", store + command_tail,
                                 "--hostname", "web1.example.com", *args])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        return h.wait_for_mails(os.path.join(d, "store"), 1)[0]

    def test_from_placeholder_becomes_one_argument(self):
        # What the address check lets through may still mean something to the shell.
        sender = "b+$HOME`id`'x'|&*@example.org"
        mail = self.run_store(" -t -i -f {from}", "--from", sender)
        self.assertEqual(mail.argv, ["-t", "-i", "-f", sender])

    def test_from_placeholder_without_from_is_the_default_sender(self):
        mail = self.run_store(" --sender={from}")
        self.assertEqual(mail.argv, ["--sender=crashmail@web1.example.com"])

    def test_a_command_without_placeholder_runs_as_given(self):
        mail = self.run_store(" -t -i", "--from", "alerts@example.org")
        self.assertEqual(mail.argv, ["-t", "-i"])
        mail = self.run_store("")
        self.assertEqual(mail.argv, [])

    def test_a_sender_that_could_inject_options_is_refused(self):
        for sender in ("-oQ/tmp/x", "a b@example.org", "a;id@example.org"):
            done, _ = run_test_mode(["-m", "ops@example.com", "-s", "cat >/dev/null {from}",
                                     "--from", sender])
            self.assertEqual(done.returncode, 64, done.stderr)
            self.assertIn("--from '", done.stderr)


# --------------------------------------------------------------------------- issue 15: SMTP
# Recipients one by one, the wait for the end of the message, certificates, broken peers.

import asyncio  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402


def slow_data_sink(delay, **kwargs):
    """An SmtpSink whose reply to the end of the message comes `delay` seconds late (the
    message is recorded, i.e. accepted, when the reply is sent)."""
    sink = SmtpSink(**kwargs)
    handler = sink._controller.handler
    accept = handler.handle_DATA

    async def slow(server, session, envelope):
        await asyncio.sleep(delay)
        return await accept(server, session, envelope)

    handler.handle_DATA = slow
    return sink


class ScriptedPeer:
    """A TCP server on 127.0.0.1 that plays a broken SMTP server, one connection at a time:
    mode "http" answers like an HTTP server and hangs up; mode "drop" speaks SMTP up to DATA's
    354, reads `read_bytes` of the message and hangs up."""

    def __init__(self, mode, read_bytes=1000):
        self.mode = mode
        self.read_bytes = read_bytes
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.url = "smtp://127.0.0.1:%d" % self._sock.getsockname()[1]
        self.received = 0  # message bytes read before hanging up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(10)
            try:
                self._session(client)
            except OSError:
                pass
            finally:
                client.close()

    def _session(self, client):
        if self.mode == "http":
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n")
            return
        client.sendall(b"220 peer ESMTP\r\n")
        buffer = b""
        while True:
            while b"\r\n" not in buffer:
                chunk = client.recv(4096)
                if not chunk:
                    return
                buffer += chunk
            line, buffer = buffer.split(b"\r\n", 1)
            verb = line.split(b" ", 1)[0].upper()
            if verb == b"EHLO":
                client.sendall(b"250-peer\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                client.sendall(b"354 go ahead\r\n")
                got = len(buffer)
                while got < self.read_bytes:
                    chunk = client.recv(min(4096, self.read_bytes - got))
                    if not chunk:
                        break
                    got += len(chunk)
                self.received = got
                return  # hang up in the middle of the message
            elif verb == b"QUIT":
                client.sendall(b"221 bye\r\n")
                return
            else:
                client.sendall(b"250 ok\r\n")


def message_ids(messages):
    return [parse(m)["Message-ID"] for m in messages]


class SmtpRecipientsOneByOne(unittest.TestCase):
    """A recipient the server refuses does not keep the mail from the others; a refused one
    is retried alone (the retry depends on the delivery side using deliver_to)."""

    def test_refused_recipient_does_not_stop_the_others(self):
        reply = "550 5.1.1 <old@example.com>: Recipient address rejected: User unknown"
        with SmtpSink(rcpt_reply={"old@example.com": reply}) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com,old@example.com",
                                     "--smtp", sink.url])
            [message] = sink.wait_for_messages(1)
            verbs = sink.command_verbs()
        sys.stderr.write("note: --test with a refused recipient: exit %d, stdout:\n%s"
                         % (done.returncode, done.stdout))
        self.assertEqual(message.rcpt_tos, ["ops@example.com"])
        self.assertEqual(verbs.count("RCPT"), 2)
        self.assertEqual(verbs.count("DATA"), 1)
        # The headers still name both: it is the same mail for everyone.
        self.assertEqual([a.addr_spec for a in parse(message)["To"].addresses],
                         ["ops@example.com", "old@example.com"])
        # --test tells about the refused recipient, with the server's words.
        self.assertIn("old@example.com", done.stdout + done.stderr)
        self.assertIn("550 5.1.1", done.stdout + done.stderr)

    def test_every_recipient_refused_names_each(self):
        with SmtpSink(rcpt_reply={"a@example.com": "550 5.1.1 no such user",
                                  "b@example.com": "452 4.2.2 mailbox full"}) as sink:
            done, _ = run_test_mode(["-m", "a@example.com,b@example.com", "--smtp", sink.url])
            self.assertEqual(sink.messages, [])
            verbs = sink.command_verbs()
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        self.assertIn("a@example.com: 550 5.1.1 no such user", done.stdout)
        self.assertIn("b@example.com: 452 4.2.2 mailbox full", done.stdout)
        self.assertIn("(transient)", done.stdout)
        self.assertNotIn("DATA", verbs)

    def test_transiently_refused_recipient_gets_the_same_mail_later_alone(self):
        with SmtpSink(rcpt_reply={"full@example.com": "452 4.2.2 Mailbox full"}) as sink:
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy", delay=0.5))
            sup.add_listener("cm", ["-p", "crashy", "-m", "ops@example.com,full@example.com",
                                    "--smtp", sink.url, "--timeout", "5"])
            with sup:
                [first] = sink.wait_for_messages(1, timeout=30)
                # The mailbox has room again: the retry (5 s later) is accepted.
                sink._controller.handler._rcpt_reply.clear()
                messages = sink.wait_for_messages(2, timeout=40)
                time.sleep(1.0)  # a third (duplicate) mail would arrive by now
                messages = sink.messages
                stderr = sup.listener_stderr("cm")
        self.assertEqual(len(messages), 2, "listener stderr:\n" + stderr)
        self.assertEqual(messages[0].rcpt_tos, ["ops@example.com"])
        self.assertEqual(messages[1].rcpt_tos, ["full@example.com"], "listener stderr:\n"
                         + stderr)
        self.assertEqual(len(set(message_ids(messages))), 1, "the same mail, same Message-ID")
        for message in messages:
            self.assertEqual([a.addr_spec for a in parse(message)["To"].addresses],
                             ["ops@example.com", "full@example.com"])
        self.assertIn("452 4.2.2 Mailbox full", stderr)


class SmtpEndOfDataWait(unittest.TestCase):
    """--timeout bounds every reply but the one to the end of the message; --data-timeout
    bounds that one (a server that answers late has taken the mail: no second copy)."""

    def test_late_reply_to_the_end_of_the_message_is_one_delivery(self):
        with slow_data_sink(3.5) as sink:
            done, elapsed = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                           "--timeout", "2"])
            messages = sink.messages
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("ok    " + sink.url, done.stdout.splitlines(), done.stdout)
        self.assertEqual(len(messages), 1)
        self.assertGreaterEqual(elapsed, 3.0)

    def test_late_reply_under_supervisord_is_not_retried(self):
        with slow_data_sink(3.5) as sink:
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy", delay=0.5))
            sup.add_listener("cm", ["-p", "crashy", "-m", "ops@example.com",
                                    "--smtp", sink.url, "--timeout", "2"])
            with sup:
                sink.wait_for_messages(1, timeout=30)
                # A failure would be retried after about 5 s: wait past that.
                time.sleep(8.0)
                messages = sink.messages
                stderr = sup.listener_stderr("cm")
                pending = os.listdir(sup.path("spool", "cm", "pending")) \
                    if os.path.isdir(sup.path("spool", "cm", "pending")) else []
        self.assertEqual(len(messages), 1, "exactly one copy expected; listener stderr:\n"
                         + stderr)
        self.assertEqual([n for n in pending if n.endswith(".json")], [], stderr)

    def test_data_timeout_shorter_than_the_reply_says_a_duplicate_is_possible(self):
        with slow_data_sink(4) as sink:
            done, elapsed = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                           "--timeout", "1", "--data-timeout", "2s"])
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        self.assertIn("no reply to the end of the message within 2 s", done.stdout)
        self.assertIn("the server may have accepted it; a retry may deliver a duplicate "
                      "(same Message-ID)", done.stdout)
        self.assertIn("(timeout)", done.stdout)
        self.assertLess(elapsed, 4.0)

    def test_slow_reply_before_the_data_is_bounded_by_timeout(self):
        with SilentServer() as server:
            done, elapsed = run_test_mode(["-m", "ops@example.com", "--smtp", server.url,
                                           "--timeout", "1", "--data-timeout", "1m"])
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        self.assertIn("(timeout)", done.stdout)
        self.assertLess(elapsed, 5.0)

    def test_data_timeout_below_timeout_is_a_usage_error(self):
        done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", "smtp://127.0.0.1:9",
                                 "--timeout", "30", "--data-timeout", "10s"])
        self.assertEqual(done.returncode, 64, done.stdout + done.stderr)
        self.assertIn("--data-timeout", done.stderr)
        done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", "smtp://127.0.0.1:9",
                                 "--data-timeout", "soon"])
        self.assertEqual(done.returncode, 64, done.stdout + done.stderr)
        self.assertIn("--data-timeout", done.stderr)


class SmtpBrokenPeers(unittest.TestCase):
    """Words for a server that hangs up in the middle of the message, one that is not an SMTP
    server, and a mail sent in clear text."""

    def test_connection_dropped_in_the_middle_of_the_message(self):
        body = "x" * 70 + "\\n"
        with ScriptedPeer("drop", read_bytes=1000) as peer:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", peer.url,
                                     "--body", body * 1500])
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        self.assertRegex(done.stdout, r"the server closed the connection (while the message "
                         r"was being sent \(after \d+ of \d+ bytes\)|before it answered the "
                         r"end of the message)")
        self.assertIn("(transient)", done.stdout)

    def test_greeting_that_is_not_smtp(self):
        with ScriptedPeer("http") as peer:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", peer.url,
                                     "--timeout", "2"])
        self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
        self.assertIn("the server's greeting is not SMTP: 'HTTP/1.1 400 Bad Request'",
                      done.stdout)
        self.assertIn("(transient)", done.stdout)

    def test_clear_text_is_noted(self):
        with SmtpSink() as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url])
            sink.wait_for_messages(1)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("sent in clear text: the server offers no STARTTLS",
                      done.stdout + done.stderr)
        with SmtpSink(starttls=CERTS.server) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--cacert", CERTS.ca])
            sink.wait_for_messages(1)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertNotIn("clear text", done.stdout + done.stderr)


class SmtpCertificateFixedLater(unittest.TestCase):
    """A certificate that cannot be verified is retried (for an hour), its problem named each
    time; once it verifies, the alert is delivered rather than moved to failed/."""

    def test_untrusted_certificate_then_trusted_is_delivered_on_a_later_attempt(self):
        cafile = os.path.join(h.tmpdir(), "ca.pem")
        shutil.copyfile(CERTS.untrusted.cert, cafile)  # a CA that did not sign the server's
        with SmtpSink(starttls=CERTS.server) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                     "--cacert", cafile])
            self.assertEqual(sink.messages, [])
            self.assertEqual(done.returncode, EX_TEMPFAIL, done.stdout + done.stderr)
            self.assertIn("TLS certificate not trusted: ", done.stdout)
            self.assertIn("unable to get local issuer certificate", done.stdout)
            self.assertIn("retried for up to 1 h", done.stdout)
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy", delay=0.5))
            sup.add_listener("cm", ["-p", "crashy", "-m", "ops@example.com", "--smtp",
                                    sink.url, "--cacert", cafile, "--timeout", "5"])
            with sup:
                h.wait_until(lambda: "certificate" in sup.listener_stderr("cm"), 30,
                             what="a failed attempt logged")
                self.assertEqual(sink.messages, [])
                shutil.copyfile(CERTS.ca, cafile + ".new")
                os.replace(cafile + ".new", cafile)  # the admin fixed it
                [message] = sink.wait_for_messages(1, timeout=40)
                stderr = sup.listener_stderr("cm")
                failed = sup.path("spool", "cm", "failed")
                failed_files = os.listdir(failed) if os.path.isdir(failed) else []
        self.assertTrue(message.tls)
        self.assertEqual([n for n in failed_files if n.endswith(".json")], [], stderr)
        self.assertIn("TLS certificate not trusted", stderr)


class CacertAtStartUp(unittest.TestCase):
    """--cacert FILE is read at start-up: a missing file or one without a PEM certificate is
    a configuration error (78) naming it, before any channel is tried; --status does not
    care."""

    def test_unusable_cacert_exits_78_with_the_reason(self):
        d = h.tmpdir()
        not_pem = os.path.join(d, "x.pem")
        with open(not_pem, "w") as f:
            f.write("this is not a certificate\n")
        missing = os.path.join(d, "missing.pem")
        with SmtpSink() as sink:
            for path, why in ((missing, "no such file"), (not_pem, "no PEM certificate in it"),
                              (d, "is a directory")):
                done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url,
                                         "--cacert", path])
                self.assertEqual(done.returncode, 78, done.stdout + done.stderr)
                self.assertEqual(h.without_log_times(done.stderr),
                                 "crashmail: error: --cacert %s: %s\n" % (path, why))
                self.assertEqual(done.stdout, "")
            self.assertEqual(sink.commands, [])  # no channel was tried
        status = h.run_crashmail(["--status", "--spool", d, "--cacert", missing])
        self.assertEqual(status.returncode, 3, status.stderr)  # UNKNOWN: no listener directory

    def test_a_good_cacert_is_accepted(self):
        with SmtpSink(starttls=CERTS.server) as sink:
            done, _ = run_test_mode(["-m", "ops@example.com", "--smtp", sink.url, "--cacert",
                                     CERTS.ca, "--hostname", "client.example.net"])
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            [message] = sink.wait_for_messages(1)
        self.assertTrue(message.tls)
        self.assertEqual(message.helo, "client.example.net")


if __name__ == "__main__":
    unittest.main()
