"""The packages work as a new user meets them: packaging/build-packages.sh builds a .deb, a
binary tarball and a source tarball; the .deb declares the dependencies dpkg-shlibdeps found
in the binary, and, unpacked (not installed: nothing here touches the system), gives a
`crashmail` that runs, a gzipped man page that `man crashmail` finds and shows, the licence as
a machine-readable (DEP-5) copyright file and a Debian changelog, as Debian policy wants them.
`cmake --install` puts the same files (LICENSE instead of the Debian files) in the
GNUInstallDirs places.

CRASHMAIL_BUILD_DIR (set by CTest to the build tree under test) is packaged as it is, which
keeps this test at a few seconds; without it a fresh Release build is configured in a
temporary directory (minutes).
"""

from __future__ import annotations

import os
import gzip
import io
import re
import shutil
import stat
import subprocess
import tarfile
import time
import unittest

import harness
from harness import tmpdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "packaging", "build-packages.sh")
SPOOL = "/var/spool/crashmail"
SPOOL_BEFORE = os.path.exists(SPOOL)
EXAMPLES = sorted(n for n in os.listdir(os.path.join(ROOT, "examples"))
                  if os.path.isfile(os.path.join(ROOT, "examples", n)))


def run(args, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("text", True)
    done = subprocess.run(args, capture_output=True, timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise AssertionError("%s exited with %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(args), done.returncode, done.stdout[-4000:], done.stderr[-4000:]))
    return done


def project_version() -> str:
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(crashmail VERSION (\d+\.\d+\.\d+)", f.read()).group(1)


def build_dir() -> str | None:
    path = os.environ.get("CRASHMAIL_BUILD_DIR")
    if path and os.path.isfile(os.path.join(path, "CPackConfig.cmake")):
        return path
    return None


def hardened_build() -> bool:
    """Whether the packaged binary is built as a release would be: build-packages.sh's own
    Release build with Debian's hardening flags (dpkg-buildflags), or a tree configured so."""
    if not build_dir():
        return True
    with open(os.path.join(build_dir(), "CMakeCache.txt"), encoding="utf-8") as f:
        cache = f.read()
    flags = re.search(r"(?m)^CMAKE_CXX_FLAGS:STRING=(.*)$", cache)
    kind = re.search(r"(?m)^CMAKE_BUILD_TYPE:STRING=(.*)$", cache)
    return bool(flags and kind and kind.group(1) == "Release"
                and "-D_FORTIFY_SOURCE" in flags.group(1) and "-fsanitize" not in cache)


_built: dict = {}


def built() -> dict:
    """The packages, built once for every test class: version, out, listed, deb, binary_tgz,
    source_tgz."""
    if not _built:
        harness.require("cmake", "cpack", "dpkg-deb", "dpkg-shlibdeps", "file", "man", "groff")
        version = project_version()
        out = tmpdir("crashmail-packages-")
        args = ["bash", SCRIPT]
        if build_dir():
            args += ["--build-dir", build_dir()]
        args.append(out)
        listed = run(args, timeout=280).stdout.split()
        deb = os.path.join(out, "crashmail_%s-1_amd64.deb" % version)
        if not os.path.exists(deb):  # another architecture
            debs = [p for p in listed if p.endswith(".deb")]
            deb = debs[0] if debs else deb
        _built.update(version=version, out=out, listed=listed, deb=deb,
                      binary_tgz=os.path.join(out, "crashmail-%s-Linux.tar.gz" % version),
                      source_tgz=os.path.join(out, "crashmail-%s-src.tar.gz" % version))
    return _built


class Packages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for key, value in built().items():
            setattr(cls, key, value)
        cls.root = os.path.join(tmpdir("crashmail-unpacked-"), "root")
        run(["dpkg-deb", "-x", cls.deb, cls.root])

    def test_script_lists_the_three_packages_and_cleans_up(self):
        self.assertEqual(sorted(self.listed),
                         sorted([self.deb, self.binary_tgz, self.source_tgz]))
        self.assertFalse(os.path.exists(os.path.join(self.out, "_CPack_Packages")))

    def test_deb_control_fields(self):
        info = run(["dpkg-deb", "--info", self.deb]).stdout
        field = lambda name: re.search(r"(?m)^ %s: (.*)$" % name, info)  # noqa: E731
        self.assertEqual(field("Package").group(1), "crashmail")
        self.assertEqual(field("Version").group(1), self.version + "-1")
        self.assertEqual(field("Section").group(1), "admin")
        self.assertEqual(field("Recommends").group(1), "supervisor")
        self.assertRegex(field("Maintainer").group(1), r".+ <[^@ ]+@[^@ ]+>")
        self.assertIn("supervisord", field("Description").group(1))
        # The extended description: lines of at most 80 characters (lintian).
        after = info.split(" Description: ", 1)[1].splitlines()[1:]
        extended = []
        for line in after:
            if not line.startswith("  "):  # the next field
                break
            extended.append(line)
        self.assertTrue(extended)
        for line in extended:
            self.assertLessEqual(len(line.strip()), 80, line)
        # Depends was computed by dpkg-shlibdeps from the binary, with version floors.
        depends = field("Depends").group(1)
        for library in ("libc6", "libcurl4", "libstdc++6", "libssl3", "libfmt9"):
            self.assertRegex(depends, r"(^|, )%s \(>= [^)]+\)" % re.escape(library), depends)

    def test_deb_contents_are_in_the_debian_places(self):
        listing = run(["dpkg-deb", "-c", self.deb]).stdout
        files = set(re.findall(r"(?m)\./(\S+)$", listing))
        expected = {"usr/bin/crashmail", "usr/share/man/man1/crashmail.1.gz",
                    "usr/share/doc/crashmail/README.md",
                    "usr/share/doc/crashmail/ARCHITECTURE.md",
                    "usr/share/doc/crashmail/copyright",
                    "usr/share/doc/crashmail/changelog.Debian.gz"}
        expected |= {"usr/share/doc/crashmail/examples/" + n for n in EXAMPLES}
        self.assertTrue(expected <= files, sorted(expected - files))
        # The licence is the copyright file; no uncompressed page or second licence file.
        self.assertNotIn("usr/share/man/man1/crashmail.1", files)
        self.assertNotIn("usr/share/doc/crashmail/LICENSE", files)
        self.assertFalse([f for f in files if "/demo" in f], "the repository demo is not shipped")
        self.assertTrue(all(f.startswith("usr/") for f in files), sorted(files))
        for line in listing.splitlines():
            self.assertIn(" root/root ", line)

    def test_unpacked_binary_runs_and_is_stripped(self):
        binary = os.path.join(self.root, "usr", "bin", "crashmail")
        out = run([binary, "--version"]).stdout
        self.assertRegex(out, r"^crashmail %s\n" % re.escape(self.version))
        self.assertRegex(out, r"libcurl \d+\.\d+\.\d+")
        self.assertIn("stripped", run(["file", binary]).stdout)
        self.assertNotIn("not stripped", run(["file", binary]).stdout)
        self.assertIn("--smtp", run([binary, "--help"]).stdout)

    def test_unpacked_man_page_is_gzipped_and_man_finds_it(self):
        page = os.path.join(self.root, "usr", "share", "man", "man1", "crashmail.1.gz")
        with open(page, "rb") as f:
            compressed = f.read()
        header = compressed[:10]
        # gzip -9n: magic, deflate, no file name (FLG 0), no timestamp (MTIME 0), XFL 2 (best).
        self.assertEqual(header[:4], b"\x1f\x8b\x08\x00", "gzip without a stored name")
        self.assertEqual(header[4:8], b"\x00\x00\x00\x00", "gzip without a timestamp")
        self.assertEqual(header[8], 2, "gzip -9")
        with open(os.path.join(ROOT, "man", "crashmail.1"), "rb") as f:
            self.assertEqual(gzip.decompress(compressed), f.read())
        env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8",
                   MANPATH=os.path.join(self.root, "usr", "share", "man"))
        # `man crashmail` as after installing: the page found by name in the unpacked tree.
        shown = run(["man", "crashmail"], env=env).stdout
        self.assertRegex(shown, r"(?m)^NAME\s*\n\s+crashmail - ")
        self.assertRegex(shown, r"(?m)^SYNOPSIS")
        self.assertIn("--smtp", shown)
        where = run(["man", "-w", "crashmail"], env=env).stdout.strip()
        self.assertEqual(os.path.realpath(where), os.path.realpath(page))
        warnings = subprocess.run(["groff", "-man", "-ww", "-z"],
                                  input=gzip.decompress(compressed).decode("utf-8"),
                                  capture_output=True, text=True, timeout=30)
        self.assertEqual((warnings.returncode, warnings.stderr), (0, ""))

    def test_unpacked_copyright_is_machine_readable(self):
        path = os.path.join(self.root, "usr", "share", "doc", "crashmail", "copyright")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        self.assertRegex(paragraphs[0], r"^Format: https://www\.debian\.org/doc/"
                         r"packaging-manuals/copyright-format/1\.0/\n")
        self.assertRegex(paragraphs[0], r"(?m)^Upstream-Name: crashmail$")
        self.assertRegex(text, r"(?m)^Files: \*\nCopyright: 2026 crashmail developers\n"
                               r"License: Expat$")
        self.assertRegex(text, r"(?m)^License: Expat\n Permission is hereby granted")
        # The same licence text as LICENSE, word for word.
        with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
            licence = f.read()
        self.assertIn("Copyright (c) 2026 crashmail developers", licence)
        words = lambda t: re.sub(r"\s+", " ", t.replace("\n .\n", "\n")).strip()  # noqa: E731
        body = licence.split("Permission is hereby granted", 1)[1]
        self.assertIn(words("Permission is hereby granted" + body), words(text))

    def test_unpacked_changelog_is_debian_and_matches_the_version(self):
        path = os.path.join(self.root, "usr", "share", "doc", "crashmail", "changelog.Debian.gz")
        with open(path, "rb") as f:
            raw = f.read()
        self.assertEqual(raw[3:8], b"\x00\x00\x00\x00\x00", "gzip -n: no name, no timestamp")
        text = gzip.decompress(raw).decode("utf-8")
        info = run(["dpkg-deb", "--info", self.deb]).stdout
        maintainer = re.search(r"(?m)^ Maintainer: (.*)$", info).group(1)
        # dpkg-parsechangelog is in dpkg-dev, which packaging needs anyway.
        parsed = subprocess.run(["dpkg-parsechangelog", "-l-"], input=text, capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(parsed.returncode, 0, parsed.stderr)
        field = lambda name: re.search(r"(?m)^%s: (.*)$" % name,  # noqa: E731
                                       parsed.stdout).group(1)
        self.assertEqual(field("Source"), "crashmail")
        self.assertEqual(field("Version"), self.version + "-1")
        self.assertEqual(field("Maintainer"), maintainer)

    def test_binary_tarball_has_the_same_files(self):
        with tarfile.open(self.binary_tgz) as tar:
            names = set(tar.getnames())
        top = "crashmail-%s-Linux/" % self.version
        for path in ("bin/crashmail", "share/man/man1/crashmail.1.gz",
                     "share/doc/crashmail/README.md", "share/doc/crashmail/LICENSE",
                     "share/doc/crashmail/examples/slack.conf"):
            self.assertIn(top + path, names)

    def test_source_tarball_holds_the_sources_and_no_build_trees(self):
        with tarfile.open(self.source_tgz) as tar:
            names = tar.getnames()
        top = "crashmail-%s-src/" % self.version
        for path in ("CMakeLists.txt", "src/main.cpp", "man/crashmail.1", "man/crashmail.1.scd",
                     "LICENSE", "packaging/debian/copyright", "packaging/debian/changelog.in",
                     "packaging/CPackSettings.cmake", "packaging/build-packages.sh",
                     "examples/README.md", "tests/integration/harness.py"):
            self.assertIn(top + path, names)
        self.assertFalse([n for n in names if n.startswith(top + "build")
                          or "/.git/" in n or n.endswith("/.git") or "__pycache__" in n],
                         "build trees, .git or caches in the source tarball")


    def test_deb_maintainer_scripts_are_executable_posix_sh(self):
        control = run(["dpkg-deb", "--ctrl-tarfile", self.deb], text=False).stdout
        with tarfile.open(fileobj=io.BytesIO(control)) as tar:
            members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
            for name in ("postinst", "prerm", "postrm"):
                self.assertIn(name, members)
                self.assertEqual(members[name].mode & 0o7777, 0o755, name)
                text = tar.extractfile(members[name]).read().decode("utf-8")
                self.assertTrue(text.startswith("#!/bin/sh\n"), name)
                self.assertRegex(text, r"(?m)^set -e$", name)
                self.assertNotIn("@CRASHMAIL", text, name)  # every placeholder configured
                self.assertIn("/var/spool/crashmail" if name != "prerm" else "/usr/bin/crashmail",
                              text, name)
                if shutil.which("shellcheck"):
                    check = subprocess.run(["shellcheck", "-s", "sh", "-"], input=text,
                                           capture_output=True, text=True, timeout=60)
                    self.assertEqual(check.returncode, 0, name + "\n" + check.stdout)
                if shutil.which("checkbashisms"):
                    check = subprocess.run(["checkbashisms", "-"], input=text,
                                           capture_output=True, text=True, timeout=30)
                    self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # The spool is made by postinst (users/ is 1733), not shipped in data.tar.
        files = run(["dpkg-deb", "-c", self.deb]).stdout
        self.assertNotIn("var/spool", files)

    def test_lintian_is_clean_but_for_explained_overrides(self):
        harness.require("lintian")
        done = subprocess.run(["lintian", "-EvIL", "+pedantic", "--show-overrides", self.deb],
                              capture_output=True, text=True, timeout=280)
        tags = [line for line in done.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
        if not hardened_build():
            # The binary of a developer or sanitizer build tree (CTest packages the tree
            # under test) is not the release one: tags about its machine code and compiler
            # flags (hardening, bytes read as words) are checked with build-packages.sh's own
            # build, made with dpkg-buildflags; the packaging's tags count either way.
            tags = [t for t in tags if "[usr/bin/crashmail]" not in t
                    and not re.search(r"unused-override \S+ \S*\[?usr/bin/crashmail", t)]
        self.assertEqual((done.returncode, tags), (0, []), done.stdout + done.stderr)
        # Every overridden tag is in the shipped override file with a comment giving the
        # reason on the lines right above it.
        overridden = re.findall(r"(?m)^O: crashmail(?: \S+)?: (\S+)", done.stdout)
        path = os.path.join(self.root, "usr", "share", "lintian", "overrides", "crashmail")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        entries = {}
        for i, line in enumerate(lines):
            if line and not line.startswith("#"):
                tag = line.split(":", 1)[-1].split()[0] if ":" in line else line.split()[0]
                self.assertTrue(i > 0 and lines[i - 1].startswith("# "),
                                "no reason given above %r" % line)
                entries[tag] = line
        self.assertTrue(set(overridden) <= set(entries), (overridden, entries))
        # No stale override: lintian reports an unused one as unused-override (an I: tag,
        # caught above).


class CmakeInstall(unittest.TestCase):
    def test_cmake_install_uses_gnu_install_dirs(self):
        harness.require("cmake")
        if not build_dir():
            self.skipTest("CRASHMAIL_BUILD_DIR is not a configured build tree")
        # Staged (DESTDIR): a plain install also makes the system spool, which would be the
        # machine's /var/spool/crashmail here.
        destdir = os.path.join(tmpdir("crashmail-install-"), "stage")
        run(["cmake", "--install", build_dir(), "--prefix", "/usr"],
            env=dict(os.environ, DESTDIR=destdir))
        prefix = os.path.join(destdir, "usr")
        spool = os.path.join(destdir, "var", "spool", "crashmail")
        self.assertEqual(stat.S_IMODE(os.stat(spool).st_mode), 0o755)
        users = os.stat(os.path.join(spool, "users"))
        self.assertEqual(stat.S_IMODE(users.st_mode), 0o1733)
        if os.geteuid() == 0:
            self.assertEqual((users.st_uid, users.st_gid), (0, 0))
        self.assertFalse(os.path.exists("/var/spool/crashmail") and not SPOOL_BEFORE,
                         "a staged install made the machine's spool")
        expected = ["bin/crashmail", "share/man/man1/crashmail.1.gz",
                    "share/doc/crashmail/README.md", "share/doc/crashmail/ARCHITECTURE.md",
                    "share/doc/crashmail/LICENSE"]
        expected += ["share/doc/crashmail/examples/" + n for n in EXAMPLES]
        for path in expected:
            self.assertTrue(os.path.isfile(os.path.join(prefix, path)), path)
        self.assertFalse(os.path.exists(os.path.join(prefix, "share/doc/crashmail/examples/demo")))
        # The Debian-only files stay out of a plain install.
        for path in ("share/doc/crashmail/copyright", "share/doc/crashmail/changelog.Debian.gz"):
            self.assertFalse(os.path.exists(os.path.join(prefix, path)), path)
        self.assertTrue(os.access(os.path.join(prefix, "bin/crashmail"), os.X_OK))
        self.assertRegex(run([os.path.join(prefix, "bin/crashmail"), "--version"]).stdout,
                         r"^crashmail \d+\.\d+\.\d+\n")


def package_status() -> str:
    """dpkg's status of crashmail on this machine ("" when dpkg knows nothing of it)."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "crashmail"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else ""


def dpkg(*args: str) -> subprocess.CompletedProcess:
    """dpkg ARGS; waits (up to 5 min) while another apt or dpkg holds the lock. Fails on a
    non-zero exit with dpkg's output."""
    deadline = time.monotonic() + 300
    while True:
        done = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=280,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if done.returncode == 0 or "lock" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    if done.returncode != 0:
        raise AssertionError("dpkg %s exited with %d\n%s\n%s" % (
            " ".join(args), done.returncode, done.stdout, done.stderr))
    return done


def exe_of(pid: int) -> str:
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


class PackageLifecycle(unittest.TestCase):
    """The .deb installed, upgraded with a running listener under a real supervisord,
    removed and purged on this machine (real dpkg). Skipped unless root, and when crashmail
    is installed already or /var/spool/crashmail exists (the test would change or delete
    someone's installation); afterwards the machine is as before (purged, supervisord stopped),
    also when the test fails."""

    def setUp(self):
        harness.require("dpkg", "dpkg-deb", "dpkg-query", harness.SUPERVISORD,
                        harness.SUPERVISORCTL)
        if os.geteuid() != 0:
            self.skipTest("needs root (installs the .deb)")
        if package_status() not in ("", "unknown ok not-installed", "deinstall ok not-installed"):
            self.skipTest("crashmail is installed on this machine (%s)" % package_status())
        if os.path.lexists(SPOOL):
            self.skipTest("%s exists; the test would purge it" % SPOOL)
        self.addCleanup(self.restore_machine)
        self.deb = built()["deb"]

    def restore_machine(self):
        if package_status() not in ("", "unknown ok not-installed"):
            subprocess.run(["dpkg", "--purge", "crashmail"], capture_output=True, timeout=280)
        shutil.rmtree(SPOOL, ignore_errors=True)

    def upgrade_deb(self) -> str:
        """The same package with the next Debian revision (repacked with dpkg-deb)."""
        work = tmpdir("crashmail-repack-")
        tree = os.path.join(work, "tree")
        run(["dpkg-deb", "-R", self.deb, tree])
        control = os.path.join(tree, "DEBIAN", "control")
        with open(control, encoding="utf-8") as f:
            text = f.read()
        version = re.search(r"(?m)^Version: (.*)-(\d+)$", text)
        upgraded = "%s-%d" % (version.group(1), int(version.group(2)) + 1)
        with open(control, "w", encoding="utf-8") as f:
            f.write(text.replace(version.group(0), "Version: " + upgraded))
        out = os.path.join(work, "crashmail_%s.deb" % upgraded)
        run(["dpkg-deb", "--root-owner-group", "-b", tree, out])
        return out

    def test_install_upgrade_remove_purge(self):
        done = dpkg("-i", self.deb)
        self.assertEqual(package_status(), "install ok installed", done.stdout + done.stderr)
        top, users = os.lstat(SPOOL), os.lstat(os.path.join(SPOOL, "users"))
        self.assertTrue(stat.S_ISDIR(top.st_mode) and stat.S_ISDIR(users.st_mode))
        self.assertEqual((top.st_uid, top.st_gid, stat.S_IMODE(top.st_mode)), (0, 0, 0o755))
        self.assertEqual((users.st_uid, users.st_gid, stat.S_IMODE(users.st_mode)),
                         (0, 0, 0o1733))

        # A listener of a real supervisord (running as root) and a crashmail that no
        # supervisord started, both running the installed binary.
        sup = harness.Supervisord()
        self.addCleanup(sup.stop)
        store = harness.mail_store(sup.path("store"))
        sup.add(harness.crash_once_program("crashy", delay=3600))
        sup.add_listener("cmlife", ["-p", "crashy", "-m", "ops@example.com", "-s", store,
                                    "--spool", os.path.join(SPOOL, "lifecycle-test")],
                         binary="/usr/bin/crashmail")
        sup.start()
        sup.wait_for_state("cmlife", "RUNNING")
        with sup.rpc() as proxy:
            old_pid = proxy.supervisor.getProcessInfo("cmlife")["pid"]
        harness.wait_until(lambda: exe_of(old_pid) == "/usr/bin/crashmail", 10,
                           what="the listener to run /usr/bin/crashmail")
        lone = subprocess.Popen(["/usr/bin/crashmail", "-m", "ops@example.com", "-s", store,
                                 "--spool", sup.path("lone-spool")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL,
                                env=dict({k: v for k, v in os.environ.items()
                                          if not k.startswith("SUPERVISOR_")},
                                         SUPERVISOR_SERVER_URL="unix://" + sup.sock_path))
        self.addCleanup(lambda: (lone.kill(), lone.wait(10), lone.stdin.close(),
                                 lone.stdout.close()))
        self.assertEqual(lone.stdout.readline(), b"READY\n")

        # Upgrade: postinst restarts the listener through supervisorctl and names the one it
        # cannot restart.
        done = dpkg("-i", self.upgrade_deb())
        said = done.stdout + done.stderr
        self.assertIn("crashmail: restarted cmlife:cmlife (pid %d, unix://%s)"
                      % (old_pid, sup.sock_path), said)
        self.assertIn("crashmail: these listeners still run the old binary until restarted:",
                      said)
        self.assertIn("pid %d (not started by supervisord): stop it and start it again"
                      % lone.pid, said)
        with sup.rpc() as proxy:
            info = proxy.supervisor.getProcessInfo("cmlife")
        self.assertEqual(info["statename"], "RUNNING")
        self.assertNotEqual(info["pid"], old_pid)
        self.assertEqual(exe_of(info["pid"]), "/usr/bin/crashmail")  # not "(deleted)"
        self.assertEqual(exe_of(lone.pid), "/usr/bin/crashmail (deleted)")
        self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(SPOOL, "users")).st_mode), 0o1733)

        # Remove: the running listener is named with what to do; the spool stays.
        done = dpkg("-r", "crashmail")
        said = done.stdout + done.stderr
        self.assertIn("crashmail: warning: these listeners run /usr/bin/crashmail, which is "
                      "being removed:", said)
        self.assertIn("pid %d, listener cmlife:cmlife (supervisord unix://%s)"
                      % (info["pid"], sup.sock_path), said)
        self.assertIn("remove their [eventlistener:...] sections", said)
        self.assertIn("pid %d (not started by supervisord)" % lone.pid, said)
        self.assertFalse(os.path.exists("/usr/bin/crashmail"))
        self.assertTrue(os.path.isdir(os.path.join(SPOOL, "users")))
        self.assertTrue(os.path.isdir(os.path.join(SPOOL, "lifecycle-test")))

        # Purge: the spool and the alerts in it are gone.
        sup.stop()
        dpkg("-P", "crashmail")
        self.assertFalse(os.path.lexists(SPOOL))
        self.assertIn(package_status(), ("", "unknown ok not-installed"))


if __name__ == "__main__":
    unittest.main()
