#pragma once
// Runs the crash-loop stories (alert/crash_loop) for the listener: turns events into alerts,
// summaries and recovery notices, hands them to the sink, keeps the stories in a StateStore
// so that what flood control counted survives a crash, and runs a clock thread that sends
// summaries and recovery notices when they fall due, with no event needed to wake it.

#include "alert/crash_loop.hpp"
#include "alert/event_ledger.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/spool.hpp"
#include "event/event.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace crashmail {

struct CrashLoopMonitorSettings {
    CrashLoopSettings loops;
    AlertContext context;
    std::string instance; // parent_process_identity(), mixed into ids
    std::function<std::chrono::system_clock::time_point()> now = std::chrono::system_clock::now;
    // The id of an event's alert (event_alert_id()).
    std::function<std::string(const Event&, std::string_view instance)> alert_id;
};

class CrashLoopMonitor {
public:
    // `state` may be nullptr (the stories then live in memory only).
    CrashLoopMonitor(CrashLoopMonitorSettings settings, AlertSink& sink, StateStore* state);
    // Stops the clock thread.
    ~CrashLoopMonitor();
    CrashLoopMonitor(const CrashLoopMonitor&) = delete;
    CrashLoopMonitor& operator=(const CrashLoopMonitor&) = delete;

    // Reads the stories an earlier run kept. Returns how many there were.
    std::size_t restore();

    // An alert-worthy event: submits what it raises (alerts, and summaries that fell due).
    // The stories are written (no fsync) whenever they change, before this returns, so that
    // what flood control counted and alerted survives any crash of crashmail, and the clock
    // thread fsyncs them within a second, off the event loop, against a crash of the
    // machine. An event whose crash was recovered from supervisord's log already (see
    // on_recovered()) is not counted again. Returns the number of alerts submitted.
    std::size_t on_alert_event(const Event& event, const ProcessStateChange& change);
    // Any other state change of a watched process (RUNNING starts the recovery clock).
    void on_other_event(const Event& event, const ProcessStateChange& change);
    // Crashes recovered from supervisord's log (their events were discarded), each with
    // logged_at and a stable id: each one that no arrived event accounts for is alerted or
    // counted exactly like its event would have been. Returns those, by display name.
    std::map<std::string, std::uint64_t> on_recovered(const std::vector<StoryEvent>& crashes);
    // Submits whatever is due now. Returns the number of messages submitted.
    std::size_t tick();

    // Starts / stops the thread that calls tick() when something falls due. stop_clock()
    // also saves the stories.
    void start_clock();
    void stop_clock();

    std::size_t submitted() const;

private:
    // With m_mutex held.
    std::size_t submit(const std::vector<Emission>& emissions);
    // Runs one alert-worthy story event through flood control and submits what it raises;
    // logs when it is counted. Returns the number of messages submitted.
    std::size_t count_event(const StoryEvent& story);
    void save(Durability durability);
    void clock_loop(const std::stop_token& stop);

    CrashLoopMonitorSettings m_settings;
    AlertSink& m_sink;
    StateStore* m_state;
    mutable std::mutex m_mutex;
    CrashLoops m_loops;
    EventLedger m_ledger; // the crashes counted lately, by event or from supervisord's log
    std::size_t m_submitted = 0;
    std::condition_variable_any m_wake;
    std::uint64_t m_changes = 0; // bumped (under m_mutex) to wake the clock
    bool m_unsynced = false;     // saved for a crash of crashmail, not yet for the machine's
    std::jthread m_clock;
};

// Converts a process state change to what a story keeps of it.
StoryEvent story_event(const Event& event, const ProcessStateChange& change);

} // namespace crashmail
