"""Secrets (issue 16, point 7) with a real supervisord, a real HTTP server and real children:

- a webhook server that echoes the request path in its 400 body: the Slack token appears in
  none of crashmail's stderr, the failed/ record, --status (each says <redacted> instead);
- the sendmail command's environment (a real child that dumps it) lacks
  CRASHMAIL_SMTP_PASSWORD and the ${VAR} a --webhook-header names, and keeps the rest;
- crashmail is not dumpable while it serves: as user=nobody, what is under its /proc/PID
  (the kernel's sign of PR_SET_DUMPABLE 0: /proc/PID/status is root's, not nobody's), and
  with CRASHMAIL_ALLOW_CORE_DUMPS=1 nobody's.
"""

import glob
import json
import os
import pwd
import re
import unittest

import harness as h
from http_sink import HttpSink, Reply

h.require(h.SUPERVISORD)

TOKEN = "s3cr3tW3bh00kT0k3nXYZabc"
HOOK_PATH = "/services/T0123ABCD/B0456EFGH/" + TOKEN
ADDR = "ops@example.com"


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def pid_of(sup, name):
    with sup.rpc() as proxy:
        return proxy.supervisor.getProcessInfo(name)["pid"]


class TestRedaction(unittest.TestCase):
    def test_a_token_echoed_by_the_server_reaches_no_log_no_record_no_status(self):
        with HttpSink() as sink:
            # The server's words quote the path it was asked for, token and all.
            sink.script(Reply(400, body="no_such_hook: POST %s (%s)" % (
                HOOK_PATH, HOOK_PATH.replace("/", "%2F"))))
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy"))
            stderr = sup.add_listener("cm", ["-p", "crashy", "--slack", sink.url(HOOK_PATH)])
            spool = sup.path("spool")
            with sup:
                sup.wait_for_log(r"exited: crashy ")
                failed = lambda: glob.glob(os.path.join(spool, "*", "failed", "*.json"))
                h.wait_until(lambda: failed(), 20, what="the alert in failed/")
                # The request did carry the token: the test can fail.
                self.assertEqual(sink.wait_for_requests(1)[0].path, HOOK_PATH)
                log = read(stderr)
                record = read(failed()[0])
                status = h.run_crashmail(["--status", "--spool", spool])
        self.assertNotIn(TOKEN, log)
        self.assertNotIn(TOKEN, record)
        self.assertNotIn(TOKEN, status.stdout + status.stderr)
        self.assertRegex(log, r"HTTP 400 Bad Request: no_such_hook: POST "
                              r"/services/<redacted>/<redacted>/<redacted> "
                              r"\(%2Fservices%2F<redacted>%2F<redacted>%2F<redacted>\)")
        self.assertIn("<redacted>", json.dumps(json.loads(record)))
        self.assertIn("<redacted>", status.stdout)


class TestChildEnvironment(unittest.TestCase):
    def test_the_sendmail_command_inherits_no_secret(self):
        out = h.tmpdir()
        script = os.path.join(out, "sendmail")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nenv > %s/env.$$\ncat > %s/mail.$$\n" % (out, out))
        os.chmod(script, 0o755)
        with HttpSink() as sink:
            sup = h.Supervisord()
            sup.add(h.crash_once_program("crashy"))
            sup.add_listener(
                "cm", ["-p", "crashy", "-m", ADDR, "-s", script, "--webhook", sink.url("/hook"),
                       "--webhook-header", "Authorization: Bearer ${H2_HEADER_TOKEN}"],
                environment={"CRASHMAIL_SMTP_PASSWORD": "smtp-secret-0815",
                             "H2_HEADER_TOKEN": "header-secret-4711",
                             "H2_PLAIN": "visible"})
            with sup:
                sup.wait_for_log(r"exited: crashy ")
                h.wait_until(lambda: glob.glob(os.path.join(out, "mail.*")), 20,
                             what="the mail through the sendmail command")
                request = sink.wait_for_requests(1)[0]
        env = read(glob.glob(os.path.join(out, "env.*"))[0])
        self.assertNotIn("CRASHMAIL_SMTP_PASSWORD", env)
        self.assertNotIn("smtp-secret-0815", env)
        self.assertNotIn("H2_HEADER_TOKEN", env)
        self.assertNotIn("header-secret-4711", env)
        # The rest is inherited, and the token did reach the webhook it is for.
        self.assertRegex(env, r"(?m)^H2_PLAIN=visible$")
        self.assertRegex(env, r"(?m)^SUPERVISOR_PROCESS_NAME=cm$")
        self.assertEqual(request.headers["Authorization"], "Bearer header-secret-4711")


@unittest.skipUnless(os.geteuid() == 0, "needs root: the listener runs as nobody")
class TestCoreDumps(unittest.TestCase):
    def listener_proc_owner(self, environment):
        nobody = pwd.getpwnam("nobody")
        sup = h.Supervisord()
        spool = sup.path("nobody-spool")
        os.makedirs(spool, mode=0o700)
        os.chown(spool, nobody.pw_uid, nobody.pw_gid)
        os.chmod(sup.dir, 0o755)  # nobody reaches its spool and its stderr log's directory
        stderr = sup.add_listener("cm", ["-a", "-m", ADDR, "-s", "/bin/true", "--spool", spool],
                                  user="nobody", environment=environment)
        with sup:
            sup.wait_for_state("cm", "RUNNING")
            h.wait_until(lambda: "started" in read(stderr), 15, what="crashmail serving")
            pid = pid_of(sup, "cm")
            status = read("/proc/%d/status" % pid)
            uid = int(re.search(r"(?m)^Uid:\s+(\d+)", status).group(1))
            # The files under /proc/PID (not the directory itself) of a non-dumpable process
            # belong to root; its environ is then unreadable to the user it runs as.
            owner = os.stat("/proc/%d/status" % pid).st_uid
        self.assertEqual(uid, nobody.pw_uid, status)
        return owner, nobody.pw_uid

    def test_serving_crashmail_is_not_dumpable(self):
        owner, _ = self.listener_proc_owner({"H2_PLAIN": "x"})
        self.assertEqual(owner, 0, "/proc/PID/status of a non-dumpable process is root's")

    def test_core_dumps_can_be_allowed(self):
        owner, nobody = self.listener_proc_owner({"CRASHMAIL_ALLOW_CORE_DUMPS": "1"})
        self.assertEqual(owner, nobody)


if __name__ == "__main__":
    unittest.main()
