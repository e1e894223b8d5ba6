#pragma once
// An alert: what happened to which process, where and when, with its rendered text. Every
// channel (mail, webhooks) is built from this one value.

#include "event/event.hpp"
#include "event/process_state.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace crashmail {

struct Alert {
    // Stable, unique identity: the Message-ID's left part and the webhooks' idempotency key.
    std::string id;
    std::string event_name; // "PROCESS_STATE_EXITED"
    std::string state;      // "EXITED"
    std::string process;
    std::string group;
    std::string from_state;
    std::optional<std::int64_t> pid;
    std::optional<bool> expected;
    std::uint64_t serial = 0; // supervisord's event serial
    std::string host;         // this machine's fully qualified name
    std::chrono::system_clock::time_point time;
    std::string subject; // one line, no CR/LF
    std::string body;    // lines separated by '\n'

    // Why it crashed, fetched from supervisord over XML-RPC after the event was answered
    // (supervisor/crash_details). Empty when unknown.
    std::string exit_status;  // "exit status 3", "killed by signal 11 (SIGSEGV)"
    std::string spawn_error;  // FATAL: supervisord's spawnerr
    std::string log_tail;     // the last --tail lines of the process's log, '\n'-separated
    std::string log_source;   // "stderr" or "stdout": the log log_tail comes from
    std::string details_note; // one line: what could not be had and why
};

// What an alert needs besides the event.
struct AlertContext {
    std::string host;   // fully qualified host name
    std::string prefix; // -o: "PREFIX: " is put before the subject when not empty
};

// "crashy" for a process alone in its group of the same name, "grp:worker_01" otherwise.
std::string display_name(std::string_view group, std::string_view process);

// Returns a new unique alert id made of the time (UTC, milliseconds), the event serial and 64
// random bits in hex, e.g. "20261125T220310.123.42.9f3c2a1b7d4e5f60": only [A-Za-z0-9.],
// valid in a Message-ID. Thread-safe (one generator per thread, seeded by std::random_device).
std::string new_alert_id(std::chrono::system_clock::time_point now, std::uint64_t serial);

// Builds the alert for a process state change, with superlance's wording (NAME is
// display_name(), TIME is timefmt::asctime_local(now)):
//   EXITED, not expected: subject "[PREFIX: ]NAME crashed at TIME",
//     body "Process P in group G exited unexpectedly (pid N) from state S"
//   EXITED, expected:     "NAME exited (expected) at TIME", "... exited (expected) (pid N) ..."
//   any other state:      "NAME entered state FATAL at TIME",
//     body "Process P in group G entered state FATAL[ (pid N)] from state S"
// then a blank line and "Host: <host>", "Time: <RFC 5322 date>", "Event: <name> (serial N)".
// A missing pid reads "pid unknown". Control characters (CR, LF, tab, ...) in names, prefix and
// host become spaces in subject and body, so the subject is always one line; the Alert's
// process/group/host fields keep the raw values. Pure: the id and the time are given.
Alert make_alert(const EventHeader& header, const ProcessStateChange& change,
                 const AlertContext& context, std::chrono::system_clock::time_point now,
                 std::string id);

// The Message-ID of an alert's mails: "<id@host>", keeping only dot-atom characters of both
// parts ("localhost" when the host has none).
std::string message_id(const Alert& alert);

} // namespace crashmail
