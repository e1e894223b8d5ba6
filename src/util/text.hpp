#pragma once
// Text for log lines and messages.

#include <cstddef>
#include <string>
#include <string_view>

namespace crashmail {

// Returns `text` as one printable line: control characters (CR, LF, tab, ...) become spaces,
// and the result is cut to at most `max_bytes` bytes without splitting a UTF-8 character
// ("…" appended when cut).
std::string one_line(std::string_view text, std::size_t max_bytes);

// `text` without the `characters` (by default ASCII white space) at either end.
std::string_view trim(std::string_view text, std::string_view characters = " \t\r\n");

} // namespace crashmail
