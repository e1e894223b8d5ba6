#include "event/process_state.hpp"

#include "event/fields.hpp"

#include <array>
#include <charconv>

namespace crashmail {
namespace {

constexpr std::string_view k_prefix = "PROCESS_STATE_";
constexpr std::array<std::string_view, 6> k_payload_keys{"processname", "groupname", "from_state",
                                                         "expected",    "pid",       "tries"};

template <typename Number>
std::optional<Number> number_field(const Fields& fields, std::string_view key) {
    auto text = token_field(fields, key);
    if (!text) {
        return std::nullopt;
    }
    Number value{};
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || text->empty()) {
        return std::nullopt;
    }
    return value;
}

} // namespace

std::optional<std::string_view> process_state_of(std::string_view event_name) {
    if (!event_name.starts_with(k_prefix) || event_name.size() == k_prefix.size()) {
        return std::nullopt;
    }
    return event_name.substr(k_prefix.size());
}

std::expected<ProcessStateChange, std::string> parse_process_state(std::string_view event_name,
                                                                   std::string_view payload) {
    auto state = process_state_of(event_name);
    if (!state) {
        return std::unexpected("not a process state event: " + std::string(event_name));
    }
    // The payload is one line; PROCESS_STATE events carry no data section.
    std::string_view line = payload.substr(0, payload.find('\n'));
    Fields fields = split_fields(line, k_payload_keys);
    ProcessStateChange change;
    change.state = std::string(*state);
    const std::string* process = find_field(fields, "processname");
    const std::string* group = find_field(fields, "groupname");
    if (process == nullptr || group == nullptr) {
        return std::unexpected(std::string("payload lacks processname or groupname"));
    }
    change.process_name = *process;
    change.group_name = *group;
    if (auto from = token_field(fields, "from_state")) {
        change.from_state = *from;
    }
    change.pid = number_field<std::int64_t>(fields, "pid");
    change.tries = number_field<int>(fields, "tries");
    if (auto expected = number_field<int>(fields, "expected")) {
        change.expected = *expected != 0;
    }
    return change;
}

} // namespace crashmail
