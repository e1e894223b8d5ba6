#include "transport/webhook_payloads.hpp"

#include "util/json_text.hpp"
#include "util/time.hpp"
#include "util/utf8.hpp"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace crashmail {
namespace {

using nlohmann::json;

// Discord's documented limits (characters; bytes are at least as many, so cutting by bytes
// stays within them).
constexpr std::size_t k_discord_content = 2000;
constexpr std::size_t k_discord_title = 256;
constexpr std::size_t k_discord_description = 4096;
constexpr std::size_t k_discord_field_value = 200; // Discord allows 1024; keeps the embed < 6000
constexpr std::size_t k_discord_footer = 256;
constexpr int k_discord_red = 0xD7263D;
constexpr int k_discord_orange = 0xE8912D; // a flood-control summary
constexpr int k_discord_green = 0x2EB67D;  // a recovery notice

// Slack's block limits.
constexpr std::size_t k_slack_header = 150;
constexpr std::size_t k_slack_section = 3000;
constexpr std::size_t k_slack_field = 2000;
constexpr std::size_t k_slack_text = 4000;

// Returns `text` cut to at most `max_bytes` bytes on a character boundary, with "…" at the
// end when something was cut.
std::string cut(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) {
        return std::string(text);
    }
    static constexpr std::string_view k_ellipsis = "…";
    return std::string(utf8::truncate(text, max_bytes - k_ellipsis.size())) +
           std::string(k_ellipsis);
}

json string_or_null(const std::string& value) {
    return value.empty() ? json(nullptr) : json(value);
}

std::string or_unknown(const std::string& value) {
    return value.empty() ? "unknown" : value;
}

// "crashy" when alone in a group of the same name, "grp:worker_01" otherwise.
std::string shown_name(const Alert& alert) {
    if (alert.group.empty() || alert.group == alert.process) {
        return or_unknown(alert.process);
    }
    return alert.group + ":" + or_unknown(alert.process);
}

// Slack's mrkdwn treats &, < and > as control characters.
std::string slack_escape(std::string_view text) {
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&':
            escaped += "&amp;";
            break;
        case '<':
            escaped += "&lt;";
            break;
        case '>':
            escaped += "&gt;";
            break;
        default:
            escaped += c;
        }
    }
    return escaped;
}

// Escapes `text` for mrkdwn and cuts the result to `max_bytes` without splitting a
// character or an entity ("…" at the end when cut).
std::string slack_text(std::string_view text, std::size_t max_bytes) {
    std::string full = slack_escape(text);
    if (full.size() <= max_bytes) {
        return full;
    }
    static constexpr std::string_view k_ellipsis = "…";
    const std::size_t limit = max_bytes - k_ellipsis.size();
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t length =
            std::min(utf8::sequence_length(static_cast<unsigned char>(text[i])), text.size() - i);
        std::string piece = slack_escape(text.substr(i, length));
        if (out.size() + piece.size() > limit) {
            break;
        }
        out += piece;
        i += length;
    }
    return out + std::string(k_ellipsis);
}

std::string pid_text(const Alert& alert) {
    return alert.pid ? std::to_string(*alert.pid) : std::string("unknown");
}

// The digest's items a channel that renders text shows: those that notify.
std::vector<const Alert*> notify_items(const Alert& digest) {
    std::vector<const Alert*> shown;
    for (const Alert& item : digest.items) {
        if (item.notify) {
            shown.push_back(&item);
        }
    }
    return shown;
}

// The (name, value) facts Slack and Discord show as fields.
std::vector<std::pair<std::string, std::string>> fact_fields(const Alert& alert) {
    if (alert.kind == AlertKind::digest) {
        return {{"Host", or_unknown(alert.host)},
                {"Alerts", std::to_string(notify_items(alert).size())}};
    }
    if (alert.kind == AlertKind::dropped) {
        return {{"Host", or_unknown(alert.host)},
                {"Discarded", std::to_string(alert.discarded)},
                {"Recovered", alert.recovered_crashes
                                  ? std::to_string(*alert.recovered_crashes) + " crash(es)"
                                  : std::string("not recoverable")}};
    }
    if (alert.kind == AlertKind::spool) {
        return {{"Host", or_unknown(alert.host)}, {"Problem", "spool not writable"}};
    }
    if (alert.kind == AlertKind::channel) {
        return {{"Host", or_unknown(alert.host)},
                {"Channel", or_unknown(alert.channel)},
                {"State", alert.channel_recovered ? "works again" : "failing"}};
    }
    std::vector<std::pair<std::string, std::string>> fields = {
        {"Process", shown_name(alert)},
        {"State", or_unknown(alert.state)},
        {"Host", or_unknown(alert.host)},
        {"PID", pid_text(alert)},
    };
    if (!alert.exit_status.empty()) {
        fields.emplace_back("Exit", alert.exit_status);
    }
    if (alert.suppressed > 0) {
        fields.emplace_back("Suppressed", std::to_string(alert.suppressed));
    }
    return fields;
}

// One Alertmanager alert.
json alertmanager_alert(json labels, json annotations, std::chrono::system_clock::time_point starts,
                        std::optional<std::chrono::system_clock::time_point> ends) {
    json entry = {{"labels", std::move(labels)},
                  {"annotations", std::move(annotations)},
                  {"startsAt", timefmt::rfc3339_utc(starts)}};
    if (ends) {
        entry["endsAt"] = timefmt::rfc3339_utc(*ends);
    }
    return entry;
}

// The labels of the alert an event of `state` (and `expected`) fires for `alert`'s process.
json alertmanager_labels(const Alert& alert, const std::string& state,
                         std::optional<bool> expected) {
    Alert named;
    named.state = state;
    named.expected = expected;
    json labels = {{"alertname", alertmanager_alert_name(named)}};
    // Alertmanager treats an empty label value as no label; leave such labels out.
    auto add_label = [&labels](const char* name, const std::string& value) {
        if (!value.empty()) {
            labels[name] = value;
        }
    };
    add_label("host", alert.host);
    add_label("group", alert.group);
    add_label("process", alert.process);
    add_label("state", state);
    return labels;
}

json alertmanager_annotations(const Alert& alert) {
    json annotations = {{"summary", alert.subject}, {"description", alert.body}, {"id", alert.id}};
    if (!alert.from_state.empty()) {
        annotations["from_state"] = alert.from_state;
    }
    if (alert.pid) {
        annotations["pid"] = std::to_string(*alert.pid);
    }
    auto add_annotation = [&annotations](const char* name, const std::string& value) {
        if (!value.empty()) {
            annotations[name] = value;
        }
    };
    add_annotation("exit_status", alert.exit_status);
    add_annotation("spawn_error", alert.spawn_error);
    add_annotation("log_tail", alert.log_tail);
    add_annotation("details_note", alert.details_note);
    if (alert.suppressed > 0) {
        annotations["suppressed"] = std::to_string(alert.suppressed);
    }
    return annotations;
}

// Appends `alert`'s Alertmanager alerts to `out`.
void add_alertmanager_alerts(const Alert& alert, json& out) {
    switch (alert.kind) {
    case AlertKind::digest:
        for (const Alert& item : alert.items) {
            add_alertmanager_alerts(item, out);
        }
        return;
    case AlertKind::recovery: {
        auto starts = alert.story_start == std::chrono::system_clock::time_point{}
                          ? alert.time
                          : alert.story_start;
        for (const ResolvedAlert& resolved : alert.resolves) {
            out.push_back(
                alertmanager_alert(alertmanager_labels(alert, resolved.state, resolved.expected),
                                   alertmanager_annotations(alert), starts, alert.time));
        }
        return;
    }
    case AlertKind::dropped: {
        // A notice, not a state that ends: it resolves itself after k_dropped_alert_lifetime.
        json labels = {{"alertname", k_dropped_alert_name}};
        if (!alert.host.empty()) {
            labels["host"] = alert.host;
        }
        json annotations = {{"summary", alert.subject},
                            {"description", alert.body},
                            {"id", alert.id},
                            {"discarded", std::to_string(alert.discarded)}};
        if (alert.recovered_crashes) {
            annotations["recovered_crashes"] = std::to_string(*alert.recovered_crashes);
        }
        out.push_back(alertmanager_alert(std::move(labels), std::move(annotations), alert.time,
                                         alert.time + k_dropped_alert_lifetime));
        return;
    }
    case AlertKind::spool: {
        json labels = {{"alertname", k_spool_alert_name}};
        if (!alert.host.empty()) {
            labels["host"] = alert.host;
        }
        json annotations = {
            {"summary", alert.subject}, {"description", alert.body}, {"id", alert.id}};
        out.push_back(alertmanager_alert(std::move(labels), std::move(annotations), alert.time,
                                         alert.time + k_dropped_alert_lifetime));
        return;
    }
    case AlertKind::channel: {
        json labels = {{"alertname", k_channel_alert_name}, {"channel", alert.channel}};
        if (!alert.host.empty()) {
            labels["host"] = alert.host;
        }
        json annotations = {
            {"summary", alert.subject}, {"description", alert.body}, {"id", alert.id}};
        // Failing: open until the notice that it works again, which ends it (endsAt now).
        out.push_back(
            alertmanager_alert(std::move(labels), std::move(annotations), alert.time,
                               alert.channel_recovered ? std::optional(alert.time) : std::nullopt));
        return;
    }
    case AlertKind::alert:
    case AlertKind::summary:
        out.push_back(alertmanager_alert(alertmanager_labels(alert, alert.state, alert.expected),
                                         alertmanager_annotations(alert), alert.time,
                                         std::nullopt));
        return;
    }
}

} // namespace

nlohmann::json webhook_document(const Alert& alert) {
    json document = json::object();
    document["version"] = k_webhook_schema_version;
    document["id"] = alert.id;
    document["event"] = string_or_null(alert.event_name);
    document["state"] = string_or_null(alert.state);
    document["process"] = string_or_null(alert.process);
    document["group"] = string_or_null(alert.group);
    document["from_state"] = string_or_null(alert.from_state);
    document["pid"] = alert.pid ? json(*alert.pid) : json(nullptr);
    document["expected"] = alert.expected ? json(*alert.expected) : json(nullptr);
    document["serial"] = alert.serial;
    document["host"] = alert.host;
    document["time"] = timefmt::rfc3339_utc(alert.time);
    document["subject"] = alert.subject;
    document["message"] = alert.body;
    // Added within version 1: why it crashed (null when unknown or not asked for).
    document["exit_status"] = string_or_null(alert.exit_status);
    document["spawn_error"] = string_or_null(alert.spawn_error);
    document["log_tail"] = string_or_null(alert.log_tail);
    document["log_source"] = string_or_null(alert.log_source);
    document["details_note"] = string_or_null(alert.details_note);
    // Added within version 1: crash-loop stories, flood control, recovery notices, digests.
    document["kind"] = kind_name(alert.kind);
    document["occurrence"] = alert.occurrence > 0 ? json(alert.occurrence) : json(nullptr);
    document["suppressed"] = alert.suppressed;
    document["story_start"] = alert.story_start == std::chrono::system_clock::time_point{}
                                  ? json(nullptr)
                                  : json(timefmt::rfc3339_utc(alert.story_start));
    document["window_seconds"] =
        alert.window.count() > 0 ? json(alert.window.count()) : json(nullptr);
    document["resolves"] = json::array();
    for (const ResolvedAlert& resolved : alert.resolves) {
        document["resolves"].push_back(
            {{"state", resolved.state}, {"expected", resolved.expected}});
    }
    document["items"] = json::array();
    for (const Alert* item : notify_items(alert)) {
        document["items"].push_back(webhook_document(*item));
    }
    // Added within version 1: events supervisord discarded (kind "dropped") and alerts
    // recovered from its log.
    document["discarded"] = alert.discarded;
    document["recovered_crashes"] =
        alert.recovered_crashes ? json(*alert.recovered_crashes) : json(nullptr);
    document["from_log"] = alert.from_log;
    // Added within version 1: a channel's health (kind "channel").
    document["channel"] = string_or_null(alert.channel);
    document["channel_recovered"] = alert.channel_recovered;
    return document;
}

nlohmann::json slack_payload(const Alert& alert) {
    const std::string time = timefmt::rfc3339_utc(alert.time);
    json fields = json::array();
    for (const auto& [name, value] : fact_fields(alert)) {
        fields.push_back(
            {{"type", "mrkdwn"}, {"text", slack_text("*" + name + "*\n" + value, k_slack_field)}});
    }
    json blocks = json::array();
    blocks.push_back(
        {{"type", "header"},
         {"text", {{"type", "plain_text"}, {"text", cut(alert.subject, k_slack_header)}}}});
    if (!alert.body.empty()) {
        blocks.push_back(
            {{"type", "section"},
             {"text", {{"type", "mrkdwn"}, {"text", slack_text(alert.body, k_slack_section)}}}});
    }
    blocks.push_back({{"type", "section"}, {"fields", fields}});
    blocks.push_back(
        {{"type", "context"},
         {"elements", json::array({{{"type", "mrkdwn"},
                                    {"text", slack_text("crashmail · " + time + " · id " + alert.id,
                                                        k_slack_field)}}})}});
    std::string text = alert.subject;
    if (!alert.body.empty()) {
        text += "\n" + alert.body;
    }
    return json{{"text", slack_text(text, k_slack_text)}, {"blocks", blocks}};
}

nlohmann::json discord_payload(const Alert& alert) {
    auto field = [](std::string_view name, const std::string& value) {
        return json{{"name", std::string(name)},
                    {"value", cut(value.empty() ? "unknown" : value, k_discord_field_value)},
                    {"inline", true}};
    };
    json fields = json::array();
    for (const auto& [name, value] : fact_fields(alert)) {
        fields.push_back(field(name, value));
    }
    int color = k_discord_red;
    if (alert.kind == AlertKind::summary || alert.kind == AlertKind::dropped ||
        alert.kind == AlertKind::spool ||
        (alert.kind == AlertKind::channel && !alert.channel_recovered)) {
        color = k_discord_orange;
    } else if (alert.kind == AlertKind::recovery || alert.kind == AlertKind::channel) {
        color = k_discord_green;
    }
    json embed = {
        {"title", cut(alert.subject.empty() ? "crashmail alert" : alert.subject, k_discord_title)},
        {"color", color},
        {"timestamp", timefmt::rfc3339_utc(alert.time)},
        {"fields", fields},
        {"footer", {{"text", cut("crashmail · id " + alert.id, k_discord_footer)}}},
    };
    if (!alert.body.empty()) {
        embed["description"] = cut(alert.body, k_discord_description);
    }
    return json{
        {"content", cut(alert.subject, k_discord_content)},
        {"embeds", json::array({embed})},
        {"allowed_mentions", {{"parse", json::array()}}},
    };
}

std::string alertmanager_alert_name(const Alert& alert) {
    if (alert.state == "EXITED") {
        return alert.expected.value_or(false) ? "ProcessExited" : "ProcessCrashed";
    }
    std::string name = "Process";
    bool first = true;
    for (char c : alert.state) {
        if (c >= 'A' && c <= 'Z') {
            name += first ? c : static_cast<char>(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            name += c;
        }
        first = false;
    }
    return alert.state.empty() ? "ProcessStateChanged" : name;
}

nlohmann::json alertmanager_payload(const Alert& alert) {
    json alerts = json::array();
    add_alertmanager_alerts(alert, alerts);
    return alerts;
}

std::string serialize_payload(const nlohmann::json& payload) {
    return json_text(payload);
}

} // namespace crashmail
