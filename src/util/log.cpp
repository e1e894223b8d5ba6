#include "util/log.hpp"

#include "util/time.hpp"

#include <cerrno>
#include <string>
#include <unistd.h>

namespace crashmail::log {

std::string format_line(std::string_view text, std::chrono::system_clock::time_point now) {
    std::string out = timefmt::iso8601_local(now) + " crashmail: ";
    out.reserve(out.size() + text.size() + 1);
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\r') {
            continue;
        }
        if (c == '\n') {
            if (i + 1 < text.size()) {
                out += " | ";
            }
            continue;
        }
        out += c;
    }
    out += '\n';
    return out;
}

void line(std::string_view text) {
    const std::string out = format_line(text, std::chrono::system_clock::now());
    std::string_view rest = out;
    while (!rest.empty()) {
        ssize_t n = ::write(2, rest.data(), rest.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; // Nowhere left to report a failure to write to stderr.
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

} // namespace crashmail::log
