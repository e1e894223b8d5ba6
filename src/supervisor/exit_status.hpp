#pragma once
// No supervisord event carries a process's exit status, but supervisord's own log does:
//   2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985
//   2026-11-25 22:54:07,011 WARN exited: crasher (exit status 7; not expected)
//   2026-11-25 22:54:07,028 WARN exited: segv (terminated by SIGSEGV; not expected)
//   ... exited: segv (terminated by SIGSEGV (core dumped); not expected)
// The name in these lines is the process name alone (worker_01, not grp:worker_01).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

// Finds how process `process` ended in `log`, a chunk of supervisord's log. When `pid` is
// given and the chunk holds "spawned: 'PROCESS' with pid PID", the first "exited: PROCESS
// (...)" line after it is the one (and there is no answer if none follows); otherwise the
// LAST "exited: PROCESS (...)" line wins. Names are compared as plain text (no patterns).
// Returns "exit status 7", "killed by signal 11 (SIGSEGV)", "killed by signal 11 (SIGSEGV),
// core dumped", or std::nullopt when no line says.
std::optional<std::string> find_exit_status(std::string_view log, std::string_view process,
                                            std::optional<std::int64_t> pid);

// Turns supervisord's wording ("exit status 7", "terminated by SIGSEGV (core dumped)",
// "terminated by signal 45") into crashmail's (see find_exit_status()). Returns
// std::nullopt for anything else.
std::optional<std::string> describe_exit(std::string_view supervisor_text);

// The number of signal `name` ("SIGSEGV", "SIGIOT", "SIGRTMIN") on this system, or
// std::nullopt.
std::optional<int> signal_number(std::string_view name);

} // namespace crashmail
