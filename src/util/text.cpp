#include "util/text.hpp"

#include "util/utf8.hpp"

#include <algorithm>

namespace crashmail {

std::string one_line(std::string_view text, std::size_t max_bytes) {
    std::string line;
    line.reserve(std::min(text.size(), max_bytes));
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        line += (byte < 0x20 || byte == 0x7f) ? ' ' : c;
    }
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
