#include "app/status.hpp"

#include "app/spool_listing.hpp"
#include "delivery/channel_health.hpp"
#include "delivery/refusals.hpp"
#include "delivery/spool.hpp"
#include "delivery/spool_location.hpp"
#include "delivery/spool_lock.hpp"
#include "util/duration.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cerrno>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

namespace crashmail {
namespace {

struct Counts {
    CheckState state = CheckState::ok; // the worst seen
    std::vector<std::string> problems; // for the check's line: a directory it cannot read
    std::size_t pending = 0;           // pending/ and retry/
    std::size_t late = 0;              // of those: a channel pending past the first delay
    std::size_t failed = 0;
    std::size_t unreadable = 0;
    std::size_t in_memory = 0;
    std::size_t lost = 0;
    std::size_t refused = 0;          // recipients refused for good (by channel)
    std::size_t unreadable_state = 0; // discards / refusals / channel-health state files
    std::size_t channels_down = 0;    // failing for good or for 15 minutes (channel health)
};

void raise(Counts& counts, CheckState state) {
    counts.state = std::max(counts.state, state);
}

// The whole of file `path`, or std::nullopt when it cannot be opened (none written yet).
std::optional<std::string> read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) {
        return std::nullopt;
    }
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Whether a crashmail holds the directory's lock (it is running), asked without taking it;
// when that cannot be told, it is taken to run (what it holds in memory is not lost yet).
bool locked(const std::filesystem::path& directory) {
    auto holder = spool_lock_holder(directory);
    return !holder || holder->has_value();
}

// What the outbox's waiting room said last (outbox.mark, delivery/outbox): alerts that wait
// in memory because the spool refuses them, or that were lost when crashmail stopped.
void report_outbox(const std::filesystem::path& directory, std::string& out, Counts& counts) {
    const auto text = read_text(directory / "outbox.mark");
    if (!text) {
        return;
    }
    auto document = nlohmann::json::parse(*text, nullptr, false);
    if (!document.is_object()) {
        return; // never written yet (all spaces), or torn
    }
    const auto waiting = document.value("waiting", std::uint64_t{0});
    const auto lost = document.value("lost", std::uint64_t{0});
    const std::string reason = document.value("reason", std::string());
    const auto when = std::chrono::system_clock::time_point(
        std::chrono::milliseconds(document.value("time_ms", std::int64_t{0})));
    if (waiting > 0 || lost > 0) {
        raise(counts, CheckState::warning);
    }
    if (waiting > 0) {
        if (locked(directory)) {
            counts.in_memory += waiting;
            out += fmt::format("in memory: {} alert(s) not durable since {}: the spool refuses "
                               "them ({}); crashmail retries, and they are lost if it stops "
                               "first\n",
                               waiting, timefmt::rfc3339_utc(when), reason);
        } else {
            counts.lost += waiting;
            out += fmt::format("lost: crashmail stopped at or after {} with {} alert(s) in memory "
                               "that the spool refused ({})\n",
                               timefmt::rfc3339_utc(when), waiting, reason);
        }
    } else if (lost > 0) {
        counts.lost += lost;
        out += fmt::format(
            "lost: {} alert(s) when crashmail stopped at {}: the spool never took them ({})\n",
            lost, timefmt::rfc3339_utc(when), reason);
    }
}

void report_directory(const std::filesystem::path& directory, const StatusSettings& settings,
                      std::string& out, Counts& counts) {
    // retry/: what --retry-failed renewed, for the listener to adopt into pending/.
    for (const char* area : {"pending", "retry", "failed"}) {
        const bool failed = std::string_view(area) == "failed";
        for_each_record(
            directory, area,
            [&](const std::string& file, const std::expected<AlertRecord, std::string>& record) {
                if (!record) {
                    ++counts.unreadable;
                    raise(counts, CheckState::critical);
                    out += fmt::format("unreadable {}: {}\n", file, record.error());
                    return;
                }
                ++(failed ? counts.failed : counts.pending);
                raise(counts, failed ? CheckState::critical : CheckState::ok);
                const Alert& alert = record->alert;
                bool late = false;
                for (const auto& [key, state] : record->channels) {
                    late = late || (!failed && !record->held &&
                                    state.status == ChannelState::Status::pending &&
                                    settings.now - retry_start(*record) > settings.first_delay);
                    out += fmt::format(
                        "{:<8} {} {} {} {} {} attempts={}{}\n", area, alert.id,
                        display_name(alert.group, alert.process), timefmt::rfc3339_utc(alert.time),
                        state.name.empty() ? key : state.name, status_name(state.status),
                        state.attempts,
                        state.last_error.empty() ? "" : " last error: " + state.last_error);
                    for (const auto& [recipient, reason] : state.waiting_recipients) {
                        out += fmt::format("         recipient {} refused for now (retried for "
                                           "it alone): {}\n",
                                           recipient, reason);
                    }
                    for (const auto& [recipient, reason] : state.refused_recipients) {
                        out +=
                            fmt::format("         recipient {} refused: {}\n", recipient, reason);
                    }
                }
                if (record->requeued != std::chrono::system_clock::time_point{}) {
                    out += fmt::format("         requeued by --retry-failed at {}\n",
                                       timefmt::rfc3339_utc(record->requeued));
                }
                if (late) {
                    ++counts.late;
                    raise(counts, CheckState::warning);
                }
            });
    }
}

// What the discarded-events monitor kept (app/discard_monitor): a line when supervisord ever
// discarded events meant for this listener.
void report_discards(const std::filesystem::path& directory, std::string& out, Counts& counts) {
    const auto text = read_text(directory / "discards.state.json");
    if (!text) {
        return;
    }
    auto document = nlohmann::json::parse(*text, nullptr, false);
    if (!document.is_object() || !document.contains("totals") || !document["totals"].is_object()) {
        out += "unreadable discards.state.json\n";
        ++counts.unreadable_state;
        raise(counts, CheckState::warning);
        return;
    }
    const nlohmann::json& totals = document["totals"];
    auto discarded = totals.value("discarded", std::uint64_t{0});
    if (discarded == 0) {
        return;
    }
    out += fmt::format("supervisord discarded {} event(s): {} crash(es) recovered from its log, "
                       "{} event(s) not recoverable; {} notice(s) sent (set buffer_size=100 or "
                       "more in the listener's section)\n",
                       discarded, totals.value("recovered", std::uint64_t{0}),
                       totals.value("unrecoverable", std::uint64_t{0}),
                       totals.value("notices", std::uint64_t{0}));
}

// The recipients mail servers refused for good (delivery/refusals): the alerts went to
// everyone else, so they are no longer in the spool; this says who did not get them.
void report_refusals(const std::filesystem::path& directory, std::string& out, Counts& counts) {
    const auto text = read_text(directory / "refusals.state.json");
    if (!text) {
        return;
    }
    auto refused = refusals_from_json(*text);
    if (!refused) {
        out += fmt::format("unreadable refusals.state.json: {}\n", refused.error());
        ++counts.unreadable_state;
        raise(counts, CheckState::warning);
        return;
    }
    for (const RefusedRecipient& one : *refused) {
        ++counts.refused;
        out += fmt::format("refused  {} by {}: {} alert(s) from {} to {}, last {}: {}\n",
                           one.recipient, one.channel, one.alerts, timefmt::rfc3339_utc(one.first),
                           timefmt::rfc3339_utc(one.last), one.last_alert, one.last_reason);
    }
}

// The channels that are failing (delivery/channel_health): one that is down (a delivery failed
// for good, or 15 minutes of failures) is a WARNING: its alerts wait, or went to failed/
// (CRITICAL on its own).
void report_channel_health(const std::filesystem::path& directory, std::string& out,
                           Counts& counts) {
    const auto text = read_text(directory / (std::string(k_channel_health_state) + ".state.json"));
    if (!text) {
        return;
    }
    auto conditions = channel_health_from_json(*text);
    if (!conditions) {
        out += fmt::format("unreadable {}.state.json: {}\n", k_channel_health_state,
                           conditions.error());
        ++counts.unreadable_state;
        raise(counts, CheckState::warning);
        return;
    }
    for (const auto& [key, condition] : *conditions) {
        if (condition.down) {
            ++counts.channels_down;
            raise(counts, CheckState::warning);
        }
        out +=
            fmt::format("channel  {} failing since {}, {} alert(s) waiting{}: {}\n", condition.name,
                        timefmt::rfc3339_utc(condition.failing_since), condition.waiting,
                        !condition.down  ? ""
                        : condition.told ? "; the other channels were told"
                                         : "; no other channel was told",
                        condition.words);
    }
}

std::string_view state_word(CheckState state) {
    switch (state) {
    case CheckState::ok:
        return "OK";
    case CheckState::warning:
        return "WARNING";
    case CheckState::critical:
        return "CRITICAL";
    case CheckState::unknown:
        return "UNKNOWN";
    }
    return "UNKNOWN";
}

// The check's line: "CRASHMAIL STATE - SUMMARY | PERFDATA" (Nagios plugin perfdata:
// label=value, separated by spaces).
std::string check_line(const Counts& counts, const std::string& summary) {
    return fmt::format("CRASHMAIL {} - {} | failed={} pending={} late={} in_memory={} lost={} "
                       "refused={} unreadable={} channels_down={}\n",
                       state_word(counts.state), summary, counts.failed, counts.pending,
                       counts.late, counts.in_memory, counts.lost, counts.refused,
                       counts.unreadable + counts.problems.size(), counts.channels_down);
}

} // namespace

StatusReport status_report(const std::filesystem::path& root, StatusSettings settings) {
    if (settings.now == std::chrono::system_clock::time_point{}) {
        settings.now = std::chrono::system_clock::now();
    }
    if (settings.user.empty()) {
        settings.user = current_spool_user().name;
    }
    std::string out;
    Counts counts;
    const SpoolListing listing = list_spool(root, settings.user);
    for (const SpoolListing::Unreadable& unreadable : listing.unreadable) {
        raise(counts, CheckState::critical);
        std::string problem = unreadable_text(unreadable);
        if (unreadable.error == EACCES) {
            problem += "; run --status as its user or root";
        }
        out += problem + "\n";
        counts.problems.push_back(std::move(problem));
    }
    for (const auto& directory : listing.directories) {
        out += fmt::format("spool {}\n", directory.string());
        report_directory(directory, settings, out, counts);
        report_outbox(directory, out, counts);
        report_refusals(directory, out, counts);
        report_discards(directory, out, counts);
        report_channel_health(directory, out, counts);
    }
    if (listing.directories.empty() && counts.problems.empty()) {
        out += fmt::format("no spool under {}\n", root.string());
        counts.state = CheckState::unknown;
    }
    out += fmt::format(
        "{} pending, {} failed{}{}{}{}\n", counts.pending, counts.failed,
        counts.in_memory > 0 ? fmt::format(", {} in memory", counts.in_memory) : "",
        counts.lost > 0 ? fmt::format(", {} lost", counts.lost) : "",
        counts.unreadable > 0 ? fmt::format(", {} unreadable", counts.unreadable) : "",
        counts.refused > 0 ? fmt::format(", {} recipient(s) refused", counts.refused) : "");

    std::string summary;
    if (counts.state == CheckState::unknown) {
        summary = listing.root_exists
                      ? fmt::format("no listener directory under {}", root.string())
                      : fmt::format("no spool at {} (no such directory)", root.string());
    } else {
        summary = fmt::format("{} failed, {} pending", counts.failed, counts.pending);
        if (counts.late > 0) {
            summary += fmt::format(", {} pending longer than {}", counts.late,
                                   seconds_text(settings.first_delay));
        }
        if (counts.in_memory > 0) {
            summary += fmt::format(", {} in memory", counts.in_memory);
        }
        if (counts.lost > 0) {
            summary += fmt::format(", {} lost", counts.lost);
        }
        if (counts.unreadable > 0) {
            summary += fmt::format(", {} unreadable", counts.unreadable);
        }
        if (counts.channels_down > 0) {
            summary += fmt::format(", {} channel(s) failing", counts.channels_down);
        }
        if (counts.unreadable_state > 0) {
            summary += fmt::format(", {} state file(s) unreadable", counts.unreadable_state);
        }
        if (!counts.problems.empty()) {
            summary += ", " + counts.problems.front();
            if (counts.problems.size() > 1) {
                summary += fmt::format(" (and {} more)", counts.problems.size() - 1);
            }
        }
    }
    return {check_line(counts, summary) + out, static_cast<int>(counts.state)};
}

} // namespace crashmail
