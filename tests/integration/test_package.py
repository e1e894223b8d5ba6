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
import re
import shutil
import subprocess
import tarfile
import unittest

import harness
from harness import tmpdir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "packaging", "build-packages.sh")
EXAMPLES = sorted(n for n in os.listdir(os.path.join(ROOT, "examples"))
                  if os.path.isfile(os.path.join(ROOT, "examples", n)))


def run(args, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
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


class Packages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require("cmake", "cpack", "dpkg-deb", "dpkg-shlibdeps", "file", "man", "groff")
        cls.version = project_version()
        cls.out = tmpdir("crashmail-packages-")
        args = ["bash", SCRIPT]
        if build_dir():
            args += ["--build-dir", build_dir()]
        args.append(cls.out)
        done = run(args, timeout=280)
        cls.listed = done.stdout.split()
        cls.deb = os.path.join(cls.out, "crashmail_%s-1_amd64.deb" % cls.version)
        if not os.path.exists(cls.deb):  # another architecture
            debs = [p for p in cls.listed if p.endswith(".deb")]
            cls.deb = debs[0] if debs else cls.deb
        cls.binary_tgz = os.path.join(cls.out, "crashmail-%s-Linux.tar.gz" % cls.version)
        cls.source_tgz = os.path.join(cls.out, "crashmail-%s-src.tar.gz" % cls.version)
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


class CmakeInstall(unittest.TestCase):
    def test_cmake_install_uses_gnu_install_dirs(self):
        harness.require("cmake")
        if not build_dir():
            self.skipTest("CRASHMAIL_BUILD_DIR is not a configured build tree")
        prefix = os.path.join(tmpdir("crashmail-install-"), "prefix")
        run(["cmake", "--install", build_dir(), "--prefix", prefix])
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


if __name__ == "__main__":
    unittest.main()
