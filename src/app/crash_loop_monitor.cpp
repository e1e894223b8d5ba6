#include "app/crash_loop_monitor.hpp"

#include "util/json_text.hpp"
#include "util/log.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>

namespace crashmail {
namespace {

constexpr std::string_view k_state_name = "crash-loops";
// The clock looks at least this often (the wall clock may jump).
constexpr std::chrono::seconds k_clock_period{1};
// The clock writes the stories an alerted crash changed at most this often (unsynced).
constexpr std::chrono::milliseconds k_follow_period{50};

} // namespace

StoryEvent story_event(const Event& event, const ProcessStateChange& change) {
    StoryEvent out;
    out.group = change.group_name;
    out.process = change.process_name;
    out.state = change.state;
    out.from_state = change.from_state;
    out.expected = change.expected.value_or(false);
    out.pid = change.pid;
    out.event_name = event.header.event_name;
    out.serial = event.header.serial;
    return out;
}

CrashLoopMonitor::CrashLoopMonitor(CrashLoopMonitorSettings settings, AlertSink& sink,
                                   StateStore* state)
    : m_settings(std::move(settings)), m_sink(sink), m_state(state), m_loops(m_settings.loops) {}

CrashLoopMonitor::~CrashLoopMonitor() {
    if (m_clock.joinable()) {
        m_clock.request_stop();
        m_wake.notify_all();
        m_clock.join();
    }
}

std::size_t CrashLoopMonitor::restore() {
    if (m_state == nullptr) {
        return 0;
    }
    auto text = m_state->load_state(k_state_name);
    if (!text) {
        log::error("cannot read the crash-loop state ({}); starting afresh", text.error());
        return 0;
    }
    if (!text->has_value()) {
        return 0;
    }
    auto document = nlohmann::json::parse(**text, nullptr, false);
    std::lock_guard lock(m_mutex);
    if (auto restored = m_loops.restore(document); !restored) {
        log::error("cannot use the crash-loop state ({}); starting afresh", restored.error());
        return 0;
    }
    return m_loops.story_count();
}

void CrashLoopMonitor::prepare(const std::vector<Emission>& emissions, std::vector<Outgoing>& out) {
    for (const Emission& emission : emissions) {
        std::string id = emission.kind == AlertKind::alert && !emission.event.id.empty()
                             ? emission.event.id
                             : emission_id(emission, m_settings.instance);
        Alert alert = emission_alert(emission, m_settings.context, m_settings.now(), id);
        const std::string name = display_name(alert.group, alert.process);
        std::string line;
        if (emission.kind == AlertKind::summary) {
            line = fmt::format("{}: {} events counted by flood control: summary {}", name,
                               emission.suppressed, alert.id);
        } else if (emission.kind == AlertKind::recovery) {
            line = fmt::format("{} recovered: {} {}", name, emission.notify ? "notice" : "resolve",
                               alert.id);
        } else {
            line = fmt::format(
                "{} {} (pid {}, from state {}, event {} of its story): alert {}", name,
                alert.state == "EXITED"
                    ? (alert.expected.value_or(false) ? "exited" : "exited unexpectedly")
                    : "entered " + alert.state,
                alert.pid ? std::to_string(*alert.pid) : "unknown", alert.from_state,
                emission.occurrence, alert.id);
        }
        out.push_back({std::move(line), std::move(alert)});
        ++m_unsent;
    }
}

std::size_t CrashLoopMonitor::send(const std::vector<Outgoing>& out) {
    std::size_t count = 0;
    for (const Outgoing& item : out) {
        log::line(item.line);
        if (item.alert) {
            m_sink.submit(*item.alert);
            ++count;
        }
    }
    m_submitted += count;
    if (count > 0) {
        std::lock_guard lock(m_mutex);
        m_unsent -= count;
    }
    return count;
}

void CrashLoopMonitor::persist(Durability durability, bool wait, bool always) {
    if (m_state == nullptr) {
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        m_wanted = std::max(m_wanted, m_version); // this caller's change, to be written now
    }
    for (;;) {
        std::unique_lock writer(m_save_mutex, std::defer_lock);
        if (wait) {
            writer.lock();
        } else if (!writer.try_lock()) {
            // The holder writes this change after its own: it looks again before it lets go
            // of the writer lock, and once more after.
            return;
        }
        write_newest(durability, always, false);
        always = false;
        writer.unlock();
        // A change wanted after write_newest() last looked, whose try_lock then failed, is
        // this thread's to write (unless alerts are still being submitted: their thread
        // persists when it is done).
        std::lock_guard lock(m_mutex);
        if (m_written >= m_wanted || m_unsent > 0) {
            return;
        }
    }
}

void CrashLoopMonitor::follow_up() {
    {
        std::lock_guard writer(m_save_mutex);
        write_newest(Durability::process, false, true);
    }
    bool wanted = false;
    {
        std::lock_guard lock(m_mutex);
        wanted = m_written < m_wanted && m_unsent == 0;
    }
    if (wanted) {
        persist(Durability::process, true); // a try_lock failed while this one wrote
    }
}

void CrashLoopMonitor::write_newest(Durability durability, bool always, bool once) {
    for (bool first = true;; first = false) {
        std::string text;
        std::uint64_t version = 0;
        {
            std::lock_guard lock(m_mutex);
            // Stories that say an alert was sent are written only once it is in the outbox:
            // its thread persists after submitting it.
            if (m_unsent > 0) {
                return;
            }
            // Written: what a caller wants now (m_wanted), and, once, the newest. Changes that
            // only the clock's follow-up wants (alerted crashes) do not keep a writer writing
            // while a burst goes on: the follow-up takes them every k_follow_period.
            const bool wanted = m_written < m_wanted;
            const bool newest = first && once && m_written != m_version;
            if (!always && !wanted && !newest) {
                return;
            }
            text = json_text(m_loops.to_json());
            version = m_version;
        }
        always = false;
        auto saved = m_state->save_state(k_state_name, text, durability);
        if (!saved) {
            log::error("cannot save the crash-loop state ({}); counts since the last save are "
                       "lost if crashmail stops before the next save",
                       saved.error());
        }
        {
            std::lock_guard lock(m_mutex);
            m_written = version;
            if (saved) {
                // Writes never overlap (m_save_mutex): this one is on top.
                m_unsynced = durability == Durability::process;
            }
        }
        m_wake.notify_all(); // the clock syncs what is unsynced
    }
}

bool CrashLoopMonitor::count_event(const StoryEvent& story, std::vector<Outgoing>& out) {
    std::vector<Emission> emissions = m_loops.on_alert_event(story, m_settings.now());
    bool counted = emissions.empty() || emissions.back().kind != AlertKind::alert ||
                   emissions.back().event.id != story.id;
    prepare(emissions, out);
    // One line per process and window, not one per counted crash: the first one counted says
    // until when, the window's summary (or the FATAL alert, the recovery notice) how many.
    const auto counting = m_loops.counting(story.group, story.process);
    if (counted && counting && counting->counted == 1) {
        const std::string name = display_name(story.group, story.process);
        out.push_back({fmt::format("{} {}{}: counted by flood control (no alert); further "
                                   "crashes of {} are counted until {}, then summarised",
                                   name, story.state,
                                   story.logged_at ? " (recovered from supervisord's log)" : "",
                                   name, timefmt::clock_local(counting->until)),
                       std::nullopt});
    }
    // Even with nothing raised the story changed (a count, an event id, a window).
    ++m_version;
    return counted;
}

namespace {

LedgerEntry ledger_entry(const StoryEvent& story) {
    return {story.group, story.process, story.state, story.pid};
}

} // namespace

std::size_t CrashLoopMonitor::on_alert_event(const Event& event, const ProcessStateChange& change) {
    std::vector<Outgoing> out;
    bool counted = false;
    {
        std::lock_guard lock(m_mutex);
        StoryEvent story = story_event(event, change);
        story.id = m_settings.alert_id(event, m_settings.instance);
        if (m_ledger.arrived(ledger_entry(story), m_settings.now())) {
            out.push_back(
                {fmt::format("{} {} (pid {}): recovered from supervisord's log already; not "
                             "counted again",
                             display_name(change.group_name, change.process_name), change.state,
                             change.pid ? std::to_string(*change.pid) : "unknown"),
                 std::nullopt});
        } else {
            counted = count_event(story, out);
        }
    }
    // The alert first, then the story that says it was sent.
    std::size_t count = send(out);
    // A counted crash exists nowhere but in the stories: they are written before the answer,
    // so that it survives any crash of crashmail (no fsync: the clock thread syncs within a
    // second, off the event loop; an fsync here would hold up supervisord for milliseconds
    // per event, in a crash storm of all times). An alerted crash is in the outbox already
    // (fsynced): its story follows from the clock thread within k_follow_period, so that a
    // burst of alerts costs one durable write each and the stories a few writes in all. A
    // crash of crashmail meanwhile only makes the story forget that alert, so that the next
    // crash may be alerted where it would have been counted: more told, nothing lost. The
    // clock is woken after the write, not to compete with it.
    if (counted) {
        persist(Durability::process, false);
    }
    m_wake.notify_all();
    return count;
}

std::map<std::string, std::uint64_t>
CrashLoopMonitor::on_recovered(const std::vector<StoryEvent>& crashes) {
    std::map<std::string, std::uint64_t> recovered;
    std::vector<Outgoing> out;
    {
        std::lock_guard lock(m_mutex);
        for (const StoryEvent& story : crashes) {
            if (!story.logged_at ||
                !m_ledger.recovered(ledger_entry(story), *story.logged_at, m_settings.now())) {
                continue; // its event arrived, or it was recovered before
            }
            count_event(story, out);
            ++recovered[display_name(story.group, story.process)];
        }
    }
    if (!recovered.empty()) {
        send(out);
        persist(Durability::process, false);
        m_wake.notify_all();
    }
    return recovered;
}

void CrashLoopMonitor::on_other_event(const Event& event, const ProcessStateChange& change) {
    {
        std::lock_guard lock(m_mutex);
        if (!m_loops.on_other_event(story_event(event, change), m_settings.now())) {
            return;
        }
        ++m_version;
    }
    persist(Durability::process, false);
    m_wake.notify_all();
}

std::size_t CrashLoopMonitor::tick() {
    std::vector<Outgoing> out;
    {
        std::lock_guard lock(m_mutex);
        std::vector<Emission> emissions = m_loops.due(m_settings.now());
        if (emissions.empty()) {
            return 0;
        }
        prepare(emissions, out);
        ++m_version;
    }
    std::size_t count = send(out);
    persist(Durability::disk, true);
    return count;
}

std::size_t CrashLoopMonitor::submitted() const {
    return m_submitted;
}

void CrashLoopMonitor::start_clock() {
    m_clock = std::jthread([this](const std::stop_token& stop) { clock_loop(stop); });
}

void CrashLoopMonitor::stop_clock() {
    if (m_clock.joinable()) {
        m_clock.request_stop();
        m_wake.notify_all();
        m_clock.join();
    }
    persist(Durability::disk, true, true);
}

void CrashLoopMonitor::clock_loop(const std::stop_token& stop) {
    using namespace std::chrono;
    auto last_sync = steady_clock::now() - k_clock_period;
    auto last_follow = steady_clock::now() - k_follow_period;
    while (!stop.stop_requested()) {
        tick();
        std::unique_lock lock(m_mutex);
        // What the event loop left to the clock (the stories of alerted crashes), coalesced:
        // a burst of alerts is written once per k_follow_period. While a thread is submitting
        // (m_unsent), that thread writes when it is done.
        auto left = [&] { return m_state != nullptr && m_written != m_version && m_unsent == 0; };
        if (left() && steady_clock::now() >= last_follow + k_follow_period) {
            last_follow = steady_clock::now();
            lock.unlock();
            follow_up();
            lock.lock();
        }
        if (m_unsynced && m_state != nullptr && steady_clock::now() >= last_sync + k_clock_period) {
            // fsync what the event loop wrote, at most once a second and without holding it
            // up (nor the writer lock): a write meanwhile sets m_unsynced again once it is
            // done, and is synced next time.
            m_unsynced = false;
            last_sync = steady_clock::now();
            lock.unlock();
            if (auto synced = m_state->sync_state(k_state_name); !synced) {
                log::error("cannot sync the crash-loop state to disk ({})", synced.error());
            }
            lock.lock();
        }
        // Sleep until something falls due (at most a second at a time: the wall clock may
        // jump), or, with no story and nothing to sync, until an event changes that.
        std::optional<milliseconds> wait;
        if (auto next = m_loops.next_due()) {
            auto until = duration_cast<milliseconds>(*next - m_settings.now());
            wait = std::clamp(until + milliseconds(5), milliseconds(5),
                              duration_cast<milliseconds>(k_clock_period));
        }
        if (m_unsynced) {
            auto until =
                duration_cast<milliseconds>(last_sync + k_clock_period - steady_clock::now());
            auto sync_wait = std::max(until, milliseconds(1));
            wait = wait ? std::min(*wait, sync_wait) : sync_wait;
        }
        const bool following = left();
        if (following) {
            auto until =
                duration_cast<milliseconds>(last_follow + k_follow_period - steady_clock::now());
            auto follow_wait = std::max(until, milliseconds(1));
            wait = wait ? std::min(*wait, follow_wait) : follow_wait;
        }
        // While a write is left to it, the clock sleeps out k_follow_period even when more
        // events arrive (each one would wake it, a thousand times in a burst): what they make
        // due is looked at then, at most k_follow_period late.
        const std::uint64_t seen = m_version;
        const bool unsynced = m_unsynced;
        auto changed = [&] { return (!following && m_version != seen) || m_unsynced != unsynced; };
        if (wait) {
            m_wake.wait_for(lock, stop, *wait, changed);
        } else {
            m_wake.wait(lock, stop, changed);
        }
    }
}

} // namespace crashmail
