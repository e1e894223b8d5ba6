#include "delivery/refusals.hpp"

#include "util/json_text.hpp"
#include "util/log.hpp"

#include <nlohmann/json.hpp>

namespace crashmail {
namespace {

constexpr std::string_view k_document = "refusals";

std::int64_t to_ms(std::chrono::system_clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

} // namespace

std::string refusals_to_json(const std::vector<RefusedRecipient>& refused) {
    nlohmann::json list = nlohmann::json::array();
    for (const RefusedRecipient& one : refused) {
        list.push_back({{"channel", one.channel},
                        {"recipient", one.recipient},
                        {"alerts", one.alerts},
                        {"first_ms", to_ms(one.first)},
                        {"last_ms", to_ms(one.last)},
                        {"last_alert", one.last_alert},
                        {"last_reason", one.last_reason}});
    }
    return json_text(nlohmann::json{{"version", 1}, {"refused", list}}, 1);
}

std::expected<std::vector<RefusedRecipient>, std::string>
refusals_from_json(std::string_view text) {
    auto document = nlohmann::json::parse(text, nullptr, false);
    if (!document.is_object() || !document.contains("refused") || !document["refused"].is_array()) {
        return std::unexpected(std::string("not a refusals document (no \"refused\" list)"));
    }
    std::vector<RefusedRecipient> out;
    try {
        for (const auto& entry : document["refused"]) {
            RefusedRecipient one;
            one.channel = entry.value("channel", "");
            one.recipient = entry.value("recipient", "");
            one.alerts = entry.value("alerts", std::uint64_t{0});
            one.first = from_ms(entry.value("first_ms", std::int64_t{0}));
            one.last = from_ms(entry.value("last_ms", std::int64_t{0}));
            one.last_alert = entry.value("last_alert", "");
            one.last_reason = entry.value("last_reason", "");
            if (!one.recipient.empty()) {
                out.push_back(std::move(one));
            }
        }
    } catch (const nlohmann::json::exception& error) {
        return std::unexpected(std::string(error.what()));
    }
    return out;
}

RefusalLog::RefusalLog(StateStore* store) : m_store(store) {
    if (m_store == nullptr) {
        return;
    }
    auto text = m_store->load_state(k_document);
    if (!text) {
        log::error("cannot read the refused recipients ({}); counting them afresh", text.error());
        return;
    }
    if (!text->has_value()) {
        return;
    }
    auto refused = refusals_from_json(**text);
    if (!refused) {
        log::error("cannot use the refused recipients ({}); counting them afresh", refused.error());
        return;
    }
    for (RefusedRecipient& one : *refused) {
        auto key = std::make_pair(one.channel, one.recipient);
        m_refused.emplace(std::move(key), std::move(one));
    }
}

void RefusalLog::record(const std::string& channel, const std::string& recipient,
                        const std::string& reason, const std::string& alert_id,
                        std::chrono::system_clock::time_point when) {
    std::lock_guard lock(m_mutex);
    RefusedRecipient& one = m_refused[{channel, recipient}];
    if (one.alerts == 0) {
        one.channel = channel;
        one.recipient = recipient;
        one.first = when;
    }
    ++one.alerts;
    one.last = when;
    one.last_alert = alert_id;
    one.last_reason = reason;
    if (m_store == nullptr) {
        return;
    }
    std::vector<RefusedRecipient> all;
    all.reserve(m_refused.size());
    for (const auto& [key, entry] : m_refused) {
        all.push_back(entry);
    }
    if (auto saved = m_store->save_state(k_document, refusals_to_json(all), Durability::process);
        !saved) {
        log::error("cannot save the refused recipients for --status ({}); they are in this "
                   "log only",
                   saved.error());
    }
}

std::vector<RefusedRecipient> RefusalLog::snapshot() const {
    std::lock_guard lock(m_mutex);
    std::vector<RefusedRecipient> out;
    out.reserve(m_refused.size());
    for (const auto& [key, entry] : m_refused) {
        out.push_back(entry);
    }
    return out;
}

} // namespace crashmail
