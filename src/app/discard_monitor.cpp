#include "app/discard_monitor.hpp"

#include "event/process_state.hpp"
#include "supervisor/main_log.hpp"
#include "util/hash.hpp"
#include "util/json_text.hpp"
#include "util/log.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <ranges>

namespace crashmail {
namespace {

using time_point = std::chrono::system_clock::time_point;

constexpr std::string_view k_state_name = "discards";

std::int64_t to_ms(time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

time_point from_ms(std::int64_t ms) {
    return time_point(std::chrono::milliseconds(ms));
}

std::string from_state_of(std::string_view state) {
    if (state == "EXITED") {
        return "RUNNING";
    }
    if (state == "BACKOFF") {
        return "STARTING";
    }
    return "BACKOFF"; // FATAL
}

std::string serial_span(const SerialGap& gap) {
    if (gap.first == gap.last) {
        return fmt::format("pool serial {}", gap.first);
    }
    // Gaps found one after the other are recovered together: their span holds events that
    // did arrive.
    const bool whole = gap.last >= gap.first && gap.last - gap.first + 1 == gap.count;
    return fmt::format("pool serials {}{} to {}", whole ? "" : "within ", gap.first, gap.last);
}

bool is_utf8_window_error(const RpcError& error) {
    return error.kind == RpcError::Kind::http && error.http_status == 500;
}

} // namespace

std::optional<time_point> logged_end(const MainLog& log, const DiscardMonitor::GapEnd& end) {
    const bool start = end.state == "STARTING" || end.state == "RUNNING";
    const std::vector<LoggedTransition>& lines = start ? log.starts : log.transitions;
    for (const LoggedTransition& line : std::views::reverse(lines)) {
        if (line.process != end.process) {
            continue;
        }
        if (end.pid && line.pid && (!start || line.state == end.state)) {
            if (*line.pid == *end.pid) {
                return line.time; // the very line (an exit is EXITED or BACKOFF by the log)
            }
            continue;
        }
        if (line.state == end.state) {
            return line.time; // the latest of its kind: never earlier than the event's own
        }
    }
    return std::nullopt;
}

std::vector<StoryEvent>
logged_crashes(const MainLog& log, std::optional<time_point> since, time_point until,
               const std::function<std::optional<std::string>(const std::string&)>& group_of,
               const std::function<bool(const ProcessStateChange&)>& watched,
               std::string_view instance) {
    std::vector<StoryEvent> out;
    for (const LoggedTransition& logged : log.transitions) {
        if ((since && logged.time <= *since) || logged.time > until) {
            continue;
        }
        ProcessStateChange change;
        change.state = logged.state;
        change.process_name = logged.process;
        change.group_name = group_of(logged.process).value_or(logged.process);
        change.from_state = from_state_of(logged.state);
        change.pid = logged.pid;
        if (logged.state == "EXITED") {
            change.expected = logged.expected;
        }
        if (watched && !watched(change)) {
            continue;
        }
        StoryEvent story;
        story.group = change.group_name;
        story.process = change.process_name;
        story.state = change.state;
        story.from_state = change.from_state;
        story.expected = change.expected.value_or(false);
        story.pid = change.pid;
        story.event_name = "PROCESS_STATE_" + change.state;
        story.serial = 0;
        story.logged_at = logged.time;
        story.id = "g" + sha256_hex(fmt::format("{}\n{}\n{}\n{}\n{}\n{}", instance, story.group,
                                                story.process, story.state,
                                                story.pid ? *story.pid : -1, to_ms(logged.time)),
                                    8);
        out.push_back(std::move(story));
    }
    return out;
}

DiscardMonitor::DiscardMonitor(DiscardMonitorSettings settings, CrashLoopMonitor& loops,
                               AlertSink& sink, StateStore* state, MarkStore* mark,
                               std::unique_ptr<SupervisorRpc> rpc)
    : m_settings(std::move(settings)), m_loops(loops), m_sink(sink), m_state(state), m_mark(mark),
      m_rpc(std::move(rpc)), m_serials(m_settings.instance), m_notices(m_settings.window) {
    if (m_settings.first_event_is_baseline) {
        m_serials.take_first_as_baseline();
    }
}

DiscardMonitor::~DiscardMonitor() {
    stop();
}

void DiscardMonitor::restore() {
    std::optional<std::uint64_t> settled_last;
    if (m_state != nullptr) {
        auto text = m_state->load_state(k_state_name);
        if (!text) {
            log::error("cannot read the discarded-events state ({}); starting afresh",
                       text.error());
        } else if (text->has_value()) {
            auto document = nlohmann::json::parse(**text, nullptr, false);
            std::lock_guard lock(m_mutex);
            if (auto restored = m_notices.restore(document); !restored) {
                log::error("cannot use the discarded-events state ({}); starting afresh",
                           restored.error());
            } else if (document.value("instance", "") == m_settings.instance &&
                       document.contains("settled_last") &&
                       document["settled_last"].is_number_unsigned()) {
                settled_last = document["settled_last"].get<std::uint64_t>();
                m_settled_last = *settled_last;
            }
        }
    }
    if (m_mark == nullptr) {
        return;
    }
    auto text = m_mark->load();
    if (!text) {
        log::error("cannot read the pool-serial mark ({}); events supervisord discards before "
                   "the first event are not told apart from a restart",
                   text.error());
        return;
    }
    if (!text->has_value()) {
        return;
    }
    auto mark = decode_mark(**text);
    if (!mark) {
        log::warning("the pool-serial mark is damaged; starting afresh");
        return;
    }
    std::lock_guard lock(m_mutex);
    if (!m_serials.restore(*mark)) {
        return; // another supervisord run: its serials mean nothing now
    }
    m_floor = from_ms(mark->seen_ms);
    const bool settled = settled_last && mark->pending.last <= *settled_last;
    if (mark->pending.count > 0 && !settled) {
        m_pending = mark->pending; // found by an earlier crashmail, never settled
    }
}

void DiscardMonitor::start() {
    m_thread = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

void DiscardMonitor::stop() {
    if (m_thread.joinable()) {
        m_thread.request_stop();
        m_wake.notify_all();
        m_thread.join();
    }
}

void DiscardMonitor::on_event(const Event& event) {
    const EventHeader& header = event.header;
    if (header.pool.empty()) {
        return; // not from supervisord (no pool serials to follow)
    }
    std::optional<GapEnd> end;
    std::lock_guard lock(m_mutex);
    if (m_pool.empty()) {
        m_pool = header.pool;
    }
    auto gap = m_serials.observe(header.pool_serial, header.serial, m_settings.now());
    m_mark_dirty = true;
    if (gap) {
        m_pending = merge_gaps(m_pending, *gap);
        m_pending_end.reset();
        if (auto state = process_state_of(header.event_name)) {
            if (auto change = parse_process_state(header.event_name, event.payload)) {
                m_pending_end = GapEnd{std::string(*state), change->process_name, change->pid};
            }
        }
        m_wake.notify_all();
    }
}

void DiscardMonitor::before_answer() {
    if (m_mark == nullptr) {
        return;
    }
    std::string record;
    {
        std::lock_guard lock(m_mutex);
        if (!m_mark_dirty) {
            return;
        }
        m_mark_dirty = false;
        // What is not settled yet stays in the mark: the gap in hand, then those after it.
        m_serials.set_pending(merge_gaps(m_in_hand, m_pending));
        record = encode_mark(m_serials.mark());
    }
    if (auto saved = m_mark->save(record); !saved) {
        if (!std::exchange(m_mark_failed, true)) { // once: it would fail on every event
            log::error("cannot keep the pool-serial mark ({}); a restart of crashmail may be "
                       "taken for discarded events",
                       saved.error());
        }
    }
}

DiscardTotals DiscardMonitor::totals() const {
    std::lock_guard lock(m_mutex);
    return m_notices.totals();
}

void DiscardMonitor::wait_idle() {
    std::unique_lock lock(m_mutex);
    m_wake.wait(lock, [&] { return m_pending.count == 0 && m_in_hand.count == 0; });
}

std::string DiscardMonitor::state_text() const {
    nlohmann::json document = m_notices.to_json();
    document["instance"] = m_settings.instance;
    document["settled_last"] = m_settled_last;
    return json_text(document);
}

void DiscardMonitor::check_pool() {
    if (m_settings.self_group.empty() || m_settings.self_process == m_settings.self_group) {
        return; // numprocs 1 with the default process_name: the listener is alone
    }
    if (m_rpc == nullptr) {
        return;
    }
    auto processes = m_rpc->all_process_info(m_settings.rpc_timeout);
    if (!processes) {
        log::warning("cannot ask supervisord whether pool {} has more than one listener ({}); "
                     "if it has (numprocs > 1), they share its events and notices about "
                     "discarded events are false alarms",
                     m_settings.self_group, processes.error().describe(m_rpc->server()));
        return;
    }
    auto listeners = std::count_if(processes->begin(), processes->end(), [&](const auto& info) {
        return info.group == m_settings.self_group;
    });
    if (listeners > 1) {
        log::warning("pool {} has {} listeners (numprocs > 1); they share its events, so gaps "
                     "in its pool serials are not losses: detection of discarded events is off",
                     m_settings.self_group, listeners);
        std::lock_guard lock(m_mutex);
        m_shared_pool = true;
    }
}

DiscardReport DiscardMonitor::recover(const SerialGap& gap, const std::optional<GapEnd>& end) {
    DiscardReport report;
    report.discarded = gap.count;
    std::string pool;
    {
        std::lock_guard lock(m_mutex);
        pool = m_pool;
    }
    log::warning("supervisord discarded {} event(s) of pool {} ({}{}); its buffer was full: set "
                 "buffer_size=100 or more in [eventlistener:{}]",
                 gap.count, pool, serial_span(gap),
                 gap.at_start ? ", before the first event crashmail saw" : "", pool);
    auto unrecoverable = [&](std::string why) {
        log::warning("cannot recover the crashes of {} discarded event(s): {}", gap.count, why);
        report.recovered.reset();
        report.problem = std::move(why);
        return report;
    };
    if (m_rpc == nullptr) {
        return unrecoverable("crashmail cannot reach supervisord's XML-RPC interface");
    }

    std::optional<time_point> since;
    if (gap.since_ms != 0) {
        since = from_ms(gap.since_ms);
        if (!gap.since_earlier_run) {
            // Events before the gap's first one may still have been in the buffer when the
            // event before the gap was seen: look a little further back (what was seen then
            // is in the ledger), but never before an earlier crashmail's last event.
            *since -= m_settings.lookback;
            if (m_floor) {
                since = std::max(*since, *m_floor);
            }
        }
    }

    std::optional<std::expected<std::string, RpcError>> answer;
    for (std::int64_t shorter = 0; shorter <= 3; ++shorter) {
        answer = m_rpc->read_main_log_tail(m_settings.log_bytes - shorter, m_settings.rpc_timeout);
        if (*answer || !is_utf8_window_error(answer->error())) {
            break;
        }
    }
    if (!*answer) {
        const RpcError& error = answer->error();
        std::string why = "supervisord's log cannot be read: " + error.describe(m_rpc->server());
        if (error.kind == RpcError::Kind::fault && error.fault_code == 70) {
            why += " (supervisord logs to syslog, or its log file is gone)";
        }
        return unrecoverable(std::move(why));
    }
    const std::string& text = **answer;
    const bool cut = static_cast<std::int64_t>(text.size()) >= m_settings.log_bytes - 3;
    MainLog parsed = parse_main_log(text, cut);
    // Crashes logged after the event that ended the gap have events of their own, still in
    // supervisord's buffer: they are not the gap's (the ledger would catch them too, but they
    // would be told as recovered).
    std::optional<time_point> until;
    if (end) {
        until = logged_end(parsed, *end);
    }
    if (!until) {
        until = m_settings.now() + std::chrono::seconds(1);
    }

    std::vector<std::string> problems;
    if (since && parsed.run_start && *since < *parsed.run_start) {
        since = *parsed.run_start - std::chrono::milliseconds(1); // the whole run is there
    }
    if (since) {
        if (!parsed.first_time || *parsed.first_time > *since) {
            problems.push_back(fmt::format(
                "supervisord's log {} only back to {}; crashes before that could not be checked",
                cut ? "was read" : "reaches",
                parsed.first_time ? timefmt::asctime_local(*parsed.first_time) : "nothing"));
        }
    } else if (parsed.run_start) {
        since = *parsed.run_start - std::chrono::milliseconds(1);
    } else {
        problems.emplace_back(cut ? "supervisord's log was read back to its last few MiB only, "
                                    "not to its start; earlier crashes could not be checked"
                                  : "supervisord's log no longer reaches back to its start "
                                    "(rotated?); earlier crashes could not be checked");
    }

    std::map<std::string, std::vector<std::string>> groups;
    if (auto processes = m_rpc->all_process_info(m_settings.rpc_timeout)) {
        for (const ProcessInfo& info : *processes) {
            groups[info.name].push_back(info.group);
        }
    } else {
        problems.push_back("process groups unknown (" +
                           processes.error().describe(m_rpc->server()) + ")");
    }
    std::uint64_t ambiguous = 0;
    auto group_of = [&](const std::string& name) -> std::optional<std::string> {
        auto found = groups.find(name);
        if (found == groups.end()) {
            return std::nullopt;
        }
        if (found->second.size() > 1) {
            ++ambiguous;
        }
        return found->second.front();
    };
    std::vector<StoryEvent> crashes =
        logged_crashes(parsed, since, *until, group_of, m_settings.watched, m_settings.instance);
    if (end && end->pid) {
        // The event that ended the gap arrived: its crash is counted by its event, whichever
        // of the two reaches the crash-loop stories first (the window ends at its line).
        std::erase_if(crashes, [&](const StoryEvent& crash) {
            return crash.process == end->process && crash.pid == end->pid;
        });
    }
    if (ambiguous > 0) {
        problems.push_back(fmt::format("{} crash(es) of a process name found in several groups "
                                       "were put in its first group",
                                       ambiguous));
    }
    report.recovered = m_loops.on_recovered(crashes);
    std::uint64_t total = 0;
    for (const auto& [name, count] : *report.recovered) {
        total += count;
    }
    report.problem = fmt::format("{}", fmt::join(problems, "; "));
    log::info("recovered {} crash(es) of the {} discarded event(s) from supervisord's log{}{}",
              total, gap.count, problems.empty() ? "" : "; ", report.problem);
    return report;
}

void DiscardMonitor::send(const DiscardNotice& notice) {
    std::string pool;
    {
        std::lock_guard lock(m_mutex);
        pool = m_pool.empty() ? m_settings.self_group : m_pool;
    }
    Alert alert = discard_alert(notice, m_settings.context, pool, m_settings.now(),
                                discard_notice_id(notice, m_settings.instance));
    log::info("notice {}: {} discarded event(s), {}", alert.id, notice.discarded,
              alert.recovered_crashes
                  ? fmt::format("{} crash(es) recovered", *alert.recovered_crashes)
                  : std::string("crashes not recoverable"));
    m_sink.submit(alert);
}

void DiscardMonitor::run(const std::stop_token& stop) {
    check_pool();
    while (!stop.stop_requested()) {
        std::optional<SerialGap> gap;
        std::optional<GapEnd> end;
        std::optional<DiscardNotice> notice;
        {
            std::unique_lock lock(m_mutex);
            auto ready = [&] {
                return m_pending.count > 0 ||
                       (m_notices.next_due() && m_settings.now() >= *m_notices.next_due());
            };
            while (!ready() && !stop.stop_requested()) {
                if (auto next = m_notices.next_due()) {
                    auto wait =
                        std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       *next - m_settings.now()),
                                   std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
                    m_wake.wait_for(lock, stop, wait, ready);
                } else {
                    m_wake.wait(lock, stop, ready);
                }
            }
            if (stop.stop_requested()) {
                break;
            }
            if (m_pending.count > 0) {
                if (m_shared_pool) {
                    m_pending = {}; // numprocs > 1: not losses
                    m_pending_end.reset();
                    m_mark_dirty = true;
                    m_wake.notify_all();
                    continue;
                }
                m_in_hand = std::exchange(m_pending, {});
                gap = m_in_hand;
                end = std::exchange(m_pending_end, std::nullopt);
            } else {
                notice = m_notices.due(m_settings.now());
            }
        }
        std::string text;
        if (gap) {
            DiscardReport report = recover(*gap, end);
            std::lock_guard lock(m_mutex);
            notice = m_notices.add(report, m_settings.now());
            m_in_hand = {};
            m_mark_dirty = true;
            m_settled_last = gap->last;
            text = state_text();
            m_wake.notify_all();
        } else {
            std::lock_guard lock(m_mutex);
            text = state_text();
        }
        if (m_state != nullptr) {
            if (auto saved = m_state->save_state(k_state_name, text, Durability::disk); !saved) {
                log::error("cannot save the discarded-events state ({})", saved.error());
            }
        }
        if (notice) {
            send(*notice);
        }
    }
}

} // namespace crashmail
