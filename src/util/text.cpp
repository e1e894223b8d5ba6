#include "util/text.hpp"

#include "util/utf8.hpp"

namespace crashmail {
namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD"; // U+FFFD

struct Sequence {
    std::size_t length; // bytes used: the whole character, or the invalid subpart
    bool valid;
};

bool in_range(unsigned char byte, unsigned char low, unsigned char high) {
    return byte >= low && byte <= high;
}

// The UTF-8 sequence at the start of `text` (not empty, first byte 0x80 or above), checked
// against the well-formed byte sequences of Unicode's table 3-7. When it is invalid, `length`
// is its maximal subpart: the bytes that could still have begun a valid sequence (at least 1).
Sequence scan(std::string_view text) {
    const auto lead = static_cast<unsigned char>(text[0]);
    std::size_t length = 0;
    unsigned char second_low = 0x80;
    unsigned char second_high = 0xBF;
    if (in_range(lead, 0xC2, 0xDF)) {
        length = 2;
    } else if (in_range(lead, 0xE0, 0xEF)) {
        length = 3;
        second_low = lead == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
        second_high = lead == 0xED ? 0x9F : 0xBF; // no surrogates
    } else if (in_range(lead, 0xF0, 0xF4)) {
        length = 4;
        second_low = lead == 0xF0 ? 0x90 : 0x80;  // no overlong forms
        second_high = lead == 0xF4 ? 0x8F : 0xBF; // nothing beyond U+10FFFF
    } else {
        return {1, false}; // a continuation byte, an overlong lead (C0, C1) or F5..FF
    }
    for (std::size_t i = 1; i < length; ++i) {
        if (i >= text.size()) {
            return {i, false};
        }
        const auto byte = static_cast<unsigned char>(text[i]);
        const bool fits =
            i == 1 ? in_range(byte, second_low, second_high) : in_range(byte, 0x80, 0xBF);
        if (!fits) {
            return {i, false};
        }
    }
    return {length, true};
}

// True for the valid sequence `character` when it is a C1 control, U+2028 or U+2029.
bool is_unicode_break(std::string_view character) {
    const auto lead = static_cast<unsigned char>(character[0]);
    if (character.size() == 2) {
        return lead == 0xC2 && static_cast<unsigned char>(character[1]) <= 0x9F;
    }
    return character.size() == 3 && lead == 0xE2 &&
           static_cast<unsigned char>(character[1]) == 0x80 &&
           (static_cast<unsigned char>(character[2]) == 0xA8 ||
            static_cast<unsigned char>(character[2]) == 0xA9);
}

} // namespace

std::string single_line(std::string_view text) {
    std::string line;
    line.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x80) {
            line += (byte < 0x20 || byte == 0x7F) ? ' ' : text[i];
            ++i;
            continue;
        }
        const Sequence sequence = scan(text.substr(i));
        const std::string_view character = text.substr(i, sequence.length);
        if (!sequence.valid) {
            line += k_replacement;
        } else if (is_unicode_break(character)) {
            line += ' ';
        } else {
            line += character;
        }
        i += sequence.length;
    }
    return line;
}

std::string one_line(std::string_view text, std::size_t max_bytes) {
    std::string line = single_line(text);
    std::string_view cut = utf8::truncate(line, max_bytes);
    if (cut.size() < line.size()) {
        return std::string(cut) + "…";
    }
    return line;
}

std::string_view trim(std::string_view text, std::string_view characters) {
    auto first = text.find_first_not_of(characters);
    if (first == std::string_view::npos) {
        return {};
    }
    auto last = text.find_last_not_of(characters);
    return text.substr(first, last - first + 1);
}

} // namespace crashmail
