#pragma once
// What supervisord's own log says its processes did: the crashes of events it discarded are
// found here (app/discard_monitor). Lines as supervisord 4 writes them (supervisor/process.py):
//   2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985
//   2026-11-25 22:54:07,680 INFO success: crasher entered RUNNING state, process has stayed up
//                                for > than 1 seconds (startsecs)
//   2026-11-25 22:54:09,011 WARN exited: crasher (exit status 7; not expected)
//   2026-11-25 22:54:12,020 INFO gave up: crasher entered FATAL state, too many start retries
//                                too quickly
// Names are process names alone (worker_01, not grp:worker_01) and may hold spaces. An exit
// before the process reached RUNNING is a BACKOFF (too quickly, with startsecs > 0), after it
// an EXITED. Times are supervisord's local time with milliseconds.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// One state change the log shows.
struct LoggedTransition {
    std::chrono::system_clock::time_point time;
    std::string process;             // the process name alone
    std::string state;               // "EXITED", "BACKOFF" or "FATAL"
    bool expected = false;           // EXITED: "; expected)"
    std::optional<std::int64_t> pid; // from the "spawned:" line before it, when the chunk has it
    std::string exit_status;         // "exit status 7", "killed by signal 11 (SIGSEGV)"
};

struct MainLog {
    std::vector<LoggedTransition> transitions; // in log order
    // Starts ("spawned:", state STARTING, with the pid) and "success:" lines (state RUNNING,
    // with the pid of the spawn before it), in log order: where the event after a gap was
    // logged, when it was one of those.
    std::vector<LoggedTransition> starts;
    // The first time stamp in the text (what the chunk reaches back to), and the time of the
    // last "supervisord started with pid" line (the current run's start), when there are any.
    std::optional<std::chrono::system_clock::time_point> first_time;
    std::optional<std::chrono::system_clock::time_point> run_start;
};

// Parses a chunk of supervisord's log. The first line is skipped when `cut` says the chunk
// began inside the log (it is likely a partial line). Lines it does not know are passed over.
MainLog parse_main_log(std::string_view text, bool cut);

} // namespace crashmail
