#include "app/listener.hpp"

#include "util/hash.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <sysexits.h>

namespace crashmail {

namespace {

bool excluded(const std::vector<ProgramPattern>& excludes, const ProcessStateChange& change) {
    return std::any_of(excludes.begin(), excludes.end(), [&](const ProgramPattern& pattern) {
        return pattern.matches(change.group_name, change.process_name);
    });
}

} // namespace

Verdict::Kind judge(const ProcessStateChange& change, const ListenerSettings& settings) {
    if (!settings.self_process.empty() && change.process_name == settings.self_process &&
        change.group_name == settings.self_group) {
        return Verdict::Kind::ignore;
    }
    if (!settings.selection.selects(change.group_name, change.process_name) ||
        excluded(settings.excludes, change)) {
        return Verdict::Kind::ignore;
    }
    bool alerts = settings.states.contains(change.state);
    if (change.state == "EXITED") {
        // An EXITED event without "expected" is malformed: never an alert.
        alerts = alerts && change.expected.has_value() && (!*change.expected || settings.expected);
    }
    return alerts ? Verdict::Kind::alert : Verdict::Kind::watch;
}

Verdict classify(const Event& event, const ListenerSettings& settings) {
    if (!process_state_of(event.header.event_name)) {
        return {};
    }
    auto change = parse_process_state(event.header.event_name, event.payload);
    if (!change) {
        log::warning("ignoring event {} ({}): {}", event.header.serial, event.header.event_name,
                     change.error());
        return {};
    }
    Verdict::Kind kind = judge(*change, settings);
    if (kind == Verdict::Kind::ignore) {
        return {};
    }
    return {kind, std::move(*change)};
}

std::optional<ProcessStateChange> alert_worthy(const Event& event,
                                               const ListenerSettings& settings) {
    Verdict verdict = classify(event, settings);
    if (verdict.kind != Verdict::Kind::alert) {
        return std::nullopt;
    }
    return std::move(verdict.change);
}

std::string event_alert_id(const Event& event, std::string_view instance) {
    std::string identity = fmt::format("{}\n{}\n{}\n{}\n{}", instance, event.header.server,
                                       event.header.serial, event.header.event_name, event.payload);
    return fmt::format("s{}.{}", event.header.serial, sha256_hex(identity, 8));
}

namespace {

CrashLoopMonitorSettings monitor_settings(const ListenerSettings& settings) {
    CrashLoopMonitorSettings out;
    out.loops = settings.loops;
    out.context = settings.context;
    out.instance = settings.instance;
    out.now = settings.now;
    out.alert_id = settings.alert_id;
    return out;
}

} // namespace

Listener::Listener(protocol::Reader& reader, protocol::Writer& writer, ListenerSettings settings,
                   AlertSink& sink)
    : m_reader(reader), m_writer(writer), m_settings(std::move(settings)),
      m_monitor(monitor_settings(m_settings), sink, m_settings.state_store) {}

bool Listener::first_sight(std::uint64_t serial) {
    if (!m_seen.insert(serial).second) {
        return false;
    }
    m_seen_order.push_back(serial);
    if (m_seen_order.size() > k_remembered) {
        m_seen.erase(m_seen_order.front());
        m_seen_order.pop_front();
    }
    return true;
}

int Listener::run() {
    if (!m_writer.ready()) {
        log::error("cannot write to supervisord (stdout): the channel is gone");
        return EX_IOERR;
    }
    for (;;) {
        auto next = m_reader.next();
        if (!next) {
            log::error("protocol: {}; exiting so that supervisord restarts crashmail in step",
                       next.error().message);
            return EX_PROTOCOL;
        }
        if (!next->has_value()) {
            return EX_OK;
        }
        const Event& event = **next;
        ++m_events;
        if (m_observer != nullptr) {
            m_observer->on_event(event);
        }
        if (first_sight(event.header.serial)) {
            Verdict verdict = classify(event, m_settings);
            if (verdict.kind == Verdict::Kind::alert) {
                m_monitor.on_alert_event(event, verdict.change);
            } else if (verdict.kind == Verdict::Kind::watch) {
                m_monitor.on_other_event(event, verdict.change);
            }
        }
        if (m_observer != nullptr) {
            m_observer->before_answer();
        }
        if (!m_writer.ok_and_ready()) {
            log::error("cannot write to supervisord (stdout): the channel is gone");
            return EX_IOERR;
        }
    }
}

} // namespace crashmail
