// util/log: one write(2) per line, each starting with its time and "crashmail:".

#include "log_lines.hpp"
#include "util/log.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <regex>
#include <string>
#include <unistd.h>

using namespace crashmail;

namespace {

const std::chrono::system_clock::time_point k_when{std::chrono::milliseconds(1795644190123)};

} // namespace

TEST_CASE("a log line starts with ISO 8601 local time, milliseconds, offset, then crashmail:",
          "[log]") {
    ::setenv("TZ", "Asia/Kolkata", 1);
    ::tzset();
    const std::string line = log::format_line("warning: x\ny\r\n", k_when);
    ::unsetenv("TZ");
    ::tzset();
    CHECK(line == "2026-11-26T03:33:10.123+05:30 crashmail: warning: x | y\n");
}

TEST_CASE("log lines written to fd 2 carry the time of writing", "[log]") {
    std::array<int, 2> pipe{};
    REQUIRE(::pipe2(pipe.data(), O_CLOEXEC) == 0);
    const int saved = ::dup(2);
    ::dup2(pipe[1], 2);
    log::info("one {}", 1);
    log::error("two");
    ::dup2(saved, 2);
    ::close(saved);
    ::close(pipe[1]);
    std::string logged;
    std::array<char, 512> buffer{};
    for (ssize_t n = 0; (n = ::read(pipe[0], buffer.data(), buffer.size())) > 0;) {
        logged.append(buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(pipe[0]);
    CHECK(crashmail::testing::without_log_times(logged) ==
          "crashmail: one 1\ncrashmail: error: two\n");
    // This year, not a fixed one.
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&now, &tm);
    CHECK_THAT(logged, Catch::StartsWith(std::to_string(tm.tm_year + 1900) + "-"));
}
