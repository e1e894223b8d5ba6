#pragma once
// An alert: what happened to which process, where and when, with its rendered text. Every
// channel (mail, webhooks) is built from this one value.

#include "event/event.hpp"
#include "event/process_state.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// What a message is: one event's alert, a flood-control summary of events that were counted
// instead of sent, a recovery notice, or a --batch digest of several of these.
// A `dropped` notice says that supervisord discarded events meant for crashmail
// (app/discard_monitor).
enum class AlertKind { alert, summary, recovery, digest, dropped, spool, channel };

// "alert", "summary", "recovery", "digest", "dropped", "spool", "channel"; and back (std::nullopt
// for anything else).
std::string_view kind_name(AlertKind kind);
std::optional<AlertKind> kind_from_name(std::string_view name);

// An alert a recovery notice ends: Alertmanager identifies it by these labels (with the
// recovery's host, group and process).
struct ResolvedAlert {
    std::string state;     // "EXITED", "FATAL", ...
    bool expected = false; // an expected exit (--expected): alertname ProcessExited
    bool operator==(const ResolvedAlert&) const = default;
};

struct Alert {
    AlertKind kind = AlertKind::alert;
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

    // The crash-loop story (alert/crash_loop): a process's alert-worthy events from the
    // first one until it recovers, stays quiet for a flood-control window, or goes FATAL.
    std::uint64_t occurrence = 0; // kind alert: this event is the Nth of its story; 0: unknown
    // Events of this process that flood control counted instead of sending, accounted for
    // by this message (a summary; or a FATAL alert or recovery notice that closes a story).
    std::uint64_t suppressed = 0;
    std::chrono::system_clock::time_point story_start{}; // the story's first event; epoch: none
    std::chrono::seconds window{0}; // summary: the flood-control window it covers
    // Recovery: the alerts it ends (Alertmanager gets them with endsAt).
    std::vector<ResolvedAlert> resolves;
    // False for a recovery notice only Alertmanager should get (to resolve its alerts) because
    // --recovery was not given; channels that do not track alert state skip such a message.
    bool notify = true;
    // Digest (--batch): the messages it collects, oldest first.
    std::vector<Alert> items;

    // Dropped: the events supervisord discarded that this notice accounts for, and how many
    // crashes of them were recovered from supervisord's log (std::nullopt: none could be).
    std::uint64_t discarded = 0;
    std::optional<std::uint64_t> recovered_crashes;
    // An alert whose event supervisord discarded: rebuilt from supervisord's log.
    bool from_log = false;

    // Channel (delivery/channel_health): the name of the channel the notice is about, and
    // whether it works again (false: it is failing).
    std::string channel;
    bool channel_recovered = false;
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
// display_name(), TIME is timefmt::asctime_local_zone(now), superlance's time and the
// numeric offset):
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
