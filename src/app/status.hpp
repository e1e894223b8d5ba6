#pragma once
// --status: what the outbox holds, for humans and as a monitoring check (the Nagios plugin
// convention: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, and a first line with perfdata).

#include <chrono>
#include <filesystem>
#include <string>

namespace crashmail {

// The Nagios plugin exit codes.
enum class CheckState { ok = 0, warning = 1, critical = 2, unknown = 3 };

struct StatusSettings {
    // A delivery pending longer than this (the retry policy's first delay: its first attempt
    // did not succeed) makes the check WARNING.
    std::chrono::milliseconds first_delay{5000};
    // The clock; zero: system_clock::now().
    std::chrono::system_clock::time_point now{};
    // The running user's name (for ROOT/users/<user> when ROOT/users cannot be listed); empty:
    // the passwd name of the effective user.
    std::string user;
};

struct StatusReport {
    std::string text;  // the check's line, then the listing
    int exit_code = 0; // CheckState as a number
};

// Reports the alerts under `root`: either one listener's spool directory (it has pending/)
// or a spool root holding one directory per listener (ROOT/<listener> and
// ROOT/users/<user>/<listener>). The first line is the check's, e.g.
//   CRASHMAIL CRITICAL - 1 failed, 0 pending | failed=1 pending=0 late=0 ...
// then one line per alert and channel: area (pending, retry, failed), alert id, process,
// when raised (UTC), channel, status, attempts, and the last error; then what waits in
// memory, refused recipients and discarded events; it ends with a count line. Reads one
// record at a time.
//   OK        nothing failed, nothing late
//   WARNING   a delivery pending longer than `first_delay` (from the alert, or from its
//             requeue by --retry-failed), alerts held in memory or lost (outbox.mark), a
//             state file that cannot be read
//   CRITICAL  anything in failed/, a record or a spool directory that cannot be read
//   UNKNOWN   no such spool, or no listener directory under it
StatusReport status_report(const std::filesystem::path& root, StatusSettings settings = {});

} // namespace crashmail
