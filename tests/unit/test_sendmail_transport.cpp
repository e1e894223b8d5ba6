// The sendmail transport and the subprocess runner under it, with real /bin/sh commands.

#include "alert/mail_message.hpp"
#include "log_lines.hpp"
#include "transport/sendmail_transport.hpp"
#include "util/subprocess.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

// A fresh directory under the system's temporary directory, removed at the end of the test.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "crashmail-sendmail-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        m_path = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    fs::path operator/(const std::string& name) const { return m_path / name; }

private:
    fs::path m_path;
};

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Shell-quotes a path for a command line.
std::string quoted(const fs::path& path) {
    return "'" + path.string() + "'";
}

// Sets a signal's disposition for the lifetime of the object.
class SignalDisposition {
public:
    SignalDisposition(int signal, void (*handler)(int)) : m_signal(signal) {
        m_previous = std::signal(signal, handler);
    }
    SignalDisposition(const SignalDisposition&) = delete;
    SignalDisposition& operator=(const SignalDisposition&) = delete;
    ~SignalDisposition() { std::signal(m_signal, m_previous); }

private:
    int m_signal;
    void (*m_previous)(int);
};

// Points fd 2 at a file for the lifetime of the object, to see what was logged.
class StderrCapture {
public:
    explicit StderrCapture(const fs::path& path) : m_path(path) {
        m_saved = ::dup(2);
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        ::dup2(fd, 2);
        ::close(fd);
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;
    ~StderrCapture() { restore(); }

    // Restores fd 2 and returns what was logged meanwhile, without the lines' times.
    std::string finish() {
        restore();
        return crashmail::testing::without_log_times(read_file(m_path));
    }

private:
    void restore() {
        if (m_saved >= 0) {
            ::dup2(m_saved, 2);
            ::close(m_saved);
            m_saved = -1;
        }
    }
    fs::path m_path;
    int m_saved = -1;
};

// Returns true if no child of this process is left, not even a zombie.
bool no_children_left() {
    int status = 0;
    return ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

// Returns the pids of the processes in process group `group` that are not zombies.
std::vector<int> live_members_of_group(int group) {
    std::vector<int> members;
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        const std::string stat = read_file(entry.path() / "stat");
        const auto close_paren = stat.rfind(')');
        if (close_paren == std::string::npos) {
            continue; // gone meanwhile
        }
        // After "(comm)": state, ppid, pgrp.
        std::istringstream fields(stat.substr(close_paren + 1));
        char state = '?';
        int parent = 0;
        int pgrp = 0;
        fields >> state >> parent >> pgrp;
        if (pgrp == group && state != 'Z' && state != 'X') {
            members.push_back(std::stoi(name));
        }
    }
    return members;
}

// Waits up to two seconds for every process of `group` to be gone (killed processes need a
// moment to be scheduled and die) and returns those still alive.
std::vector<int> group_members_after_grace(int group) {
    const auto limit = std::chrono::steady_clock::now() + 2s;
    auto members = live_members_of_group(group);
    while (!members.empty() && std::chrono::steady_clock::now() < limit) {
        std::this_thread::sleep_for(20ms);
        members = live_members_of_group(group);
    }
    return members;
}

// The number of file descriptors open in this process.
std::size_t open_fd_count() {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        ++count;
    }
    return count;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Text with every byte value, non-ASCII characters and long lines: whatever goes in must
// come out unchanged.
std::string varied_input(std::size_t size) {
    std::string text;
    text.reserve(size);
    const std::string pattern = "Grüße, 日本 \r\n\t\x01\x7f";
    for (std::size_t i = 0; text.size() < size; ++i) {
        text += static_cast<char>(i % 256);
        if (i % 97 == 0) {
            text += pattern;
        }
    }
    text.resize(size);
    return text;
}

Alert sample_alert() {
    Alert alert;
    alert.id = "20261125T220310.123.42.9f3c2a1b7d4e5f60";
    alert.event_name = "PROCESS_STATE_EXITED";
    alert.state = "EXITED";
    alert.process = "crashy";
    alert.group = "crashy";
    alert.from_state = "RUNNING";
    alert.pid = 4242;
    alert.expected = false;
    alert.serial = 42;
    alert.host = "host.example.com";
    alert.time = std::chrono::system_clock::time_point(std::chrono::seconds(1764108190));
    alert.subject = "crashy crashed at Tue Nov 25 22:03:10 2025";
    alert.body = "Process crashy in group crashy exited unexpectedly (pid 4242) from state "
                 "RUNNING\n\nHost: host.example.com\n";
    return alert;
}

SendmailSettings settings_for(std::string command, std::chrono::seconds timeout = 10s) {
    SendmailSettings settings;
    settings.command = std::move(command);
    settings.addresses.from = "crashmail@host.example.com";
    settings.addresses.to = {"ops@example.com", "dev@example.com"};
    settings.timeout = timeout;
    return settings;
}

SubprocessResult exited_with(int status, std::string output = {}) {
    SubprocessResult result;
    result.started = true;
    result.exit_code = status;
    result.output = std::move(output);
    return result;
}

} // namespace

// ---- run_shell_command --------------------------------------------------------------------

TEST_CASE("the input arrives intact at the command's stdin", "[subprocess]") {
    TempDir dir;
    const auto file = dir / "stdin.bin";
    const std::string input = varied_input(300 * 1024); // several pipe buffers
    const auto result = run_shell_command("cat > " + quoted(file), input, 10s);
    REQUIRE(result.started);
    CHECK_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    CHECK(result.succeeded());
    CHECK(result.input_written == input.size());
    CHECK(result.output.empty());
    CHECK(read_file(file) == input);
    CHECK(no_children_left());
}

TEST_CASE("the child's environment lacks the hidden variables, and keeps the rest",
          "[subprocess][secrets]") {
    ::setenv("CRASHMAIL_SMTP_PASSWORD", "smtp-secret-1", 1);
    ::setenv("H2_TEST_TOKEN", "header-secret-2", 1);
    ::setenv("H2_TEST_PLAIN", "kept", 1);
    const auto result = run_shell_command(
        "env", "", 5s, nullptr, {"CRASHMAIL_SMTP_PASSWORD", "H2_TEST_TOKEN", "NOT_SET_AT_ALL"});
    const auto inherited = run_shell_command("env", "", 5s);
    ::unsetenv("CRASHMAIL_SMTP_PASSWORD");
    ::unsetenv("H2_TEST_TOKEN");
    ::unsetenv("H2_TEST_PLAIN");
    REQUIRE(result.succeeded());
    CHECK_THAT(result.output, !Catch::Contains("CRASHMAIL_SMTP_PASSWORD"));
    CHECK_THAT(result.output, !Catch::Contains("smtp-secret-1"));
    CHECK_THAT(result.output, !Catch::Contains("header-secret-2"));
    CHECK_THAT(result.output, Catch::Contains("H2_TEST_PLAIN=kept"));
    CHECK_THAT(result.output, Catch::Contains("PATH="));
    // Without the list, everything is inherited (the test can fail).
    CHECK_THAT(inherited.output, Catch::Contains("H2_TEST_TOKEN=header-secret-2"));
}

TEST_CASE("environment_without drops exactly the named entries", "[subprocess][secrets]") {
    const char* const environment[] = {"A=1", "AB=2", "B=x=y", "C", "A_=3", nullptr};
    CHECK(environment_without(environment, {"A", "B", "C"}) ==
          std::vector<std::string>{"AB=2", "A_=3"});
    CHECK(environment_without(nullptr, {"A"}).empty());
}

TEST_CASE("empty input gives the command an immediate end of file", "[subprocess]") {
    const auto result = run_shell_command("wc -c", "", 5s);
    CHECK(result.succeeded());
    CHECK(result.output.find('0') != std::string::npos);
    CHECK(result.input_written == 0);
}

TEST_CASE("stdout and stderr are captured together and the exit status reported", "[subprocess]") {
    const auto result = run_shell_command("echo out; echo err >&2; exit 3", "ignored", 5s);
    REQUIRE(result.started);
    CHECK_FALSE(result.timed_out);
    CHECK(result.exit_code == 3);
    CHECK_FALSE(result.signal);
    CHECK_FALSE(result.succeeded());
    CHECK(result.output == "out\nerr\n");
    CHECK(no_children_left());
}

TEST_CASE("a command killed by a signal reports the signal", "[subprocess]") {
    const auto result = run_shell_command("kill -KILL $$", "", 5s);
    REQUIRE(result.started);
    CHECK_FALSE(result.exit_code);
    CHECK(result.signal == SIGKILL);
    CHECK_FALSE(result.timed_out);
}

TEST_CASE("the child's stdin is a pipe, its stdout and stderr one other pipe, nothing else "
          "of ours is open in it",
          "[subprocess]") {
    // A descriptor opened without O_CLOEXEC must still not reach the child.
    const int leaky = ::open("/dev/null", O_RDONLY);
    REQUIRE(leaky > 2);
    const std::string command = "readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2; "
                                "if [ -e /proc/$$/fd/" +
                                std::to_string(leaky) + " ]; then echo LEAKED; fi";
    const auto result = run_shell_command(command, "", 5s);
    ::close(leaky);
    REQUIRE(result.exit_code == 0);
    std::istringstream lines(result.output);
    std::string in, out, err, extra;
    std::getline(lines, in);
    std::getline(lines, out);
    std::getline(lines, err);
    CHECK(in.rfind("/memfd:crashmail-input", 0) == 0); // a file holding the whole input
    CHECK(out.rfind("pipe:[", 0) == 0);
    CHECK(out == err);
    CHECK(in != out);
    CHECK_FALSE(std::getline(lines, extra)); // in particular no "LEAKED"
}

TEST_CASE("the command reads its input from a file that outlives crashmail", "[subprocess]") {
    // The input is all there before the command starts: a command that reads late (after a
    // crash of crashmail, as far as it knows) still gets every byte, and the offset it reached
    // says how far it read.
    const std::string input(137750, 'm');
    const auto result =
        run_shell_command("test -f /dev/stdin && sleep 0.3 && cat | wc -c | tr -d ' '", input, 10s);
    REQUIRE(result.succeeded());
    CHECK(result.output == "137750\n");
    CHECK(result.input_written == input.size());
}

TEST_CASE("signals crashmail ignores or blocks are back to default in the child", "[subprocess]") {
    const SignalDisposition ignore_pipe(SIGPIPE, SIG_IGN); // as crashmail_main does
    const SignalDisposition ignore_term(SIGTERM, SIG_IGN);
    // grep inherits the shell's signal state through exec. (Reading the shell's own status
    // instead would race with the shell blocking signals around its forks.)
    const auto result =
        run_shell_command("exec grep -E '^Sig(Ign|Blk):' /proc/self/status", "", 5s);
    REQUIRE(result.exit_code == 0);
    auto mask_of = [&](const std::string& name) {
        const auto at = result.output.find(name + ":");
        REQUIRE(at != std::string::npos);
        return std::stoull(result.output.substr(at + name.size() + 1), nullptr, 16);
    };
    const auto bit = [](int signal) { return 1ULL << (signal - 1); };
    CHECK((mask_of("SigIgn") & bit(SIGPIPE)) == 0);
    CHECK((mask_of("SigIgn") & bit(SIGTERM)) == 0);
    CHECK(mask_of("SigBlk") == 0);
}

TEST_CASE("the child runs in a process group of its own", "[subprocess]") {
    const auto result = run_shell_command("ps -o pid= -o pgid= -p $$", "", 5s);
    REQUIRE(result.exit_code == 0);
    std::istringstream fields(result.output);
    long pid = 0;
    long pgid = 0;
    fields >> pid >> pgid;
    CHECK(pid > 0);
    CHECK(pgid == pid);
    CHECK(pgid != static_cast<long>(::getpgrp()));
}

TEST_CASE("a command that does not read its input does not hurt the caller", "[subprocess]") {
    // SIGPIPE at its default (fatal) disposition: a write to the closed pipe must still only
    // fail with EPIPE.
    const SignalDisposition default_pipe(SIGPIPE, SIG_DFL);
    const std::string input(1024 * 1024, 'x');
    const auto start = std::chrono::steady_clock::now();

    SECTION("it exits at once") {
        const auto result = run_shell_command("exit 0", input, 10s);
        CHECK(result.succeeded());
        CHECK(result.input_written < input.size());
    }
    SECTION("it reads a little and then exits") {
        const auto result = run_shell_command("head -c 10 >/dev/null; echo read", input, 10s);
        CHECK(result.succeeded());
        CHECK(result.output == "read\n");
        CHECK(result.input_written >= 10);
        CHECK(result.input_written < input.size());
    }
    SECTION("it closes its stdin and goes on") {
        const auto result = run_shell_command("exec 0<&-; sleep 0.2; echo done", input, 10s);
        CHECK(result.succeeded());
        CHECK(result.output == "done\n");
        CHECK(result.input_written < input.size());
    }
    CHECK(seconds_since(start) < 3.0);
    CHECK(no_children_left());
}

TEST_CASE("big input and big output at once do not deadlock, and the first 8 KiB are kept",
          "[subprocess]") {
    const std::string input = varied_input(1024 * 1024);
    const auto start = std::chrono::steady_clock::now();
    const auto result = run_shell_command("cat", input, 10s);
    CHECK(seconds_since(start) < 5.0);
    REQUIRE(result.started);
    CHECK_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    CHECK(result.input_written == input.size());
    CHECK(result.output.size() == k_subprocess_output_limit);
    CHECK(result.output == input.substr(0, k_subprocess_output_limit));
    CHECK(result.output_truncated);
}

TEST_CASE("a command printing 1 MiB is drained to the end", "[subprocess]") {
    // If the output were not drained, head would block on a full pipe until the timeout.
    const auto result =
        run_shell_command("head -c 1048576 /dev/zero | tr '\\000' a; echo; echo end", "", 10s);
    CHECK_FALSE(result.timed_out);
    CHECK(result.exit_code == 0);
    CHECK(result.output == std::string(k_subprocess_output_limit, 'a'));
    CHECK(result.output_truncated);
}

TEST_CASE("output held open by a background grandchild does not hold up the result",
          "[subprocess]") {
    const auto start = std::chrono::steady_clock::now();
    const auto result = run_shell_command("sleep 2 & echo done", "", 10s);
    CHECK(seconds_since(start) < 1.5);
    CHECK(result.succeeded());
    CHECK(result.output == "done\n");
    CHECK(no_children_left());
}

TEST_CASE("on timeout the whole process group is killed and nothing is left behind",
          "[subprocess][slow]") {
    TempDir dir;
    const auto pid_file = dir / "pid";

    SECTION("the shell dies of SIGTERM; a grandchild that ignores SIGTERM gets SIGKILL") {
        const auto start = std::chrono::steady_clock::now();
        const auto result = run_shell_command("echo $$ > " + quoted(pid_file) +
                                                  "; (trap '' TERM; sleep 30; :) & sleep 30",
                                              "", 1000ms);
        const double elapsed = seconds_since(start);
        CHECK(result.started);
        CHECK(result.timed_out);
        CHECK(result.signal == SIGTERM);
        CHECK_FALSE(result.exit_code);
        CHECK_FALSE(result.succeeded());
        CHECK(elapsed >= 0.9);
        CHECK(elapsed < 1.8); // the shell died at once: no waiting for the grace period
        const int group = std::stoi(read_file(pid_file));
        CHECK(group_members_after_grace(group).empty());
    }
    SECTION("a shell that ignores SIGTERM gets SIGKILL one second later") {
        const auto start = std::chrono::steady_clock::now();
        const auto result = run_shell_command(
            "trap '' TERM; echo $$ > " + quoted(pid_file) + "; echo started; sleep 30; :", "",
            1000ms);
        const double elapsed = seconds_since(start);
        CHECK(result.timed_out);
        CHECK(result.signal == SIGKILL);
        CHECK(result.output == "started\n");
        CHECK(elapsed >= 1.9);
        CHECK(elapsed < 3.0);
        const int group = std::stoi(read_file(pid_file));
        CHECK(group_members_after_grace(group).empty());
    }
    CHECK(no_children_left());
}

TEST_CASE("a cancel flag set while the command runs kills its process group within a second",
          "[subprocess]") {
    TempDir dir;
    const auto pid_file = dir / "pid";
    std::atomic<bool> cancel{false};
    SubprocessResult result;
    const auto start = std::chrono::steady_clock::now();
    std::thread runner([&] {
        // A grandchild in the same group, which must go too.
        result = run_shell_command("echo $$ > " + quoted(pid_file) + "; sleep 30 & sleep 30", "",
                                   60s, &cancel);
    });
    const bool running = [&] {
        const auto limit = std::chrono::steady_clock::now() + 10s;
        while (read_file(pid_file).empty() && std::chrono::steady_clock::now() < limit) {
            std::this_thread::sleep_for(10ms);
        }
        return !read_file(pid_file).empty();
    }();
    CHECK(running);
    std::this_thread::sleep_for(200ms);
    cancel = true;
    runner.join();
    const double elapsed = seconds_since(start);

    CHECK(elapsed < 10.0); // generous: within about a second of the flag, not the 60 s limit
    CHECK(result.started);
    CHECK(result.cancelled);
    CHECK_FALSE(result.timed_out);
    CHECK_FALSE(result.succeeded());
    CHECK(result.signal == SIGTERM);
    REQUIRE(running);
    const int group = std::stoi(read_file(pid_file));
    CHECK(group_members_after_grace(group).empty());
    CHECK(no_children_left());
}

TEST_CASE("a cancel flag set before the call runs nothing", "[subprocess]") {
    TempDir dir;
    const auto marker = dir / "ran";
    std::atomic<bool> cancel{true};
    const auto start = std::chrono::steady_clock::now();
    const auto result = run_shell_command("touch " + quoted(marker), "", 60s, &cancel);
    CHECK(seconds_since(start) < 5.0);
    CHECK(result.cancelled);
    CHECK_FALSE(result.started);
    CHECK_FALSE(result.succeeded());
    std::this_thread::sleep_for(100ms);
    CHECK_FALSE(fs::exists(marker));
    CHECK(no_children_left());
}

TEST_CASE("commands run from several threads at once stay separate", "[subprocess]") {
    constexpr int k_threads = 8;
    const std::size_t fds_before = open_fd_count();
    std::vector<std::string> inputs;
    for (int i = 0; i < k_threads; ++i) {
        inputs.push_back(std::string(4000, static_cast<char>('a' + i)) + std::to_string(i));
    }
    std::vector<SubprocessResult> results(k_threads);
    std::vector<std::thread> threads;
    for (int i = 0; i < k_threads; ++i) {
        threads.emplace_back([&, i] {
            for (int round = 0; round < 5; ++round) {
                results[i] = run_shell_command("cat", inputs[i], 5s);
                if (!results[i].succeeded() || results[i].output != inputs[i]) {
                    return;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (int i = 0; i < k_threads; ++i) {
        CHECK_FALSE(results[i].timed_out);
        CHECK(results[i].exit_code == 0);
        CHECK(results[i].output == inputs[i]);
    }
    CHECK(no_children_left());
    CHECK(open_fd_count() == fds_before); // pipes and pidfds all closed
}

// ---- classification and messages ----------------------------------------------------------

TEST_CASE("exit statuses are classified like msmtp's sysexits", "[sendmail]") {
    using Kind = Failure::Kind;
    struct Row {
        int status;
        Kind kind;
    };
    const Row table[] = {
        {1, Kind::transient},   {2, Kind::transient},   {64, Kind::permanent},
        {65, Kind::permanent},  {66, Kind::transient},  {67, Kind::permanent},
        {68, Kind::permanent},  {69, Kind::transient},  {70, Kind::transient},
        {71, Kind::transient},  {72, Kind::transient},  {73, Kind::transient},
        {74, Kind::transient},  {75, Kind::transient},  {76, Kind::transient},
        {77, Kind::permanent},  {78, Kind::permanent},  {126, Kind::permanent},
        {127, Kind::permanent}, {128, Kind::transient}, {255, Kind::transient},
    };
    for (const auto& row : table) {
        INFO("exit status " << row.status);
        CHECK(classify_exit_status(row.status) == row.kind);
    }
    CHECK(exit_status_name(75) == "EX_TEMPFAIL");
    CHECK(exit_status_name(67) == "EX_NOUSER");
    CHECK(exit_status_name(127) == "command not found");
    CHECK(exit_status_name(1).empty());
}

TEST_CASE("a command's output is summed up on one printable line", "[sendmail]") {
    CHECK(summarize_output("") == "");
    CHECK(summarize_output(" \n\t\r\n") == "");
    CHECK(summarize_output("  boom\n") == "boom");
    CHECK(summarize_output("line one\r\n\r\n  line two\nthree\n") == "line one | line two | three");
    CHECK(summarize_output("a\tb\x1b[31mred\x7f") == "a b\\x1B[31mred\\x7F");
    CHECK(summarize_output("caf\xc3\xa9 ok") == "caf\xc3\xa9 ok");
    CHECK(summarize_output("bad \xff\xc3 byte") == "bad \\xFF\\xC3 byte");

    // 297 bytes fit before "...": the 297th would be the first half of an "é".
    const std::string long_line = std::string(296, 'a') + "\xc3\xa9\xc3\xa9" + "tail";
    CHECK(summarize_output(long_line) == std::string(296, 'a') + "...");
    CHECK(summarize_output(std::string(1000, 'x')).size() == 300);
    CHECK(summarize_output(std::string(300, 'x')) == std::string(300, 'x'));
    CHECK(summarize_output(std::string(10, '\x01'), 20) == "\\x01\\x01\\x01\\x01...");
}

TEST_CASE("sendmail_failure says what happened, with the command and its words", "[sendmail]") {
    const std::string command = "/usr/sbin/sendmail -t -i";

    SECTION("success is no failure") {
        CHECK_FALSE(sendmail_failure(command, exited_with(0, "queued"), 60s));
    }
    SECTION("a temporary failure") {
        const auto failure =
            sendmail_failure(command, exited_with(75, "sendmail: cannot connect\n"), 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::transient);
        CHECK(failure->message == "sendmail command '/usr/sbin/sendmail -t -i' exited with "
                                  "status 75 (EX_TEMPFAIL): sendmail: cannot connect");
    }
    SECTION("a permanent failure") {
        const auto failure = sendmail_failure(command, exited_with(67, "no such user"), 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::permanent);
        CHECK_THAT(failure->message, Catch::Contains("status 67 (EX_NOUSER): no such user"));
    }
    SECTION("a status without a name, printing nothing") {
        const auto failure = sendmail_failure(command, exited_with(1), 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::transient);
        CHECK(failure->message ==
              "sendmail command '/usr/sbin/sendmail -t -i' exited with status 1");
    }
    SECTION("killed by a signal") {
        SubprocessResult result;
        result.started = true;
        result.signal = SIGKILL;
        const auto failure = sendmail_failure(command, result, 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::transient);
        CHECK(failure->message == "sendmail command '/usr/sbin/sendmail -t -i' was killed by "
                                  "signal 9 (SIGKILL: Killed)");
    }
    SECTION("timed out") {
        SubprocessResult result;
        result.started = true;
        result.timed_out = true;
        result.signal = SIGTERM;
        result.output = "connecting...\n";
        const auto failure = sendmail_failure(command, result, 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::timeout);
        CHECK(failure->retryable());
        CHECK(failure->message == "sendmail command '/usr/sbin/sendmail -t -i' did not finish "
                                  "within 60 s and was killed: connecting...");
    }
    SECTION("timed out even though it then exited 0") {
        SubprocessResult result = exited_with(0);
        result.timed_out = true;
        const auto failure = sendmail_failure(command, result, 1500ms);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::timeout);
        CHECK_THAT(failure->message, Catch::Contains("within 1500 ms"));
    }
    SECTION("could not start") {
        SubprocessResult result;
        result.start_error = "cannot run /bin/sh: No such file or directory";
        const auto failure = sendmail_failure(command, result, 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::transient);
        CHECK(failure->message == "sendmail command '/usr/sbin/sendmail -t -i' could not be "
                                  "started: cannot run /bin/sh: No such file or directory");
    }
    SECTION("cancelled while it ran: transient, killed, with what it printed") {
        SubprocessResult result;
        result.started = true;
        result.cancelled = true;
        result.signal = SIGTERM;
        result.output = "connecting...\n";
        const auto failure = sendmail_failure(command, result, 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::transient);
        CHECK(failure->message == "sendmail command '/usr/sbin/sendmail -t -i': cancelled: "
                                  "crashmail is stopping (killed): connecting...");
    }
    SECTION("cancelled before it started: transient") {
        SubprocessResult result;
        result.cancelled = true;
        const auto failure = sendmail_failure(command, result, 60s);
        REQUIRE(failure);
        CHECK(failure->kind == Failure::Kind::transient);
        CHECK(failure->message ==
              "sendmail command '/usr/sbin/sendmail -t -i': cancelled: crashmail is stopping");
    }
    SECTION("control characters in the command do not break the line") {
        const auto failure = sendmail_failure("printf x\nexit 1", exited_with(1), 60s);
        REQUIRE(failure);
        CHECK(failure->message.find('\n') == std::string::npos);
        CHECK_THAT(failure->message, Catch::Contains("'printf x | exit 1'"));
    }
}

// ---- SendmailTransport --------------------------------------------------------------------

TEST_CASE("a sendmail command inherits no hidden secret; its output is redacted",
          "[sendmail][secrets]") {
    ::setenv("CRASHMAIL_SMTP_PASSWORD", "smtp-secret-1", 1);
    auto settings =
        settings_for("cat >/dev/null; echo smtp-secret-1; env | grep CRASHMAIL_SMTP; exit 75");
    settings.hidden_environment = {"CRASHMAIL_SMTP_PASSWORD"};
    settings.secrets.add("smtp-secret-1");
    SendmailTransport transport(settings);
    const auto delivered = transport.deliver(sample_alert());
    ::unsetenv("CRASHMAIL_SMTP_PASSWORD");
    REQUIRE_FALSE(delivered.has_value());
    CHECK_THAT(delivered.error().message, !Catch::Contains("CRASHMAIL_SMTP_PASSWORD"));
    CHECK_THAT(delivered.error().message, !Catch::Contains("smtp-secret-1"));
    CHECK_THAT(delivered.error().message, Catch::Contains("<redacted>"));
}

TEST_CASE("the sendmail transport is named after its command", "[sendmail]") {
    const SendmailTransport transport(settings_for("/usr/sbin/sendmail -t -i"));
    CHECK(transport.name() == "sendmail (/usr/sbin/sendmail -t -i)");
}

TEST_CASE("the rendered message arrives intact on the command's stdin", "[sendmail]") {
    TempDir dir;
    const auto file = dir / "message.eml";
    const auto settings = settings_for("cat > " + quoted(file));
    SendmailTransport transport(settings);
    const Alert alert = sample_alert();
    const auto delivered = transport.deliver(alert);
    REQUIRE(delivered.has_value());
    const std::string message = read_file(file);
    CHECK(message == render_mail(alert, settings.addresses, LineEnding::lf));
    CHECK(message.find('\r') == std::string::npos);
    CHECK_THAT(message, Catch::Contains("ops@example.com"));
    CHECK_THAT(message, Catch::Contains("Process crashy in group crashy exited unexpectedly"));
}

TEST_CASE("what a successful command printed is logged on one line", "[sendmail]") {
    TempDir dir;
    SendmailTransport transport(settings_for("cat >/dev/null; echo queued as 4F2A; echo ok >&2"));
    StderrCapture capture(dir / "stderr");
    const auto delivered = transport.deliver(sample_alert());
    const std::string logged = capture.finish();
    CHECK(delivered.has_value());
    CHECK(logged == "crashmail: sendmail (cat >/dev/null; echo queued as 4F2A; echo ok >&2) "
                    "said: queued as 4F2A | ok\n");
}

TEST_CASE("a command that exits 0 without reading the message is warned about", "[sendmail]") {
    TempDir dir;
    SendmailTransport transport(settings_for("exec 0<&-"));
    // Far more than a pipe holds, so the unread part is certain to be refused (a small
    // message could sit whole in the pipe before the command closes it).
    Alert alert = sample_alert();
    for (int i = 0; i < 8000; ++i) {
        alert.body += "A long body line, repeated to make the message bigger than a pipe.\n";
    }
    StderrCapture capture(dir / "stderr");
    const auto delivered = transport.deliver(alert);
    const std::string logged = capture.finish();
    CHECK(delivered.has_value());
    CHECK_THAT(logged, Catch::StartsWith("crashmail: warning: sendmail (exec 0<&-): exited with "
                                         "status 0 without reading the whole message"));
}

TEST_CASE("sendmail failures carry the status, the output and the right kind", "[sendmail]") {
    SECTION("EX_TEMPFAIL is transient") {
        SendmailTransport transport(settings_for("cat >/dev/null; exit 75"));
        const auto delivered = transport.deliver(sample_alert());
        REQUIRE_FALSE(delivered.has_value());
        CHECK(delivered.error().kind == Failure::Kind::transient);
        CHECK_THAT(delivered.error().message,
                   Catch::Contains("'cat >/dev/null; exit 75' exited with status 75 "
                                   "(EX_TEMPFAIL)"));
    }
    SECTION("what it printed on stderr is in the message") {
        SendmailTransport transport(settings_for("echo boom >&2; exit 1"));
        const auto delivered = transport.deliver(sample_alert());
        REQUIRE_FALSE(delivered.has_value());
        CHECK(delivered.error().kind == Failure::Kind::transient);
        CHECK(delivered.error().message ==
              "sendmail command 'echo boom >&2; exit 1' exited with status 1: boom");
    }
    SECTION("EX_NOUSER is permanent") {
        SendmailTransport transport(settings_for("echo 'ops@example.com: unknown user'; exit 67"));
        const auto delivered = transport.deliver(sample_alert());
        REQUIRE_FALSE(delivered.has_value());
        CHECK(delivered.error().kind == Failure::Kind::permanent);
        CHECK_THAT(delivered.error().message,
                   Catch::EndsWith("(EX_NOUSER): ops@example.com: unknown user"));
    }
    SECTION("a command that does not exist is permanent") {
        SendmailTransport transport(settings_for("/nonexistent/sendmail -t -i"));
        const auto delivered = transport.deliver(sample_alert());
        REQUIRE_FALSE(delivered.has_value());
        CHECK(delivered.error().kind == Failure::Kind::permanent);
        CHECK_THAT(delivered.error().message,
                   Catch::Contains("exited with status 127 (command not found)"));
        CHECK_THAT(delivered.error().message, Catch::Contains("/nonexistent/sendmail"));
    }
    SECTION("killed by a signal is transient") {
        SendmailTransport transport(settings_for("kill -TERM $$"));
        const auto delivered = transport.deliver(sample_alert());
        REQUIRE_FALSE(delivered.has_value());
        CHECK(delivered.error().kind == Failure::Kind::transient);
        CHECK_THAT(delivered.error().message, Catch::Contains("signal 15 (SIGTERM: Terminated)"));
    }
    CHECK(no_children_left());
}

TEST_CASE("a sendmail command that hangs times out and is killed", "[sendmail][slow]") {
    SendmailTransport transport(settings_for("cat >/dev/null; sleep 30", 1s));
    const auto start = std::chrono::steady_clock::now();
    const auto delivered = transport.deliver(sample_alert());
    const double elapsed = seconds_since(start);
    REQUIRE_FALSE(delivered.has_value());
    CHECK(delivered.error().kind == Failure::Kind::timeout);
    CHECK(delivered.error().message ==
          "sendmail command 'cat >/dev/null; sleep 30' did not finish within 1 s and was killed");
    CHECK(elapsed >= 0.9);
    CHECK(elapsed < 2.0);
    CHECK(no_children_left());
}

TEST_CASE("cancel() ends a sendmail command in progress and kills its process group",
          "[sendmail]") {
    TempDir dir;
    const auto pid_file = dir / "pid";
    const std::string command = "echo $$ > " + quoted(pid_file) + "; sleep 30";
    SendmailTransport transport(settings_for(command, 60s));

    std::optional<std::expected<void, Failure>> delivered;
    const auto start = std::chrono::steady_clock::now();
    std::thread worker([&] { delivered = transport.deliver(sample_alert()); });
    const bool running = [&] {
        const auto limit = std::chrono::steady_clock::now() + 10s;
        while (read_file(pid_file).empty() && std::chrono::steady_clock::now() < limit) {
            std::this_thread::sleep_for(10ms);
        }
        return !read_file(pid_file).empty();
    }();
    CHECK(running);
    std::this_thread::sleep_for(200ms);
    transport.cancel();
    worker.join();
    const double elapsed = seconds_since(start);

    CHECK(elapsed < 10.0); // generous: within about a second, not the 60 s limit
    REQUIRE(delivered.has_value());
    REQUIRE_FALSE(delivered->has_value());
    CHECK(delivered->error().kind == Failure::Kind::transient);
    CHECK(delivered->error().message ==
          "sendmail command '" + command + "': cancelled: crashmail is stopping (killed)");
    REQUIRE(running);
    const int group = std::stoi(read_file(pid_file));
    CHECK(group_members_after_grace(group).empty());
    CHECK(no_children_left());

    // Every later delivery fails at once and runs nothing.
    fs::remove(pid_file);
    const auto again_start = std::chrono::steady_clock::now();
    const auto again = transport.deliver(sample_alert());
    CHECK(seconds_since(again_start) < 5.0);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().kind == Failure::Kind::transient);
    CHECK_THAT(again.error().message, Catch::Contains("stopping"));
    std::this_thread::sleep_for(100ms);
    CHECK_FALSE(fs::exists(pid_file));
}

TEST_CASE("a sendmail transport cancelled before deliver() returns at once, running nothing",
          "[sendmail]") {
    TempDir dir;
    const auto marker = dir / "ran";
    SendmailTransport transport(settings_for("touch " + quoted(marker) + "; sleep 30", 60s));
    transport.cancel();
    const auto start = std::chrono::steady_clock::now();
    const auto delivered = transport.deliver(sample_alert());
    CHECK(seconds_since(start) < 5.0);
    REQUIRE_FALSE(delivered.has_value());
    CHECK(delivered.error().kind == Failure::Kind::transient);
    CHECK(delivered.error().retryable());
    CHECK_THAT(delivered.error().message, Catch::Contains("crashmail is stopping"));
    std::this_thread::sleep_for(100ms);
    CHECK_FALSE(fs::exists(marker));
    CHECK(no_children_left());
}

// ---- the envelope sender (-f, {from}) -----------------------------------------------------

namespace {

// A fake sendmail that records its arguments, one per line, into `record`, and reads its
// stdin.
std::string recording_sendmail(const TempDir& dir, const fs::path& record) {
    const fs::path script = dir / "fake-sendmail";
    std::ofstream(script) << "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '"
                          << record.string() << "'\ncat >/dev/null\n";
    fs::permissions(script, fs::perms::owner_all);
    return script.string();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

} // namespace

TEST_CASE("shell_quote makes any text one word the shell does not interpret", "[sendmail]") {
    CHECK(shell_quote("ops@example.com") == "'ops@example.com'");
    CHECK(shell_quote("") == "''");
    CHECK(shell_quote("it's") == "'it'\\''s'");
    TempDir dir;
    const auto record = dir / "argv";
    for (const std::string hostile :
         {"a$(touch pwned)@example.com", "a`id`@x", "a'b@x", "a;b|c&d@x", "$HOME", "*", "a\"b"}) {
        const auto result = run_shell_command(
            "printf '%s\\n' " + shell_quote(hostile) + " > " + quoted(record), "", 5s);
        REQUIRE(result.succeeded());
        CHECK(read_file(record) == hostile + "\n");
    }
    CHECK_FALSE(fs::exists(fs::current_path() / "pwned"));
}

TEST_CASE("{from} in a sendmail command becomes the quoted sender, elsewhere nothing changes",
          "[sendmail]") {
    CHECK(expand_sendmail_command("/usr/sbin/sendmail -t -i", "a@x") == "/usr/sbin/sendmail -t -i");
    CHECK(expand_sendmail_command("msmtp -t -f {from}", "a@x") == "msmtp -t -f 'a@x'");
    CHECK(expand_sendmail_command("m -f {from} --sender={from}", "a'b@x") ==
          "m -f 'a'\\''b@x' --sender='a'\\''b@x'");
    CHECK(expand_sendmail_command("{from}", "a@x") == "'a@x'");
    CHECK(expand_sendmail_command("m {fro} {From} {{from}", "a@x") == "m {fro} {From} {'a@x'");
}

TEST_CASE("the envelope sender reaches a sendmail command through {from}", "[sendmail]") {
    TempDir dir;
    const auto record = dir / "argv";
    const std::string fake = recording_sendmail(dir, record);
    SendmailTransport transport(settings_for(
        expand_sendmail_command(fake + " -t -i -f {from}", "bounces+$(id)@example.com")));
    REQUIRE(transport.deliver(sample_alert()).has_value());
    CHECK(lines_of(read_file(record)) ==
          std::vector<std::string>{"-t", "-i", "-f", "bounces+$(id)@example.com"});
}

TEST_CASE("a sendmail channel is named after its configured command, failures after the one run",
          "[sendmail]") {
    SendmailSettings settings = settings_for("exit 67 -f 'a@x'");
    settings.configured = "exit 67";
    SendmailTransport transport(settings);
    CHECK(transport.name() == "sendmail (exit 67)");
    const auto delivered = transport.deliver(sample_alert());
    REQUIRE_FALSE(delivered.has_value());
    CHECK_THAT(delivered.error().message,
               Catch::StartsWith("sendmail command 'exit 67 -f 'a@x'' exited with status 67"));
}
