#pragma once
// Whether each channel works, from the outcomes of its deliveries, and when to tell the other
// channels that one does not: a channel is "down" when a delivery failed permanently (moved to
// failed/), or when its deliveries have kept failing for `failing_for` (15 min) with no
// success between. Then every other channel gets one notice (alert/channel_notice), and one more
// when the channel delivers again. A down notice about a channel is sent at most once per
// `repeat` (1 h): a channel that flaps is told about once an hour, and the notice that it works
// again follows only a down notice that was sent.
//
// ChannelHealth is the pure state machine (the clock is an input); ChannelHealthMonitor runs it
// for the channel workers: a mutex, a thread that wakes when a failing channel reaches
// `failing_for` between two attempts (the backoff may wait up to 15 min), the notices handed
// to a callback, and the state kept in the spool (channel-health.state.json) for --status.

#include "delivery/spool.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace crashmail {

struct ChannelHealthSettings {
    std::chrono::milliseconds failing_for{std::chrono::minutes(15)};
    std::chrono::milliseconds repeat{std::chrono::hours(1)};
};

// What a channel's delivery attempt came to, as health sees it.
enum class AttemptResult { delivered, failed_for_now, failed_for_good };

// A notice to send through every channel but `key`.
struct ChannelNotice {
    std::string key;                               // channel_key()
    std::string name;                              // the channel's name()
    bool working = false;                          // false: it is down; true: it works again
    std::string words;                             // down: the last failure, as the peer put it
    std::size_t waiting = 0;                       // alerts waiting for this channel
    std::chrono::system_clock::time_point since{}; // down: failing since; up: was down since
    bool permanent = false; // down: a delivery failed for good (not just for 15 minutes)
};

// One channel's health, as --status shows it.
struct ChannelCondition {
    std::string name;
    std::chrono::system_clock::time_point failing_since{}; // epoch: it works
    std::string words;                                     // the last failure
    std::size_t waiting = 0;                               // at the last failure
    bool down = false; // failing for good or long enough to be told about
    bool told = false; // the other channels were told (false: none to tell, or repeat)
};

class ChannelHealth {
public:
    explicit ChannelHealth(ChannelHealthSettings settings = {}) : m_settings(settings) {}

    // Feeds one attempt's result; returns the notice it calls for, if any. `others`: whether
    // there is another channel to tell (without one the channel is marked down, not told).
    std::optional<ChannelNotice> observe(const std::string& key, const std::string& name,
                                         AttemptResult result, const std::string& words,
                                         std::size_t waiting, bool others,
                                         std::chrono::system_clock::time_point now);
    // The notices due now for channels failing long enough since their last attempt.
    std::vector<ChannelNotice> poll(bool others, std::chrono::system_clock::time_point now);
    // When poll() may next have something to say; std::nullopt when no channel is failing
    // untold.
    std::optional<std::chrono::system_clock::time_point> next_check() const;

    const std::map<std::string, ChannelCondition>& conditions() const { return m_conditions; }

private:
    struct Track {
        ChannelCondition condition;
        std::optional<std::chrono::system_clock::time_point> last_down_notice;
    };
    std::optional<ChannelNotice> go_down(const std::string& key, Track& track, bool permanent,
                                         bool others,
                                         std::chrono::system_clock::time_point now) const;

    ChannelHealthSettings m_settings;
    std::map<std::string, Track> m_tracks;                // by key
    std::map<std::string, ChannelCondition> m_conditions; // by key, a copy for readers
};

// channel-health.state.json: the conditions of the channels that are failing, by key
// (working channels are left out). Pure.
std::string channel_health_to_json(const std::map<std::string, ChannelCondition>& conditions);
std::expected<std::map<std::string, ChannelCondition>, std::string>
channel_health_from_json(std::string_view text);

inline constexpr const char* k_channel_health_state = "channel-health";

class ChannelHealthMonitor {
public:
    // `notify` is called (no lock held, on the caller's or the monitor's thread) with each
    // notice; `others` says whether a channel other than the notice's exists. `store` may be
    // nullptr.
    // `on_attempt`, when set, is also told every attempt (no lock held; metrics).
    ChannelHealthMonitor(
        ChannelHealthSettings settings, std::size_t channels, StateStore* store,
        std::function<void(const ChannelNotice&)> notify,
        std::function<void(const std::string& key, const std::string& name, AttemptResult result)>
            on_attempt = {});
    ~ChannelHealthMonitor();
    ChannelHealthMonitor(const ChannelHealthMonitor&) = delete;
    ChannelHealthMonitor& operator=(const ChannelHealthMonitor&) = delete;

    // From a channel worker, after each attempt.
    void observe(const std::string& key, const std::string& name, AttemptResult result,
                 const std::string& words, std::size_t waiting);
    // A copy of every channel's condition seen so far, by key (heartbeat, metrics).
    std::map<std::string, ChannelCondition> conditions();
    void start();
    void stop();

private:
    void deliver(const std::vector<ChannelNotice>& notices);
    void save_locked();
    void run();

    std::function<void(const ChannelNotice&)> m_notify;
    std::function<void(const std::string&, const std::string&, AttemptResult)> m_on_attempt;
    StateStore* m_store;
    bool m_others;
    std::mutex m_mutex; // guards what follows; held across the small state-file write only
    std::condition_variable m_changed;
    ChannelHealth m_health;
    std::string m_saved; // the state file as last written
    bool m_stopping = false;
    std::thread m_thread;
};

} // namespace crashmail
