#include "app/status.hpp"

#include "delivery/spool.hpp"
#include "util/time.hpp"

#include <fmt/format.h>
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
