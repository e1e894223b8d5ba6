#pragma once
// What the outbox keeps per alert: the alert itself and, per channel, whether it was
// delivered, how often it was tried, when to try next and what the last failure said.

#include "alert/alert.hpp"

#include <chrono>
#include <expected>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

struct ChannelState {
    enum class Status { pending, delivered, failed };
    Status status = Status::pending;
    std::string name; // the channel's name() when the record was written, for humans
    int attempts = 0;
    std::chrono::system_clock::time_point next_attempt{}; // pending: not before this
    std::string last_error;                               // describe() of the last failure
    // A channel that addresses recipients one by one (SMTP with several -m) may deliver to
    // some and not others. `waiting_recipients`: refused for now (4xx), each with the
    // server's words; the next attempts go to them alone, and the channel stays pending
    // until none is left. `refused_recipients`: refused for good (5xx, or given up on); the
    // channel counts as delivered when everyone else took it. Both empty for an
    // all-or-nothing delivery.
    std::map<std::string, std::string> waiting_recipients;
    std::map<std::string, std::string> refused_recipients;
};

// "pending", "delivered" or "failed".
std::string_view status_name(ChannelState::Status status);

struct AlertRecord {
    Alert alert;
    std::map<std::string, ChannelState> channels; // by channel key (see channel_key())
    // True from submit() until the enrichment stage (see AlertEnricher) has added the
    // details and rendered the final text; the channels do not take the record meanwhile.
    bool details_pending = false;
    // True while the alert waits (--batch) for its digest: the channels do not take it; when
    // the batch window ends the dispatcher stores one digest of all held records and removes
    // them.
    bool held = false;
    // When --retry-failed last moved it back from failed/ (zero: never). --max-age and a
    // failure's transient_for count from here then (retry_start()), so a requeued alert gets
    // its full retries again.
    std::chrono::system_clock::time_point requeued{};
    // (Whether a record is settled depends on which channels are configured now: the
    // dispatcher decides it, not the record.)
};

// Serialises a record as JSON (version 1). Unknown fields are ignored when reading, so a
// later version can add fields; fields added later read as their defaults when absent.
// The alert's fields: kind ("alert", "summary", "recovery", "digest"), id, event, state,
// process, group, from_state, pid, expected, serial, host, time_ms, subject, body,
// exit_status, spawn_error, log_tail, log_source, details_note, occurrence, suppressed,
// story_start_ms (absent when none), window_s, resolves ([{state, expected}]), notify, and
// items (a digest's alerts, each in this same form; absent when empty). The record's:
// version, alert, details_pending, held, channels (each: status, name, attempts,
// next_attempt_ms, last_error, and waiting_recipients / refused_recipients, objects of
// address -> reason, absent when empty), requeued_ms (absent when never requeued).
std::string record_to_json(const AlertRecord& record);

// Parses record_to_json()'s output. Returns an error naming what is missing or malformed.
std::expected<AlertRecord, std::string> record_from_json(std::string_view text);

// Where --max-age (and a failure's transient_for) start counting: the alert's time, or the
// last requeue by --retry-failed when that is later.
std::chrono::system_clock::time_point retry_start(const AlertRecord& record);

// --retry-failed: every channel that has not delivered the record starts afresh (pending, no
// attempts, due at `now`, no recipient waiting or refused: everyone is tried again; the last
// error is kept for --status until the next attempt replaces it); channels that delivered it
// stay delivered. `requeued` becomes `now`. Returns the names (or keys, when a state has no
// name) of the channels renewed, in key order.
std::vector<std::string> renew_for_retry(AlertRecord& record,
                                         std::chrono::system_clock::time_point now);

} // namespace crashmail
