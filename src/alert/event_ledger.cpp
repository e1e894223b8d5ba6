#include "alert/event_ledger.hpp"

namespace crashmail {
namespace {

// Log time stamps have milliseconds, so an event seen in the same millisecond as its line
// may read as a little earlier.
constexpr auto k_slack = std::chrono::milliseconds(5);

} // namespace

bool EventLedger::same_crash(const Item& item, const LedgerEntry& entry) {
    return item.entry.state == entry.state && item.entry.process == entry.process &&
           item.entry.group == entry.group;
}

bool EventLedger::match(Item& item, const LedgerEntry& entry, time_point other,
                        time_point event_time, time_point line_time) {
    if (!same_crash(item, entry)) {
        return false;
    }
    if (item.entry.pid && entry.pid) {
        return *item.entry.pid == *entry.pid;
    }
    if (item.paired && *item.paired != other) {
        return false; // the crash of another line or event
    }
    if (event_time + k_slack < line_time || event_time - line_time > k_match_window) {
        return false;
    }
    item.paired = other;
    return true;
}

void EventLedger::prune(time_point now) {
    for (auto* items : {&m_seen, &m_recovered}) {
        while (!items->empty() &&
               (items->size() > k_capacity || items->front().kept + k_span < now)) {
            items->pop_front();
        }
    }
}

bool EventLedger::arrived(const LedgerEntry& entry, time_point now) {
    prune(now);
    for (Item& item : m_recovered) {
        if (match(item, entry, now, now, item.time)) {
            return true;
        }
    }
    m_seen.push_back({entry, now, now, std::nullopt});
    return false;
}

bool EventLedger::recovered(const LedgerEntry& entry, time_point logged, time_point now) {
    prune(now);
    for (Item& item : m_seen) {
        if (match(item, entry, logged, item.time, logged)) {
            return false;
        }
    }
    for (const Item& item : m_recovered) {
        if (item.time == logged && same_crash(item, entry) && item.entry.pid == entry.pid) {
            return false; // recovered already (a gap read twice)
        }
    }
    m_recovered.push_back({entry, logged, now, std::nullopt});
    return true;
}

} // namespace crashmail
