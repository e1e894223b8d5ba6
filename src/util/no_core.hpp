#pragma once
// Keeping secrets (the SMTP password, header tokens, the HMAC key, webhook tokens) out of
// core dumps: the process is made non-dumpable (prctl(PR_SET_DUMPABLE, 0)) at start-up,
// before any secret is read. Its costs: no core dump of crashmail at all (a crash is
// analysed from its log line and a reproduction, or with the opt-out below); the files
// under crashmail's /proc/PID/ become root's (the directory keeps its owner), so the same user
// cannot read its environ, maps or fds, nor attach gdb or strace (root can); children are not
// affected (execve makes a program dumpable again).

#include <string>
#include <string_view>

namespace crashmail {

// The environment variable that keeps core dumps ("1": crashmail stays dumpable).
inline constexpr std::string_view k_allow_core_dumps_variable = "CRASHMAIL_ALLOW_CORE_DUMPS";

// What protect_from_core_dumps() did, for one log line (or nothing to say).
struct CoreDumpPolicy {
    bool dumpable = true; // after the call
    std::string problem;  // not empty: why the process could not be made non-dumpable
};

// Makes the process non-dumpable unless `allow_core_dumps` (CRASHMAIL_ALLOW_CORE_DUMPS=1).
// A failing prctl() is reported in `problem` (crashmail goes on: alerts matter more).
CoreDumpPolicy protect_from_core_dumps(bool allow_core_dumps);

// True when `value` (of CRASHMAIL_ALLOW_CORE_DUMPS) asks for core dumps: "1", "yes", "true".
bool allows_core_dumps(const char* value);

// prctl(PR_GET_DUMPABLE) != 0.
bool process_dumpable();

} // namespace crashmail
