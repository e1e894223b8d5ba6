#pragma once
// Logging to stderr, one line per call, every line prefixed "crashmail:". Each line is
// emitted with a single write(2), so lines from several threads never interleave.

#include <fmt/core.h>
#include <string_view>

namespace crashmail::log {

// Writes "crashmail: <text>\n" to file descriptor 2. Embedded newlines are kept on one
// line (replaced by " | ") so every event stays one line in supervisord's log.
void line(std::string_view text);

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
