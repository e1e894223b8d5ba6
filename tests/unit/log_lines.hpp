#pragma once
// What crashmail logged, as tests compare it: every line of log::line() starts with its time
// ("2026-12-02T17:40:01.123+01:00 "); without_log_times() checks that each line has one and
// takes it off, so a test can compare the rest exactly.

#include <catch2/catch.hpp>
#include <regex>
#include <string>

namespace crashmail::testing {

inline const std::regex& log_time_prefix() {
    static const std::regex prefix(
        R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (?=crashmail: ))");
    return prefix;
}

// `logged` with the time taken off every line; a line without one fails the test.
inline std::string without_log_times(const std::string& logged) {
    std::string out;
    std::size_t start = 0;
    while (start < logged.size()) {
        std::size_t end = logged.find('\n', start);
        end = end == std::string::npos ? logged.size() : end + 1;
        const std::string line = logged.substr(start, end - start);
        std::smatch match;
        CHECK(std::regex_search(line, match, log_time_prefix()));
        out += match.empty() ? line : line.substr(static_cast<std::size_t>(match.length(0)));
        start = end;
    }
    return out;
}

} // namespace crashmail::testing
