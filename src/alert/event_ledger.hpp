#pragma once
// The crashes crashmail has counted lately, whichever way they came: as an event, or
// recovered from supervisord's log because supervisord discarded their event. A crash is
// counted once: an event whose crash was recovered already is not counted again, and a log
// line whose event arrived is not recovered. Pure: every call takes the time.
//
// Matching: the same group, process and state, and the same pid where both sides know it
// (an EXITED event always does; a log line does when its "spawned:" line was read). Without
// a pid (FATAL, BACKOFF) the event and the line match when the event arrived no earlier than
// the line was logged and at most k_match_window after it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace crashmail {

struct LedgerEntry {
    std::string group;
    std::string process;
    std::string state; // "EXITED", "FATAL", "BACKOFF", ...
    std::optional<std::int64_t> pid;
};

class EventLedger {
public:
    using time_point = std::chrono::system_clock::time_point;

    // How long entries are kept, and how many at most of each kind.
    static constexpr std::chrono::minutes k_span{10};
    static constexpr std::size_t k_capacity = 20000;
    // How long after its log line an event without a pid may arrive and still be that line's.
    static constexpr std::chrono::minutes k_match_window{5};

    // An event arrived at `now`. Returns true when its crash was recovered from the log
    // already (do not count it again); otherwise remembers it and returns false.
    bool arrived(const LedgerEntry& entry, time_point now);

    // A crash found in supervisord's log, logged at `logged`. Returns true when it is new
    // (no event of it arrived, and it was not recovered before) and remembers it.
    bool recovered(const LedgerEntry& entry, time_point logged, time_point now);

private:
    struct Item {
        LedgerEntry entry;
        time_point time; // arrived (events) or logged (recovered)
        time_point kept; // when it was added (what k_span counts from)
        // Matched by time (no pid): the other side's time, so that it matches nothing else
        // (but still the same line when a gap is read twice).
        std::optional<time_point> paired;
    };
    // True when `item` and `entry` (at `time`, from the other side) are the same crash;
    // pairs them when they match by time. `event_time` and `line_time` order the two.
    static bool match(Item& item, const LedgerEntry& entry, time_point other, time_point event_time,
                      time_point line_time);
    void prune(time_point now);
    static bool same_crash(const Item& item, const LedgerEntry& entry);

    std::deque<Item> m_seen;      // events that arrived
    std::deque<Item> m_recovered; // crashes recovered from the log
};

} // namespace crashmail
