#pragma once
// Text for log lines and messages. single_line() is the one sanitizer for text that must stay
// on one line (mail headers, subjects, log lines, error messages); every such caller uses it
// or one_line().

#include <cstddef>
#include <string>
#include <string_view>

namespace crashmail {

// Returns `text` as one line that no reader can break: every C0 control (CR, LF, tab, NUL,
// ...), DEL, C1 control (U+0080..U+009F, NEL among them), U+2028 LINE SEPARATOR and U+2029
// PARAGRAPH SEPARATOR becomes one space. Invalid UTF-8 (a stray or missing continuation byte,
// an overlong form, a surrogate, beyond U+10FFFF) becomes U+FFFD, one per maximal invalid
// subpart as Unicode recommends, so the result is always valid UTF-8. Other characters keep
// their bytes.
std::string single_line(std::string_view text);

// Returns single_line(text) cut to at most `max_bytes` bytes without splitting a UTF-8
// character, with "…" appended when cut (so a cut result has up to max_bytes + 3 bytes).
std::string one_line(std::string_view text, std::size_t max_bytes);

// `text` without the `characters` (by default ASCII white space) at either end.
std::string_view trim(std::string_view text, std::string_view characters = " \t\r\n");

} // namespace crashmail
