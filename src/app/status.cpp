#include "app/status.hpp"

#include "delivery/spool.hpp"
#include "util/time.hpp"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <vector>

namespace crashmail {
namespace {

struct Counts {
    std::size_t pending = 0;
    std::size_t failed = 0;
    std::size_t unreadable = 0;
};

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
                }
            });
    }
}

// What the discarded-events monitor kept (app/discard_monitor): a line when supervisord ever
// discarded events meant for this listener.
void report_discards(const std::filesystem::path& directory, std::string& out) {
    std::ifstream in(directory / "discards.state.json");
    if (!in) {
        return;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto document = nlohmann::json::parse(text.str(), nullptr, false);
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
        report_discards(directory, out);
    }
    if (directories.empty()) {
        out += fmt::format("no spool under {}\n", root.string());
    }
    out +=
        fmt::format("{} pending, {} failed{}\n", counts.pending, counts.failed,
                    counts.unreadable > 0 ? fmt::format(", {} unreadable", counts.unreadable) : "");
    return out;
}

} // namespace crashmail
