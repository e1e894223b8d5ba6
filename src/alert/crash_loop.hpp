#pragma once
// Crash loops told as stories, with flood control. A process's story starts with its first
// alert-worthy event and ends when it recovers (RUNNING for --recovery-after), or after a
// quiet flood-control window. Within a story:
//   - flood control (--rate-limit N/WINDOW, default 3/10m): a window opens at the first event;
//     its first N events are alerted, later ones are counted; when the window ends one
//     summary accounts for every counted event, and the next window (the loop is still
//     going) sends summaries only. A window that ends with nothing counted closes the run.
//   - FATAL always alerts (supervisord gave up: the story's end) and accounts for what was
//     counted so far; so does a recovery notice.
//   - every event is either alerted or counted in exactly one summary, FATAL alert or
//     recovery notice: nothing is dropped.
// Pure: every call takes the time; the caller persists to_json() and builds the alerts.

#include "alert/alert.hpp"

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// The states --state accepts, in the documented order: EXITED, FATAL, BACKOFF, UNKNOWN,
// STOPPED.
std::span<const char* const> alert_state_names();

struct RateLimit {
    std::uint64_t count = 3;
    std::chrono::seconds window{600};
};

// Parses --rate-limit: "N/DURATION" (1 <= N <= 1000, DURATION as in --max-age: 30s, 10m,
// 1h) or "off" (std::nullopt). Returns an error message otherwise.
std::expected<std::optional<RateLimit>, std::string> parse_rate_limit(std::string_view text);

// "10 minutes", "1 hour", "90 seconds", "2 days": a window for humans.
std::string duration_words(std::chrono::seconds duration);

// What a story needs of a process state event.
struct StoryEvent {
    std::string group;
    std::string process;
    std::string state;      // "EXITED", "FATAL", "RUNNING", ...
    std::string from_state; // may be empty
    bool expected = false;  // EXITED: an expected exit
    std::optional<std::int64_t> pid;
    std::string event_name; // "PROCESS_STATE_EXITED"
    std::uint64_t serial = 0;
    // The event's identity (event_alert_id()): supervisord redelivers an event that was not
    // answered (crashmail killed after counting it), and the same event is not counted twice.
    std::string id;
    // Recovered from supervisord's log (its event was discarded): when the log says it
    // happened. The alert then says so and carries that time.
    std::optional<std::chrono::system_clock::time_point> logged_at;
};

// What the stories want sent.
struct Emission {
    AlertKind kind = AlertKind::alert; // alert, summary or recovery
    // alert: the event; summary: the last counted event; recovery: the RUNNING event.
    StoryEvent event;
    std::uint64_t occurrence = 0; // alert: the event's number in its story
    std::uint64_t suppressed = 0; // events counted, not sent, that this message accounts for
    std::map<std::string, std::uint64_t> suppressed_by_state; // of those, per state
    std::chrono::system_clock::time_point story_start{};
    std::chrono::system_clock::time_point window_start{}; // summary: the window it covers
    std::chrono::system_clock::time_point window_end{};   // summary; alert: counting until
    std::chrono::seconds window{0};                       // the rate-limit window
    // alert: flood control counts this process's events from now until window_end.
    bool last_before_limit = false;
    std::optional<RateLimit> limit;      // the rate limit in force
    std::vector<ResolvedAlert> resolves; // recovery: what it ends
    bool notify = true;                  // recovery without --recovery: Alertmanager only
};

struct CrashLoopSettings {
    std::optional<RateLimit> rate_limit = RateLimit{}; // std::nullopt: --rate-limit off
    bool recovery_notices = false; // --recovery: tell every channel when a process recovers
    bool resolve_alerts = false;   // a channel (Alertmanager) resolves alerts on recovery
    std::chrono::seconds recovery_after{60}; // RUNNING this long counts as recovered
};

class CrashLoops {
public:
    using time_point = std::chrono::system_clock::time_point;

    explicit CrashLoops(CrashLoopSettings settings) : m_settings(settings) {}

    // An event that alerts under the selection and --state: returns what to send, first
    // whatever fell due before `now` (see due()), then this event's alert if it is not
    // counted.
    std::vector<Emission> on_alert_event(const StoryEvent& event, time_point now);

    // Any other state change of a selected process: RUNNING starts its recovery clock, any
    // other state stops it. Returns true when a story changed.
    bool on_other_event(const StoryEvent& event, time_point now);

    // Summaries of ended windows and recoveries that are due at `now`; forgets stories
    // that ended.
    std::vector<Emission> due(time_point now);

    // What flood control is counting for a process: the events counted since its last
    // message (summary, FATAL alert or recovery notice) and when the window that counts them
    // ends. std::nullopt: nothing counted (none yet, or accounted for already).
    struct Counting {
        std::uint64_t counted = 0;
        time_point until{};
    };
    std::optional<Counting> counting(const std::string& group, const std::string& process) const;

    // When due() next has something to do; std::nullopt: nothing is waiting.
    std::optional<time_point> next_due() const;

    // The state to keep across restarts, and back. from_json() ignores what it does not
    // understand and returns an error for a document that is not a story list.
    nlohmann::json to_json() const;
    std::expected<void, std::string> restore(const nlohmann::json& document);

    std::size_t story_count() const { return m_stories.size(); }

private:
    struct Story {
        time_point start{};
        time_point last_event{};
        std::uint64_t occurrences = 0;
        bool window_open = false;
        time_point window_start{};
        std::uint64_t window_sent = 0;
        std::uint64_t suppressed = 0;
        std::map<std::string, std::uint64_t> suppressed_by_state;
        StoryEvent last_counted;
        std::vector<ResolvedAlert> alerted; // states alerted so far, for recovery
        bool fatal = false;                 // closed by FATAL: waits for a recovery only
        std::optional<time_point> running_since;
        StoryEvent running_event;
    };

    std::chrono::seconds window() const;
    time_point window_end(const Story& story) const { return story.window_start + window(); }
    // An emission of `kind` about `event`, with what every emission of `story` carries.
    Emission emission(AlertKind kind, const Story& story, const StoryEvent& event) const;
    // Moves what `story` counted (the total and per state) into `into`.
    static void take_counted(Story& story, Emission& into);
    // Summary of what `story` counted, then clears the count.
    Emission take_summary(Story& story, time_point window_end) const;
    // True when recovery notices are produced at all.
    bool tracks_recovery() const {
        return m_settings.recovery_notices || m_settings.resolve_alerts;
    }

    CrashLoopSettings m_settings;
    std::map<std::string, Story> m_stories; // by "group\nprocess"
};

// The alert for an emission, with the story's wording: an alert is make_alert()'s alert plus
// a "Crash loop:" line; a summary and a recovery notice have their own subject and body.
// `id` is the alert's id (for an alert, event_alert_id() of its event).
Alert emission_alert(const Emission& emission, const AlertContext& context,
                     std::chrono::system_clock::time_point now, std::string id);

// A stable id for a summary or recovery notice (the same emission after a restart has the
// same id): "m<16 hex>" or "r<16 hex>" over the process, the window or RUNNING time and the
// count, mixed with `instance`.
std::string emission_id(const Emission& emission, std::string_view instance);

} // namespace crashmail
