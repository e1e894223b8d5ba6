#include "alert/crash_loop.hpp"

#include "alert/mail_message.hpp"
#include "util/duration.hpp"
#include "util/hash.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <utility>

namespace crashmail {
namespace {

using time_point = std::chrono::system_clock::time_point;

// A story's key: group and process (a process name may hold ':' but not '\n').
std::string story_key(const StoryEvent& event) {
    return event.group + "\n" + event.process;
}

// How long a story without an open window or a pending recovery lives on: a process that
// stays quiet this long starts a new story with its next crash.
constexpr std::chrono::seconds k_default_quiet{600};

std::int64_t to_ms(time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

time_point from_ms(std::int64_t ms) {
    return time_point(std::chrono::milliseconds(ms));
}

// The noun for one event of `state` ("crash", "failed start", ...) and the verb phrase for
// `count` of them ("crashed 5 more times").
std::string noun(std::string_view state, bool expected) {
    if (state == "EXITED") {
        return expected ? "exit" : "crash";
    }
    if (state == "BACKOFF") {
        return "failed start";
    }
    if (state == "STOPPED") {
        return "stop";
    }
    if (state == "FATAL") {
        return "FATAL";
    }
    return fmt::format("{} event", state);
}

// "once more", "37 more times".
std::string more_times(std::uint64_t count) {
    return count == 1 ? std::string("once more") : fmt::format("{} more times", count);
}

std::string more_phrase(std::string_view state, std::uint64_t count) {
    if (state == "EXITED") {
        return fmt::format("crashed {}", more_times(count));
    }
    if (state == "BACKOFF") {
        return fmt::format("failed to start {}", more_times(count));
    }
    if (state == "STOPPED") {
        return fmt::format("was stopped {}", more_times(count));
    }
    return fmt::format("entered state {} {}", state, more_times(count));
}

// "crashed 37 more times and failed to start 2 more times".
std::string suppressed_phrase(const std::map<std::string, std::uint64_t>& by_state) {
    std::vector<std::string> parts;
    parts.reserve(by_state.size());
    for (const auto& [state, count] : by_state) {
        parts.push_back(more_phrase(state, count));
    }
    if (parts.size() <= 1) {
        return parts.empty() ? std::string() : parts.front();
    }
    std::string last = parts.back();
    parts.pop_back();
    return fmt::format("{} and {}", fmt::join(parts, ", "), last);
}

nlohmann::json event_to_json(const StoryEvent& event) {
    nlohmann::json out{{"group", event.group},       {"process", event.process},
                       {"state", event.state},       {"from_state", event.from_state},
                       {"expected", event.expected}, {"event_name", event.event_name},
                       {"serial", event.serial},     {"id", event.id}};
    if (event.pid) {
        out["pid"] = *event.pid;
    }
    if (event.logged_at) {
        out["logged_ms"] = to_ms(*event.logged_at);
    }
    return out;
}

StoryEvent event_from_json(const nlohmann::json& in) {
    StoryEvent event;
    event.group = in.value("group", "");
    event.process = in.value("process", "");
    event.state = in.value("state", "");
    event.from_state = in.value("from_state", "");
    event.expected = in.value("expected", false);
    event.event_name = in.value("event_name", "");
    event.serial = in.value("serial", std::uint64_t{0});
    event.id = in.value("id", "");
    if (in.contains("pid") && in["pid"].is_number_integer()) {
        event.pid = in["pid"].get<std::int64_t>();
    }
    if (in.contains("logged_ms") && in["logged_ms"].is_number_integer()) {
        event.logged_at = from_ms(in["logged_ms"].get<std::int64_t>());
    }
    return event;
}

void remember_alerted(std::vector<ResolvedAlert>& alerted, const StoryEvent& event) {
    ResolvedAlert resolved{event.state, event.state == "EXITED" && event.expected};
    if (std::find(alerted.begin(), alerted.end(), resolved) == alerted.end()) {
        alerted.push_back(resolved);
    }
}

constexpr const char* k_alert_states[] = {"EXITED", "FATAL", "BACKOFF", "UNKNOWN", "STOPPED"};

} // namespace

std::span<const char* const> alert_state_names() {
    return k_alert_states;
}

std::expected<std::optional<RateLimit>, std::string> parse_rate_limit(std::string_view text) {
    if (text == "off") {
        return std::optional<RateLimit>{};
    }
    auto slash = text.find('/');
    auto error = [&] {
        return std::unexpected(fmt::format(
            "'{}' is not N/DURATION (e.g. 3/10m: at most 3 alerts per process in 10 minutes) "
            "or off",
            text));
    };
    if (slash == std::string_view::npos) {
        return error();
    }
    std::string_view number = text.substr(0, slash);
    std::uint64_t count = 0;
    auto [end, code] = std::from_chars(number.data(), number.data() + number.size(), count);
    if (code != std::errc() || end != number.data() + number.size() || count < 1 || count > 1000) {
        return error();
    }
    auto window = parse_duration(text.substr(slash + 1));
    if (!window) {
        return error();
    }
    return std::optional<RateLimit>{RateLimit{count, *window}};
}

std::string duration_words(std::chrono::seconds duration) {
    auto seconds = duration.count();
    auto words = [](std::int64_t value, std::string_view unit) {
        return fmt::format("{} {}{}", value, unit, value == 1 ? "" : "s");
    };
    if (seconds % 86400 == 0 && seconds >= 86400) {
        return words(seconds / 86400, "day");
    }
    if (seconds % 3600 == 0 && seconds >= 3600) {
        return words(seconds / 3600, "hour");
    }
    if (seconds % 60 == 0 && seconds >= 60) {
        return words(seconds / 60, "minute");
    }
    return words(seconds, "second");
}

std::chrono::seconds CrashLoops::window() const {
    return m_settings.rate_limit ? m_settings.rate_limit->window : k_default_quiet;
}

Emission CrashLoops::emission(AlertKind kind, const Story& story, const StoryEvent& event) const {
    Emission out;
    out.kind = kind;
    out.event = event;
    out.occurrence = story.occurrences;
    out.story_start = story.start;
    out.window = window();
    out.limit = m_settings.rate_limit;
    return out;
}

void CrashLoops::take_counted(Story& story, Emission& into) {
    into.suppressed = std::exchange(story.suppressed, 0);
    into.suppressed_by_state = std::exchange(story.suppressed_by_state, {});
}

Emission CrashLoops::take_summary(Story& story, time_point end) const {
    Emission out = emission(AlertKind::summary, story, story.last_counted);
    out.window_start = story.window_start;
    out.window_end = end;
    take_counted(story, out);
    return out;
}

std::vector<Emission> CrashLoops::on_alert_event(const StoryEvent& event, time_point now) {
    std::vector<Emission> out = due(now);
    auto [it, created] = m_stories.try_emplace(story_key(event));
    Story& story = it->second;
    if (!created && !event.id.empty() && story.last_counted.id == event.id) {
        return out; // counted already, by a crashmail killed before it could answer
    }
    if (created) {
        story.start = now;
    }
    story.last_event = now;
    story.running_since.reset();
    ++story.occurrences;

    Emission alert = emission(AlertKind::alert, story, event);

    if (event.state == "FATAL") {
        // supervisord gave up: always said, and it accounts for what was counted.
        story.fatal = true;
        take_counted(story, alert);
        remember_alerted(story.alerted, event);
        out.push_back(std::move(alert));
        return out;
    }
    story.fatal = false;
    if (!m_settings.rate_limit) {
        remember_alerted(story.alerted, event);
        out.push_back(std::move(alert));
        return out;
    }
    if (!story.window_open) {
        story.window_open = true;
        story.window_start = now;
        story.window_sent = 0;
    }
    if (story.window_sent < m_settings.rate_limit->count) {
        ++story.window_sent;
        alert.window_start = story.window_start;
        alert.window_end = window_end(story);
        alert.last_before_limit = story.window_sent == m_settings.rate_limit->count;
        remember_alerted(story.alerted, event);
        out.push_back(std::move(alert));
        return out;
    }
    ++story.suppressed;
    ++story.suppressed_by_state[event.state];
    story.last_counted = event;
    return out;
}

bool CrashLoops::on_other_event(const StoryEvent& event, time_point now) {
    auto it = m_stories.find(story_key(event));
    if (it == m_stories.end()) {
        return false;
    }
    Story& story = it->second;
    if (event.state == "RUNNING") {
        story.running_since = now;
        story.running_event = event;
        return true;
    }
    if (story.running_since) {
        story.running_since.reset();
        return true;
    }
    return false;
}

std::vector<Emission> CrashLoops::due(time_point now) {
    std::vector<Emission> out;
    for (auto it = m_stories.begin(); it != m_stories.end();) {
        Story& story = it->second;
        // Windows that ended: a summary for what they counted; the loop is still going,
        // so the next window sends summaries only. A window with nothing counted closes.
        while (story.window_open && now >= window_end(story)) {
            time_point end = window_end(story);
            if (story.suppressed == 0) {
                story.window_open = false;
                break;
            }
            out.push_back(take_summary(story, end));
            story.window_start = end;
            story.window_sent = m_settings.rate_limit ? m_settings.rate_limit->count : 0;
        }
        if (tracks_recovery() && story.running_since &&
            now >= *story.running_since + m_settings.recovery_after) {
            if (!m_settings.recovery_notices && story.suppressed > 0) {
                // Only Alertmanager hears of the recovery: the count still goes to everyone.
                out.push_back(take_summary(story, now));
            }
            Emission recovery = emission(AlertKind::recovery, story, story.running_event);
            recovery.window_start = *story.running_since;
            recovery.resolves = story.alerted;
            recovery.notify = m_settings.recovery_notices;
            take_counted(story, recovery);
            out.push_back(std::move(recovery));
            it = m_stories.erase(it);
            continue;
        }
        bool waits = story.window_open || (story.running_since && tracks_recovery()) ||
                     (story.fatal && tracks_recovery()) || story.suppressed > 0;
        if (!waits && now >= story.last_event + window()) {
            it = m_stories.erase(it);
            continue;
        }
        ++it;
    }
    return out;
}

std::optional<CrashLoops::Counting> CrashLoops::counting(const std::string& group,
                                                         const std::string& process) const {
    StoryEvent event;
    event.group = group;
    event.process = process;
    auto it = m_stories.find(story_key(event));
    if (it == m_stories.end() || it->second.suppressed == 0 || !it->second.window_open) {
        return std::nullopt;
    }
    return Counting{it->second.suppressed, window_end(it->second)};
}

std::optional<CrashLoops::time_point> CrashLoops::next_due() const {
    std::optional<time_point> next;
    auto consider = [&](time_point when) {
        if (!next || when < *next) {
            next = when;
        }
    };
    for (const auto& [key, story] : m_stories) {
        if (story.window_open) {
            consider(window_end(story));
        }
        if (tracks_recovery() && story.running_since) {
            consider(*story.running_since + m_settings.recovery_after);
        }
        if (!story.window_open && !story.running_since) {
            consider(story.last_event + window());
        }
    }
    return next;
}

nlohmann::json CrashLoops::to_json() const {
    nlohmann::json stories = nlohmann::json::array();
    for (const auto& [key, story] : m_stories) {
        nlohmann::json alerted = nlohmann::json::array();
        for (const ResolvedAlert& resolved : story.alerted) {
            alerted.push_back({{"state", resolved.state}, {"expected", resolved.expected}});
        }
        nlohmann::json entry{{"start_ms", to_ms(story.start)},
                             {"last_event_ms", to_ms(story.last_event)},
                             {"occurrences", story.occurrences},
                             {"window_open", story.window_open},
                             {"window_start_ms", to_ms(story.window_start)},
                             {"window_sent", story.window_sent},
                             {"suppressed", story.suppressed},
                             {"suppressed_by_state", story.suppressed_by_state},
                             {"last_counted", event_to_json(story.last_counted)},
                             {"alerted", alerted},
                             {"fatal", story.fatal}};
        if (story.running_since) {
            entry["running_since_ms"] = to_ms(*story.running_since);
            entry["running_event"] = event_to_json(story.running_event);
        }
        entry["key"] = key;
        stories.push_back(std::move(entry));
    }
    return nlohmann::json{{"version", 1}, {"stories", std::move(stories)}};
}

std::expected<void, std::string> CrashLoops::restore(const nlohmann::json& document) {
    if (!document.is_object() || !document.contains("stories") || !document["stories"].is_array()) {
        return std::unexpected("not a crash-loop state document (no \"stories\" list)");
    }
    std::map<std::string, Story> stories;
    try {
        for (const nlohmann::json& entry : document["stories"]) {
            Story story;
            story.start = from_ms(entry.at("start_ms").get<std::int64_t>());
            story.last_event = from_ms(entry.value("last_event_ms", std::int64_t{0}));
            story.occurrences = entry.value("occurrences", std::uint64_t{0});
            story.window_open = entry.value("window_open", false);
            story.window_start = from_ms(entry.value("window_start_ms", std::int64_t{0}));
            story.window_sent = entry.value("window_sent", std::uint64_t{0});
            story.suppressed = entry.value("suppressed", std::uint64_t{0});
            story.suppressed_by_state =
                entry.value("suppressed_by_state", std::map<std::string, std::uint64_t>{});
            story.last_counted = event_from_json(entry.value("last_counted", nlohmann::json{}));
            for (const nlohmann::json& resolved : entry.value("alerted", nlohmann::json{})) {
                story.alerted.push_back(
                    {resolved.value("state", ""), resolved.value("expected", false)});
            }
            story.fatal = entry.value("fatal", false);
            if (entry.contains("running_since_ms")) {
                story.running_since = from_ms(entry["running_since_ms"].get<std::int64_t>());
                story.running_event =
                    event_from_json(entry.value("running_event", nlohmann::json{}));
            }
            stories[entry.at("key").get<std::string>()] = std::move(story);
        }
    } catch (const nlohmann::json::exception& error) {
        return std::unexpected(fmt::format("malformed crash-loop state: {}", error.what()));
    }
    m_stories = std::move(stories);
    return {};
}

std::string emission_id(const Emission& emission, std::string_view instance) {
    std::string identity = fmt::format("{}\n{}\n{}\n{}\n{}\n{}", instance, kind_name(emission.kind),
                                       emission.event.group, emission.event.process,
                                       to_ms(emission.window_start), emission.suppressed);
    char letter = emission.kind == AlertKind::summary ? 'm' : 'r';
    return fmt::format("{}{}", letter, sha256_hex(identity, 8));
}

Alert emission_alert(const Emission& emission, const AlertContext& context, time_point now,
                     std::string id) {
    const StoryEvent& event = emission.event;
    EventHeader header;
    header.event_name = event.event_name;
    header.serial = event.serial;
    ProcessStateChange change;
    change.state = event.state;
    change.process_name = event.process;
    change.group_name = event.group;
    change.from_state = event.from_state;
    change.pid = event.pid;
    if (event.state == "EXITED") {
        change.expected = event.expected;
    }
    Alert alert = make_alert(header, change, context, event.logged_at.value_or(now), std::move(id));
    if (event.logged_at && emission.kind == AlertKind::alert) {
        alert.from_log = true;
        const std::string line =
            fmt::format("Event: {} (serial {})", header_safe(event.event_name), event.serial);
        if (auto at = alert.body.rfind(line); at != std::string::npos) {
            alert.body.replace(at, line.size(),
                               fmt::format("Event: {} (discarded by supervisord; recovered from "
                                           "its log)",
                                           header_safe(event.event_name)));
        }
    }
    alert.kind = emission.kind;
    alert.occurrence = emission.occurrence;
    alert.suppressed = emission.suppressed;
    alert.story_start = emission.story_start;
    alert.resolves = emission.resolves;
    alert.notify = emission.notify;

    const std::string name = header_safe(display_name(event.group, event.process));
    const std::string prefix = context.prefix.empty() ? "" : header_safe(context.prefix) + ": ";
    const std::string since = timefmt::asctime_local(emission.story_start);
    std::string facts =
        fmt::format("Host: {}\nTime: {}", header_safe(context.host), timefmt::rfc5322_local(now));

    if (emission.kind == AlertKind::summary) {
        alert.window = emission.window;
        std::string what = suppressed_phrase(emission.suppressed_by_state);
        std::string span = duration_words(std::chrono::duration_cast<std::chrono::seconds>(
            emission.window_end - emission.window_start));
        alert.subject = fmt::format("{}{} {} in the last {}", prefix, name, what, span);
        alert.body = fmt::format(
            "{} {} in the last {} ({} to {}); flood control (at most {} alerts per {}) "
            "counted them instead of alerting each.\nThe crash loop began at {} and has had {} "
            "alert-worthy events so far; a summary follows every {} while it goes on.\n\n{}\n"
            "Last event: {} (serial {}, {})",
            name, what, span, timefmt::asctime_local(emission.window_start),
            timefmt::asctime_local(emission.window_end), emission.limit ? emission.limit->count : 0,
            duration_words(emission.window), since, emission.occurrence,
            duration_words(emission.window), facts, header_safe(event.event_name), event.serial,
            event.pid ? fmt::format("pid {}", *event.pid) : "pid unknown");
        return alert;
    }
    if (emission.kind == AlertKind::recovery) {
        std::string counted = emission.suppressed == 0
                                  ? std::string()
                                  : fmt::format(" Since the last message about it, it also {}.",
                                                suppressed_phrase(emission.suppressed_by_state));
        alert.subject = fmt::format("{}{} recovered at {}", prefix, name,
                                    timefmt::asctime_local_zone(emission.window_start));
        alert.body = fmt::format(
            "{} is running again ({}) since {} and has stayed up; this ends the alerts that "
            "began at {} ({} alert-worthy event{}).{}\n\n{}\nEvent: {} (serial {})",
            name, event.pid ? fmt::format("pid {}", *event.pid) : "pid unknown",
            timefmt::asctime_local(emission.window_start), since, emission.occurrence,
            emission.occurrence == 1 ? "" : "s", counted, facts, header_safe(event.event_name),
            event.serial);
        return alert;
    }

    // An event's alert: make_alert()'s text plus where it stands in its story.
    std::string story;
    const std::string what = noun(event.state, event.expected);
    std::string capitalized = what;
    capitalized[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(capitalized[0])));
    if (event.state == "FATAL") {
        story = emission.occurrence <= 1
                    ? std::string()
                    : fmt::format("After {} alert-worthy events since {}, supervisord gave up",
                                  emission.occurrence - 1, since);
        if (emission.suppressed > 0) {
            story +=
                fmt::format("{}{} {} counted, not alerted: {} {}", story.empty() ? "" : "; ",
                            emission.suppressed, story.empty() ? "events were" : "of them were",
                            name, suppressed_phrase(emission.suppressed_by_state));
        }
        if (!story.empty()) {
            story += ".";
        }
    } else if (emission.occurrence == 1 && emission.limit) {
        story =
            fmt::format("First {} of {}; if more follow, up to {} alerts per {} are sent "
                        "for it and the rest are counted in a summary.",
                        what, name, emission.limit->count, duration_words(emission.limit->window));
    } else if (emission.occurrence == 1) {
        story = fmt::format("First {} of {}.", what, name);
    } else {
        story = fmt::format("{} {} of {} since {}.", capitalized, emission.occurrence, name, since);
    }
    if (emission.last_before_limit && event.state != "FATAL") {
        story += fmt::format(" This is the last alert for {} until {}: later events are "
                             "counted and summarised then.",
                             name, timefmt::asctime_local(emission.window_end));
    }
    if (!story.empty()) {
        auto block = alert.body.find("\n\n");
        alert.body.insert(block == std::string::npos ? alert.body.size() : block, "\n" + story);
    }
    return alert;
}

} // namespace crashmail
