// The shared text and duration helpers (util/text, util/duration).

#include "util/duration.hpp"
#include "util/text.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using namespace std::chrono_literals;

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

TEST_CASE("seconds_text says seconds without needless digits", "[text]") {
    CHECK(seconds_text(3000ms) == "3 s");
    CHECK(seconds_text(500ms) == "0.5 s");
    CHECK(seconds_text(12250ms) == "12.25 s");
}
