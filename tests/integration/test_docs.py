"""The documentation tells the truth: every option is in --help and the man page, the
committed man page is rendered from its source and renders without warnings."""
import os
import re
import shutil
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRASHMAIL = os.environ["CRASHMAIL_BIN"]
MAN_SOURCE = os.path.join(ROOT, "man", "crashmail.1.scd")
MAN_PAGE = os.path.join(ROOT, "man", "crashmail.1")


def long_options(help_text):
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]+)", help_text)))


def without_th(roff):
    return "\n".join(line for line in roff.splitlines() if not line.startswith(".TH"))


class Documentation(unittest.TestCase):
    def setUp(self):
        self.help = subprocess.run([CRASHMAIL, "--help"], capture_output=True, text=True,
                                   check=True).stdout

    def test_every_option_in_help_is_in_the_man_page(self):
        with open(MAN_SOURCE, encoding="utf-8") as f:
            man = f.read()
        options = long_options(self.help)
        self.assertIn("--sendmail_program", options)
        for option in options:
            self.assertIn("*" + option + "*", man, f"{option} is not described in the man page")

    def test_help_lines_fit_80_columns(self):
        for line in self.help.splitlines():
            self.assertLessEqual(len(line), 80, line)

    @unittest.skipUnless(shutil.which("scdoc"), "scdoc is not installed")
    def test_committed_man_page_is_rendered_from_its_source(self):
        with open(MAN_SOURCE, "rb") as f:
            rendered = subprocess.run(["scdoc"], stdin=f, capture_output=True, check=True).stdout
        with open(MAN_PAGE, encoding="utf-8") as f:
            committed = f.read()
        self.assertEqual(without_th(rendered.decode()), without_th(committed),
                         "man/crashmail.1 is stale: run man/generate.sh")

    @unittest.skipUnless(shutil.which("groff"), "groff is not installed")
    def test_man_page_renders_without_warnings(self):
        result = subprocess.run(["groff", "-man", "-ww", "-z", MAN_PAGE], capture_output=True,
                                text=True)
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stderr, "")

    def test_version_names_libcurl_and_tls(self):
        out = subprocess.run([CRASHMAIL, "--version"], capture_output=True, text=True,
                             check=True).stdout
        self.assertRegex(out, r"^crashmail \d+\.\d+\.\d+\n")
        self.assertRegex(out, r"libcurl \d+\.\d+\.\d+ \(OpenSSL/")


class UnitTestNames(unittest.TestCase):
    """ctest runs each Catch2 test by its name; a name that starts with "-" is taken for an
    option ("Unrecognised token: --test") and the test fails under ctest only."""

    def test_no_unit_test_name_starts_with_a_dash(self):
        unit = os.path.join(ROOT, "tests", "unit")
        bad = []
        for name in sorted(os.listdir(unit)):
            if name.endswith(".cpp"):
                with open(os.path.join(unit, name), encoding="utf-8") as f:
                    bad += ["%s: %s" % (name, m) for m in
                            re.findall(r'TEST_CASE\(\s*"(-[^"]*)"', f.read())]
        self.assertEqual(bad, [], "rename these tests")


if __name__ == "__main__":
    unittest.main()
