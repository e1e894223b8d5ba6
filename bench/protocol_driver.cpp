// protocol_driver: plays supervisord's side of the event listener protocol over pipes and
// measures a listener (crashmail or bench/minimal_listener).
//
//   protocol_driver [options] -- COMMAND [ARGS...]
//
// It starts COMMAND with its stdin and stdout on pipes, waits for READY, sends N events with
// real headers (a share of them unexpected PROCESS_STATE_EXITED, the rest
// PROCESS_STATE_RUNNING and TICK_5 in the shapes of tests/fixtures), and for each event
// measures the time from writing it to reading the complete "RESULT 2\nOK". Any deviation
// from the protocol (a byte too many, a wrong count, a body other than OK, a silence longer
// than --answer-timeout-ms) ends the run with exit status 1 and the bytes received.
//
// Prints one line of JSON on stdout: throughput, answer latency (p50/p99/max), exec-to-READY,
// the child's CPU time per event (all threads, and its main thread alone), its peak RSS
// (wait4) and /proc status at the last event.
//
// With --startups K it instead starts COMMAND K times, measures exec-to-READY each time and
// prints the median and maximum.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace {

using Steady = std::chrono::steady_clock;

struct Config {
    std::size_t events = 10000;
    double crash_share = 0.1;
    std::vector<std::string> names{"web", "worker", "w\xc3\xb6rker", "cron"};
    std::chrono::microseconds interval{0}; // 0: send as fast as the listener answers
    std::string send_log;                  // "serial realtime_ns" per crash event
    std::string stderr_path = "/dev/null";
    std::string label = "run";
    std::chrono::milliseconds answer_timeout{5000};
    std::chrono::milliseconds exit_timeout{20000};
    bool kill_at_end = false;
    std::size_t startups = 0;
    std::vector<std::string> command;
};

[[noreturn]] void usage(const std::string& message) {
    std::fprintf(stderr,
                 "protocol_driver: %s\n"
                 "usage: protocol_driver [--events N] [--crash-share F] [--names a,b,c]\n"
                 "         [--interval-us U] [--send-log FILE] [--stderr FILE] [--label L]\n"
                 "         [--answer-timeout-ms MS] [--exit-timeout-ms MS] [--kill-at-end]\n"
                 "         [--startups K] -- COMMAND [ARGS...]\n",
                 message.c_str());
    std::exit(2);
}

[[noreturn]] void fail(const std::string& message) {
    std::fprintf(stderr, "protocol_driver: PROTOCOL FAILURE: %s\n", message.c_str());
    std::exit(1);
}

std::string escape(std::string_view bytes) {
    std::string out;
    for (char c : bytes.substr(0, 200)) {
        auto u = static_cast<unsigned char>(c);
        if (c == '\n') {
            out += "\\n";
        } else if (u < 0x20 || u >= 0x7F) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", u);
            out += hex;
        } else {
            out += c;
        }
    }
    if (bytes.size() > 200) {
        out += "...";
    }
    return out;
}

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ',')) {
        if (!part.empty()) {
            parts.push_back(part);
        }
    }
    return parts;
}

Config parse_arguments(int argc, char** argv) {
    Config config;
    int i = 1;
    auto value = [&](const char* name) -> std::string {
        if (i + 1 >= argc) {
            usage(std::string(name) + " needs a value");
        }
        return argv[++i];
    };
    for (; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            for (++i; i < argc; ++i) {
                config.command.emplace_back(argv[i]);
            }
            break;
        }
        if (arg == "--events") {
            config.events = std::stoul(value("--events"));
        } else if (arg == "--crash-share") {
            config.crash_share = std::stod(value("--crash-share"));
        } else if (arg == "--names") {
            config.names = split_commas(value("--names"));
        } else if (arg == "--interval-us") {
            config.interval = std::chrono::microseconds(std::stol(value("--interval-us")));
        } else if (arg == "--send-log") {
            config.send_log = value("--send-log");
        } else if (arg == "--stderr") {
            config.stderr_path = value("--stderr");
        } else if (arg == "--label") {
            config.label = value("--label");
        } else if (arg == "--answer-timeout-ms") {
            config.answer_timeout = std::chrono::milliseconds(std::stol(value(arg.c_str())));
        } else if (arg == "--exit-timeout-ms") {
            config.exit_timeout = std::chrono::milliseconds(std::stol(value(arg.c_str())));
        } else if (arg == "--kill-at-end") {
            config.kill_at_end = true;
        } else if (arg == "--startups") {
            config.startups = std::stoul(value("--startups"));
        } else {
            usage("unknown option " + arg);
        }
    }
    if (config.command.empty()) {
        usage("no command after --");
    }
    if (config.crash_share < 0.0 || config.crash_share > 1.0) {
        usage("--crash-share must be within 0..1");
    }
    if (config.names.empty()) {
        usage("--names needs at least one name");
    }
    return config;
}

// Unicode characters in valid UTF-8 text: what supervisord's len: counts.
std::size_t code_points(std::string_view text) {
    std::size_t count = 0;
    for (char c : text) {
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
            ++count;
        }
    }
    return count;
}

std::int64_t realtime_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

// ---------------------------------------------------------------------------- the child

struct Child {
    pid_t pid = -1;
    int to_child = -1;   // its stdin
    int from_child = -1; // its stdout
    Steady::time_point started;
};

Child spawn(const Config& config) {
    int in_pipe[2];
    int out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
        fail(std::string("pipe: ") + std::strerror(errno));
    }
    int err_fd =
        ::open(config.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) {
        fail("cannot open " + config.stderr_path + ": " + std::strerror(errno));
    }
    std::vector<char*> argv;
    for (const std::string& arg : config.command) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    Child child;
    child.started = Steady::now();
    child.pid = ::fork();
    if (child.pid < 0) {
        fail(std::string("fork: ") + std::strerror(errno));
    }
    if (child.pid == 0) {
        ::dup2(in_pipe[0], 0);
        ::dup2(out_pipe[1], 1);
        ::dup2(err_fd, 2);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "protocol_driver: exec %s: %s\n", argv[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_fd);
    child.to_child = in_pipe[1];
    child.from_child = out_pipe[0];
    return child;
}

// Reads the child's stdout with deadlines; every comparison is exact.
class Input {
public:
    explicit Input(int fd) : m_fd(fd) {}

    // Makes at least `n` bytes available or fails (EOF, timeout).
    void need(std::size_t n, Steady::time_point deadline, const char* waiting_for) {
        while (m_buffer.size() - m_start < n) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
            if (left.count() <= 0) {
                fail(std::string("timed out waiting for ") + waiting_for + "; have '" +
                     escape(pending()) + "'");
            }
            pollfd fd{m_fd, POLLIN, 0};
            int ready = ::poll(&fd, 1, static_cast<int>(left.count()) + 1);
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                continue;
            }
            if (m_start > 0 && m_start == m_buffer.size()) {
                m_buffer.clear();
                m_start = 0;
            }
            char chunk[4096];
            ssize_t got = ::read(m_fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got < 0) {
                fail(std::string("read: ") + std::strerror(errno));
            }
            if (got == 0) {
                fail(std::string("listener closed its stdout while waiting for ") + waiting_for +
                     "; have '" + escape(pending()) + "'");
            }
            m_buffer.append(chunk, static_cast<std::size_t>(got));
        }
    }

    void expect(std::string_view token, Steady::time_point deadline) {
        need(token.size(), deadline, std::string(token).c_str());
        std::string_view got(m_buffer.data() + m_start, token.size());
        if (got != token) {
            fail("expected '" + escape(token) + "', got '" + escape(pending()) + "'");
        }
        m_start += token.size();
    }

    // "RESULT <n>\n" + exactly n bytes, which must be "OK".
    void expect_result(Steady::time_point deadline) {
        expect("RESULT ", deadline);
        std::size_t length = 0;
        std::size_t digits = 0;
        for (;;) {
            need(1, deadline, "the RESULT length");
            char c = m_buffer[m_start];
            if (c == '\n' && digits > 0) {
                ++m_start;
                break;
            }
            if (c < '0' || c > '9' || digits >= 9) {
                fail("bad RESULT line: 'RESULT " + escape(pending()) + "'");
            }
            length = length * 10 + static_cast<std::size_t>(c - '0');
            ++digits;
            ++m_start;
        }
        need(length, deadline, "the RESULT body");
        std::string_view body(m_buffer.data() + m_start, length);
        if (body != "OK") {
            fail("RESULT body is '" + escape(body) +
                 "', not 'OK' (supervisord would reject "
                 "the event and redeliver it forever)");
        }
        m_start += length;
    }

    // Stray bytes already received: fails, since supervisord would mark the listener UNKNOWN.
    void expect_nothing_more(const char* after) {
        pollfd fd{m_fd, POLLIN, 0};
        if (::poll(&fd, 1, 0) > 0 && (fd.revents & POLLIN) != 0) {
            char chunk[4096];
            ssize_t got = ::read(m_fd, chunk, sizeof chunk);
            if (got > 0) {
                m_buffer.append(chunk, static_cast<std::size_t>(got));
            }
        }
        if (m_start != m_buffer.size()) {
            fail(std::string("unexpected bytes after ") + after + ": '" + escape(pending()) + "'");
        }
    }

private:
    std::string_view pending() const { return std::string_view(m_buffer).substr(m_start); }

    int m_fd;
    std::string m_buffer;
    std::size_t m_start = 0;
};

void write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fail(std::string("write to the listener: ") + std::strerror(errno));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

// CPU time (ns) of every thread of `pid` so far, from /proc/PID/task/*/schedstat.
std::int64_t cpu_ns_so_far(pid_t pid) {
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* stream = ::opendir(dir.c_str());
    if (stream == nullptr) {
        return 0;
    }
    std::int64_t total = 0;
    while (dirent* entry = ::readdir(stream)) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        std::ifstream file(dir + "/" + entry->d_name + "/schedstat");
        std::int64_t ns = 0;
        if (file >> ns) {
            total += ns;
        }
    }
    ::closedir(stream);
    return total;
}

// CPU time (ns) of the main thread of `pid` so far (crashmail's event loop, the one that
// answers), from /proc/PID/task/PID/schedstat.
std::int64_t main_thread_cpu_ns(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) +
                       "/schedstat");
    std::int64_t ns = 0;
    file >> ns;
    return ns;
}

// Selected fields (kB, or a count) of /proc/PID/status.
struct ProcStatus {
    long vm_hwm_kb = -1;
    long vm_rss_kb = -1;
    long rss_anon_kb = -1;
    long rss_file_kb = -1;
    long threads = -1;
    long pss_kb = -1;
    long pss_anon_kb = -1;
    long pss_file_kb = -1;
};

ProcStatus read_status(pid_t pid) {
    ProcStatus status;
    std::ifstream file("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(file, line)) {
        auto field = [&](const char* name, long& out) {
            std::size_t n = std::strlen(name);
            if (line.compare(0, n, name) == 0) {
                out = std::strtol(line.c_str() + n, nullptr, 10);
            }
        };
        field("VmHWM:", status.vm_hwm_kb);
        field("VmRSS:", status.vm_rss_kb);
        field("RssAnon:", status.rss_anon_kb);
        field("RssFile:", status.rss_file_kb);
        field("Threads:", status.threads);
    }
    std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
    while (std::getline(rollup, line)) {
        auto field = [&](const char* name, long& out) {
            std::size_t n = std::strlen(name);
            if (line.compare(0, n, name) == 0) {
                out = std::strtol(line.c_str() + n, nullptr, 10);
            }
        };
        field("Pss:", status.pss_kb);
        field("Pss_Anon:", status.pss_anon_kb);
        field("Pss_File:", status.pss_file_kb);
    }
    return status;
}

struct Ending {
    int exit_code = -1; // or -signal
    rusage usage{};
    long vm_hwm_kb = -1; // the last VmHWM seen before the child exited
    double wait_ms = 0;
};

// Closes the child's stdin (or kills it) and reaps it, killing it after `timeout`.
Ending finish(Child& child, bool kill_now, std::chrono::milliseconds timeout) {
    auto start = Steady::now();
    if (kill_now) {
        ::kill(child.pid, SIGKILL);
    }
    ::close(child.to_child);
    child.to_child = -1;
    Ending ending;
    int status = 0;
    bool killed = kill_now;
    for (;;) {
        pid_t done = ::wait4(child.pid, &status, WNOHANG, &ending.usage);
        if (done == child.pid) {
            break;
        }
        if (done < 0 && errno != EINTR) {
            fail(std::string("wait4: ") + std::strerror(errno));
        }
        // ru_maxrss would include the forked copy of this driver before exec: VmHWM does not.
        ending.vm_hwm_kb = std::max(ending.vm_hwm_kb, read_status(child.pid).vm_hwm_kb);
        if (!killed && Steady::now() - start > timeout) {
            std::fprintf(stderr, "protocol_driver: %s did not exit within %ld ms; killing it\n",
                         child.pid > 0 ? "listener" : "?", static_cast<long>(timeout.count()));
            ::kill(child.pid, SIGKILL);
            killed = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ::close(child.from_child);
    ending.wait_ms = std::chrono::duration<double, std::milli>(Steady::now() - start).count();
    ending.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return ending;
}

double ms_since(Steady::time_point start, Steady::time_point end) {
    return std::chrono::duration<double, std::milli>(end - start).count();
}

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) {
        return 0;
    }
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "\"";
}

// ---------------------------------------------------------------------------- events

struct Event {
    std::string bytes;
    bool crash = false;
};

Event make_event(std::size_t index, const Config& config) {
    // supervisord numbers both serials from 0 (process.py new_serial: -1 + 1): a first
    // poolserial of 1 would tell crashmail that supervisord discarded event 0 (issue 13).
    std::size_t serial = index;
    // Evenly spread: event i is a crash when the running count of crashes steps up.
    auto crashes_before =
        static_cast<std::size_t>(std::floor(static_cast<double>(index) * config.crash_share));
    auto crashes_through =
        static_cast<std::size_t>(std::floor(static_cast<double>(index + 1) * config.crash_share));
    bool crash = crashes_through > crashes_before;
    const std::string& name = config.names[index % config.names.size()];
    std::string event_name;
    std::string payload;
    auto pid = std::to_string(4000 + index % 60000);
    if (crash) {
        event_name = "PROCESS_STATE_EXITED";
        payload = "processname:" + name + " groupname:" + name +
                  " from_state:RUNNING expected:0 pid:" + pid;
    } else if (index % 2 == 0) {
        event_name = "PROCESS_STATE_RUNNING";
        payload = "processname:" + name + " groupname:" + name + " from_state:STARTING pid:" + pid;
    } else {
        event_name = "TICK_5";
        payload = "when:" + std::to_string(1795635930 + index * 5);
    }
    std::string header = "ver:3.0 server:supervisor serial:" + std::to_string(serial) +
                         " pool:crashmail poolserial:" + std::to_string(serial) +
                         " eventname:" + event_name +
                         " len:" + std::to_string(code_points(payload)) + "\n";
    return Event{header + payload, crash};
}

// ---------------------------------------------------------------------------- modes

int measure_startups(const Config& config) {
    std::vector<double> times;
    for (std::size_t i = 0; i < config.startups; ++i) {
        Child child = spawn(config);
        Input input(child.from_child);
        input.expect("READY\n", Steady::now() + config.answer_timeout);
        times.push_back(ms_since(child.started, Steady::now()));
        Ending ending = finish(child, config.kill_at_end, config.exit_timeout);
        if (!config.kill_at_end && ending.exit_code != 0) {
            fail("listener exited with status " + std::to_string(ending.exit_code) +
                 " at end of input");
        }
    }
    std::sort(times.begin(), times.end());
    std::printf("{\"label\":%s,\"startups\":%zu,\"ready_p50_ms\":%.3f,\"ready_max_ms\":%.3f,"
                "\"ready_min_ms\":%.3f}\n",
                json_string(config.label).c_str(), times.size(), percentile(times, 0.5),
                times.back(), times.front());
    return 0;
}

int measure_events(const Config& config) {
    std::vector<Event> events;
    events.reserve(config.events);
    std::size_t crashes = 0;
    for (std::size_t i = 0; i < config.events; ++i) {
        events.push_back(make_event(i, config));
        crashes += events.back().crash ? 1 : 0;
    }
    std::FILE* send_log = nullptr;
    if (!config.send_log.empty()) {
        send_log = std::fopen(config.send_log.c_str(), "w");
        if (send_log == nullptr) {
            fail("cannot write " + config.send_log);
        }
    }

    Child child = spawn(config);
    Input input(child.from_child);
    input.expect("READY\n", Steady::now() + std::chrono::seconds(10));
    auto ready_at = Steady::now();
    double ready_ms = ms_since(child.started, ready_at);
    input.expect_nothing_more("the first READY");
    std::int64_t cpu_ns_at_ready = cpu_ns_so_far(child.pid);
    std::int64_t main_ns_at_ready = main_thread_cpu_ns(child.pid);

    std::vector<double> latencies;
    latencies.reserve(events.size());
    auto first_sent = Steady::now();
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (config.interval.count() > 0) {
            std::this_thread::sleep_until(first_sent + config.interval * static_cast<long>(i));
        }
        auto sent = Steady::now();
        if (i == 0) {
            first_sent = sent;
        }
        if (send_log != nullptr && events[i].crash) {
            std::fprintf(send_log, "%zu %lld\n", i, static_cast<long long>(realtime_ns()));
        }
        write_all(child.to_child, events[i].bytes);
        input.expect_result(sent + config.answer_timeout);
        latencies.push_back(ms_since(sent, Steady::now()));
        input.expect("READY\n", Steady::now() + config.answer_timeout);
        input.expect_nothing_more("READY");
    }
    auto last_answered = Steady::now();
    if (send_log != nullptr) {
        std::fclose(send_log);
    }
    ProcStatus status = read_status(child.pid);
    double cpu_main_ms =
        static_cast<double>(main_thread_cpu_ns(child.pid) - main_ns_at_ready) / 1e6;
    Ending ending = finish(child, config.kill_at_end, config.exit_timeout);
    if (!config.kill_at_end && ending.exit_code != 0) {
        std::fprintf(stderr, "protocol_driver: warning: listener exited with status %d\n",
                     ending.exit_code);
    }

    double elapsed_s = ms_since(first_sent, last_answered) / 1000.0;
    std::int64_t cpu_total_ns =
        (static_cast<std::int64_t>(ending.usage.ru_utime.tv_sec + ending.usage.ru_stime.tv_sec) *
             1000000 +
         ending.usage.ru_utime.tv_usec + ending.usage.ru_stime.tv_usec) *
        1000;
    double cpu_events_ms = static_cast<double>(cpu_total_ns - cpu_ns_at_ready) / 1e6;
    std::vector<double> sorted = latencies;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double value : sorted) {
        mean += value;
    }
    mean /= static_cast<double>(std::max<std::size_t>(sorted.size(), 1));

    std::printf(
        "{\"label\":%s,\"events\":%zu,\"crashes\":%zu,\"elapsed_s\":%.3f,\"events_per_s\":%.1f,"
        "\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,\"mean_ms\":%.4f,\"ready_ms\":%.3f,"
        "\"cpu_total_ms\":%.1f,\"cpu_events_ms\":%.1f,\"cpu_us_per_event\":%.2f,"
        "\"cpu_main_us_per_event\":%.2f,"
        "\"maxrss_kb\":%ld,\"vm_hwm_kb\":%ld,\"vm_rss_kb\":%ld,\"rss_anon_kb\":%ld,"
        "\"rss_file_kb\":%ld,\"pss_kb\":%ld,\"pss_anon_kb\":%ld,\"pss_file_kb\":%ld,"
        "\"threads\":%ld,\"exit_code\":%d,\"exit_wait_ms\":%.1f}\n",
        json_string(config.label).c_str(), events.size(), crashes, elapsed_s,
        static_cast<double>(events.size()) / elapsed_s, percentile(sorted, 0.5),
        percentile(sorted, 0.99), sorted.empty() ? 0.0 : sorted.back(), mean, ready_ms,
        static_cast<double>(cpu_total_ns) / 1e6, cpu_events_ms,
        cpu_events_ms * 1000.0 / static_cast<double>(std::max<std::size_t>(events.size(), 1)),
        cpu_main_ms * 1000.0 / static_cast<double>(std::max<std::size_t>(events.size(), 1)),
        ending.usage.ru_maxrss, std::max(status.vm_hwm_kb, ending.vm_hwm_kb), status.vm_rss_kb,
        status.rss_anon_kb, status.rss_file_kb, status.pss_kb, status.pss_anon_kb,
        status.pss_file_kb, status.threads, ending.exit_code, ending.wait_ms);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    Config config = parse_arguments(argc, argv);
    if (config.startups > 0) {
        return measure_startups(config);
    }
    return measure_events(config);
}
