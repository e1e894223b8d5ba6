#include "delivery/alert_record.hpp"

#include <nlohmann/json.hpp>

namespace crashmail {
namespace {

using nlohmann::json;
using Clock = std::chrono::system_clock;

long long to_millis(Clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

Clock::time_point from_millis(long long millis) {
    return Clock::time_point(
        std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(millis)));
}

ChannelState::Status parse_status(const std::string& text) {
    if (text == "delivered") {
        return ChannelState::Status::delivered;
    }
    if (text == "failed") {
        return ChannelState::Status::failed;
    }
    return ChannelState::Status::pending;
}

// A string member, or "" when it is absent or not a string (records written before the
// field existed, or by hand).
std::string text_or_empty(const json& object, const char* name) {
    auto found = object.find(name);
    return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

} // namespace

std::string_view status_name(ChannelState::Status status) {
    switch (status) {
    case ChannelState::Status::pending:
        return "pending";
    case ChannelState::Status::delivered:
        return "delivered";
    case ChannelState::Status::failed:
        return "failed";
    }
    return "pending";
}

bool AlertRecord::settled() const {
    for (const auto& [key, state] : channels) {
        if (state.status == ChannelState::Status::pending) {
            return false;
        }
    }
    return true;
}

bool AlertRecord::delivered_everywhere() const {
    for (const auto& [key, state] : channels) {
        if (state.status != ChannelState::Status::delivered) {
            return false;
        }
    }
    return true;
}

std::string record_to_json(const AlertRecord& record) {
    const Alert& alert = record.alert;
    json document = {
        {"version", 1},
        {"alert",
         {{"id", alert.id},
          {"event", alert.event_name},
          {"state", alert.state},
          {"process", alert.process},
          {"group", alert.group},
          {"from_state", alert.from_state},
          {"pid", alert.pid ? json(*alert.pid) : json(nullptr)},
          {"expected", alert.expected ? json(*alert.expected) : json(nullptr)},
          {"serial", alert.serial},
          {"host", alert.host},
          {"time_ms", to_millis(alert.time)},
          {"subject", alert.subject},
          {"body", alert.body},
          {"exit_status", alert.exit_status},
          {"spawn_error", alert.spawn_error},
          {"log_tail", alert.log_tail},
          {"log_source", alert.log_source},
          {"details_note", alert.details_note}}},
        {"details_pending", record.details_pending},
        {"channels", json::object()},
    };
    for (const auto& [key, state] : record.channels) {
        document["channels"][key] = {{"status", status_name(state.status)},
                                     {"name", state.name},
                                     {"attempts", state.attempts},
                                     {"next_attempt_ms", to_millis(state.next_attempt)},
                                     {"last_error", state.last_error}};
    }
    // Invalid UTF-8 (it cannot come from supervisord, but a record must always be writable)
    // is replaced rather than thrown on.
    return document.dump(1, ' ', false, json::error_handler_t::replace);
}

std::expected<AlertRecord, std::string> record_from_json(std::string_view text) {
    json document = json::parse(text, nullptr, false);
    if (document.is_discarded() || !document.is_object()) {
        return std::unexpected(std::string("not a JSON object"));
    }
    try {
        AlertRecord record;
        const json& a = document.at("alert");
        Alert& alert = record.alert;
        alert.id = a.at("id").get<std::string>();
        alert.event_name = a.value("event", "");
        alert.state = a.value("state", "");
        alert.process = a.value("process", "");
        alert.group = a.value("group", "");
        alert.from_state = a.value("from_state", "");
        if (a.contains("pid") && a["pid"].is_number_integer()) {
            alert.pid = a["pid"].get<std::int64_t>();
        }
        if (a.contains("expected") && a["expected"].is_boolean()) {
            alert.expected = a["expected"].get<bool>();
        }
        alert.serial = a.value("serial", std::uint64_t{0});
        alert.host = a.value("host", "");
        alert.time = from_millis(a.value("time_ms", 0LL));
        alert.subject = a.value("subject", "");
        alert.body = a.value("body", "");
        alert.exit_status = text_or_empty(a, "exit_status");
        alert.spawn_error = text_or_empty(a, "spawn_error");
        alert.log_tail = text_or_empty(a, "log_tail");
        alert.log_source = text_or_empty(a, "log_source");
        alert.details_note = text_or_empty(a, "details_note");
        if (auto pending = document.find("details_pending");
            pending != document.end() && pending->is_boolean()) {
            record.details_pending = pending->get<bool>();
        }
        if (alert.id.empty()) {
            return std::unexpected(std::string("alert.id is empty"));
        }
        const json& channels = document.at("channels");
        if (!channels.is_object()) {
            return std::unexpected(std::string("channels is not an object"));
        }
        for (auto entry = channels.begin(); entry != channels.end(); ++entry) {
            const std::string& key = entry.key();
            const json& c = entry.value();
            ChannelState state;
            state.status = parse_status(c.value("status", "pending"));
            state.name = c.value("name", "");
            state.attempts = c.value("attempts", 0);
            state.next_attempt = from_millis(c.value("next_attempt_ms", 0LL));
            state.last_error = c.value("last_error", "");
            record.channels.emplace(key, std::move(state));
        }
        return record;
    } catch (const json::exception& error) {
        return std::unexpected(std::string(error.what()));
    }
}

} // namespace crashmail
