#include "app/crash_loop_monitor.hpp"

#include "util/json_text.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

namespace crashmail {
namespace {

constexpr std::string_view k_state_name = "crash-loops";
// The clock looks at least this often (the wall clock may jump).
constexpr std::chrono::seconds k_clock_period{1};

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

std::size_t CrashLoopMonitor::submit(const std::vector<Emission>& emissions) {
    std::size_t count = 0;
    for (const Emission& emission : emissions) {
        std::string id = emission.kind == AlertKind::alert && !emission.event.id.empty()
                             ? emission.event.id
                             : emission_id(emission, m_settings.instance);
        Alert alert = emission_alert(emission, m_settings.context, m_settings.now(), id);
        const std::string name = display_name(alert.group, alert.process);
        if (emission.kind == AlertKind::summary) {
            log::info("{}: {} events counted by flood control: summary {}", name,
                      emission.suppressed, alert.id);
        } else if (emission.kind == AlertKind::recovery) {
            log::info("{} recovered: {} {}", name, emission.notify ? "notice" : "resolve",
                      alert.id);
        } else {
            log::info("{} {} (pid {}, from state {}, event {} of its story): alert {}", name,
                      alert.state == "EXITED"
                          ? (alert.expected.value_or(false) ? "exited" : "exited unexpectedly")
                          : "entered " + alert.state,
                      alert.pid ? std::to_string(*alert.pid) : "unknown", alert.from_state,
                      emission.occurrence, alert.id);
        }
        m_sink.submit(alert);
        ++count;
    }
    m_submitted += count;
    return count;
}

void CrashLoopMonitor::save(Durability durability) {
    if (m_state == nullptr) {
        return;
    }
    m_unsynced = durability == Durability::process;
    if (auto saved = m_state->save_state(k_state_name, json_text(m_loops.to_json()), durability);
        !saved) {
        log::error("cannot save the crash-loop state ({}); counts since the last save are "
                   "lost if crashmail stops before the next save",
                   saved.error());
    }
}

std::size_t CrashLoopMonitor::count_event(const StoryEvent& story) {
    std::vector<Emission> emissions = m_loops.on_alert_event(story, m_settings.now());
    bool counted = emissions.empty() || emissions.back().kind != AlertKind::alert ||
                   emissions.back().event.id != story.id;
    std::size_t count = submit(emissions);
    if (counted) {
        log::info("{} {}{}: counted by flood control (no alert)",
                  display_name(story.group, story.process), story.state,
                  story.logged_at ? " (recovered from supervisord's log)" : "");
    }
    return count;
}

namespace {

LedgerEntry ledger_entry(const StoryEvent& story) {
    return {story.group, story.process, story.state, story.pid};
}

} // namespace

std::size_t CrashLoopMonitor::on_alert_event(const Event& event, const ProcessStateChange& change) {
    std::lock_guard lock(m_mutex);
    StoryEvent story = story_event(event, change);
    story.id = m_settings.alert_id(event, m_settings.instance);
    if (m_ledger.arrived(ledger_entry(story), m_settings.now())) {
        log::info("{} {} (pid {}): recovered from supervisord's log already; not counted again",
                  display_name(change.group_name, change.process_name), change.state,
                  change.pid ? std::to_string(*change.pid) : "unknown");
        return 0;
    }
    std::size_t count = count_event(story);
    // Every change must survive a crash of crashmail (flood control would start over and a
    // recovery notice would be lost); the clock thread makes it survive one of the machine
    // (an fsync here would hold up supervisord for milliseconds per event, in a crash storm
    // of all times).
    save(Durability::process);
    ++m_changes;
    m_wake.notify_all();
    return count;
}

std::map<std::string, std::uint64_t>
CrashLoopMonitor::on_recovered(const std::vector<StoryEvent>& crashes) {
    std::map<std::string, std::uint64_t> recovered;
    std::lock_guard lock(m_mutex);
    for (const StoryEvent& story : crashes) {
        if (!story.logged_at ||
            !m_ledger.recovered(ledger_entry(story), *story.logged_at, m_settings.now())) {
            continue; // its event arrived, or it was recovered before
        }
        count_event(story);
        ++recovered[display_name(story.group, story.process)];
    }
    if (!recovered.empty()) {
        save(Durability::process);
        ++m_changes;
        m_wake.notify_all();
    }
    return recovered;
}

void CrashLoopMonitor::on_other_event(const Event& event, const ProcessStateChange& change) {
    std::lock_guard lock(m_mutex);
    if (m_loops.on_other_event(story_event(event, change), m_settings.now())) {
        save(Durability::process);
        ++m_changes;
        m_wake.notify_all();
    }
}

std::size_t CrashLoopMonitor::tick() {
    std::lock_guard lock(m_mutex);
    std::vector<Emission> emissions = m_loops.due(m_settings.now());
    if (emissions.empty()) {
        return 0;
    }
    std::size_t count = submit(emissions);
    save(Durability::disk);
    return count;
}

std::size_t CrashLoopMonitor::submitted() const {
    std::lock_guard lock(m_mutex);
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
    std::lock_guard lock(m_mutex);
    save(Durability::disk);
}

void CrashLoopMonitor::clock_loop(const std::stop_token& stop) {
    using namespace std::chrono;
    auto last_sync = steady_clock::now() - k_clock_period;
    while (!stop.stop_requested()) {
        tick();
        std::unique_lock lock(m_mutex);
        if (m_unsynced && m_state != nullptr && steady_clock::now() >= last_sync + k_clock_period) {
            // fsync what the event loop wrote, at most once a second and without holding it
            // up: a newer write meanwhile sets m_unsynced again and is synced next time.
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
        const std::uint64_t seen = m_changes;
        if (wait) {
            m_wake.wait_for(lock, stop, *wait, [&] { return m_changes != seen; });
        } else {
            m_wake.wait(lock, stop, [&] { return m_changes != seen; });
        }
    }
}

} // namespace crashmail
