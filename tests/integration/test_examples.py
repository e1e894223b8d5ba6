"""Every example in examples/ works when pasted into a supervisord.conf.

Each test reads one example file, rewrites only what points outside this machine or takes
minutes (the example.com hosts become local SMTP, HTTPS and Alertmanager servers; /etc/...
secret and configuration files become temporary files; 10-minute windows become seconds;
`command=crashmail ` becomes this build's binary with a temporary --spool, plus --cacert for
the test CA, -s for the sendmail stand-in and a short --recovery-after where needed) and
keeps every other byte, starts a real supervisord with the result and a program that
crashes, and checks that the alert arrives where the example says it goes. Every rewrite must
match the example, so an example that drifts from what is tested fails here.
alertmanager.yml is checked with amtool and runs in a real Alertmanager that mails the alert.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import os
import platform
import re
import shlex
import shutil
import subprocess
import time
import unittest

import alertmanager
import harness
from harness import CRASHMAIL, Supervisord, crash_once_program, program_section, tmpdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
LISTENER = "crashmail"  # the [eventlistener:x] name every example uses
AMTOOL = shutil.which("amtool")


def read_example(name: str) -> str:
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return f.read()


def rewrite(text: str, replacements: dict[str, str]) -> str:
    """Replaces every occurrence of each key; fails when a key is not in the text."""
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError("the example no longer contains %r" % old)
        text = text.replace(old, new)
    return text


def ini(value: str) -> str:
    """A value as supervisord reads it (its %(name)s expansion needs '%%')."""
    return value.replace("%", "%%")


def command_prefix(spool: str, *extra: str) -> str:
    """What `command=crashmail ` becomes: this build's binary, a private spool, test options."""
    words = [CRASHMAIL, "--spool", spool, *extra]
    return "command=" + ini(" ".join(shlex.quote(w) for w in words)) + " "


def write_secret(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def parse_mail(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def mail_text(message) -> str:
    """Subject and every text part of a message, decoded."""
    parts = [str(message.get("Subject", ""))]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


class _ExampleCase(unittest.TestCase):
    """Starts supervisord with an example's text plus crashing programs."""

    @classmethod
    def setUpClass(cls):
        harness.require("/usr/bin/supervisord", "aiosmtpd")
        import smtp_sink  # needs aiosmtpd (Debian's python3-aiosmtpd)
        cls.smtp_sink = smtp_sink
        cls.certs = smtp_sink.Certificates(os.path.join(tmpdir("crashmail-examples-"), "certs"))

    def run_example(self, name: str, replacements: dict[str, str], *extra_options: str,
                    programs: tuple[str, ...] = ()) -> Supervisord:
        """Rewrites example NAME, starts it in a supervisord with `programs` (default: myapp
        crashing once) and waits until myapp (or the first program) has crashed."""
        sup_dir = tmpdir("crashmail-example-")
        replacements = dict(replacements)
        replacements["command=crashmail "] = command_prefix(os.path.join(sup_dir, "spool"),
                                                           *extra_options)
        text = rewrite(read_example(name), replacements)
        sup = Supervisord(text, dir=sup_dir)
        for program in programs or (crash_once_program("myapp"),):
            sup.add(program)
        self.addCleanup(sup.stop)
        sup.start()
        sup.wait_for_log(r"exited: myapp \(exit status 3; not expected\)")
        return sup

    def explain(self, sup: Supervisord) -> str:
        return "\n--- listener stderr ---\n%s\n--- supervisord.log ---\n%s" % (
            sup.listener_stderr(LISTENER), sup.log()[-4000:])


class SendmailDropIn(_ExampleCase):
    def test_superlance_drop_in_mails_the_watched_processes_only(self):
        store_dir = os.path.join(tmpdir("crashmail-store-"), "store")
        store = harness.mail_store(store_dir)
        programs = (
            crash_once_program("myapp"),
            crash_once_program("worker"),
            "[group:workers]\nprograms=worker\n",
            crash_once_program("bystander"),  # not named by -p: no mail
        )
        sup = self.run_example("sendmail-superlance.conf", {}, "-s", store, programs=programs)
        sup.wait_for_log(r"exited: (workers:)?worker \(exit status 3")
        sup.wait_for_log(r"exited: bystander \(exit status 3")
        try:
            mails = harness.wait_for_mails(store_dir, 2, timeout=20)
            sup.wait_listener_idle(LISTENER, at_least=3)
        except AssertionError as e:
            raise AssertionError(str(e) + self.explain(sup))
        mails = harness.read_mails(store_dir)
        subjects = sorted(str(m["Subject"]) for m in mails)
        self.assertEqual(len(mails), 2, subjects)
        for mail in mails:
            self.assertEqual(mail["To"], "ops@example.com")
            # -o "%(host_node_name)s": supervisord expanded it to this machine's node name.
            self.assertTrue(str(mail["Subject"]).startswith(platform.node() + ": "),
                            mail["Subject"])
        self.assertIn("myapp crashed", subjects[0])
        self.assertIn("workers:worker crashed", subjects[1])


class SmtpExamples(_ExampleCase):
    def test_relay_with_starttls_and_auth_password_from_environment(self):
        with self.smtp_sink.SmtpSink(starttls=self.certs.server,
                                     users={"crashmail@example.com": "change-me"}) as sink:
            sup = self.run_example("smtp-relay-starttls.conf",
                                   {"smtp://mail.example.com:587": sink.url},
                                   "--cacert", self.certs.ca)
            try:
                message = sink.wait_for_messages(1, timeout=20)[0]
            except AssertionError as e:
                raise AssertionError(str(e) + self.explain(sup))
        self.assertTrue(message.tls, "the message was sent without STARTTLS")
        self.assertEqual(message.login, "crashmail@example.com")
        self.assertEqual(message.mail_from, "crashmail@example.com")
        self.assertEqual(message.rcpt_tos, ["ops@example.com"])
        self.assertIn("myapp crashed", str(parse_mail(message.content)["Subject"]))

    def test_smtps_provider_with_password_file(self):
        secrets = tmpdir("crashmail-secrets-")
        password_file = write_secret(os.path.join(secrets, "smtp-password"),
                                     "provider password\n")
        with self.smtp_sink.SmtpSink(implicit_tls=self.certs.server,
                                     users={"alerts@example.com": "provider password"}) as sink:
            sup = self.run_example("smtps-provider.conf",
                                   {"smtps://smtp.example.com:465": sink.url,
                                    "/etc/crashmail/smtp-password": password_file},
                                   "--cacert", self.certs.ca)
            try:
                message = sink.wait_for_messages(1, timeout=20)[0]
            except AssertionError as e:
                raise AssertionError(str(e) + self.explain(sup))
        self.assertTrue(message.tls)
        self.assertEqual(message.login, "alerts@example.com")
        self.assertEqual(message.mail_from, "alerts@example.com")
        self.assertEqual(message.rcpt_tos, ["ops@example.com"])
        self.assertIn("myapp crashed", str(parse_mail(message.content)["Subject"]))


class WebhookExamples(_ExampleCase):
    def https_sink(self):
        import http_sink
        sink = http_sink.HttpSink(tls=self.certs.server).start()
        self.addCleanup(sink.stop)
        return sink

    def wait_one_request(self, sink, sup):
        try:
            return sink.wait_for_requests(1, timeout=20)[0]
        except AssertionError as e:
            raise AssertionError(str(e) + self.explain(sup))

    def test_slack(self):
        sink = self.https_sink()
        sup = self.run_example("slack.conf",
                               {"https://hooks.slack.com": "https://127.0.0.1:%d" % sink.port},
                               "--cacert", self.certs.ca)
        request = self.wait_one_request(sink, sup)
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.path, "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX")
        body = request.json()
        self.assertIn("myapp crashed", body["text"])
        self.assertIn("blocks", body)

    def test_discord(self):
        sink = self.https_sink()
        sup = self.run_example("discord.conf",
                               {"https://discord.com": "https://127.0.0.1:%d" % sink.port},
                               "--cacert", self.certs.ca)
        request = self.wait_one_request(sink, sup)
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.path,
                         "/api/webhooks/000000000000000000/XXXXXXXXXXXXXXXXXXXXXXXX")
        body = request.json()
        self.assertIn("myapp crashed", body["content"])
        self.assertEqual(body["embeds"][0]["fields"][0]["value"], "myapp")

    def test_generic_webhook_signed_with_hmac_and_bearer_token(self):
        sink = self.https_sink()
        key = "5f0c" * 16  # what `openssl rand -hex 32` writes: 64 hex characters
        key_file = write_secret(os.path.join(tmpdir("crashmail-secrets-"), "webhook.key"),
                                key + "\n")
        sup = self.run_example("webhook-hmac.conf",
                               {"https://alerts.example.com": "https://127.0.0.1:%d" % sink.port,
                                "/etc/crashmail/webhook.key": key_file},
                               "--cacert", self.certs.ca)
        request = self.wait_one_request(sink, sup)
        self.assertEqual(request.path, "/crashmail")
        # ${ALERTS_TOKEN} came from environment= in the section.
        self.assertEqual(request.headers["Authorization"], "Bearer change-me")
        expected = "sha256=" + hmac.new(key.encode(), request.body, hashlib.sha256).hexdigest()
        self.assertEqual(request.headers["X-Crashmail-Signature"], expected)
        body = request.json()
        self.assertEqual(body["version"], 1)
        self.assertEqual(body["process"], "myapp")
        self.assertEqual(body["state"], "EXITED")
        self.assertEqual(request.headers["X-Crashmail-Id"], body["id"])


class _ConfiguredAlertmanager(alertmanager.Alertmanager):
    """alertmanager.Alertmanager with a given configuration and extra environment."""

    def __init__(self, dir: str, config: str, env: dict[str, str]):
        super().__init__(dir)
        self._config = config
        self._env = env

    def start(self, timeout: float = 30):
        # Alertmanager.start writes alertmanager._CONFIG and inherits os.environ: lend it ours
        # for the duration of the call.
        saved_config, saved_env = alertmanager._CONFIG, dict(os.environ)
        alertmanager._CONFIG = self._config
        os.environ.update(self._env)
        try:
            return super().start(timeout)
        finally:
            alertmanager._CONFIG = saved_config
            os.environ.clear()
            os.environ.update(saved_env)


class AlertmanagerExamples(_ExampleCase):
    @unittest.skipUnless(AMTOOL, "amtool is not installed (Debian: prometheus-alertmanager)")
    def test_alertmanager_yml_passes_amtool_check_config(self):
        done = subprocess.run([AMTOOL, "check-config", os.path.join(EXAMPLES, "alertmanager.yml")],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("SUCCESS", done.stdout)

    def test_fleet_posts_to_every_alertmanager_which_mails_the_crash(self):
        harness.require(alertmanager.ALERTMANAGER)
        work = tmpdir("crashmail-am-")
        password_file = write_secret(os.path.join(work, "am-smtp-password"), "am password")
        mail = self.smtp_sink.SmtpSink(starttls=self.certs.server,
                                       users={"alertmanager@example.com": "am password"})
        # aiosmtpd lists AUTH LOGIN first and prompts "User Name\0", which Alertmanager's
        # LOGIN does not understand (it expects "Username:", as Postfix and Exim send); offer
        # PLAIN only, which Alertmanager uses with every common server.
        mail._controller.SMTP_kwargs["auth_exclude_mechanism"] = ["LOGIN"]
        with mail:
            config = rewrite(read_example("alertmanager.yml"), {
                "mail.example.com:587": "127.0.0.1:%d" % mail.port,
                "/etc/prometheus/alertmanager-smtp-password": password_file,
            })
            # am1 runs the example configuration (and trusts the test CA, as Go programs do
            # through SSL_CERT_FILE); am2 is a second, plain Alertmanager of the "fleet".
            with _ConfiguredAlertmanager(os.path.join(work, "am1"), config,
                                         {"SSL_CERT_FILE": self.certs.ca}) as am1, \
                    alertmanager.Alertmanager(os.path.join(work, "am2")) as am2:
                sup = self.run_example("alertmanager-fleet.conf", {
                    "http://am1.example.com:9093": am1.url,
                    "http://am2.example.com:9093": am2.url,
                })
                is_myapp = lambda a: a["labels"].get("process") == "myapp"  # noqa: E731
                try:
                    for am in (am1, am2):
                        alert = am.wait_for_alerts(is_myapp, timeout=20)[0]
                        self.assertEqual(alert["labels"]["alertname"], "ProcessCrashed")
                    # group_wait 10s in the example, then Alertmanager mails through the sink.
                    message = mail.wait_for_messages(1, timeout=45)[0]
                except AssertionError as e:
                    raise AssertionError("%s%s\n--- am1 log ---\n%s" % (
                        e, self.explain(sup), am1.log()[-3000:]))
        self.assertTrue(message.tls, "Alertmanager mailed without STARTTLS")
        self.assertEqual(message.login, "alertmanager@example.com")
        self.assertEqual(message.mail_from, "alertmanager@example.com")
        self.assertEqual(message.rcpt_tos, ["ops@example.com"])
        text = mail_text(parse_mail(message.content))
        self.assertRegex(text, r"\[FIRING:1\] ProcessCrashed")
        self.assertIn("myapp", text)


def summary_count(subject: str, name: str) -> int | None:
    """The count a flood-control summary subject states, or None if it is no summary."""
    match = re.match(r"^%s crashed (?:once more|(\d+) more times) in the last " % re.escape(name),
                     subject)
    if not match:
        return None
    return int(match.group(1)) if match.group(1) else 1


def recovery_count(body: str) -> int:
    """The crashes a recovery notice accounts for ("Since the last message about it, it also crashed 4
    more times."); 0 when it names none."""
    match = re.search(r"Since the last message about it, it also crashed (?:once more|(\d+) more times)",
                      body)
    if not match:
        return 0
    return int(match.group(1)) if match.group(1) else 1


class FloodControlExample(_ExampleCase):
    def test_crash_loop_alerts_three_times_counts_the_rest_and_reports_the_recovery(self):
        store_dir = os.path.join(tmpdir("crashmail-store-"), "store")
        store = harness.mail_store(store_dir)
        fixed = os.path.join(tmpdir("crashmail-flag-"), "fixed")
        programs = (
            # Crashes after 0.2 s until the test "fixes" it; then stays up. supervisord
            # restarts an exited program on its next loop, up to 1 s later unless a pipe wakes
            # it: a helper closes the crashed program's stdout, then its stderr, a moment after
            # the crash, and the loop goes on at about 4 crashes a second.
            program_section("myapp", "/bin/sh -c 'test -e %s && exec sleep 600; "
                                     "(sleep 0.25; exec >&-; sleep 0.1) & sleep 0.2; exit 3'"
                            % shlex.quote(fixed),
                            autostart=True, autorestart=True, startsecs=0),
            # Never gets through startsecs: BACKOFF, BACKOFF, then FATAL.
            program_section("broken", "/bin/sh -c 'exit 2'", autostart=True,
                            autorestart=True, startsecs=1, startretries=1),
            # Left out with -x: its crash mails nothing.
            crash_once_program("nightly-import", status=1, delay=0.3),
        )
        # 3/10m becomes 3/4s and the minute of --recovery-after 2 s: the same arithmetic.
        sup = self.run_example("flood-control.conf",
                               {"--rate-limit 3/10m": "--rate-limit 3/4s"},
                               "-s", store, "--recovery-after", "2s", programs=programs)

        def mails_of(name):
            return [m for m in harness.read_mails(store_dir)
                    if m["X-Crashmail-Process"] == name]

        def summaries():
            return [m for m in mails_of("myapp") if summary_count(str(m["Subject"]), "myapp")]

        def recoveries():
            return [m for m in mails_of("myapp")
                    if str(m["Subject"]).startswith("myapp recovered at ")]
        try:
            # The loop outlasts the first window: its summary arrives while myapp still
            # crashes. Then myapp is fixed, stays up for 2 s, and the recovery notice follows.
            harness.wait_until(summaries, timeout=20, what="a summary mail for myapp")
            sup.wait_for_log(r"exited: myapp \(exit status 3; not expected\)", count=12,
                             timeout=20)
            with open(fixed, "w"):
                pass
            harness.wait_until(recoveries, timeout=15, what="a recovery notice for myapp")
            sup.wait_for_log(r"gave up: broken entered FATAL state")
            sup.wait_for_log(r"exited: nightly-import \(exit status 1; not expected\)")
            harness.wait_until(lambda: len(mails_of("broken")) >= 3, timeout=10,
                               what="the mails for broken")
            sup.wait_listener_idle(LISTENER, at_least=1)
        except AssertionError as e:
            raise AssertionError(str(e) + self.explain(sup))
        crashes = sup.count(r"exited: myapp \(exit status 3; not expected\)")
        mails = mails_of("myapp")
        subjects = [str(m["Subject"]) for m in mails]
        alerts = [m for m in mails if re.match(r"^myapp crashed at ", str(m["Subject"]))]
        counted = sum(summary_count(str(m["Subject"]), "myapp") for m in summaries())
        counted += sum(recovery_count(m.get_content()) for m in recoveries())
        # Fewer mails than crashes, and every crash accounted for: 3 alerts, then counts.
        self.assertGreater(crashes, len(mails) + 3, subjects)
        self.assertEqual(len(alerts), 3, subjects)
        self.assertEqual(len(recoveries()), 1, subjects)
        self.assertEqual(len(alerts) + len(summaries()) + 1, len(mails), subjects)
        self.assertEqual(len(alerts) + counted, crashes, subjects)
        self.assertIn("up to 3 alerts per 4 seconds", alerts[0].get_content())
        for mail in mails:
            self.assertEqual(mail["To"], "ops@example.com")
        # --state EXITED,FATAL,BACKOFF: each failed start of broken, then supervisord giving up.
        broken = [str(m["Subject"]) for m in mails_of("broken")]
        self.assertEqual(sum("failed to start (BACKOFF)" in s for s in broken), 2, broken)
        self.assertEqual(sum("is FATAL" in s for s in broken), 1, broken)
        # -x nightly-import
        self.assertEqual(mails_of("nightly-import"), [])


class DigestExample(_ExampleCase):
    def test_crashes_of_one_window_arrive_as_one_digest_mail(self):
        store_dir = os.path.join(tmpdir("crashmail-store-"), "store")
        store = harness.mail_store(store_dir)
        programs = (
            crash_once_program("myapp", delay=0.5),
            crash_once_program("worker", status=4, delay=0.8),
            "[group:workers]\nprograms=worker\n",
            crash_once_program("db", status=5, delay=1.1),
        )
        # The 10-minute window becomes 4 s.
        sup = self.run_example("digest.conf", {"--batch 10m": "--batch 4s"}, "-s", store,
                               programs=programs)
        sup.wait_for_log(r"exited: (workers:)?worker \(exit status 4")
        sup.wait_for_log(r"exited: db \(exit status 5")
        try:
            harness.wait_for_mails(store_dir, 1, timeout=15)
            sup.wait_listener_idle(LISTENER, at_least=3)
        except AssertionError as e:
            raise AssertionError(str(e) + self.explain(sup))
        time.sleep(1.5)  # nothing else follows
        mails = harness.read_mails(store_dir)
        self.assertEqual(len(mails), 1, [str(m["Subject"]) for m in mails])
        mail = mails[0]
        self.assertEqual(mail["To"], "ops@example.com")
        self.assertEqual(mail["From"], "supervisord@example.com")
        subject = str(mail["Subject"])
        self.assertRegex(subject, r"^crashmail: 3 alerts from \S+ \(")
        for name in ("myapp", "workers:worker", "db"):
            self.assertIn("%s crashed" % name, subject)
        body = mail.get_content()
        # Oldest first (in the order supervisord logged the exits), each alert in full.
        log = sup.log()
        crashes = sorted((("myapp", "myapp"), ("worker", "workers"), ("db", "db")),
                         key=lambda pg: re.search(r"exited: (%s:)?%s " % (pg[1], pg[0]),
                                                  log).start())
        lines = [body.index("Process %s in group %s exited unexpectedly" % (p, g))
                 for p, g in crashes]
        self.assertEqual(lines, sorted(lines), body)


class ConfigFileExample(_ExampleCase):
    def test_the_ini_file_chooses_recipients_relay_and_exclusions(self):
        work = tmpdir("crashmail-config-")
        password_file = write_secret(os.path.join(work, "smtp-password"), "relay password\n")
        with self.smtp_sink.SmtpSink(starttls=self.certs.server,
                                     users={"crashmail@example.com": "relay password"}) as sink:
            config = os.path.join(work, "crashmail.ini")
            with open(config, "w", encoding="utf-8") as f:
                f.write(rewrite(read_example("crashmail.ini"), {
                    "smtp://mail.example.com:587": sink.url,
                    "/etc/crashmail/smtp-password": password_file,
                }))
            programs = (
                crash_once_program("nightly-import", status=1, delay=0.2),  # excluded
                crash_once_program("report", status=1, delay=0.2),
                "[group:reports]\nprograms=report\n",                       # excluded
                crash_once_program("myapp", delay=0.6),
            )
            sup = self.run_example("config-file.conf",
                                   {"/etc/crashmail/crashmail.ini": config},
                                   "--cacert", self.certs.ca, programs=programs)
            try:
                message = sink.wait_for_messages(1, timeout=20)[0]
                sup.wait_listener_idle(LISTENER, at_least=3)
                time.sleep(1)  # an excluded crash would have been mailed by now
            except AssertionError as e:
                raise AssertionError(str(e) + self.explain(sup))
            messages = list(sink.messages)
        self.assertEqual(len(messages), 1, [parse_mail(m.content)["Subject"] for m in messages])
        # Everything below comes from crashmail.ini: the command line gives only --config.
        self.assertTrue(message.tls)
        self.assertEqual(message.login, "crashmail@example.com")
        self.assertEqual(message.mail_from, "crashmail@example.com")
        self.assertEqual(message.rcpt_tos, ["ops@example.com", "oncall@example.com"])
        mail = parse_mail(message.content)
        self.assertEqual(mail["To"], "ops@example.com, oncall@example.com")
        self.assertIn("myapp crashed", str(mail["Subject"]))
        self.assertIn("Runbook: https://wiki.example.com/runbooks/myapp", mail.get_content())


class ExampleIndex(unittest.TestCase):
    TESTED = {"sendmail-superlance.conf", "smtp-relay-starttls.conf", "smtps-provider.conf",
              "slack.conf", "discord.conf", "webhook-hmac.conf", "alertmanager-fleet.conf",
              "alertmanager.yml", "flood-control.conf", "digest.conf", "config-file.conf",
              "crashmail.ini"}
    NOT_SECTIONS = {"alertmanager.yml", "crashmail.ini"}

    def test_every_example_is_tested_and_listed_in_the_readme(self):
        files = {n for n in os.listdir(EXAMPLES)
                 if os.path.isfile(os.path.join(EXAMPLES, n)) and n != "README.md"}
        self.assertEqual(files, self.TESTED, "an example without a test, or a test without "
                                             "its example")
        with open(os.path.join(EXAMPLES, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        for name in sorted(files):
            self.assertIn("(%s)" % name, readme, "%s is not listed in examples/README.md" % name)

    def test_every_section_has_the_settings_crashmail_needs(self):
        for name in sorted(self.TESTED - self.NOT_SECTIONS):
            text = read_example(name)
            with self.subTest(example=name):
                self.assertRegex(text, r"(?m)^\[eventlistener:crashmail\]$")
                self.assertRegex(text, r"(?m)^events=PROCESS_STATE$")
                self.assertRegex(text, r"(?m)^buffer_size=100$")
                self.assertRegex(text, r"(?m)^priority=-?\d+$")
                # startsecs=0 would restart a misconfigured crashmail forever.
                self.assertNotRegex(text, r"(?m)^startsecs=")
                self.assertRegex(text, r"(?m)^autorestart=true$")
                # stdout is protocol chatter; stderr is crashmail's log.
                self.assertRegex(text, r"(?m)^stdout_logfile=NONE$")
                self.assertRegex(text, r"(?m)^stderr_logfile=\S+$")
                # Secrets never on the command line.
                command = re.search(r"(?ms)^command=(.*?)(?=^\S)", text).group(1)
                self.assertNotIn("change-me", command)
                self.assertNotRegex(command, r"--smtp-password(?!-file)")

    def test_the_config_file_holds_no_secret(self):
        text = read_example("crashmail.ini")
        options = dict(re.findall(r"(?m)^([a-z-]+) = (.*)$", text))
        self.assertIn("smtp-password-file", options)
        self.assertNotIn("smtp-password", options)
        self.assertNotIn("webhook-secret", options)
        self.assertNotIn("change-me", text)
        # crashmail reads it: every name is an option, every value valid (--status parses and
        # checks all options, then only lists an empty spool).
        done = harness.run_crashmail(["--config", os.path.join(EXAMPLES, "crashmail.ini"),
                                      "--status", "--spool", tmpdir("crashmail-spool-")])
        self.assertEqual(done.returncode, 3, done.stderr)  # UNKNOWN: no listener directory


if __name__ == "__main__":
    unittest.main()
