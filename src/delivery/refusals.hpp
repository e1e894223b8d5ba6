#pragma once
// The recipients that mail servers refused for good (a 5xx to RCPT TO, or given up on), kept
// for --status once the alerts themselves are delivered to everyone else and gone from the
// spool: per channel and address, how many alerts, the first and last time, the last alert
// and the server's words. Stored as the StateStore document "refusals"
// (refusals.state.json in the spool), unsynced: it is a report, not a promise.
//
// Threads: channel workers call record(), each under the log's mutex, which is held across
// the save: only channel workers ever take it (never the event loop), and a refusal is rare.

#include "delivery/spool.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace crashmail {

struct RefusedRecipient {
    std::string channel;   // the channel's name ("smtp://mx:25")
    std::string recipient; // the address
    std::uint64_t alerts = 0;
    std::chrono::system_clock::time_point first{};
    std::chrono::system_clock::time_point last{};
    std::string last_alert;  // its id
    std::string last_reason; // the refusal, as Failure::describe() said it
};

// The document's JSON and back (version 1: {"version":1,"refused":[{channel, recipient,
// alerts, first_ms, last_ms, last_alert, last_reason}]}). Unknown fields are ignored.
std::string refusals_to_json(const std::vector<RefusedRecipient>& refused);
std::expected<std::vector<RefusedRecipient>, std::string> refusals_from_json(std::string_view text);

class RefusalLog {
public:
    // `store` may be nullptr (memory only). The document is read now, so that counts go on
    // across restarts; an unreadable one is logged and started afresh.
    explicit RefusalLog(StateStore* store);

    // One more alert refused for good to `recipient` through `channel`. Saves the document.
    void record(const std::string& channel, const std::string& recipient, const std::string& reason,
                const std::string& alert_id, std::chrono::system_clock::time_point when);

    std::vector<RefusedRecipient> snapshot() const;

private:
    StateStore* m_store;
    mutable std::mutex m_mutex;
    std::map<std::pair<std::string, std::string>, RefusedRecipient> m_refused;
};

} // namespace crashmail
