#pragma once
// The event loop: READY, read an event, decide, answer OK, hand any alert to the sink.

#include "alert/alert.hpp"
#include "app/crash_loop_monitor.hpp"
#include "delivery/dispatcher.hpp"
#include "protocol/reader.hpp"
#include "protocol/writer.hpp"
#include "selection/program_pattern.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_set>

namespace crashmail {

// The id of the alert an event raises: "s<serial>.<16 hex digits of SHA-256 over
// `instance`, the server, serial, event name and payload>". supervisord redelivers an event
// it got no answer for (crashmail killed mid-event) with the same serial and payload, so the
// redelivered alert has the same id, the same Message-ID and the same webhook idempotency
// key. `instance` names the supervisord run (parent_process_identity()): serials start at 0
// again when supervisord restarts, and a process may get the same pid again.
std::string event_alert_id(const Event& event, std::string_view instance);

struct ListenerSettings {
    Selection selection;
    std::vector<ProgramPattern> excludes;            // -x: never alert for these
    std::set<std::string> states{"EXITED", "FATAL"}; // --state: which new states alert
    bool expected = false;                           // --expected: expected exits alert too
    CrashLoopSettings loops;                         // flood control and recovery
    StateStore* state_store = nullptr;               // keeps the crash-loop stories
    // crashmail's own process (SUPERVISOR_PROCESS_NAME / SUPERVISOR_GROUP_NAME): its events
    // are ignored.
    std::string self_process;
    std::string self_group;
    AlertContext context;
    std::function<std::chrono::system_clock::time_point()> now = std::chrono::system_clock::now;
    std::string instance; // parent_process_identity(), mixed into alert ids
    std::function<std::string(const Event&, std::string_view instance)> alert_id = event_alert_id;
};

// What the listener makes of an event.
struct Verdict {
    enum class Kind {
        ignore, // not a process state change of a watched process
        alert,  // a state --state selects (EXITED: unexpected, or any with --expected)
        watch,  // another state change of a watched process (RUNNING ends crash loops)
    };
    Kind kind = Kind::ignore;
    ProcessStateChange change; // alert and watch
};

// What a state change is under `settings`: a process is watched when -p/-a select it, -x
// does not exclude it and it is not crashmail itself; a watched process's change alerts when
// --state (and for EXITED, expected or --expected) says so.
Verdict::Kind judge(const ProcessStateChange& change, const ListenerSettings& settings);

// Classifies `event` under `settings` (judge()). Payloads that do not parse are ignored
// (with a warning).
Verdict classify(const Event& event, const ListenerSettings& settings);

// The state change if classify() says alert, std::nullopt otherwise.
std::optional<ProcessStateChange> alert_worthy(const Event& event,
                                               const ListenerSettings& settings);

// Sees every event as it arrives and is told just before the event is answered
// (app/discard_monitor follows the pool serials this way). Both calls are on the event loop.
class EventObserver {
public:
    virtual ~EventObserver() = default;
    virtual void on_event(const Event& event) = 0;
    virtual void before_answer() = 0;
};

class Listener {
public:
    Listener(protocol::Reader& reader, protocol::Writer& writer, ListenerSettings settings,
             AlertSink& sink);

    // Serves events until the input ends. An event's alert is handed to the sink (which
    // stores it durably) before the event is answered "RESULT 2\nOK"; every event is
    // answered OK. Returns EX_OK at end of input, EX_PROTOCOL when the
    // input cannot be parsed (the stream is out of step; supervisord restarts the listener),
    // EX_IOERR when the channel to supervisord is gone. Never throws.
    int run();

    std::uint64_t events_seen() const { return m_events; }
    std::uint64_t alerts_raised() const { return m_monitor.submitted(); }
    // The crash-loop stories: the caller restores them and runs their clock.
    CrashLoopMonitor& monitor() { return m_monitor; }
    // `observer` (may be nullptr) must outlive run().
    void set_observer(EventObserver* observer) { m_observer = observer; }

private:
    // True the first time `serial` is seen; remembers the last k_remembered serials.
    bool first_sight(std::uint64_t serial);

    static constexpr std::size_t k_remembered = 4096;

    protocol::Reader& m_reader;
    protocol::Writer& m_writer;
    ListenerSettings m_settings;
    CrashLoopMonitor m_monitor;
    EventObserver* m_observer = nullptr;
    std::unordered_set<std::uint64_t> m_seen;
    std::deque<std::uint64_t> m_seen_order;
    std::uint64_t m_events = 0;
};

} // namespace crashmail
