"""Where a listener keeps its spool without --spool, run by a real supervisord as root with
`user=nobody` on the listener (what the Debian service does with a common configuration):

- the spool is /var/spool/crashmail/users/nobody/LISTENER, nobody's own, mode 0700, and a
  crash is alerted; nothing is put under /tmp (supervisord passes root's HOME);
- with nobody's place in the system spool taken by another user's directory (and no home of
  nobody's own), the listener does not stop: the crash is still alerted, and one notice says
  alerts are not durable, why, and the fix.

The system spool is the machine's own /var/spool/crashmail (compiled in): the test creates
what is missing of it (0755, users/ 1733) and removes exactly what it created afterwards.
Needs root (supervisord runs the listener as nobody); skipped otherwise.
"""

import os
import pwd
import shutil
import stat
import unittest

import harness as h
from http_sink import HttpSink

for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ.pop("SUPERVISOR_SERVER_URL", None)

SYSTEM = "/var/spool/crashmail"
USERS = os.path.join(SYSTEM, "users")


class SystemSpool:
    """Makes what is missing of the system spool, and removes what it made (LIFO)."""

    def __init__(self):
        self.made = []

    def ensure(self, path, mode, owner=0):
        if not os.path.lexists(path):
            os.mkdir(path)
            os.chmod(path, mode)
            os.chown(path, owner, owner if owner else 0)
            self.made.append(path)
        return path

    def remove(self, path):
        """Removes `path` (a tree the test caused) if it is there."""
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)

    def cleanup(self):
        for path in reversed(self.made):
            shutil.rmtree(path, ignore_errors=True)


@unittest.skipUnless(os.geteuid() == 0, "needs root: supervisord runs the listener as nobody")
class ListenerAsNobody(unittest.TestCase):
    def setUp(self):
        self.nobody = pwd.getpwnam("nobody")
        self.spool = SystemSpool()
        self.addCleanup(self.spool.cleanup)
        self.spool.ensure("/var/spool", 0o755)
        self.spool.ensure(SYSTEM, 0o755)
        self.spool.ensure(USERS, 0o1733)
        self.name = "cmloc%d" % os.getpid()
        self.hook = HttpSink().start()
        self.addCleanup(self.hook.stop)
        self.sup = h.Supervisord()
        os.chmod(self.sup.dir, 0o755)  # supervisord's own files stay root's
        self.sup.add(h.crash_once_program("crashy", status=3, delay=1))
        self.sup.add_listener(self.name, ["-p", "crashy", "--webhook", self.hook.url("/hook")],
                              spool=False, user="nobody")
        self.tmp_state = "/tmp/.local/state/crashmail"
        self.tmp_before = os.path.lexists(self.tmp_state)

    def documents(self, n):
        return [r.json() for r in self.hook.wait_for_requests(n, timeout=40)]

    def test_the_spool_is_nobodys_own_directory_under_the_system_spool(self):
        mine = os.path.join(USERS, "nobody")
        created_mine = not os.path.lexists(mine)
        if created_mine:
            self.addCleanup(self.spool.remove, mine)
        directory = os.path.join(mine, self.name)
        self.addCleanup(self.spool.remove, directory)
        with self.sup:
            docs = self.documents(1)
            log = self.sup.listener_stderr(self.name)
        self.assertEqual([d["kind"] for d in docs], ["alert"], docs)
        self.assertEqual(docs[0]["process"], "crashy")
        self.assertIn("spool %s" % directory, log)
        self.assertNotIn("no spool", log)
        for path, mode in ((mine, 0o700), (directory, 0o700)):
            info = os.lstat(path)
            self.assertTrue(stat.S_ISDIR(info.st_mode), path)
            self.assertEqual(info.st_uid, self.nobody.pw_uid, path)
            self.assertEqual(stat.S_IMODE(info.st_mode), mode, path)
        self.assertTrue(os.path.isdir(os.path.join(directory, "pending")))
        # The system spool and users/ keep their modes; nothing went to /tmp.
        self.assertEqual(stat.S_IMODE(os.stat(USERS).st_mode), 0o1733)
        if not self.tmp_before:
            self.assertFalse(os.path.lexists(self.tmp_state))
        # --status run as root sees nobody's listener through users/.
        done = h.run_crashmail(["--status"], timeout=30)
        self.assertIn("spool %s" % directory, done.stdout)

    def test_without_a_usable_spool_alerts_come_from_memory_with_one_notice(self):
        mine = os.path.join(USERS, "nobody")
        if os.path.lexists(mine):
            self.skipTest("%s exists on this machine: not taking it over" % mine)
        # Another user (root here) made nobody's place first: crashmail must not use it.
        os.mkdir(mine)
        os.chmod(mine, 0o777)
        self.addCleanup(self.spool.remove, mine)
        with self.sup:
            docs = self.documents(2)
            self.sup.wait_for_state(self.name, "RUNNING")
            log = self.sup.listener_stderr(self.name)
        kinds = sorted(d["kind"] for d in docs)
        self.assertEqual(kinds, ["alert", "spool"], docs)
        notice = next(d for d in docs if d["kind"] == "spool")
        self.assertIn("no spool; alerts are not durable", notice["subject"])
        message = notice["message"]
        self.assertIn("%s belongs to root (uid 0), not to nobody" % mine, message)
        self.assertIn("install -d -m 1733 %s" % USERS, message)
        self.assertIn("home directory: ", message)  # supervisord passes root's HOME: not used
        alert = next(d for d in docs if d["kind"] == "alert")
        self.assertEqual(alert["process"], "crashy")
        self.assertIn("warning: no spool: alerts are kept in memory only", log)
        self.assertIn("spool none (memory only)", log)
        self.assertEqual(os.listdir(mine), [])  # nothing written into the impostor
        if not self.tmp_before:
            self.assertFalse(os.path.lexists(self.tmp_state))


if __name__ == "__main__":
    unittest.main()
