#pragma once
// Telling people that supervisord discarded events: at most one notice per window (the
// flood-control window). The first gap of a window is told at once; later ones are added up
// and told in one notice when the window ends. Pure: every call takes the time; the caller
// persists to_json() and sends the alerts discard_alert() builds.

#include "alert/alert.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace crashmail {

// What became of one gap in the pool serials.
struct DiscardReport {
    std::uint64_t discarded = 0; // events supervisord discarded
    // Crashes of watched processes recovered from supervisord's log, by "group:process"
    // display name; std::nullopt when the log could not be read for them.
    std::optional<std::map<std::string, std::uint64_t>> recovered;
    std::string problem; // why not (recovered empty), or what was only partly possible
};

// What one notice says: every gap it accounts for, added up.
struct DiscardNotice {
    std::uint64_t discarded = 0;
    std::uint64_t gaps = 0;
    std::map<std::string, std::uint64_t> recovered; // crashes recovered, by process
    std::uint64_t unrecoverable = 0;   // events of gaps whose crashes could not be recovered
    std::vector<std::string> problems; // distinct, in order
    std::chrono::system_clock::time_point window_start{};
    std::chrono::system_clock::time_point window_end{}; // == window_start: told at once

    std::uint64_t recovered_total() const;
    // Recovered is "unknown" when no gap of the notice could be read.
    bool all_unrecoverable() const { return unrecoverable == discarded && discarded > 0; }
};

// Totals since the spool was made, for --status and the log.
struct DiscardTotals {
    std::uint64_t discarded = 0;
    std::uint64_t recovered = 0;
    std::uint64_t unrecoverable = 0;
    std::uint64_t notices = 0;
};

class DiscardNotices {
public:
    using time_point = std::chrono::system_clock::time_point;

    explicit DiscardNotices(std::chrono::seconds window) : m_window(window) {}

    // A gap handled at `now`: the notice to send now when none was sent in the current
    // window, else std::nullopt (it waits for the window's end, see due()).
    std::optional<DiscardNotice> add(const DiscardReport& report, time_point now);
    // The notice of a window that ended by `now`, if it has anything to say.
    std::optional<DiscardNotice> due(time_point now);
    std::optional<time_point> next_due() const;

    const DiscardTotals& totals() const { return m_totals; }

    nlohmann::json to_json() const;
    // Ignores what it does not understand; an error for a document that is not one.
    std::expected<void, std::string> restore(const nlohmann::json& document);

private:
    std::chrono::seconds m_window;
    std::optional<time_point> m_window_start; // of the last notice sent at once
    DiscardNotice m_waiting;                  // added up since then
    DiscardTotals m_totals;
};

// The notice as an alert of kind `dropped` (subject, body, the counts): `pool` is the
// listener's pool (its [eventlistener:POOL] section). Pure: the id and the time are given.
Alert discard_alert(const DiscardNotice& notice, const AlertContext& context,
                    const std::string& pool, std::chrono::system_clock::time_point now,
                    std::string id);

// A stable id for a notice: "n<16 hex>" over the instance, the window and the count.
std::string discard_notice_id(const DiscardNotice& notice, std::string_view instance);

} // namespace crashmail
