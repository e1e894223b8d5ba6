"""Why it crashed: log tail, exit status and templates, with a real supervisord (4.2.5).

Programs write known lines (non-ASCII too) and exit with a known status or a signal; the
mail (sendmail replacement from harness.mail_store) and the --webhook JSON (http_sink) must
carry the last N lines and the exit status. Also: redirect_stderr=true (stdout tail), a
supervisord with a username and password (with and without credentials), a hung XML-RPC
server (supervisord still gets its answers at once), and --config / template errors.
"""

import datetime
import os
import re
import socket
import threading
import time
import unittest
import xmlrpc.client

import harness as h
from http_sink import HttpSink

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

h.require(h.SUPERVISORD)

EX_CONFIG = 78
ADDR = "ops@example.com"
UNICODE_LINE = "ünïcode: grüße ✓ 日本"


def stderr_program(name, lines, status, **options):
    """A program that writes `lines` to stderr (and "to stdout" to stdout), then exits with
    `status`, once."""
    script = "; ".join("printf '%%s\\n' '%s' >&2" % line for line in lines)
    opts = dict(autorestart=False, startsecs=0, startretries=0, autostart=True)
    opts.update(options)
    return h.program_section(
        name, "/bin/sh -c \"echo to stdout; %s; sleep 0.3; exit %d\"" % (script, status), **opts)


def body_of(mail):
    return mail.get_content()


class AuthSupervisord(h.Supervisord):
    """A supervisord whose [unix_http_server] has a username and password."""

    def __init__(self, username, password, **kwargs):
        super().__init__(**kwargs)
        self.username = username
        self.password = password

    def config_text(self):
        text = super().config_text()
        return text.replace("[unix_http_server]\n",
                            "[unix_http_server]\nusername=%s\npassword=%s\n"
                            % (self.username, self.password), 1)

    def rpc(self, timeout=10):
        sup = self

        class Transport(xmlrpc.client.Transport):
            def make_connection(self, host):
                # get_host_info() turns user:pass@host into an Authorization header.
                _, self._extra_headers, _ = self.get_host_info(host)
                if self._connection[1] is None:
                    self._connection = host, h._UnixHTTPConnection(sup.sock_path, timeout)
                return self._connection[1]

        return xmlrpc.client.ServerProxy(
            "http://%s:%s@localhost/RPC2" % (self.username, self.password), transport=Transport())


class HungServer:
    """A unix socket that accepts connections, reads, and never answers. Records when each
    connection was accepted and when the client gave up (closed it), as time.time()."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.lock = threading.Lock()
        self.connections = []  # [accepted_at, closed_at or None]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            record = [time.time(), None]
            with self.lock:
                self.connections.append(record)
            threading.Thread(target=self._hold, args=(conn, record), daemon=True).start()

    def _hold(self, conn, record):
        conn.settimeout(0.1)
        with conn:
            while not self.stopping.is_set():
                try:
                    if conn.recv(65536) == b"":
                        record[1] = time.time()
                        return
                except socket.timeout:
                    continue
                except OSError:
                    record[1] = time.time()
                    return

    def closed(self):
        with self.lock:
            return [c for c in self.connections if c[1] is not None]

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(5)


def log_time(line):
    """time.time() of a supervisord log line ("2026-11-25 22:54:07,011 DEBG ...")."""
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


class WhyItCrashed(unittest.TestCase):

    def test_done_when_db_unreachable_exit_3_tail_20(self):
        """The issue's acceptance test, as a new user would try it."""
        sup = h.Supervisord()
        store = h.mail_store(sup.path("store"))
        sup.add(stderr_program("dbapp", ["fatal: db unreachable"], 3))
        sup.add_listener("crashmail", ["-p", "dbapp", "-m", ADDR, "-s", store, "--tail", "20"])
        with sup:
            mail = h.wait_for_mails(sup.path("store"), 1, timeout=30)[0]
            log = sup.listener_stderr("crashmail")
        body = body_of(mail)
        self.assertIn("fatal: db unreachable", body)
        self.assertIn("exit status 3", body)
        self.assertNotIn("cannot ask supervisord", log)  # the start-up check passed
        self.assertRegex(log, r"alert \S+ \(dbapp\): exit status 3, 1 line\(s\) of stderr")
        self.assertRegex(str(mail["Subject"]), r"^dbapp crashed at ")  # superlance's subject
        self.assertIn("\nExit: exit status 3\n", body)
        self.assertIn("Last line of stderr:\nfatal: db unreachable\n", body)
        self.assertNotIn("Note:", body)

    def test_mail_and_webhook_carry_the_last_n_lines_and_the_exit_status(self):
        lines = ["line %02d" % i for i in range(1, 31)] + [UNICODE_LINE, "fatal: db unreachable"]
        sup = h.Supervisord()
        store = h.mail_store(sup.path("store"))
        sup.add(stderr_program("crashy", lines, 7))
        with HttpSink() as sink:
            sup.add_listener("crashmail", ["-p", "crashy", "-m", ADDR, "-s", store, "--tail", "5",
                                           "--webhook", sink.url("/hook")])
            with sup:
                mail = h.wait_for_mails(sup.path("store"), 1, timeout=30)[0]
                request = sink.wait_for_requests(1, timeout=30)[0]
        expected_tail = "\n".join(lines[-5:])
        body = body_of(mail)
        self.assertIn("Last 5 lines of stderr:\n" + expected_tail + "\n", body)
        self.assertNotIn("line 27", body)
        self.assertIn("Exit: exit status 7", body)
        document = request.json()
        self.assertEqual(document["version"], 1)
        self.assertEqual(document["log_tail"], expected_tail)
        self.assertEqual(document["log_source"], "stderr")
        self.assertEqual(document["exit_status"], "exit status 7")
        self.assertIsNone(document["details_note"])
        self.assertIn(UNICODE_LINE, document["message"])
        self.assertEqual(document["id"], request.headers["X-Crashmail-Id"])

    def test_signal_grouped_process_and_templates(self):
        sup = h.Supervisord()
        store = h.mail_store(sup.path("store"))
        sup.add(h.program_section(
            "segv", "/bin/sh -c 'echo about to crash >&2; sleep 0.3; kill -SEGV $$'",
            process_name="segv_%(process_num)02d", numprocs=1, autorestart=False, startsecs=0,
            startretries=0))
        sup.add("[group:grp]\nprograms=segv\n")
        sup.add_listener("crashmail", [
            "-a", "-m", ADDR, "-s", store, "--tail", "3",
            "--subject", "{name} died: {exit_status} on {host}",
            "--body", "{default_body}\\nRunbook: https://wiki.example.com/{group}/{process}"])
        with sup:
            mail = h.wait_for_mails(sup.path("store"), 1, timeout=30)[0]
        subject = str(mail["Subject"])
        self.assertRegex(subject, r"^grp:segv_00 died: killed by signal 11 \(SIGSEGV\)"
                                  r"(, core dumped)? on \S+$")
        body = body_of(mail)
        self.assertIn("Process segv_00 in group grp exited unexpectedly", body)
        self.assertIn("Last line of stderr:\nabout to crash\n", body)
        self.assertTrue(body.rstrip("\n").endswith(
            "Runbook: https://wiki.example.com/grp/segv_00"), body)

    def test_redirect_stderr_gives_the_stdout_tail(self):
        sup = h.Supervisord()
        store = h.mail_store(sup.path("store"))
        sup.add(stderr_program("redir", ["to stderr", UNICODE_LINE], 2, redirect_stderr=True))
        sup.add_listener("crashmail", ["-p", "redir", "-m", ADDR, "-s", store, "--tail", "10"])
        with sup:
            mail = h.wait_for_mails(sup.path("store"), 1, timeout=30)[0]
        body = body_of(mail)
        self.assertIn("Last 3 lines of stdout:\nto stdout\nto stderr\n%s\n" % UNICODE_LINE,
                      body)
        self.assertIn("Exit: exit status 2", body)

    def test_password_protected_supervisord_with_and_without_credentials(self):
        sup = AuthSupervisord("admin", "s3cret pass")
        with_store = h.mail_store(sup.path("with"))
        without_store = h.mail_store(sup.path("without"))
        sup.add(stderr_program("crashy", ["fatal: db unreachable"], 3))
        sup.add_listener("with", ["-p", "crashy", "-m", ADDR, "-s", with_store, "--tail", "5"],
                         environment={"SUPERVISOR_USERNAME": "admin",
                                      "SUPERVISOR_PASSWORD": "s3cret pass"})
        sup.add_listener("without", ["-p", "crashy", "-m", ADDR, "-s", without_store,
                                     "--tail", "5"])
        with sup:
            with_mail = h.wait_for_mails(sup.path("with"), 1, timeout=30)[0]
            without_mail = h.wait_for_mails(sup.path("without"), 1, timeout=30)[0]
            without_log = sup.listener_stderr("without")
        body = body_of(with_mail)
        self.assertIn("fatal: db unreachable", body)
        self.assertIn("exit status 3", body)
        body = body_of(without_mail)
        self.assertNotIn("fatal: db unreachable", body)
        self.assertRegex(body, r"\nNote: details unavailable: supervisord \(unix://.*sup\.sock\): "
                               r"HTTP 401 Unauthorized \(give SUPERVISOR_USERNAME and "
                               r"SUPERVISOR_PASSWORD in the listener's environment=\)\n")
        self.assertIn("Process crashy in group crashy exited unexpectedly", body)
        # The listener said so at start-up, before any crash.
        self.assertIn("cannot ask supervisord why processes crash", without_log)

    def test_a_hung_rpc_server_does_not_delay_supervisord(self):
        sup = h.Supervisord()
        store = h.mail_store(sup.path("store"))
        hung = HungServer(sup.path("hung.sock"))
        try:
            sup.add(stderr_program("crashy1", ["one"], 3))
            sup.add(stderr_program("crashy2", ["two"], 4))
            sup.add_listener("cm", ["-a", "-m", ADDR, "-s", store, "--tail", "5"],
                             environment={"SUPERVISOR_SERVER_URL":
                                          "unix://" + sup.path("hung.sock")})
            with sup:
                # supervisord gets its answers: both crashes are processed ...
                sup.wait_listener_idle("cm", at_least=2, timeout=30)
                processed = [m.group(0) for m in re.finditer(
                    r"^.* DEBG cm: event was processed$", sup.log(), re.M)]
                # ... and the alerts still go out, saying why they lack details.
                mails = h.wait_for_mails(sup.path("store"), 2, timeout=60)
                gave_up = h.wait_until(lambda: hung.closed(), 30,
                                       what="crashmail to give up on the hung server")
        finally:
            hung.stop()
        self.assertGreaterEqual(len(hung.connections), 1)
        # crashmail waited on the hung server (the 2 s start-up check, then 3 s per alert) ...
        first_close = min(c[1] for c in gave_up)
        # ... but answered supervisord before giving up on it: the answer never waits.
        self.assertLess(log_time(processed[-1]), first_close, (processed, hung.connections))
        for mail in mails:
            body = body_of(mail)
            self.assertRegex(body, r"\nNote: details unavailable: (supervisord \(unix://.*"
                                   r"hung\.sock\): no answer within 3 s|not fetched within)")
            self.assertRegex(str(mail["Subject"]), r"^crashy[12] crashed at ")


class ConfigAndTemplateErrors(unittest.TestCase):

    def test_config_file_supplies_long_options_and_templates_apply_to_test_alerts(self):
        d = h.tmpdir()
        store = h.mail_store(os.path.join(d, "store"))
        config = os.path.join(d, "crashmail.ini")
        with open(config, "w", encoding="utf-8") as f:
            f.write('email = %s\nsendmail_program = "%s"\n'
                    'subject = "[{prefix}] {process} on {host}: {state}"\n'
                    'optionalheader = prod\n' % (ADDR, store))
        done = h.run_crashmail(["--config", config, "--test"])
        self.assertEqual(done.returncode, 0, done.stderr)
        mail = h.wait_for_mails(os.path.join(d, "store"), 1)[0]
        self.assertRegex(str(mail["Subject"]), r"^\[prod\] crashmail-test on \S+: TEST$")
        self.assertEqual(mail["To"], ADDR)

    def test_command_line_wins_over_the_config_file(self):
        d = h.tmpdir()
        store = h.mail_store(os.path.join(d, "store"))
        config = os.path.join(d, "crashmail.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write('email = ["a@example.com"]\nsendmail_program = "%s"\n'
                    'subject = "from the file"\n' % store)
        done = h.run_crashmail(["--config", config, "--subject", "from argv {process}",
                                "--test"])
        self.assertEqual(done.returncode, 0, done.stderr)
        mail = h.wait_for_mails(os.path.join(d, "store"), 1)[0]
        self.assertEqual(str(mail["Subject"]), "from argv crashmail-test")

    def test_bad_template_is_a_configuration_error_with_its_position(self):
        done = h.run_crashmail(["-m", ADDR, "--body", "Process {process} {procss}", "--test"])
        self.assertEqual(done.returncode, EX_CONFIG)
        self.assertRegex(done.stderr, r"^" + h.LOG_TIME + " crashmail: ")
        self.assertEqual(h.without_log_times(done.stderr),
                         "crashmail: error: --body: unknown field {procss} at position 19\n")
        done = h.run_crashmail(["-m", ADDR, "--subject", "{name} }", "--test"])
        self.assertEqual(done.returncode, EX_CONFIG)
        self.assertIn("--subject: single } at position 8", done.stderr)

    def test_missing_or_wrong_config_file_is_a_configuration_error(self):
        d = h.tmpdir()
        done = h.run_crashmail(["--config", os.path.join(d, "nope.ini"), "--test"])
        self.assertEqual(done.returncode, EX_CONFIG)
        self.assertIn("crashmail: error: --config: ", done.stderr)
        config = os.path.join(d, "typo.ini")
        with open(config, "w") as f:
            f.write("emial = ops@example.com\n")
        done = h.run_crashmail(["--config", config, "--test"])
        self.assertEqual(done.returncode, EX_CONFIG, done.stderr)
        self.assertIn("emial", done.stderr)

    def test_tail_out_of_range_is_a_usage_error(self):
        done = h.run_crashmail(["-m", ADDR, "--tail", "1001", "--test"])
        self.assertEqual(done.returncode, 64)
        self.assertIn("--tail", done.stderr)


class SocketProblemsInWords(unittest.TestCase):
    """supervisord's unix socket when crashmail cannot use it: the start-up warning and the
    alert's Note: line name the cause (permission denied and who crashmail runs as, no
    socket, nobody listens), not libcurl's "Failed to connect to localhost port 80"."""

    def test_permission_missing_socket_and_stale_socket_are_named(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: supervisord must run a listener as user nobody")
        import pwd
        nobody = pwd.getpwnam("nobody")
        sup = h.Supervisord()
        os.chmod(sup.dir, 0o755)  # only the socket's own mode (supervisord's 0700) refuses
        sock = sup.sock_path
        missing = sup.path("missing.sock")
        stale = sup.path("stale.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(stale)
        listener.close()  # the file stays; nobody listens on it
        stores = {}
        for name in ("denied", "missing", "stale"):
            stores[name] = h.mail_store(sup.path(name))
        spool = sup.path("nobody-spool")
        os.makedirs(spool)
        for path in (spool, sup.path("denied")):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        sup.add(stderr_program("crashy", ["boom"], 3))
        sup.add_listener("denied", ["-p", "crashy", "-m", ADDR, "-s", stores["denied"],
                                    "--tail", "5", "--spool", spool], user="nobody")
        sup.add_listener("missing", ["-p", "crashy", "-m", ADDR, "-s", stores["missing"],
                                     "--tail", "5"],
                         environment={"SUPERVISOR_SERVER_URL": "unix://" + missing})
        sup.add_listener("stale", ["-p", "crashy", "-m", ADDR, "-s", stores["stale"],
                                   "--tail", "5"],
                         environment={"SUPERVISOR_SERVER_URL": "unix://" + stale})
        with sup:
            mails = {name: h.wait_for_mails(sup.path(name), 1, timeout=30)[0]
                     for name in stores}
            logs = {name: sup.listener_stderr(name) for name in stores}
        expected = {
            "denied": re.escape("permission denied on %s: crashmail runs as nobody (uid %d); "
                                "the socket belongs to root:root with mode 0700 (chown= and "
                                "chmod= in supervisord's [unix_http_server])"
                                % (sock, nobody.pw_uid)),
            "missing": re.escape("no socket %s (is supervisord running? "
                                 "SUPERVISOR_SERVER_URL=unix://%s)" % (missing, missing)),
            "stale": re.escape("nobody listens on %s" % stale),
        }
        for name, words in expected.items():
            body = body_of(mails[name])
            self.assertRegex(body, r"\nNote: details unavailable: supervisord \(unix://[^)]*\): "
                             + words + r"\n", name)
            self.assertIn("Process crashy in group crashy exited unexpectedly", body)
            self.assertRegex(logs[name], r"warning: cannot ask supervisord why processes crash "
                             r"\(supervisord \(unix://[^)]*\): " + words + r"\)", logs[name])
            for text in (body, logs[name]):
                self.assertNotIn("localhost port 80", text)


if __name__ == "__main__":
    unittest.main()
