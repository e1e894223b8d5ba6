#include "app/listener.hpp"

#include "util/log.hpp"

#include <fmt/format.h>
#include <openssl/sha.h>
#include <sysexits.h>

namespace crashmail {

std::optional<ProcessStateChange> alert_worthy(const Event& event,
                                               const ListenerSettings& settings) {
    if (event.header.event_name != "PROCESS_STATE_EXITED") {
        return std::nullopt;
    }
    auto change = parse_process_state(event.header.event_name, event.payload);
    if (!change) {
        log::warning("ignoring event {} ({}): {}", event.header.serial, event.header.event_name,
                     change.error());
        return std::nullopt;
    }
    if (!change->expected.has_value() || *change->expected) {
        return std::nullopt;
    }
    if (!settings.self_process.empty() && change->process_name == settings.self_process &&
        change->group_name == settings.self_group) {
        return std::nullopt;
    }
    if (!settings.selection.selects(change->group_name, change->process_name)) {
        return std::nullopt;
    }
    return std::move(*change);
}

std::string event_alert_id(const Event& event, std::string_view instance) {
    std::string identity = fmt::format("{}\n{}\n{}\n{}\n{}", instance, event.header.server,
                                       event.header.serial, event.header.event_name, event.payload);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(identity.data()), identity.size(), digest);
    std::string id = fmt::format("s{}.", event.header.serial);
    for (int i = 0; i < 8; ++i) {
        id += fmt::format("{:02x}", digest[i]);
    }
    return id;
}

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
    for (;;) {
        if (!m_writer.ready()) {
            log::error("cannot write to supervisord (stdout): the channel is gone");
            return EX_IOERR;
        }
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
        std::optional<ProcessStateChange> change;
        if (first_sight(event.header.serial)) {
            change = alert_worthy(event, m_settings);
        }
        if (change) {
            Alert alert = make_alert(event.header, *change, m_settings.context, m_settings.now(),
                                     m_settings.alert_id(event, m_settings.instance));
            ++m_alerts;
            log::info("{} {} unexpectedly (pid {}, from state {}): alert {}",
                      display_name(alert.group, alert.process),
                      alert.state == "EXITED" ? "exited" : "entered " + alert.state,
                      alert.pid ? std::to_string(*alert.pid) : "unknown", alert.from_state,
                      alert.id);
            m_sink.submit(alert);
        }
        if (!m_writer.ok()) {
            log::error("cannot write to supervisord (stdout): the channel is gone");
            return EX_IOERR;
        }
    }
}

} // namespace crashmail
