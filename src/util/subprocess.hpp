#pragma once
// Running a shell command with input and a time limit, the way a sendmail command is run:
// nothing of the child can reach crashmail's stdout, and nothing of it outlives the limit
// (or a cancellation from another thread).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

struct SubprocessResult {
    bool started = false;          // false: /bin/sh could not be started, see start_error
    std::string start_error;       // why it could not be started, e.g. "pipe: Too many open files"
    bool timed_out = false;        // the time limit passed and the process group was killed
    bool cancelled = false;        // `cancel` was set: not started, or the group was killed
    std::optional<int> exit_code;  // set when the shell exited normally
    std::optional<int> signal;     // set when the shell was killed by a signal
    std::string output;            // the child's stdout and stderr, first 8 KiB kept
    bool output_truncated = false; // more than `output` was printed (and read and dropped)
    std::size_t input_written = 0; // bytes of the input the child read (its stdin's offset)

    // True when the command ran, finished in time, was not cancelled and exited with status 0.
    bool succeeded() const { return started && !timed_out && !cancelled && exit_code == 0; }
};

// How much of the child's output run_shell_command() keeps.
inline constexpr std::size_t k_subprocess_output_limit = 8 * 1024;

// Runs `/bin/sh -c command` in a new process group, with the environment inherited, stdin a
// memory-backed file (memfd) that holds all of `input` before the command starts, and stdout
// and stderr both captured through one pipe (never inherited from crashmail). Because the
// input is a file and not a pipe fed while the child reads, a crash of crashmail (SIGKILL
// included) can never hand the command a cut message. No other file descriptor of crashmail
// reaches the child, and signals it ignores or blocks are back to their defaults there. A
// child that stops reading its stdin (or exits without reading it) is not an error by
// itself: input_written tells how far it read. Returns once the shell has exited and been
// reaped; output still held open by a background grandchild is read for a short grace period
// after the shell exits, then dropped. When `timeout` passes first, the whole process group
// gets SIGTERM, then SIGKILL one second later, and the shell is reaped: no zombie is left,
// timed_out is set. `cancel`, when not null, may be set by another thread at any time: it is
// looked at before the command starts (then nothing is run: started false) and at least every
// 100 ms while it runs; once set, the process group is ended as on a time-out (SIGTERM,
// SIGKILL a second later, reaped) and cancelled is set instead of timed_out, so the call
// returns within about a second. `*cancel` must outlive the call. The child's environment is
// crashmail's without the variables named in `hidden_environment` (secrets the command has
// no business with: CRASHMAIL_SMTP_PASSWORD, the ${VAR}s of webhook headers). Thread-safe
// (as long as nobody changes the environment meanwhile: crashmail never does).
SubprocessResult run_shell_command(const std::string& command, std::string_view input,
                                   std::chrono::milliseconds timeout,
                                   const std::atomic<bool>* cancel = nullptr,
                                   const std::vector<std::string>& hidden_environment = {});

// `environment` (a NULL-terminated "NAME=value" array such as environ) without the entries
// whose NAME is one of `hidden`, in order. Pure.
std::vector<std::string> environment_without(const char* const* environment,
                                             const std::vector<std::string>& hidden);

} // namespace crashmail
