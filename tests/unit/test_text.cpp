// The shared text and duration helpers (util/text, util/duration).

#include "util/duration.hpp"
#include "util/text.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using namespace std::chrono_literals;
using namespace std::string_literals;

TEST_CASE("trim drops white space, or the characters given, at both ends", "[text]") {
    CHECK(trim("  a b \t\r\n") == "a b");
    CHECK(trim(" \t ") == "");
    CHECK(trim("") == "");
    CHECK(trim(" a\r\n", " \t") == "a\r\n");
}

TEST_CASE("one_line makes one printable line, cut on a character boundary", "[text]") {
    CHECK(one_line("a\r\nb\tc", 100) == "a  b c");
    CHECK(one_line("w\xc3\xb6rker", 2) == "w…");
}

TEST_CASE("single_line turns every line break and control character into one space", "[text]") {
    CHECK(single_line("a\r\nb\tc") == "a  b c");
    std::string controls = "cr\rlf\nvt\vff\fnul";
    controls.push_back('\0');
    controls += "esc\x1b";
    controls += "del\x7f";
    CHECK(single_line(controls) == "cr lf vt ff nul esc del ");
    CHECK(single_line("nel\u0085x") == "nel x");              // U+0085 NEXT LINE
    CHECK(single_line("c1\u0080\u009b\u009f.") == "c1   .");  // every C1 control
    CHECK(single_line("ls\u2028ps\u2029end") == "ls ps end"); // line, paragraph separator
    CHECK(single_line("\u2028\u2029\r\n") == "    ");
}

TEST_CASE("single_line keeps printable text and characters near the controls", "[text]") {
    CHECK(single_line("") == "");
    CHECK(single_line("plain ASCII: ~!") == "plain ASCII: ~!");
    CHECK(single_line("w\u00f6rker \u20ac \U0001F600") == "w\u00f6rker \u20ac \U0001F600");
    CHECK(single_line("nbsp\u00a0x") == "nbsp\u00a0x");               // U+00A0 is not a control
    CHECK(single_line("\u2027\u202a\u2030") == "\u2027\u202a\u2030"); // beside U+2028/9
}

TEST_CASE("single_line makes invalid UTF-8 U+FFFD, never a line break", "[text]") {
    const std::string fffd = "\xef\xbf\xbd";
    CHECK(single_line("\xff\xfe") == fffd + fffd);
    CHECK(single_line("\x85") == fffd); // NEL in Latin-1, a stray byte in UTF-8
    CHECK(single_line("\xc3(") == fffd + "(");
    CHECK(single_line("\xe2\x80") == fffd); // U+2028 cut short: one maximal subpart
    CHECK(single_line("\xe2\x80\n") == fffd + " ");
    CHECK(single_line("\xc0\x8a") == fffd + fffd); // overlong LF
    CHECK(single_line("\xe0\x80\x8a") == fffd + fffd + fffd);
    CHECK(single_line("\xed\xa0\x80") == fffd + fffd + fffd);            // a surrogate
    CHECK(single_line("\xf4\x90\x80\x80") == fffd + fffd + fffd + fffd); // beyond U+10FFFF
    CHECK(single_line("\xf0\x9f\x98") == fffd);
    CHECK(single_line("\xc2") == fffd);
}

TEST_CASE("one_line applies single_line's rules before the cut", "[text]") {
    CHECK(one_line("a\u2028b\u0085c\u2029d", 100) == "a b c d");
    CHECK(one_line("\u2028\u2028\u2028", 2) == "  …");
    CHECK(one_line("ab\u20ac", 3) == "ab…");
    CHECK(one_line("ab\xff", 3) == "ab…"); // U+FFFD is three bytes, never cut
    CHECK(one_line("abc", 3) == "abc");
}

TEST_CASE("seconds_text says seconds without needless digits", "[text]") {
    CHECK(seconds_text(3000ms) == "3 s");
    CHECK(seconds_text(500ms) == "0.5 s");
    CHECK(seconds_text(12250ms) == "12.25 s");
}
