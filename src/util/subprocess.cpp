#include "util/subprocess.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <csignal>
#include <ctime>
#include <expected>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace crashmail {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// After SIGTERM, how long the group has to finish before SIGKILL.
constexpr auto k_kill_grace = 1s;
// After the shell exited, how long output still held open by a background grandchild is read.
constexpr auto k_output_grace = 200ms;
// Without a pidfd, how often the shell is checked for having exited.
constexpr auto k_exit_check_interval = 10ms;
// How often a cancellation flag is looked at while the shell runs.
constexpr auto k_cancel_check_interval = 100ms;
constexpr std::size_t k_chunk = 64 * 1024;

std::string error_text(std::string_view what, int error) {
    return std::string(what) + ": " + std::system_category().message(error);
}

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : m_fd(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : m_fd(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        reset(other.release());
        return *this;
    }
    ~UniqueFd() { reset(); }

    int get() const { return m_fd; }
    bool valid() const { return m_fd >= 0; }
    int release() { return std::exchange(m_fd, -1); }
    void reset(int fd = -1) {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
        m_fd = fd;
    }

private:
    int m_fd = -1;
};

bool is_set(const std::atomic<bool>* flag) {
    return flag != nullptr && flag->load(std::memory_order_acquire);
}

int poll_timeout_ms(Clock::time_point now, Clock::time_point limit) {
    if (limit <= now) {
        return 0;
    }
    // Round up, so a wake-up does not land just before the limit and spin.
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(limit - now).count();
    return static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX));
}

// The parent's side of a running shell: its pid, an optional pidfd that becomes readable
// when it exits, and the read end of its stdout+stderr.
class RunningChild {
public:
    RunningChild(pid_t pid, int from_child) : m_pid(pid), m_from_child(from_child) {
        // -1 on kernels without pidfds: the shell is then checked for exit by polling. (The
        // syscall directly: glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.)
        m_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    }

    // Reads output until the shell has exited, `limit` has passed or `*cancel` (when not
    // null; looked at every k_cancel_check_interval at least) is set.
    // Returns true if the shell has exited (it is not reaped yet).
    bool pump_until_exit(Clock::time_point limit, const std::atomic<bool>* cancel = nullptr) {
        while (!has_exited()) {
            const auto now = Clock::now();
            if (now >= limit || is_set(cancel)) {
                return false;
            }
            const auto wake =
                cancel == nullptr ? limit : std::min(limit, now + k_cancel_check_interval);
            wait_and_transfer(now, wake, true);
        }
        return true;
    }

    // Reads output until every writer has closed it or `limit` has passed, then stops
    // reading.
    void drain_output_until(Clock::time_point limit) {
        while (m_from_child.valid()) {
            const auto now = Clock::now();
            if (now >= limit) {
                break;
            }
            wait_and_transfer(now, limit, false);
        }
        m_from_child.reset();
    }

    // Sends `signal` to the shell's whole process group. Only valid before reap(): until
    // then the shell's pid (the group id) cannot be reused.
    void signal_group(int signal) const { ::kill(-m_pid, signal); }

    // Waits for the shell to exit and collects its status into `result`.
    void reap(SubprocessResult& result) {
        int status = 0;
        pid_t got = 0;
        do {
            got = ::waitpid(m_pid, &status, 0);
        } while (got < 0 && errno == EINTR);
        if (got == m_pid) {
            if (WIFEXITED(status)) {
                result.exit_code = WEXITSTATUS(status);
            } else if (WIFSIGNALED(status)) {
                result.signal = WTERMSIG(status);
            }
        }
        result.output = std::move(m_output);
        result.output_truncated = m_output_truncated;
    }

private:
    bool has_exited() {
        if (m_exited) {
            return true;
        }
        siginfo_t info{};
        info.si_pid = 0;
        int rc = 0;
        do {
            rc = ::waitid(P_PID, static_cast<id_t>(m_pid), &info, WEXITED | WNOHANG | WNOWAIT);
        } while (rc < 0 && errno == EINTR);
        // An error here (ECHILD: someone else reaped it) also means there is nothing to wait
        // for any more.
        m_exited = rc < 0 || info.si_pid == m_pid;
        if (m_exited) {
            m_pidfd.reset();
        }
        return m_exited;
    }

    // One poll() round: waits until output can be read, the shell exits (when
    // `watch_exit`) or `limit` passes, and reads what it can.
    void wait_and_transfer(Clock::time_point now, Clock::time_point limit, bool watch_exit) {
        std::array<pollfd, 2> fds{};
        nfds_t count = 0;
        int output_index = -1;
        if (m_from_child.valid()) {
            output_index = static_cast<int>(count);
            fds[count++] = pollfd{m_from_child.get(), POLLIN, 0};
        }
        int timeout_ms = poll_timeout_ms(now, limit);
        if (watch_exit) {
            if (m_pidfd.valid()) {
                fds[count++] = pollfd{m_pidfd.get(), POLLIN, 0};
            } else {
                timeout_ms = std::min(timeout_ms, static_cast<int>(k_exit_check_interval.count()));
            }
        }
        const int ready = ::poll(fds.data(), count, timeout_ms);
        if (ready <= 0) {
            return; // timeout or EINTR: the caller looks at the clock and the child again
        }
        if (output_index >= 0 && fds[output_index].revents != 0) {
            read_output();
        }
    }

    void read_output() {
        std::array<char, k_chunk> buffer{};
        while (m_from_child.valid()) {
            const ssize_t n = ::read(m_from_child.get(), buffer.data(), buffer.size());
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    m_from_child.reset();
                }
                return;
            }
            if (n == 0) {
                m_from_child.reset(); // every writer has closed it
                return;
            }
            const auto got = static_cast<std::size_t>(n);
            const std::size_t room = k_subprocess_output_limit - m_output.size();
            m_output.append(buffer.data(), std::min(got, room));
            if (got > room) {
                m_output_truncated = true;
            }
        }
    }

    pid_t m_pid;
    UniqueFd m_pidfd;
    UniqueFd m_from_child;
    std::string m_output;
    bool m_output_truncated = false;
    bool m_exited = false;
};

// Owns a posix_spawn file-actions object and a spawn-attributes object.
class SpawnSetup {
public:
    SpawnSetup() {
        posix_spawn_file_actions_init(&m_actions);
        posix_spawnattr_init(&m_attributes);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
    ~SpawnSetup() {
        posix_spawn_file_actions_destroy(&m_actions);
        posix_spawnattr_destroy(&m_attributes);
    }

    // Returns 0 or an error number.
    int prepare(int stdin_fd, int output_fd) {
        int rc = posix_spawn_file_actions_adddup2(&m_actions, stdin_fd, STDIN_FILENO);
        if (rc == 0) {
            rc = posix_spawn_file_actions_adddup2(&m_actions, output_fd, STDOUT_FILENO);
        }
        if (rc == 0) {
            rc = posix_spawn_file_actions_adddup2(&m_actions, output_fd, STDERR_FILENO);
        }
        if (rc == 0) {
            // Whatever another thread opened without O_CLOEXEC does not leak either.
            rc = posix_spawn_file_actions_addclosefrom_np(&m_actions, STDERR_FILENO + 1);
        }
        if (rc != 0) {
            return rc;
        }
        sigset_t no_signals;
        sigemptyset(&no_signals);
        sigset_t defaults;
        sigemptyset(&defaults);
        for (int signal : {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGALRM, SIGUSR1,
                           SIGUSR2, SIGTSTP, SIGTTIN, SIGTTOU, SIGXFSZ}) {
            sigaddset(&defaults, signal);
        }
        posix_spawnattr_setsigmask(&m_attributes, &no_signals);
        posix_spawnattr_setsigdefault(&m_attributes, &defaults);
        posix_spawnattr_setpgroup(&m_attributes, 0);
        return posix_spawnattr_setflags(&m_attributes, static_cast<short>(POSIX_SPAWN_SETPGROUP |
                                                                          POSIX_SPAWN_SETSIGMASK |
                                                                          POSIX_SPAWN_SETSIGDEF));
    }

    const posix_spawn_file_actions_t* actions() const { return &m_actions; }
    const posix_spawnattr_t* attributes() const { return &m_attributes; }

private:
    posix_spawn_file_actions_t m_actions{};
    posix_spawnattr_t m_attributes{};
};

} // namespace

namespace {

// A memory-backed file holding `input`, positioned at its start, or an error number.
std::expected<UniqueFd, int> input_file(std::string_view input) {
    UniqueFd file(::memfd_create("crashmail-input", MFD_CLOEXEC));
    if (!file.valid()) {
        return std::unexpected(errno);
    }
    std::size_t written = 0;
    while (written < input.size()) {
        const ssize_t n = ::write(file.get(), input.data() + written, input.size() - written);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return std::unexpected(errno);
        }
        written += static_cast<std::size_t>(n);
    }
    if (::lseek(file.get(), 0, SEEK_SET) != 0) {
        return std::unexpected(errno);
    }
    return file;
}

} // namespace

std::vector<std::string> environment_without(const char* const* environment,
                                             const std::vector<std::string>& hidden) {
    std::vector<std::string> out;
    for (const char* const* entry = environment; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string_view text(*entry);
        const std::string_view name = text.substr(0, text.find('='));
        if (std::find(hidden.begin(), hidden.end(), name) == hidden.end()) {
            out.emplace_back(text);
        }
    }
    return out;
}

SubprocessResult run_shell_command(const std::string& command, std::string_view input,
                                   std::chrono::milliseconds timeout,
                                   const std::atomic<bool>* cancel,
                                   const std::vector<std::string>& hidden_environment) {
    SubprocessResult result;
    const auto deadline = Clock::now() + timeout;
    if (is_set(cancel)) {
        result.cancelled = true; // nothing started, nothing to end
        return result;
    }

    // stdin is a file holding the whole input, not a pipe fed as the child reads: if crashmail
    // dies (SIGKILL) while the child reads, the child still reads all of it, never a cut
    // message that a real sendmail would send.
    auto child_stdin = input_file(input);
    if (!child_stdin) {
        result.start_error =
            error_text("cannot hold the input in memory (memfd)", child_stdin.error());
        return result;
    }
    std::array<int, 2> output_pipe{-1, -1};
    if (::pipe2(output_pipe.data(), O_CLOEXEC) != 0) {
        result.start_error = error_text("pipe", errno);
        return result;
    }
    UniqueFd from_child(output_pipe[0]);
    UniqueFd child_output(output_pipe[1]);

    SpawnSetup setup;
    if (int rc = setup.prepare(child_stdin->get(), child_output.get()); rc != 0) {
        result.start_error = error_text("posix_spawn setup", rc);
        return result;
    }
    std::string shell = "/bin/sh";
    std::string dash_c = "-c";
    std::string command_copy = command;
    std::array<char*, 4> argv{shell.data(), dash_c.data(), command_copy.data(), nullptr};
    // The child's environment, built before the spawn (posix_spawn takes it as it is).
    std::vector<std::string> environment = environment_without(environ, hidden_environment);
    std::vector<char*> envp;
    envp.reserve(environment.size() + 1);
    for (std::string& entry : environment) {
        envp.push_back(entry.data());
    }
    envp.push_back(nullptr);
    pid_t pid = -1;
    if (int rc = posix_spawn(&pid, shell.c_str(), setup.actions(), setup.attributes(), argv.data(),
                             envp.data());
        rc != 0) {
        result.start_error = error_text("cannot run /bin/sh", rc);
        return result;
    }
    result.started = true;
    child_output.reset();
    ::fcntl(from_child.get(), F_SETFL, ::fcntl(from_child.get(), F_GETFL) | O_NONBLOCK);

    RunningChild child(pid, from_child.release());

    if (child.pump_until_exit(deadline, cancel)) {
        child.drain_output_until(Clock::now() + k_output_grace);
    } else {
        // The same end for both: whoever stops the command wants all of it gone.
        result.cancelled = is_set(cancel);
        result.timed_out = !result.cancelled;
        child.signal_group(SIGTERM);
        child.pump_until_exit(Clock::now() + k_kill_grace);
        // Also when the shell obeyed: whatever it left behind in its group goes now.
        child.signal_group(SIGKILL);
        child.drain_output_until(Clock::now());
    }
    child.reap(result);
    // The child shares the file's offset: how far it read.
    const off_t offset = ::lseek(child_stdin->get(), 0, SEEK_CUR);
    result.input_written =
        offset < 0 ? 0 : std::min(static_cast<std::size_t>(offset), input.size());
    return result;
}

} // namespace crashmail
