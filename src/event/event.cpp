#include "event/event.hpp"

#include "event/fields.hpp"

#include <array>
#include <charconv>
#include <optional>

namespace crashmail {
namespace {

constexpr std::array<std::string_view, 7> k_header_keys{"ver",        "server",    "serial", "pool",
                                                        "poolserial", "eventname", "len"};

template <typename Number>
std::expected<Number, std::string> parse_number(const Fields& fields, std::string_view key) {
    auto text = token_field(fields, key);
    if (!text) {
        return std::unexpected(std::string(key) + " is missing");
    }
    Number value{};
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || text->empty()) {
        return std::unexpected(std::string(key) + " is not a non-negative number: '" +
                               std::string(*text) + "'");
    }
    return value;
}

} // namespace

std::expected<EventHeader, std::string> parse_event_header(std::string_view line) {
    Fields fields = split_fields(line, k_header_keys);
    if (!fields.empty() && fields.front().first.empty() && !fields.front().second.empty()) {
        return std::unexpected("unexpected text before the first field: '" + fields.front().second +
                               "'");
    }
    EventHeader header;
    if (auto value = token_field(fields, "ver")) {
        header.version = *value;
    }
    if (const std::string* value = find_field(fields, "server")) {
        header.server = *value;
    }
    if (auto value = token_field(fields, "pool")) {
        header.pool = *value;
    }
    auto name = token_field(fields, "eventname");
    if (!name || name->empty()) {
        return std::unexpected(std::string("eventname is missing"));
    }
    header.event_name = *name;
    auto serial = parse_number<std::uint64_t>(fields, "serial");
    if (!serial) {
        return std::unexpected(serial.error());
    }
    header.serial = *serial;
    if (find_field(fields, "poolserial") != nullptr) {
        auto pool_serial = parse_number<std::uint64_t>(fields, "poolserial");
        if (!pool_serial) {
            return std::unexpected(pool_serial.error());
        }
        header.pool_serial = *pool_serial;
    }
    auto length = parse_number<std::size_t>(fields, "len");
    if (!length) {
        return std::unexpected(length.error());
    }
    header.length = *length;
    return header;
}

} // namespace crashmail
