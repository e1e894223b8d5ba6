#pragma once
// UTF-8 helpers. supervisord's `len:` counts code points, so the protocol reader needs to
// know how many bytes each character takes.

#include <cstddef>
#include <string>
#include <string_view>

namespace crashmail::utf8 {

// Returns how many bytes the character starting with `lead` occupies (1 to 4). A byte that
// cannot start a character (a stray continuation byte or 0xF8..0xFF) counts as one byte,
// which is how a lenient decoder resynchronises.
std::size_t sequence_length(unsigned char lead);

// Returns the number of code points in `text`, counted with sequence_length().
std::size_t count_code_points(std::string_view text);

// Returns true if every byte is below 0x80.
bool is_ascii(std::string_view text);

// Returns the longest prefix of `text` that holds at most `max_bytes` bytes and does not
// cut a multi-byte character.
std::string_view truncate(std::string_view text, std::size_t max_bytes);

} // namespace crashmail::utf8
