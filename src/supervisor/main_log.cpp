#include "supervisor/main_log.hpp"

#include "supervisor/exit_status.hpp"
#include "util/time.hpp"

#include <charconv>
#include <map>
#include <utility>

namespace crashmail {
namespace {

constexpr std::size_t k_time_size = 23; // "2026-11-25 22:54:06,675"

std::optional<std::int64_t> parse_int(std::string_view text) {
    std::int64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

// "exited: NAME (TEXT; not expected)": NAME, TEXT as crashmail words it, and expected.
struct Exit {
    std::string_view name;
    std::string status;
    bool expected = false;
};

std::optional<Exit> parse_exit(std::string_view message) {
    constexpr std::string_view k_prefix = "exited: ";
    if (!message.starts_with(k_prefix)) {
        return std::nullopt;
    }
    std::string_view rest = message.substr(k_prefix.size());
    bool expected = false;
    if (rest.ends_with("; not expected)")) {
        rest.remove_suffix(std::string_view("; not expected)").size());
    } else if (rest.ends_with("; expected)")) {
        rest.remove_suffix(std::string_view("; expected)").size());
        expected = true;
    } else {
        return std::nullopt;
    }
    // The name may hold " (" itself; the status is the first remainder that reads as one.
    for (std::size_t at = rest.find(" ("); at != std::string_view::npos;
         at = rest.find(" (", at + 1)) {
        if (auto status = describe_exit(rest.substr(at + 2))) {
            return Exit{rest.substr(0, at), std::move(*status), expected};
        }
    }
    return std::nullopt;
}

// What the log has said of one process so far.
struct Track {
    std::optional<std::int64_t> pid; // of the last spawn
    bool running = false;            // reached RUNNING since that spawn
    bool spawned = false;            // a spawn line was seen
    std::chrono::system_clock::time_point spawned_at;
    std::optional<std::int64_t> startsecs; // from a "success:" line
};

// supervisord's default startsecs: what an exit is judged by when no "success:" line of the
// process says its own.
constexpr std::int64_t k_default_startsecs = 1;

// True when an exit at `at` was a failed start (STARTING -> BACKOFF): the process had not
// reached RUNNING and lived less than startsecs.
bool failed_start(const Track& track, std::chrono::system_clock::time_point at) {
    if (!track.spawned || track.running) {
        return false;
    }
    auto startsecs = std::chrono::seconds(track.startsecs.value_or(k_default_startsecs));
    return at - track.spawned_at < startsecs;
}

} // namespace

MainLog parse_main_log(std::string_view text, bool cut) {
    MainLog out;
    std::map<std::string, Track, std::less<>> tracks;
    bool first_line = true;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (std::exchange(first_line, false) && cut) {
            continue;
        }
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        auto time = timefmt::parse_asctime_local(line);
        if (!time || line.size() <= k_time_size + 1 || line[k_time_size] != ' ') {
            continue; // a continuation line (a traceback) or garbage
        }
        if (!out.first_time) {
            out.first_time = time;
        }
        std::string_view rest = line.substr(k_time_size + 1);
        auto level_end = rest.find(' ');
        if (level_end == std::string_view::npos) {
            continue;
        }
        std::string_view message = rest.substr(level_end + 1);

        if (message.starts_with("supervisord started with pid ")) {
            out.run_start = time;
            tracks.clear();
            continue;
        }
        if (message.starts_with("spawned: '")) {
            auto at = message.rfind("' with pid ");
            if (at == std::string_view::npos || at < 10) {
                continue;
            }
            std::string name(message.substr(10, at - 10));
            Track& track = tracks[name];
            track.pid = parse_int(message.substr(at + 11));
            track.running = false;
            track.spawned = true;
            track.spawned_at = *time;
            out.starts.push_back({*time, std::move(name), "STARTING", false, track.pid, {}});
            continue;
        }
        if (message.starts_with("success: ")) {
            constexpr std::string_view k_running = " entered RUNNING state";
            auto at = message.find(k_running);
            if (at == std::string_view::npos) {
                continue;
            }
            std::string name(message.substr(9, at - 9));
            Track& track = tracks[name];
            track.running = true;
            out.starts.push_back({*time, std::move(name), "RUNNING", false, track.pid, {}});
            constexpr std::string_view k_than = "> than ";
            if (auto than = message.find(k_than, at); than != std::string_view::npos) {
                std::string_view number = message.substr(than + k_than.size());
                number = number.substr(0, number.find(' '));
                track.startsecs = parse_int(number);
            }
            continue;
        }
        if (message.starts_with("gave up: ")) {
            constexpr std::string_view k_fatal = " entered FATAL state";
            auto at = message.find(k_fatal);
            if (at == std::string_view::npos) {
                continue;
            }
            LoggedTransition fatal;
            fatal.time = *time;
            fatal.process = std::string(message.substr(9, at - 9));
            fatal.state = "FATAL";
            out.transitions.push_back(std::move(fatal));
            continue;
        }
        if (auto exit = parse_exit(message)) {
            Track& track = tracks[std::string(exit->name)];
            LoggedTransition transition;
            transition.time = *time;
            transition.process = std::string(exit->name);
            transition.expected = exit->expected;
            transition.pid = track.pid;
            transition.exit_status = std::move(exit->status);
            // Before RUNNING and sooner than startsecs it was a failed start (BACKOFF); with
            // startsecs 0, or when the spawn is not in the chunk, an EXITED.
            // supervisord writes "; expected" only for RUNNING -> EXITED.
            bool backoff = !exit->expected && failed_start(track, *time);
            transition.state = backoff ? "BACKOFF" : "EXITED";
            out.transitions.push_back(std::move(transition));
            track.pid.reset();
            track.running = false;
            track.spawned = false;
            continue;
        }
        if (message.starts_with("stopped: ")) {
            // A stop the process was asked for: not a crash. Its pid is done with.
            std::string_view name = message.substr(9);
            name = name.substr(0, name.rfind(" ("));
            if (auto found = tracks.find(name); found != tracks.end()) {
                found->second.pid.reset();
                found->second.running = false;
                found->second.spawned = false;
            }
        }
    }
    return out;
}

} // namespace crashmail
