#include "app/status.hpp"

#include "delivery/refusals.hpp"
#include "delivery/spool.hpp"
#include "util/time.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <sys/file.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace crashmail {
namespace {

struct Counts {
    std::size_t pending = 0;
    std::size_t failed = 0;
    std::size_t unreadable = 0;
    std::size_t in_memory = 0;
    std::size_t lost = 0;
    std::size_t refused = 0; // recipients refused for good (by channel)
};

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

// Whether a crashmail holds the directory's lock (it is running).
bool locked(const std::filesystem::path& directory) {
    int fd = ::open((directory / "lock").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held;
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

void report_directory(const std::filesystem::path& directory, std::string& out, Counts& counts) {
    for (const char* area : {"pending", "failed"}) {
        for_each_record(
            directory, area,
            [&](const std::string& file, const std::expected<AlertRecord, std::string>& record) {
                if (!record) {
                    ++counts.unreadable;
                    out += fmt::format("unreadable {}: {}\n", file, record.error());
                    return;
                }
                ++(std::string_view(area) == "pending" ? counts.pending : counts.failed);
                const Alert& alert = record->alert;
                for (const auto& [key, state] : record->channels) {
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
            });
    }
}

// What the discarded-events monitor kept (app/discard_monitor): a line when supervisord ever
// discarded events meant for this listener.
void report_discards(const std::filesystem::path& directory, std::string& out) {
    const auto text = read_text(directory / "discards.state.json");
    if (!text) {
        return;
    }
    auto document = nlohmann::json::parse(*text, nullptr, false);
    if (!document.is_object() || !document.contains("totals") || !document["totals"].is_object()) {
        out += "unreadable discards.state.json\n";
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
        return;
    }
    for (const RefusedRecipient& one : *refused) {
        ++counts.refused;
        out += fmt::format("refused  {} by {}: {} alert(s) from {} to {}, last {}: {}\n",
                           one.recipient, one.channel, one.alerts, timefmt::rfc3339_utc(one.first),
                           timefmt::rfc3339_utc(one.last), one.last_alert, one.last_reason);
    }
}

} // namespace

std::string status_report(const std::filesystem::path& root) {
    std::string out;
    Counts counts;
    std::error_code error;
    std::vector<std::filesystem::path> directories;
    if (std::filesystem::is_directory(root / "pending", error)) {
        directories.push_back(root);
    } else {
        for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
            if (std::filesystem::is_directory(entry.path() / "pending", error)) {
                directories.push_back(entry.path());
            }
        }
    }
    for (const auto& directory : directories) {
        out += fmt::format("spool {}\n", directory.string());
        report_directory(directory, out, counts);
        report_outbox(directory, out, counts);
        report_refusals(directory, out, counts);
        report_discards(directory, out);
    }
    if (directories.empty()) {
        out += fmt::format("no spool under {}\n", root.string());
    }
    out += fmt::format(
        "{} pending, {} failed{}{}{}{}\n", counts.pending, counts.failed,
        counts.in_memory > 0 ? fmt::format(", {} in memory", counts.in_memory) : "",
        counts.lost > 0 ? fmt::format(", {} lost", counts.lost) : "",
        counts.unreadable > 0 ? fmt::format(", {} unreadable", counts.unreadable) : "",
        counts.refused > 0 ? fmt::format(", {} recipient(s) refused", counts.refused) : "");
    return out;
}

} // namespace crashmail
