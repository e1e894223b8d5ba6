#include "event/fields.hpp"

#include <algorithm>

namespace crashmail {

Fields split_fields(std::string_view text, std::span<const std::string_view> known_keys) {
    Fields fields;
    bool first = true;
    while (true) {
        std::size_t space = text.find(' ');
        std::string_view token = text.substr(0, space);
        std::size_t colon = token.find(':');
        bool is_key = colon != std::string_view::npos &&
                      std::find(known_keys.begin(), known_keys.end(), token.substr(0, colon)) !=
                          known_keys.end();
        if (is_key) {
            fields.emplace_back(std::string(token.substr(0, colon)),
                                std::string(token.substr(colon + 1)));
        } else if (fields.empty()) {
            fields.emplace_back(std::string(), std::string(token));
        } else {
            std::string& value = fields.back().second;
            if (!first) {
                value += ' ';
            }
            value += token;
        }
        first = false;
        if (space == std::string_view::npos) {
            break;
        }
        text.remove_prefix(space + 1);
    }
    return fields;
}

const std::string* find_field(const Fields& fields, std::string_view key) {
    for (const auto& [name, value] : fields) {
        if (name == key) {
            return &value;
        }
    }
    return nullptr;
}

std::optional<std::string_view> token_field(const Fields& fields, std::string_view key) {
    const std::string* value = find_field(fields, key);
    if (value == nullptr) {
        return std::nullopt;
    }
    std::string_view text = *value;
    return text.substr(0, text.find(' '));
}

} // namespace crashmail
