#pragma once
// Events supervisord discarded: found from the pool serials on the event loop
// (event/pool_serials), their crashes recovered from supervisord's log on a thread of its
// own (supervisor/main_log, fed into the crash-loop stories as if their events had
// arrived), and people told through every channel, at most once per window
// (alert/discard_notice).
//
// The event loop's part is cheap and does no waiting: on_event() compares serials in memory,
// before_answer() rewrites the mark (one pwrite, MarkStore) so that a restart of crashmail
// is not mistaken for a gap, and a gap not yet recovered is kept in the mark until the
// thread has settled it in the "discards" state document (fsynced).

#include "alert/alert.hpp"
#include "alert/discard_notice.hpp"
#include "app/crash_loop_monitor.hpp"
#include "app/listener.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/mark_file.hpp"
#include "delivery/spool.hpp"
#include "event/pool_serials.hpp"
#include "event/process_state.hpp"
#include "supervisor/rpc_client.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace crashmail {

struct DiscardMonitorSettings {
    std::string instance;     // parent_process_identity(): which supervisord run
    std::string self_process; // SUPERVISOR_PROCESS_NAME
    std::string self_group;   // SUPERVISOR_GROUP_NAME: the listener's pool
    AlertContext context;
    std::chrono::seconds window{600}; // at most one notice per window (flood control's)
    // True when a crash of this process in this state would alert (-p/-a/-x, --state,
    // --expected): only those are recovered.
    std::function<bool(const ProcessStateChange&)> watched;
    // How far back before the event preceding a gap the log is read (events seen in that
    // time are known, so nothing is counted twice).
    std::chrono::seconds lookback{30};
    // How much of supervisord's log is read for one gap (at most the RPC's 8 MiB).
    std::int64_t log_bytes = 2 * 1024 * 1024;
    std::chrono::milliseconds rpc_timeout{2000}; // each call (a stop waits for at most two)
    // No mark yet, but the spool was used before (by a crashmail that kept none): the first
    // event starts the count, so that an upgrade is not taken for discarded events.
    bool first_event_is_baseline = false;
    std::function<std::chrono::system_clock::time_point()> now = std::chrono::system_clock::now;
};

class DiscardMonitor final : public EventObserver {
public:
    // `state`, `mark` and `rpc` may be nullptr (tests; no spool): then nothing is kept, or
    // nothing can be recovered. The references must outlive the monitor.
    DiscardMonitor(DiscardMonitorSettings settings, CrashLoopMonitor& loops, AlertSink& sink,
                   StateStore* state, MarkStore* mark, std::unique_ptr<SupervisorRpc> rpc);
    ~DiscardMonitor() override;
    DiscardMonitor(const DiscardMonitor&) = delete;
    DiscardMonitor& operator=(const DiscardMonitor&) = delete;

    // Reads what an earlier crashmail kept: the mark (a gap it had not settled is recovered
    // now) and the notices' window. Call before start().
    void restore();
    // Starts / stops the thread that recovers gaps and sends notices. stop() lets the gap in
    // hand finish; gaps still waiting stay in the mark for the next start.
    void start();
    void stop();

    // The event loop: an event arrived (its serials are compared; after a gap, the event
    // itself says where the gap ends in supervisord's log). Cheap; never waits on I/O.
    void on_event(const Event& event) override;
    // The event loop, before the event is answered: keeps the mark (one pwrite).
    void before_answer() override;

    // What was found so far (for the log at the end and tests).
    DiscardTotals totals() const;
    // Drains: waits until every gap found so far is settled (tests).
    void wait_idle();

    // The event after a gap, as supervisord's log names it: the gap's crashes were logged
    // before its line (events still in supervisord's buffer were logged after it).
    struct GapEnd {
        std::string state; // "EXITED", "RUNNING", ...
        std::string process;
        std::optional<std::int64_t> pid;
    };

private:
    void run(const std::stop_token& stop);
    // Recovers one gap's crashes: returns the report for the notice.
    DiscardReport recover(const SerialGap& gap, const std::optional<GapEnd>& end);
    // The discards document's text; with m_mutex held.
    std::string state_text() const;
    void send(const DiscardNotice& notice);
    // Asks supervisord once whether the pool has more than one listener.
    void check_pool();

    DiscardMonitorSettings m_settings;
    CrashLoopMonitor& m_loops;
    AlertSink& m_sink;
    StateStore* m_state;
    MarkStore* m_mark;
    std::unique_ptr<SupervisorRpc> m_rpc;

    mutable std::mutex m_mutex; // guards what follows; never held across I/O
    std::condition_variable_any m_wake;
    PoolSerials m_serials;
    SerialGap m_pending;                 // found, not yet taken by the thread (count 0: none)
    std::optional<GapEnd> m_pending_end; // the event after the newest of them
    // An earlier crashmail's last event: what it saw is not in this one's ledger, so no
    // recovery reaches back before it.
    std::optional<std::chrono::system_clock::time_point> m_floor;
    SerialGap m_in_hand;              // taken, being recovered (count 0: none)
    std::uint64_t m_settled_last = 0; // the last pool serial of the last gap settled
    bool m_mark_dirty = false;
    bool m_mark_failed = false; // told once
    bool m_shared_pool = false; // numprocs > 1: gaps are not losses
    DiscardNotices m_notices;
    std::string m_pool; // from the events' headers
    std::jthread m_thread;
};

// The crashes a chunk of supervisord's log shows in (since, until], as story events of
// watched processes: `groups` maps a process name to its group (supervisord's log names the
// process alone); a name not in it is taken as its own group. Pure.
std::vector<StoryEvent> logged_crashes(
    const struct MainLog& log, std::optional<std::chrono::system_clock::time_point> since,
    std::chrono::system_clock::time_point until,
    const std::function<std::optional<std::string>(const std::string&)>& group_of,
    const std::function<bool(const ProcessStateChange&)>& watched, std::string_view instance);

} // namespace crashmail
