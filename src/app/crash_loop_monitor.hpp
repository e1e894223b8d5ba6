#pragma once
// Runs the crash-loop stories (alert/crash_loop) for the listener: turns events into alerts,
// summaries and recovery notices, hands them to the sink, keeps the stories in a StateStore
// so that what flood control counted survives a crash, and runs a clock thread that sends
// summaries and recovery notices when they fall due, with no event needed to wake it.
//
// Threads: the event loop calls on_alert_event() and on_other_event(), the discard monitor's
// thread on_recovered(), the clock thread tick() and the syncs. m_mutex guards the stories.
// No thread but the event loop may hold it across I/O (a write, fsync, rename or unlink;
// AlertSink::submit() and logging included), so supervisord's answer never waits behind
// another thread's disk: the other threads decide under it, let go, then log, submit and
// save. (The event loop lets go before its I/O too: the clock need not wait for it.)
//
// Saving: every change bumps a version under m_mutex. Whoever wants the stories saved takes
// the writer lock, m_save_mutex (try_lock on the event loop and the discard monitor's
// thread; the clock thread and stop_clock() wait for it), and writes the newest stories,
// serialised briefly under m_mutex, and again while a version some caller wants written
// (m_wanted, raised before its try_lock) is not; after letting go of the writer lock it
// looks once more, so a change whose try_lock failed is written all the same. The stories of
// alerted crashes are wanted by nobody but the clock's follow-up, which writes the newest
// once per k_follow_period: a burst does not keep any writer writing. Writes never overlap and each
// writes what was newest when it began: an older snapshot never overwrites a newer one. Stories
// that say an alert was sent are not written before the alert is submitted (a crash between the two
// would lose it): while a thread is submitting, nobody writes, and that thread saves when it is
// done. sync_state() may run while another thread is inside save_state() (DirectorySpool writes
// each version to a file of its own and renames it).

#include "alert/crash_loop.hpp"
#include "alert/event_ledger.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/spool.hpp"
#include "event/event.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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
    // `state` may be nullptr (the stories then live in memory only). `sink` is called from
    // the event loop, the clock thread and the discard monitor's thread, possibly at once (the
    // Dispatcher allows it). A summary or recovery notice the clock thread decided on may
    // reach it just after an alert the event loop submitted meanwhile.
    CrashLoopMonitor(CrashLoopMonitorSettings settings, AlertSink& sink, StateStore* state);
    // Stops the clock thread.
    ~CrashLoopMonitor();
    CrashLoopMonitor(const CrashLoopMonitor&) = delete;
    CrashLoopMonitor& operator=(const CrashLoopMonitor&) = delete;

    // Reads the stories an earlier run kept. Returns how many there were.
    std::size_t restore();

    // An alert-worthy event: submits what it raises (alerts, and summaries that fell due).
    // When flood control counted the crash (no alert of its own), the stories are written
    // (no fsync) before this returns, so that the count survives any crash of crashmail, and
    // the clock thread fsyncs them within a second, off the event loop, against a crash of
    // the machine. When the crash was alerted, its alert is in the outbox already and the
    // clock thread writes the story within 50 ms (a burst of alerts: every 50 ms), so that
    // an alert costs the event loop one durable write and nothing more; a crash of crashmail
    // in between makes the story forget that alert (the next crash may be alerted rather
    // than counted: more told, nothing lost). One exception, rare: when another thread (the
    // clock or the discard monitor's) is writing the stories, or submitting what they
    // raised, at that very moment, this returns without waiting for it, and that thread
    // writes this newer version right after (until then, a matter of milliseconds, a crash
    // of crashmail loses the change: the event is answered, supervisord does not send it
    // again). The event loop never waits for another thread's disk. An event whose crash was
    // recovered from supervisord's log already (see on_recovered()) is not counted again.
    // Returns the number of alerts submitted.
    std::size_t on_alert_event(const Event& event, const ProcessStateChange& change);
    // Any other state change of a watched process (RUNNING starts the recovery clock); saved
    // as on_alert_event() saves.
    void on_other_event(const Event& event, const ProcessStateChange& change);
    // Crashes recovered from supervisord's log (their events were discarded), each with
    // logged_at and a stable id: each one that no arrived event accounts for is alerted or
    // counted exactly like its event would have been. Returns those, by display name. Holds
    // nothing the event loop needs while it submits and saves.
    std::map<std::string, std::uint64_t> on_recovered(const std::vector<StoryEvent>& crashes);
    // Submits whatever is due now, then saves the stories to disk (fsync), holding nothing
    // the event loop needs meanwhile. Returns the number of messages submitted.
    std::size_t tick();

    // Starts / stops the thread that calls tick() when something falls due. stop_clock()
    // also saves the stories to disk (the newest, even when another thread was writing).
    void start_clock();
    void stop_clock();

    std::size_t submitted() const;

private:
    // What a change sends, decided under m_mutex and sent after: a log line, and the alert
    // it tells of (none for a line alone).
    struct Outgoing {
        std::string line;
        std::optional<Alert> alert;
    };
    // With m_mutex held: the alerts of `emissions`, each with its log line, onto `out`.
    void prepare(const std::vector<Emission>& emissions, std::vector<Outgoing>& out);
    // With m_mutex held: runs one alert-worthy story event through flood control; what it
    // raises, and a line when it is counted, go onto `out`. Returns whether it was counted
    // (no alert of its own).
    bool count_event(const StoryEvent& story, std::vector<Outgoing>& out);
    // Without m_mutex: logs and submits `out`. Returns the number of alerts submitted.
    std::size_t send(const std::vector<Outgoing>& out);
    // Without m_mutex (see "Saving" above): writes the newest stories with `durability` if
    // they changed since the last write (with `always`, anyway), again while they change
    // meanwhile. `wait`: waits for the writer lock; otherwise, when another thread holds it,
    // leaves the write to that thread.
    void persist(Durability durability, bool wait, bool always = false);
    // With m_save_mutex held, without m_mutex: the write loop of persist(): writes while a
    // caller wants a version not written yet (m_wanted), with `always` once anyway, with
    // `once` the newest stories once.
    void write_newest(Durability durability, bool always, bool once);
    // The clock thread's write of what the event loop left to it (the stories of alerted
    // crashes): the newest stories, once (no fsync).
    void follow_up();
    void clock_loop(const std::stop_token& stop);

    CrashLoopMonitorSettings m_settings;
    AlertSink& m_sink;
    StateStore* m_state;
    mutable std::mutex m_mutex; // the stories and what follows, to m_unsynced
    CrashLoops m_loops;
    EventLedger m_ledger; // the crashes counted lately, by event or from supervisord's log
    // Bumped on every change of m_loops: what there is to write, and what wakes the clock.
    std::uint64_t m_version = 0;
    std::uint64_t m_written = 0; // the version last written (or tried: the error is logged)
    std::uint64_t m_wanted = 0;  // the newest version a persist() caller wants written now
    bool m_unsynced = false;     // written for a crash of crashmail, not yet for the machine's
    std::size_t m_unsent = 0;    // alerts decided on (prepare()), not yet submitted (send())
    std::mutex m_save_mutex;     // the writer lock: one save_state() at a time
    std::atomic<std::size_t> m_submitted{0};
    std::condition_variable_any m_wake;
    std::jthread m_clock;
};

// Converts a process state change to what a story keeps of it.
StoryEvent story_event(const Event& event, const ProcessStateChange& change);

} // namespace crashmail
