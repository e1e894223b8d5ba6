#include "selection/program_pattern.hpp"

#include <catch2/catch.hpp>
#include <initializer_list>

using crashmail::ProgramPattern;
using crashmail::Selection;

namespace {

ProgramPattern pattern(std::string_view text) {
    auto parsed = ProgramPattern::parse(text);
    if (!parsed) {
        FAIL("pattern '" << text << "' rejected: " << parsed.error());
    }
    return *parsed;
}

Selection selection(std::initializer_list<std::string_view> texts, bool any = false) {
    std::vector<ProgramPattern> patterns;
    for (std::string_view text : texts) {
        patterns.push_back(pattern(text));
    }
    return Selection(any, std::move(patterns));
}

} // namespace

TEST_CASE("PROC selects that process in any group", "[selection]") {
    ProgramPattern p = pattern("crasher");
    CHECK(p.matches("crasher", "crasher"));
    CHECK(p.matches("grp", "crasher"));
    CHECK_FALSE(p.matches("crasher", "crasher2"));
    CHECK_FALSE(p.matches("crasher", "crashe"));
    CHECK_FALSE(p.matches("other", "other"));
    CHECK(p.text() == "crasher");
}

TEST_CASE("GROUP:PROC selects that process of that group only", "[selection]") {
    ProgramPattern p = pattern("grp:worker_00");
    CHECK(p.matches("grp", "worker_00"));
    CHECK_FALSE(p.matches("grp", "worker_01"));
    CHECK_FALSE(p.matches("other", "worker_00"));
    CHECK_FALSE(p.matches("worker_00", "worker_00"));
}

TEST_CASE("GROUP:* selects every process of the group", "[selection]") {
    ProgramPattern p = pattern("grp:*");
    CHECK(p.matches("grp", "worker_00"));
    CHECK(p.matches("grp", "worker_01"));
    CHECK_FALSE(p.matches("grp2", "worker_00"));
    CHECK_FALSE(p.matches("other", "grp"));
}

TEST_CASE("both parts are shell globs: *, ? and [...]", "[selection]") {
    CHECK(pattern("worker_*").matches("grp", "worker_17"));
    CHECK_FALSE(pattern("worker_*").matches("grp", "sleeper"));
    CHECK(pattern("worker_0?").matches("grp", "worker_05"));
    CHECK_FALSE(pattern("worker_0?").matches("grp", "worker_005"));
    CHECK(pattern("worker_0[01]").matches("grp", "worker_01"));
    CHECK_FALSE(pattern("worker_0[01]").matches("grp", "worker_02"));
    CHECK(pattern("g*:w[!x]*").matches("grp", "worker_00"));
    CHECK_FALSE(pattern("g*:w[!o]*").matches("grp", "worker_00"));
    CHECK_FALSE(pattern("g*:w*").matches("other", "worker_00"));
    CHECK(pattern("*").matches("any", "thing"));
}

TEST_CASE("a process whose own name contains ':' is matched by its whole name", "[selection]") {
    ProgramPattern p = pattern("tx y:z");
    CHECK(p.matches("tabbed", "tx y:z"));
    CHECK(p.matches("tx y", "z")); // read as GROUP:PROC as well
    CHECK_FALSE(p.matches("tabbed", "z"));
}

TEST_CASE("invalid patterns are rejected with a message", "[selection]") {
    for (const char* bad : {"", "grp:", ":x", ":"}) {
        INFO("pattern '" << bad << "'");
        auto parsed = ProgramPattern::parse(bad);
        REQUIRE_FALSE(parsed.has_value());
        CHECK_FALSE(parsed.error().empty());
    }
    CHECK_THAT(ProgramPattern::parse("grp:").error(), Catch::Contains("GROUP:PROCESS"));
}

TEST_CASE("no patterns and no -a watches everything", "[selection]") {
    Selection none = selection({});
    CHECK(none.watches_everything());
    CHECK(none.selects("any", "thing"));
    CHECK(Selection().selects("grp", "worker_00"));
}

TEST_CASE("program patterns select their union and nothing else", "[selection]") {
    Selection s = selection({"crasher", "grp:worker_0[0]"});
    CHECK_FALSE(s.watches_everything());
    CHECK(s.selects("crasher", "crasher"));
    CHECK(s.selects("grp", "worker_00"));
    CHECK_FALSE(s.selects("grp", "worker_01"));
    CHECK_FALSE(s.selects("sleeper", "sleeper"));
}

TEST_CASE("any overrides program patterns", "[selection]") {
    Selection s = selection({"crasher"}, true);
    CHECK(s.watches_everything());
    CHECK(s.selects("sleeper", "sleeper"));
    CHECK(s.selects("crasher", "crasher"));
}
