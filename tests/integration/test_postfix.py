"""Real-MTA integration tests (issue 15): the real crashmail binary against Debian's Postfix,
listening on 127.0.0.1:25 only and delivering to local mailboxes only.

Postfix is started once for the whole file (setUpModule) by the Postfix helper below, which
backs up /etc/postfix/main.cf, applies loopback-only settings, and on exit (also on failure,
SIGTERM or interpreter exit) stops Postfix, waits until nothing listens on port 25 and the
master process is gone, removes what the tests left in Postfix's queue, cuts /var/mail/root
back to its size before the tests and restores main.cf byte for byte. Each class sets its own
extra settings with `postfix reload`. Mail for root@localhost lands in /var/mail/root (mbox),
where Postfix's local(8) records the envelope sender as Return-Path.

  SmtpPartialRefusal  --smtp with an accepted and an unknown recipient, under supervisord:
                      root gets the alert, the refusal (Postfix's "550 5.1.1") is logged and
                      shown by --status, the alert is neither pending nor failed.
  StrictHelo          smtpd_helo_required + reject_non_fqdn_helo_hostname: --hostname vm is
                      refused ("504 5.5.2 ... fully-qualified", and a start-up warning),
                      --hostname crashmail-test.example.net is delivered.
  SendmailChannel     the default sendmail command (Postfix's /usr/sbin/sendmail -t -i): --from
                      sets the envelope sender (Return-Path); without it Postfix's default.

Needs root, the postfix package (tests/install-test-deps.sh installs it, stopped and not
enabled) and a free port 25; otherwise every test is skipped with the reason, and the script
exits 77 (CTest: skipped). A Postfix that already runs is never touched (skipped too).
"""

from __future__ import annotations

import atexit
import contextlib
import email
import email.policy
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

h.require("/usr/bin/supervisord")

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTSUPER = "/usr/sbin/postsuper"
SENDMAIL = "/usr/sbin/sendmail"
SMTP_URL = "smtp://127.0.0.1:25"
FQDN = "crashmail-test.example.net"
# Settle time after the expected mails have arrived, before asserting "no other mail".
SETTLE = 1.0


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _run(args, timeout: float = 60) -> subprocess.CompletedProcess:
    done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    done.stdout = done.stdout.decode("utf-8", "replace")
    done.stderr = done.stderr.decode("utf-8", "replace")
    return done


def _alive(pid: int) -> bool:
    """Whether process PID exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # "pid (comm) S ...": the state follows the last ')'.
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X", "")


def _master_pids() -> list[int]:
    """Live processes whose command name is Postfix's `master`."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % name) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == "master" and _alive(int(name)):
            pids.append(int(name))
    return pids


class Postfix:
    """Debian's Postfix on 127.0.0.1:25, configured for the test and put back afterwards.

        with Postfix(smtpd_helo_required="yes") as mta:  # SkipTest if it cannot run here
            mark = mta.mark()
            ... send mail to root@localhost ...
            [msg] = mta.wait_for_mails(1, since=mark)    # parsed, with .envelope_sender
            mta.configure(smtpd_helo_required="no")      # other extras, `postfix reload`

    On exit: `postfix stop`, wait until port 25 is closed and no master process remains,
    remove the queue files the test created, cut /var/mail/root back to its size at the start
    (KEEP_TMP=1 keeps it and the Postfix log), restore /etc/postfix/main.cf exactly (bytes,
    mode, owner, times). close() does the same and may be called more than once."""

    MAIN_CF = "/etc/postfix/main.cf"
    MAILBOX = "/var/mail/root"
    QUEUE_DIR = "/var/spool/postfix"
    QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
    # Local only: nothing listens beyond loopback, nothing is relayed off the machine.
    LOOPBACK = {
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mydestination": "localhost, localhost.localdomain",
        "relayhost": "",
        "myhostname": "mx.example.net",
    }

    def __init__(self, **extra: str):
        self.extra = dict(extra)
        self._saved: tuple[bytes, os.stat_result] | None = None
        self._mailbox_size: int | None = None  # None: there was no mailbox
        self._queue_before: set[str] = set()
        self._logdir: str | None = None
        self.log_path: str | None = None
        self._started = False
        self._closed = True

    # ----- availability

    @classmethod
    def unavailable(cls) -> str | None:
        """Why Postfix cannot be used for the test here, or None."""
        if os.geteuid() != 0:
            return "needs root (runs postfix start/stop and edits %s)" % cls.MAIN_CF
        for tool in (POSTFIX, POSTCONF, POSTSUPER, SENDMAIL):
            if not os.access(tool, os.X_OK):
                return "postfix is not installed (no %s; tests/install-test-deps.sh)" % tool
        if not os.path.isfile(cls.MAIN_CF):
            return "postfix is not installed (no %s)" % cls.MAIN_CF
        if _run([POSTFIX, "status"]).returncode == 0:
            return "a Postfix already runs on this machine (postfix status): not touching it"
        if _port_open("127.0.0.1", 25):
            return "port 25 on 127.0.0.1 is busy (another mail server?)"
        return None

    # ----- lifecycle

    def __enter__(self) -> "Postfix":
        reason = self.unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        self._closed = False
        _open.append(self)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        with open(self.MAIN_CF, "rb") as f:
            self._saved = (f.read(), os.fstat(f.fileno()))
        # maillog_file must be under /var (maillog_file_prefixes); postlogd writes it.
        self._logdir = tempfile.mkdtemp(prefix="crashmail-postfix-", dir="/var/tmp")
        self.log_path = os.path.join(self._logdir, "maillog")
        try:
            self._mailbox_size = os.path.getsize(self.MAILBOX)
        except FileNotFoundError:
            self._mailbox_size = None
        self._queue_before = set(self.queue_files())
        self._apply(self.extra)
        done = _run([POSTFIX, "start"])
        self._started = True
        if done.returncode != 0:
            raise AssertionError("postfix start: exit %d\n%s%s\n%s" % (
                done.returncode, done.stdout, done.stderr, self.log_tail()))
        h.wait_until(lambda: _port_open("127.0.0.1", 25, timeout=0.5), 20, interval=0.1,
                     what="Postfix to accept on 127.0.0.1:25")

    def _apply(self, extra: dict) -> None:
        """main.cf = the original + LOOPBACK + the log file + extra (postconf -e)."""
        self._restore_main_cf()
        settings = dict(self.LOOPBACK, maillog_file=self.log_path)
        settings.update(extra)
        done = _run([POSTCONF, "-e"] + ["%s=%s" % kv for kv in settings.items()])
        if done.returncode != 0:
            raise AssertionError("postconf -e: exit %d\n%s%s" % (
                done.returncode, done.stdout, done.stderr))

    def configure(self, **extra: str) -> None:
        """Replaces the extra settings (LOOPBACK stays) and runs `postfix reload`: every new
        SMTP connection gets the new settings."""
        self.extra = dict(extra)
        self._apply(self.extra)
        done = _run([POSTFIX, "reload"])
        if done.returncode != 0:
            raise AssertionError("postfix reload: exit %d\n%s%s" % (
                done.returncode, done.stdout, done.stderr))
        h.wait_until(lambda: _port_open("127.0.0.1", 25, timeout=0.5), 20, interval=0.1,
                     what="Postfix to accept on 127.0.0.1:25 after reload")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        problems = []
        try:
            if self._started:
                self._stop(problems)
        finally:
            self._remove_new_queue_files(problems)
            self._restore_mailbox(problems)
            self._restore_main_cf(problems)
            if self in _open:
                _open.remove(self)
            if self._logdir and not h.KEEP_TMP:
                subprocess.run(["rm", "-rf", self._logdir], check=False)
            elif self._logdir:
                sys.stderr.write("harness: kept %s and %s\n" % (self._logdir, self.MAILBOX))
        if problems:
            raise AssertionError("cleaning up Postfix: " + "; ".join(problems))

    def _stop(self, problems: list) -> None:
        pid = self._master_pid()
        done = _run([POSTFIX, "stop"])
        if done.returncode != 0 and _run([POSTFIX, "status"]).returncode == 0:
            problems.append("postfix stop: exit %d %s%s" % (done.returncode, done.stdout,
                                                            done.stderr))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (not _port_open("127.0.0.1", 25, timeout=0.2)
                    and not (pid and _alive(pid)) and not _master_pids()):
                break
            time.sleep(0.1)
        else:
            left = _master_pids()
            for p in left:  # only Postfix's: nothing else runs a "master" here
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            problems.append("Postfix did not stop within 20 s (master pids %s, port 25 %s)" % (
                left, "open" if _port_open("127.0.0.1", 25) else "closed"))
        # The exited master is init's child now: give init a moment to reap it, so that not
        # even a zombie "master" is left (not an error if it is slower).
        if pid:
            with contextlib.suppress(AssertionError):
                h.wait_until(lambda: not os.path.exists("/proc/%d" % pid), 5, interval=0.1)
        self._started = False

    def _master_pid(self) -> int | None:
        try:
            with open(os.path.join(self.QUEUE_DIR, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _restore_main_cf(self, problems: list | None = None) -> None:
        if self._saved is None:
            return
        data, st = self._saved
        try:
            with open(self.MAIN_CF, "rb") as f:
                if f.read() == data and problems is None:
                    return  # nothing to put back while configuring
        except FileNotFoundError:
            pass
        try:
            tmp = self.MAIN_CF + ".crashmail-test"
            with open(tmp, "wb") as f:
                f.write(data)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.chmod(tmp, st.st_mode & 0o7777)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(tmp, self.MAIN_CF)
            with open(self.MAIN_CF, "rb") as f:
                if f.read() != data:
                    raise OSError("content differs after the restore")
        except OSError as e:
            if problems is None:
                raise
            problems.append("restoring %s: %s" % (self.MAIN_CF, e))

    def _restore_mailbox(self, problems: list) -> None:
        if h.KEEP_TMP:
            return
        try:
            if self._mailbox_size is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.MAILBOX)
            else:
                with open(self.MAILBOX, "r+b") as f:
                    fcntl.lockf(f, fcntl.LOCK_EX)
                    f.truncate(self._mailbox_size)
        except OSError as e:
            problems.append("restoring %s: %s" % (self.MAILBOX, e))

    # ----- the queue

    def queue_files(self) -> list[str]:
        """Queue ids of the files in Postfix's queues (maildrop, incoming, active, deferred,
        hold, corrupt), as 'queue/id'. Read from the directories: `postqueue -p` needs the
        daemon."""
        found = []
        for queue in self.QUEUES:
            for dirpath, _dirs, files in os.walk(os.path.join(self.QUEUE_DIR, queue)):
                found += ["%s/%s" % (queue, f) for f in files]
        return sorted(found)

    def new_queue_files(self) -> list[str]:
        return [q for q in self.queue_files() if q not in self._queue_before]

    def wait_queue_drained(self, timeout: float = 20) -> None:
        """Waits until every message the test handed to Postfix has left its queue
        (delivered or refused, not deferred); AssertionError with the queue and log if not."""
        try:
            h.wait_until(lambda: not self.new_queue_files(), timeout, interval=0.1,
                         what="Postfix's queue to drain")
        except AssertionError as e:
            listing = _run(["/usr/sbin/postqueue", "-p"])
            raise AssertionError("%s\n--- postqueue -p ---\n%s%s\n%s" % (
                e, listing.stdout, listing.stderr, self.log_tail())) from None

    def _remove_new_queue_files(self, problems: list) -> None:
        left = self.new_queue_files()
        if not left:
            return
        sys.stderr.write("harness: removing what the test left in Postfix's queue: %s\n"
                         % ", ".join(left))
        ids = sorted({q.rsplit("/", 1)[1] for q in left})
        done = subprocess.run([POSTSUPER, "-d", "-"], input="\n".join(ids) + "\n", text=True,
                              capture_output=True, timeout=60)
        if self.new_queue_files():  # maildrop files are not postsuper's: remove them
            for q in self.new_queue_files():
                queue, name = q.split("/", 1)
                for dirpath, _dirs, files in os.walk(os.path.join(self.QUEUE_DIR, queue)):
                    if name in files:
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(dirpath, name))
        if self.new_queue_files():
            problems.append("Postfix's queue still holds %s (postsuper: %s)" % (
                self.new_queue_files(), done.stderr.strip()))

    # ----- mail

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Postfix's own log (maillog_file), for failure messages."""
        try:
            with open(self.log_path or "", "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "--- no Postfix log ---"
        return "--- Postfix log (%s) ---\n%s" % (self.log_path,
                                                  "\n".join(text.splitlines()[-lines:]))

    def mark(self) -> int:
        """The current size of /var/mail/root: pass it as `since` to see only later mails."""
        try:
            return os.path.getsize(self.MAILBOX)
        except FileNotFoundError:
            return 0

    def read_mails(self, since: int = 0) -> list:
        """The mails appended to /var/mail/root after offset `since`, oldest first, parsed
        (email.policy.default) with .raw (bytes) and .envelope_sender (from the mbox 'From '
        line)."""
        try:
            with open(self.MAILBOX, "rb") as f:
                fcntl.lockf(f, fcntl.LOCK_SH)  # local(8) holds an fcntl lock while writing
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return []
        mails = []
        # local(8) quotes body lines that start with "From " (">From "): every line that
        # starts with "From " starts a message.
        parts = re.split(rb"(?m)^(From [^\n]*)\n", data)
        for i in range(1, len(parts) - 1, 2):
            raw = parts[i + 1]
            if raw.endswith(b"\n\n"):
                raw = raw[:-1]  # the blank line that ends each mbox message
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            msg.raw = raw
            msg.envelope_sender = parts[i].split(b" ")[1].decode("utf-8", "replace")
            mails.append(msg)
        return mails

    def wait_for_mails(self, n: int, since: int = 0, timeout: float = 20) -> list:
        """Waits until at least n mails arrived in /var/mail/root after `since`; returns
        read_mails(since). AssertionError with Postfix's log on timeout."""
        try:
            h.wait_until(lambda: len(self.read_mails(since)) >= n, timeout, interval=0.1,
                         what="%d mail(s) in %s" % (n, self.MAILBOX))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.log_tail())) from None
        return self.read_mails(since)


_open: list[Postfix] = []


def _close_all() -> None:
    for mta in list(_open):
        try:
            mta.close()
        except Exception as e:  # pragma: no cover - best effort at exit
            sys.stderr.write("test_postfix: %s\n" % e)


# The harness's SIGTERM handler (a ctest timeout) stops supervisord and exits at once, which
# would skip the cleanups below: stop Postfix first.
_previous_sigterm = signal.getsignal(signal.SIGTERM)


def _on_sigterm(signum, frame):
    _close_all()
    if callable(_previous_sigterm):
        _previous_sigterm(signum, frame)
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)
# Registered after harness's atexit handler, so it runs first.
atexit.register(_close_all)

MTA: Postfix | None = None


def setUpModule():
    global MTA
    mta = Postfix()
    mta.__enter__()  # SkipTest (every test skipped) when Postfix cannot run here
    unittest.addModuleCleanup(mta.close)
    MTA = mta


# --------------------------------------------------------------------------- helpers


def spool_records(root: str, listener: str, area: str) -> list[str]:
    """Alert record files in ROOT/LISTENER/AREA (pending or failed)."""
    try:
        return sorted(n for n in os.listdir(os.path.join(root, listener, area))
                      if n.endswith(".json"))
    except FileNotFoundError:
        return []


def lines_with(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if all(n in line for n in needles)]


class PostfixTestCase(unittest.TestCase):
    EXTRA: dict = {}

    @classmethod
    def setUpClass(cls):
        MTA.configure(**cls.EXTRA)

    def setUp(self):
        self.mta = MTA
        self.mark = MTA.mark()

    def assert_addressed_to_root(self, msg):
        self.assertEqual(msg["Delivered-To"], "root@localhost")


class SmtpPartialRefusal(PostfixTestCase):
    """crashmail --smtp smtp://127.0.0.1:25 -m root@localhost -m nosuchuser@localhost -a
    under a real supervisord: Postfix refuses nosuchuser at RCPT with 550 5.1.1 and takes the
    alert for root."""

    def test_accepted_recipient_gets_the_alert_and_the_refusal_is_reported(self):
        spool = os.path.join(h.tmpdir("crashmail-postfix-spool-"), "spool")
        sup = h.Supervisord()
        sup.add(h.crash_once_program("crashy", delay=0.5))
        sup.add_listener("cm", ["-a", "--smtp", SMTP_URL, "-m", "root@localhost",
                                "-m", "nosuchuser@localhost", "--spool", spool])
        with sup:
            sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
            sup.wait_listener_idle("cm", at_least=1)
            try:
                mails = self.mta.wait_for_mails(1, since=self.mark)
            except AssertionError as e:
                raise AssertionError("root@localhost got no alert: %s\n--- cm stderr ---\n%s"
                                     % (e, sup.listener_stderr("cm"))) from None
            h.wait_until(lambda: lines_with(sup.listener_stderr("cm"), "nosuchuser@localhost",
                                            "550 5.1.1"), 10,
                         what="a log line naming nosuchuser@localhost with Postfix's 550 5.1.1")
            h.wait_until(lambda: not spool_records(spool, "cm", "pending"), 10,
                         what="the alert to leave pending/")
            time.sleep(SETTLE)
            mails = self.mta.read_mails(self.mark)
            stderr = sup.listener_stderr("cm")
            failed = spool_records(spool, "cm", "failed")
            pending = spool_records(spool, "cm", "pending")
            self.assertEqual(sup.state("cm"), "RUNNING")
        self.assertEqual(len(mails), 1, "one alert for root expected; cm stderr:\n" + stderr)
        msg = mails[0]
        self.assert_addressed_to_root(msg)
        self.assertRegex(str(msg["Subject"]), r"^crashy crashed at ")
        self.assertIn("nosuchuser@localhost", str(msg["To"]))  # the header names both
        self.assertIn("root@localhost", str(msg["To"]))
        self.assertEqual(pending, [])
        self.assertEqual(failed, [], "delivered to root: not a failed alert")
        refusal = lines_with(stderr, "nosuchuser@localhost", "550 5.1.1")
        self.assertTrue(refusal, stderr)
        self.assertIn("User unknown in local recipient table", refusal[0])
        self.assertFalse(lines_with(stderr, "root@localhost", "550"), stderr)
        self.mta.wait_queue_drained()
        # --status, run afterwards, names the refused recipient.
        done = h.run_crashmail(["--status", "--spool", spool])
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("nosuchuser@localhost", done.stdout,
                      "crashmail --status does not mention the refused recipient:\n"
                      + done.stdout)


class StrictHelo(PostfixTestCase):
    """A relay that wants a fully-qualified EHLO name. Two listeners under one supervisord
    get the same crash: --hostname vm (refused: 504 5.5.2, and a start-up warning) and
    --hostname crashmail-test.example.net (delivered)."""

    EXTRA = {"smtpd_helo_required": "yes",
             "smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname"}

    def test_unqualified_hostname_is_refused_and_a_qualified_one_delivers(self):
        self.assertTrue(h.crashmail_supports("--hostname"),
                        "crashmail has no --hostname option (crashmail --help)")
        sup = h.Supervisord()
        sup.add(h.crash_once_program("crashy", delay=0.5))
        sup.add_listener("short", ["-a", "--smtp", SMTP_URL, "-m", "root@localhost",
                                   "--hostname", "vm"])
        sup.add_listener("fqdn", ["-a", "--smtp", SMTP_URL, "-m", "root@localhost",
                                  "--hostname", FQDN])
        with sup:
            sup.wait_for_log(r"exited: crashy \(exit status 3; not expected\)")
            sup.wait_listener_idle("short", at_least=1)
            sup.wait_listener_idle("fqdn", at_least=1)
            try:
                self.mta.wait_for_mails(1, since=self.mark)
            except AssertionError as e:
                raise AssertionError("%s\n--- fqdn stderr ---\n%s" % (
                    e, sup.listener_stderr("fqdn"))) from None
            try:
                h.wait_until(lambda: lines_with(sup.listener_stderr("short"), "504 5.5.2"), 20,
                             what="the --hostname vm listener to log Postfix's 504 5.5.2")
            except AssertionError as e:
                raise AssertionError("%s\n--- short stderr ---\n%s\n%s" % (
                    e, sup.listener_stderr("short"), self.mta.log_tail())) from None
            time.sleep(SETTLE)
            mails = self.mta.read_mails(self.mark)
            short = sup.listener_stderr("short")
            fqdn = sup.listener_stderr("fqdn")
        # Only the qualified name got through.
        self.assertEqual(len(mails), 1, "one mail (from --hostname %s) expected:\n%s\n%s"
                         % (FQDN, fqdn, self.mta.log_tail()))
        msg = mails[0]
        self.assert_addressed_to_root(msg)
        self.assertRegex(str(msg["Subject"]), r"^crashy crashed at ")
        received = " ".join(str(r) for r in msg.get_all("Received", []))
        self.assertIn("from %s " % FQDN, received)
        self.assertNotRegex(received, r"\bfrom vm\b")
        # The refusal, in Postfix's words.
        refused = lines_with(short, "504 5.5.2")
        self.assertTrue(any("fully-qualified" in line for line in refused), short)
        self.assertNotIn("504 5.5.2", fqdn)
        # The start-up warning: said for vm, not for the FQDN.
        self.assertRegex(short, r"(?im)warning:.*\bvm\b.*not fully.qualified",
                         "no start-up warning that 'vm' is not fully qualified:\n" + short)
        self.assertNotRegex(fqdn, r"(?i)not fully.qualified")
        self.mta.wait_queue_drained()


class SendmailChannel(PostfixTestCase):
    """The sendmail channel with its default command, Postfix's /usr/sbin/sendmail -t -i
    (crashmail --test: one test alert through the channel, outside supervisord)."""

    def send_test_alert(self, *args):
        done = h.run_crashmail(["--test", "-m", "root@localhost", *args], timeout=60)
        self.assertEqual(done.returncode, 0, "crashmail --test: exit %d\n%s%s" % (
            done.returncode, done.stdout, done.stderr))
        self.assertIn("sendmail", done.stdout)
        self.assertNotIn("smtp://", done.stdout)
        [msg] = self.mta.wait_for_mails(1, since=self.mark)
        self.mta.wait_queue_drained()
        time.sleep(0.3)
        self.assertEqual(len(self.mta.read_mails(self.mark)), 1)
        self.assert_addressed_to_root(msg)
        self.assertIn("crashmail test alert", str(msg["Subject"]))
        return msg

    def test_from_sets_the_envelope_sender(self):
        msg = self.send_test_alert("--from", "alerts@example.net")
        self.assertEqual(msg["Return-Path"], "<alerts@example.net>",
                         "the envelope sender is not --from (sendmail -f)")
        self.assertEqual(msg.envelope_sender, "alerts@example.net")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "alerts@example.net")

    def test_without_from_the_envelope_sender_is_postfixs_default(self):
        msg = self.send_test_alert()
        # Postfix's default: the user who ran sendmail (root) @ myorigin (= myhostname).
        self.assertRegex(str(msg["Return-Path"]), r"^<root@[^<>@\s]+>$")


def main() -> int:
    program = unittest.main(exit=False)
    result = program.result
    if not result.wasSuccessful():
        return 1
    if result.skipped and result.testsRun <= len(result.skipped):
        return 77  # nothing ran: CTest reports the file as skipped, not passed
    return 0


if __name__ == "__main__":
    sys.exit(main())
