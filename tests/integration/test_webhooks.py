"""Webhook integration tests: the real crashmail binary against a recording HTTP server
(http_sink.HttpSink) and a real Prometheus Alertmanager (alertmanager.Alertmanager), first
with `--test` from a shell, then under a real supervisord whose program crashes.

Exit codes of --test: 0 all delivered, 75 (EX_TEMPFAIL) some transient failure,
69 (EX_UNAVAILABLE) some permanent failure.
"""

import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import unittest

import harness as h
from alertmanager import ALERTMANAGER, Alertmanager
from http_sink import HttpSink, Reply

# Loopback requests must not wander off to a proxy from the caller's environment; supervisord
# (and so the listener) inherits this process's environment.
for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

EX_OK, EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 0, 69, 75, 78
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SCHEMA_TYPES = {
    "version": int, "id": str, "event": str, "state": str, "process": str, "group": str,
    "from_state": (str, type(None)), "pid": (int, type(None)),
    "expected": (bool, type(None)), "serial": int, "host": str, "time": str, "subject": str,
    "message": str,
    # Added within version 1 (why it crashed): strings, or null when unknown.
    "exit_status": (str, type(None)), "spawn_error": (str, type(None)),
    "log_tail": (str, type(None)), "log_source": (str, type(None)),
    "details_note": (str, type(None)),
    # Added within version 1 (crash loops, digests).
    "kind": str, "occurrence": (int, type(None)), "suppressed": int,
    "story_start": (str, type(None)), "window_seconds": (int, type(None)), "resolves": list,
    "items": list,
    # Added within version 1 (events supervisord discarded).
    "discarded": int, "recovered_crashes": (int, type(None)), "from_log": bool,
    # Added within version 1 (a channel's health, kind "channel").
    "channel": (str, type(None)), "channel_recovered": bool,
}


def run_crashmail(args, env=None, timeout=60):
    """Runs crashmail with `args`; returns (CompletedProcess, seconds it took)."""
    environment = dict(os.environ)
    environment.update(env or {})
    started = time.monotonic()
    done = subprocess.run([h.CRASHMAIL, *args], capture_output=True, text=True,
                          timeout=timeout, env=environment, stdin=subprocess.DEVNULL)
    return done, time.monotonic() - started


def header(request, name):
    return request.headers.get(name)


class TestCommand(unittest.TestCase):
    """crashmail --test against servers started here."""

    def run_test(self, args, expect, env=None, timeout=60):
        done, elapsed = run_crashmail(["--test", *args], env=env, timeout=timeout)
        self.assertEqual(done.returncode, expect,
                         "exit %s\nstdout:\n%s\nstderr:\n%s" % (done.returncode, done.stdout,
                                                               done.stderr))
        return done, elapsed

    def test_json_document_has_the_schema_and_headers(self):
        with HttpSink() as sink:
            done, _ = self.run_test(["--webhook", sink.url("/hook")], EX_OK)
            self.assertRegex(done.stdout, r"(?m)^ok +webhook http://127\.0\.0\.1:\d+/hook$")
            requests = sink.wait_for_requests(1)
        time.sleep(0.2)
        self.assertEqual(len(sink.requests), 1)
        request = requests[0]
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.path, "/hook")
        self.assertEqual(header(request, "Content-Type"), "application/json")
        self.assertRegex(header(request, "User-Agent"), r"^crashmail/\d+\.\d+\.\d+")
        document = request.json()
        self.assertEqual(set(document), set(SCHEMA_TYPES))
        for field, types in SCHEMA_TYPES.items():
            self.assertIsInstance(document[field], types, field)
        self.assertNotIsInstance(document["version"], bool)
        self.assertEqual(document["version"], 1)
        self.assertRegex(document["time"], RFC3339_UTC)
        self.assertEqual(header(request, "X-Crashmail-Id"), document["id"])
        self.assertIsNone(header(request, "X-Crashmail-Signature"))
        self.assertTrue(document["subject"])
        self.assertTrue(document["message"])

    def test_body_is_signed_with_the_secret_file(self):
        secret_file = os.path.join(h.tmpdir(), "hook.secret")
        with open(secret_file, "w") as f:
            f.write("correct horse battery staple \n")
        with HttpSink() as sink:
            self.run_test(["--webhook", sink.url(), "--webhook-secret-file", secret_file], EX_OK)
            request = sink.wait_for_requests(1)[0]
        signature = header(request, "X-Crashmail-Signature")
        self.assertRegex(signature, r"^sha256=[0-9a-f]{64}$")
        expected = hmac.new(b"correct horse battery staple", request.body,
                            hashlib.sha256).hexdigest()
        self.assertTrue(hmac.compare_digest(signature, "sha256=" + expected),
                        "%s != sha256=%s" % (signature, expected))
        wrong = hmac.new(b"another secret", request.body, hashlib.sha256).hexdigest()
        self.assertNotEqual(signature, "sha256=" + wrong)

    def test_missing_secret_file_is_a_configuration_error(self):
        missing = os.path.join(h.tmpdir(), "absent.secret")
        with HttpSink() as sink:
            done, _ = self.run_test(["--webhook", sink.url(), "--webhook-secret-file", missing],
                                    EX_CONFIG)
            time.sleep(0.2)
            self.assertEqual(sink.requests, [])
        self.assertIn(missing, done.stderr)

    def test_header_value_comes_from_the_environment(self):
        with HttpSink() as sink:
            done, _ = self.run_test(
                ["--webhook", sink.url(), "--webhook-header", "Authorization: Bearer ${HOOK_TOKEN}",
                 "--webhook-header", "X-Team: ops"],
                EX_OK, env={"HOOK_TOKEN": "t0ken-from-env"})
            request = sink.wait_for_requests(1)[0]
        self.assertEqual(header(request, "Authorization"), "Bearer t0ken-from-env")
        self.assertEqual(header(request, "X-Team"), "ops")
        self.assertNotIn("t0ken-from-env", done.stdout + done.stderr)

    def test_unset_header_variable_is_refused_before_sending(self):
        with HttpSink() as sink:
            env = dict(os.environ)
            env.pop("HOOK_TOKEN", None)
            done = subprocess.run(
                [h.CRASHMAIL, "--test", "--webhook", sink.url(),
                 "--webhook-header", "Authorization: Bearer ${HOOK_TOKEN}"],
                capture_output=True, text=True, timeout=30, env=env)
            time.sleep(0.2)
            self.assertEqual(sink.requests, [])
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("HOOK_TOKEN", done.stderr)

    def test_header_with_line_break_from_environment_is_refused(self):
        with HttpSink() as sink:
            done, _ = run_crashmail(["--test", "--webhook", sink.url(),
                                     "--webhook-header", "X-Token: ${EVIL}"],
                                    env={"EVIL": "a\r\nX-Injected: yes"})
            time.sleep(0.2)
            self.assertEqual(sink.requests, [])
        self.assertNotEqual(done.returncode, 0)
        self.assertNotIn("X-Injected", done.stderr)

    def test_429_is_transient_and_names_the_status(self):
        with HttpSink(replies=[Reply(429, body="slow down please", retry_after="7")]) as sink:
            done, _ = self.run_test(["--webhook", sink.url()], EX_TEMPFAIL)
            self.assertEqual(len(sink.wait_for_requests(1)), 1)
        self.assertRegex(done.stdout, r"(?m)^error .*HTTP 429 Too Many Requests: slow down please")
        self.assertIn("transient", done.stdout)

    def test_500_is_transient_with_the_start_of_the_body(self):
        body = "database on fire\nline two\n" + "x" * 2000
        with HttpSink(replies=[Reply(500, body=body)]) as sink:
            done, _ = self.run_test(["--webhook", sink.url()], EX_TEMPFAIL)
        lines = done.stdout.splitlines()
        self.assertEqual(len(lines), 1, done.stdout)
        self.assertIn("HTTP 500 Internal Server Error: database on fire line two", lines[0])
        self.assertLess(len(lines[0]), 600)  # the body is cut
        self.assertIn("transient", lines[0])

    def test_404_is_permanent(self):
        with HttpSink(replies=[Reply(404, body="no such hook")]) as sink:
            done, _ = self.run_test(["--webhook", sink.url("/wrong")], EX_UNAVAILABLE)
        self.assertIn("HTTP 404 Not Found: no such hook", done.stdout)
        self.assertIn("permanent", done.stdout)

    def test_redirect_is_not_followed(self):
        with HttpSink() as target, HttpSink() as sink:
            sink.script(Reply(301, headers={"Location": target.url("/moved")}))
            done, _ = self.run_test(["--webhook", sink.url()], EX_UNAVAILABLE)
            time.sleep(0.2)
            self.assertEqual(target.requests, [])
        self.assertIn("HTTP 301", done.stdout)

    def test_server_that_never_answers_times_out_in_bounded_time(self):
        with HttpSink(hang=True) as sink:
            done, elapsed = self.run_test(["--webhook", sink.url(), "--timeout", "2"],
                                          EX_TEMPFAIL, timeout=30)
            self.assertEqual(len(sink.wait_for_requests(1)), 1)
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLess(elapsed, 8)
        self.assertIn("timeout", done.stdout)

    def test_refused_connection_is_transient(self):
        with HttpSink() as sink:
            url = sink.url()
        # The sink is stopped: nothing listens on its port any more.
        done, _ = self.run_test(["--webhook", url, "--timeout", "5"], EX_TEMPFAIL)
        self.assertIn("transient", done.stdout)

    def test_slack_payload_shape(self):
        with HttpSink() as sink:
            self.run_test(["--slack", sink.url("/services/T0/B0/SECRETTOKEN")], EX_OK)
            request = sink.wait_for_requests(1)[0]
        self.assertEqual(request.path, "/services/T0/B0/SECRETTOKEN")
        self.assertEqual(header(request, "Content-Type"), "application/json")
        payload = request.json()
        self.assertIsInstance(payload["text"], str)
        self.assertIn("crashmail test alert", payload["text"])
        self.assertIsInstance(payload["blocks"], list)
        self.assertEqual(payload["blocks"][0]["type"], "header")
        self.assertEqual(payload["blocks"][0]["text"]["type"], "plain_text")
        for block in payload["blocks"]:
            self.assertIn(block["type"], {"header", "section", "context"})
        self.assertTrue(header(request, "X-Crashmail-Id"))

    def test_slack_secret_path_stays_out_of_the_output(self):
        with HttpSink(replies=[Reply(404, body="no_service")]) as sink:
            done, _ = self.run_test(["--slack", sink.url("/services/T0/B0/SECRETTOKEN")],
                                    EX_UNAVAILABLE)
        self.assertNotIn("SECRETTOKEN", done.stdout + done.stderr)
        self.assertIn("no_service", done.stdout)

    def test_discord_payload_shape(self):
        with HttpSink() as sink:
            self.run_test(["--discord", sink.url("/api/webhooks/1/TOKEN")], EX_OK)
            request = sink.wait_for_requests(1)[0]
        payload = request.json()
        self.assertIsInstance(payload["content"], str)
        self.assertLessEqual(len(payload["content"]), 2000)
        self.assertEqual(len(payload["embeds"]), 1)
        embed = payload["embeds"][0]
        self.assertIn("crashmail test alert", embed["title"])
        self.assertLessEqual(len(embed["description"]), 4096)
        self.assertRegex(embed["timestamp"], RFC3339_UTC)
        self.assertTrue(all(field["value"] for field in embed["fields"]))
        self.assertEqual(payload["allowed_mentions"], {"parse": []})

    def test_alertmanager_base_url_gets_the_v2_path(self):
        with HttpSink() as sink:
            self.run_test(["--alertmanager", sink.url("/")], EX_OK)
            request = sink.wait_for_requests(1)[0]
        self.assertEqual(request.path, "/api/v2/alerts")
        alerts = request.json()
        self.assertIsInstance(alerts, list)
        self.assertEqual(len(alerts), 1)
        self.assertEqual(set(alerts[0]["labels"]),
                         {"alertname", "host", "group", "process", "state"})

    def test_https_is_verified_against_cacert(self):
        h.require("aiosmtpd")  # smtp_sink (which makes the certificates) imports it
        from smtp_sink import Certificates
        certs = Certificates(os.path.join(h.tmpdir(), "certs"))
        with HttpSink(tls=certs.server) as sink:
            self.run_test(["--webhook", sink.url(), "--cacert", certs.ca], EX_OK)
            self.assertEqual(len(sink.wait_for_requests(1)), 1)
            # Without the private CA the system bundle does not trust the server: refused,
            # and retried for an hour (a certificate may be renewed), so "temporary" (75).
            done, _ = self.run_test(["--webhook", sink.url(), "--timeout", "5"], EX_TEMPFAIL)
            self.assertIn("TLS certificate not trusted", done.stdout)
            self.assertIn("retried for up to 1 h", done.stdout)
        with HttpSink(tls=certs.untrusted) as rogue:
            self.run_test(["--webhook", rogue.url(), "--cacert", certs.ca, "--timeout", "5"],
                          EX_TEMPFAIL)
            time.sleep(0.2)
            self.assertEqual(rogue.requests, [])

    def test_alert_reaches_a_real_alertmanager(self):
        h.require(ALERTMANAGER)
        with Alertmanager(h.tmpdir()) as am:
            done, _ = self.run_test(["--alertmanager", am.url], EX_OK)
            self.assertIn("alertmanager", done.stdout)
            alerts = am.wait_for_alerts(
                lambda a: a["labels"].get("process") == "crashmail-test")
        self.assertEqual(len(alerts), 1)
        labels = alerts[0]["labels"]
        self.assertEqual(set(labels), {"alertname", "host", "group", "process", "state"})
        self.assertTrue(labels["alertname"].startswith("Process"))
        self.assertEqual(labels["group"], "crashmail-test")
        self.assertTrue(labels["host"])
        self.assertEqual(alerts[0]["status"]["state"], "active")
        self.assertIn("crashmail test alert", alerts[0]["annotations"]["summary"])
        self.assertIn("description", alerts[0]["annotations"])

    def test_several_channels_are_independent(self):
        h.require(ALERTMANAGER)
        with HttpSink() as hook, HttpSink(hang=True) as slow_slack, \
                HttpSink(replies=[Reply(404, body="gone")]) as broken_discord, \
                Alertmanager(h.tmpdir()) as am:
            started = time.monotonic()
            done, elapsed = run_crashmail(
                ["--test", "--timeout", "4", "--webhook", hook.url("/hook"),
                 "--slack", slow_slack.url("/slack"), "--discord", broken_discord.url("/d"),
                 "--alertmanager", am.url], timeout=60)
            # The hook got its request long before the slow Slack endpoint gave up.
            first = hook.wait_for_requests(1)[0]
            self.assertLess(first.received_at - started, 2.5)
            self.assertGreaterEqual(elapsed, 3.5)
            self.assertLess(elapsed, 12)
            am.wait_for_alerts(lambda a: a["labels"].get("process") == "crashmail-test")
            self.assertEqual(len(broken_discord.requests), 1)
        lines = done.stdout.splitlines()
        self.assertEqual(len(lines), 4, done.stdout)
        by_kind = {line.split()[1]: line for line in lines}
        self.assertTrue(by_kind["webhook"].startswith("ok"), done.stdout)
        self.assertTrue(by_kind["alertmanager"].startswith("ok"), done.stdout)
        self.assertTrue(by_kind["slack"].startswith("error"), done.stdout)
        self.assertIn("timeout", by_kind["slack"])
        self.assertTrue(by_kind["discord"].startswith("error"), done.stdout)
        self.assertIn("404", by_kind["discord"])
        self.assertEqual(done.returncode, EX_UNAVAILABLE)  # the 404 is permanent


class TestUnderSupervisord(unittest.TestCase):
    """The issue's "Done when": a real supervisord, a crashing program, crashmail -a."""

    def setUp(self):
        h.require("/usr/bin/supervisord", ALERTMANAGER)

    def test_crash_reaches_the_hook_and_alertmanager(self):
        with HttpSink() as hook, Alertmanager(h.tmpdir()) as am:
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy", status=3))
            sup.add_listener("crashmail", ["-a", "--webhook", hook.url("/hook"),
                                           "--alertmanager", am.url])
            with sup:
                sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
                request = hook.wait_for_requests(1, timeout=20)[0]
                alerts = am.wait_for_alerts(lambda a: a["labels"].get("process") == "crashy")
                crash_pid = int(sup.wait_for_log(r"spawned: 'crashy' with pid (\d+)").group(1))
                sup.wait_listener_idle("crashmail", at_least=1)
                stderr = sup.listener_stderr("crashmail")
        self.assertEqual(request.path, "/hook")
        document = request.json()
        self.assertEqual(document["version"], 1)
        self.assertEqual(document["event"], "PROCESS_STATE_EXITED")
        self.assertEqual(document["state"], "EXITED")
        self.assertEqual(document["process"], "crashy")
        self.assertEqual(document["group"], "crashy")
        self.assertEqual(document["from_state"], "RUNNING")
        self.assertEqual(document["expected"], False)
        self.assertEqual(document["pid"], crash_pid)
        self.assertIsInstance(document["serial"], int)
        self.assertRegex(document["time"], RFC3339_UTC)
        self.assertIn("crashy", document["subject"])
        self.assertEqual(header(request, "X-Crashmail-Id"), document["id"])

        self.assertEqual(len(alerts), 1, alerts)
        alert = alerts[0]
        self.assertEqual(alert["status"]["state"], "active")
        self.assertEqual(alert["labels"], {"alertname": "ProcessCrashed",
                                           "host": document["host"], "group": "crashy",
                                           "process": "crashy", "state": "EXITED"})
        self.assertEqual(alert["annotations"]["summary"], document["subject"])
        self.assertEqual(alert["annotations"]["description"], document["message"])
        self.assertNotIn("error", stderr.lower(), stderr)

    def test_mail_slack_and_alertmanager_in_one_listener(self):
        with HttpSink() as slack, Alertmanager(h.tmpdir()) as am:
            sup = h.Supervisord()
            store_dir = sup.path("store")
            store = h.mail_store(store_dir)
            sup.add(h.crash_once_program("crashy", status=3))
            sup.add_listener("crashmail", ["-p", "crashy", "-m", "ops@example.com", "-s", store,
                                           "--slack", slack.url("/services/T/B/X"),
                                           "--alertmanager", am.url])
            with sup:
                sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
                payload = slack.wait_for_requests(1, timeout=20)[0].json()
                alerts = am.wait_for_alerts(lambda a: a["labels"].get("process") == "crashy")
                mails = h.wait_until(lambda: h.read_mails(store_dir), 20, what="a stored mail")
                sup.wait_listener_idle("crashmail", at_least=1)
        self.assertEqual(len(mails), 1)
        self.assertIn("crashy", str(mails[0]["Subject"]))
        self.assertIn("crashy", payload["text"])
        self.assertEqual(alerts[0]["labels"]["state"], "EXITED")
        self.assertEqual(alerts[0]["annotations"]["summary"], str(mails[0]["Subject"]))


class TestChannelHealth(unittest.TestCase):
    """A channel whose deliveries fail for good is told about through the other channels
    (a webhook and a real Alertmanager), never through itself, and once more when it works
    again."""

    def setUp(self):
        h.require("/usr/bin/supervisord", ALERTMANAGER)

    def test_a_dead_channel_is_told_through_the_others_and_when_it_works_again(self):
        with HttpSink() as good, HttpSink(replies=[Reply(400, body="no such hook")]) as bad, \
                Alertmanager(h.tmpdir()) as am:
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy", status=3))
            sup.add_listener("crashmail", ["-a", "--webhook", good.url("/good"),
                                           "--webhook", bad.url("/bad"),
                                           "--alertmanager", am.url])
            with sup:
                kinds = lambda: [r.json()["kind"] for r in good.requests]
                h.wait_until(lambda: "channel" in kinds(), 30, what="the channel notice")
                notice = next(r.json() for r in good.requests if r.json()["kind"] == "channel")
                failing = am.wait_for_alerts(
                    lambda a: a["labels"].get("alertname") == "CrashmailChannelFailing")
                # The receiver is fixed; the next crash goes through it, and the others hear.
                bad.script(Reply(200))
                with sup.rpc() as proxy:
                    proxy.supervisor.startProcess("crashy")
                h.wait_until(lambda: kinds().count("channel") >= 2, 30,
                             what="the notice that the channel works again")
                recovered = [r.json() for r in good.requests
                             if r.json()["kind"] == "channel"][1]
                # Alertmanager: the notice that it works again ends the alert.
                h.wait_until(lambda: not any(
                    a["labels"].get("alertname") == "CrashmailChannelFailing"
                    for a in am.alerts()), 30, what="CrashmailChannelFailing to end")
                sup.wait_listener_idle("crashmail", at_least=2)
                stderr = sup.listener_stderr("crashmail")
            bad_kinds = [r.json()["kind"] for r in bad.requests]
        self.assertIn("/bad", notice["channel"])
        self.assertFalse(notice["channel_recovered"])
        self.assertIn("is failing; ", notice["subject"])
        self.assertIn("HTTP 400", notice["message"])
        self.assertIn("no such hook", notice["message"])
        self.assertEqual(len(failing), 1, failing)
        self.assertIn("/bad", failing[0]["labels"]["channel"])
        self.assertTrue(recovered["channel_recovered"])
        self.assertIn("works again", recovered["subject"])
        self.assertNotIn("channel", bad_kinds)  # never told about itself
        self.assertRegex(stderr, r"channel \S+ \S*/bad is failing \(a delivery failed for "
                                 r"good\): .*HTTP 400")
        self.assertRegex(stderr, r"channel \S+ \S*/bad works again")


if __name__ == "__main__":
    unittest.main()
