#pragma once
// Logging to stderr, one line per call, every line prefixed with the time and "crashmail:"
// ("2026-12-02T17:40:01.123+01:00 crashmail: ..."; supervisord's log files add no time of
// their own). Each line is emitted with a single write(2), so lines from several threads
// never interleave.

#include <chrono>
#include <fmt/core.h>
#include <string>
#include <string_view>

namespace crashmail::log {

// Writes "<time> crashmail: <text>\n" to file descriptor 2, <time> being
// timefmt::iso8601_local() of now (local time, milliseconds, numeric offset). Embedded
// newlines are kept on one line (replaced by " | ") so every event stays one line in
// supervisord's log.
void line(std::string_view text);

// The line line() writes for `text` at `now`, without writing it. Pure but for the zone.
std::string format_line(std::string_view text, std::chrono::system_clock::time_point now);

template <typename... Args> void info(fmt::format_string<Args...> format, Args&&... args) {
    line(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args> void warning(fmt::format_string<Args...> format, Args&&... args) {
    line("warning: " + fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args> void error(fmt::format_string<Args...> format, Args&&... args) {
    line("error: " + fmt::format(format, std::forward<Args>(args)...));
}

} // namespace crashmail::log
