#include "delivery/alert_record.hpp"

#include "util/json_text.hpp"

#include <algorithm>
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

json alert_to_json(const Alert& alert) {
    json a = {{"kind", kind_name(alert.kind)},
              {"id", alert.id},
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
              {"details_note", alert.details_note},
              {"occurrence", alert.occurrence},
              {"suppressed", alert.suppressed},
              {"window_s", alert.window.count()},
              {"resolves", json::array()},
              {"notify", alert.notify}};
    if (alert.story_start != Clock::time_point{}) {
        a["story_start_ms"] = to_millis(alert.story_start);
    }
    if (alert.kind == AlertKind::dropped) {
        a["discarded"] = alert.discarded;
        a["recovered_crashes"] =
            alert.recovered_crashes ? json(*alert.recovered_crashes) : json(nullptr);
    }
    if (alert.from_log) {
        a["from_log"] = true;
    }
    if (alert.kind == AlertKind::channel) {
        a["channel"] = alert.channel;
        a["channel_recovered"] = alert.channel_recovered;
    }
    for (const ResolvedAlert& resolved : alert.resolves) {
        a["resolves"].push_back({{"state", resolved.state}, {"expected", resolved.expected}});
    }
    if (!alert.items.empty()) {
        a["items"] = json::array();
        for (const Alert& item : alert.items) {
            a["items"].push_back(alert_to_json(item));
        }
    }
    return a;
}

// Throws json::exception for a malformed required member; fields added after version 1's
// first release read as their defaults when absent.
Alert alert_from_json(const json& a) {
    Alert alert;
    if (auto kind = a.find("kind"); kind != a.end() && kind->is_string()) {
        alert.kind = kind_from_name(kind->get<std::string>()).value_or(AlertKind::alert);
    }
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
    alert.occurrence = a.value("occurrence", std::uint64_t{0});
    alert.suppressed = a.value("suppressed", std::uint64_t{0});
    if (auto start = a.find("story_start_ms"); start != a.end() && start->is_number_integer()) {
        alert.story_start = from_millis(start->get<long long>());
    }
    alert.window = std::chrono::seconds(a.value("window_s", 0LL));
    if (auto resolves = a.find("resolves"); resolves != a.end() && resolves->is_array()) {
        for (const json& entry : *resolves) {
            alert.resolves.push_back({entry.value("state", ""), entry.value("expected", false)});
        }
    }
    alert.notify = a.value("notify", true);
    alert.discarded = a.value("discarded", std::uint64_t{0});
    if (auto recovered = a.find("recovered_crashes");
        recovered != a.end() && recovered->is_number_unsigned()) {
        alert.recovered_crashes = recovered->get<std::uint64_t>();
    }
    alert.from_log = a.value("from_log", false);
    alert.channel = text_or_empty(a, "channel");
    alert.channel_recovered = a.value("channel_recovered", false);
    if (auto items = a.find("items"); items != a.end() && items->is_array()) {
        for (const json& item : *items) {
            alert.items.push_back(alert_from_json(item));
        }
    }
    return alert;
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

namespace {

// An object of address -> reason, or nothing when absent or not an object of strings.
std::map<std::string, std::string> recipient_map(const json& channel, const char* field) {
    std::map<std::string, std::string> out;
    auto found = channel.find(field);
    if (found == channel.end() || !found->is_object()) {
        return out;
    }
    for (auto entry = found->begin(); entry != found->end(); ++entry) {
        if (entry.value().is_string()) {
            out.emplace(entry.key(), entry.value().get<std::string>());
        }
    }
    return out;
}

} // namespace

std::string record_to_json(const AlertRecord& record) {
    json document = {
        {"version", 1},
        {"alert", alert_to_json(record.alert)},
        {"details_pending", record.details_pending},
        {"held", record.held},
        {"channels", json::object()},
    };
    if (record.requeued != Clock::time_point{}) {
        document["requeued_ms"] = to_millis(record.requeued);
    }
    for (const auto& [key, state] : record.channels) {
        document["channels"][key] = {{"status", status_name(state.status)},
                                     {"name", state.name},
                                     {"attempts", state.attempts},
                                     {"next_attempt_ms", to_millis(state.next_attempt)},
                                     {"last_error", state.last_error}};
        if (!state.waiting_recipients.empty()) {
            document["channels"][key]["waiting_recipients"] = state.waiting_recipients;
        }
        if (!state.refused_recipients.empty()) {
            document["channels"][key]["refused_recipients"] = state.refused_recipients;
        }
    }
    // Invalid UTF-8 (it cannot come from supervisord, but a record must always be writable)
    // is replaced rather than thrown on.
    return json_text(document, 1);
}

std::expected<AlertRecord, std::string> record_from_json(std::string_view text) {
    json document = json::parse(text, nullptr, false);
    if (document.is_discarded() || !document.is_object()) {
        return std::unexpected(std::string("not a JSON object"));
    }
    try {
        AlertRecord record;
        record.alert = alert_from_json(document.at("alert"));
        if (auto pending = document.find("details_pending");
            pending != document.end() && pending->is_boolean()) {
            record.details_pending = pending->get<bool>();
        }
        if (auto held = document.find("held"); held != document.end() && held->is_boolean()) {
            record.held = held->get<bool>();
        }
        if (auto requeued = document.find("requeued_ms");
            requeued != document.end() && requeued->is_number_integer()) {
            record.requeued = from_millis(requeued->get<long long>());
        }
        if (record.alert.id.empty()) {
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
            state.waiting_recipients = recipient_map(c, "waiting_recipients");
            state.refused_recipients = recipient_map(c, "refused_recipients");
            record.channels.emplace(key, std::move(state));
        }
        return record;
    } catch (const json::exception& error) {
        return std::unexpected(std::string(error.what()));
    }
}

Clock::time_point retry_start(const AlertRecord& record) {
    return std::max(record.alert.time, record.requeued);
}

std::vector<std::string> renew_for_retry(AlertRecord& record, Clock::time_point now) {
    std::vector<std::string> renewed;
    for (auto& [key, state] : record.channels) {
        if (state.status == ChannelState::Status::delivered) {
            continue;
        }
        state.status = ChannelState::Status::pending;
        state.attempts = 0;
        state.next_attempt = now;
        state.waiting_recipients.clear();
        state.refused_recipients.clear();
        renewed.push_back(state.name.empty() ? key : state.name);
    }
    record.requeued = now;
    record.held = false;
    return renewed;
}

} // namespace crashmail
