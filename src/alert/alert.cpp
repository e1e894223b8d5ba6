#include "alert/alert.hpp"

#include "util/text.hpp"
#include "util/time.hpp"

#include <ctime>
#include <fmt/format.h>
#include <random>

namespace crashmail {
namespace {

std::string pid_text(const std::optional<std::int64_t>& pid) {
    return pid ? fmt::format("pid {}", *pid) : std::string("pid unknown");
}

std::uint64_t random_64() {
    // One generator per thread, each seeded from the system's entropy: no lock, no sharing.
    thread_local std::mt19937_64 generator = [] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device(), device(), device()};
        return std::mt19937_64(seed);
    }();
    return generator();
}

// Keeps the characters of `text` that may appear in a Message-ID part (a dot-atom made of
// letters, digits, `extra` and single dots), or returns `fallback` when none remain.
std::string dot_atom(std::string_view text, std::string_view extra, std::string_view fallback) {
    std::string out;
    for (char c : text) {
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        bool single_dot = c == '.' && !out.empty() && out.back() != '.';
        if (alnum || extra.find(c) != std::string_view::npos || single_dot) {
            out += c;
        }
    }
    if (!out.empty() && out.back() == '.') {
        out.pop_back();
    }
    return out.empty() ? std::string(fallback) : out;
}

} // namespace

std::string display_name(std::string_view group, std::string_view process) {
    if (group == process) {
        return std::string(process);
    }
    return fmt::format("{}:{}", group, process);
}

std::string new_alert_id(std::chrono::system_clock::time_point now, std::uint64_t serial) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    if (millis < 0) {
        millis += 1000;
    }
    return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}.{}.{:016x}", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis, serial,
                       random_64());
}

Alert make_alert(const EventHeader& header, const ProcessStateChange& change,
                 const AlertContext& context, std::chrono::system_clock::time_point now,
                 std::string id) {
    Alert alert;
    alert.id = std::move(id);
    alert.event_name = header.event_name;
    alert.state = change.state;
    alert.process = change.process_name;
    alert.group = change.group_name;
    alert.from_state = change.from_state;
    alert.pid = change.pid;
    alert.expected = change.expected;
    alert.serial = header.serial;
    alert.host = context.host;
    alert.time = now;

    const std::string name = single_line(display_name(change.group_name, change.process_name));
    const std::string when = timefmt::asctime_local_zone(now); // superlance's, and the zone
    const std::string process = single_line(change.process_name);
    const std::string group = single_line(change.group_name);
    const std::string from_state = single_line(change.from_state);
    const std::string state = single_line(change.state);

    std::string what;     // subject, after the name
    std::string sentence; // first body line
    if (change.state == "EXITED" && change.expected.value_or(false)) {
        what = "exited (expected)";
        sentence = fmt::format("Process {} in group {} exited (expected) ({}) from state {}",
                               process, group, pid_text(change.pid), from_state);
    } else if (change.state == "EXITED") {
        // superlance's exact wording: mail filters out there match on it.
        what = "crashed";
        sentence = fmt::format("Process {} in group {} exited unexpectedly ({}) from state {}",
                               process, group, pid_text(change.pid), from_state);
    } else {
        std::string pid = change.pid ? fmt::format(" (pid {})", *change.pid) : std::string();
        std::string entered = fmt::format("Process {} in group {} entered state {}{} from state {}",
                                          process, group, state, pid, from_state);
        if (change.state == "FATAL") {
            what = "is FATAL: supervisord gave up starting it";
            sentence = entered + ": it could not be started and will not be retried";
        } else if (change.state == "BACKOFF") {
            what = "failed to start (BACKOFF)";
            sentence = entered + ": it exited too quickly while starting; supervisord retries";
        } else if (change.state == "STOPPED") {
            what = "was stopped";
            sentence = entered + ": someone stopped it";
        } else if (change.state == "UNKNOWN") {
            what = "is in state UNKNOWN";
            sentence = entered + ": supervisord lost track of it";
        } else {
            what = "entered state " + state;
            sentence = std::move(entered);
        }
    }

    std::string subject = fmt::format("{} {} at {}", name, what, when);
    if (!context.prefix.empty()) {
        subject = single_line(context.prefix) + ": " + subject;
    }
    alert.subject = std::move(subject);
    alert.body = fmt::format("{}\n\nHost: {}\nTime: {}\nEvent: {} (serial {})", sentence,
                             single_line(context.host), timefmt::rfc5322_local(now),
                             single_line(header.event_name), header.serial);
    return alert;
}

std::string_view kind_name(AlertKind kind) {
    switch (kind) {
    case AlertKind::alert:
        return "alert";
    case AlertKind::summary:
        return "summary";
    case AlertKind::recovery:
        return "recovery";
    case AlertKind::digest:
        return "digest";
    case AlertKind::dropped:
        return "dropped";
    case AlertKind::spool:
        return "spool";
    case AlertKind::channel:
        return "channel";
    }
    return "alert";
}

std::optional<AlertKind> kind_from_name(std::string_view name) {
    for (AlertKind kind :
         {AlertKind::alert, AlertKind::summary, AlertKind::recovery, AlertKind::digest,
          AlertKind::dropped, AlertKind::spool, AlertKind::channel}) {
        if (kind_name(kind) == name) {
            return kind;
        }
    }
    return std::nullopt;
}

std::string message_id(const Alert& alert) {
    return fmt::format("<{}@{}>", dot_atom(alert.id, "", "crashmail"),
                       dot_atom(alert.host, "-_", "localhost"));
}

} // namespace crashmail
