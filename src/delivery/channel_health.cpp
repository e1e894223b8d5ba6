#include "delivery/channel_health.hpp"

#include "util/duration.hpp"
#include "util/json_text.hpp"
#include "util/log.hpp"

#include <nlohmann/json.hpp>

namespace crashmail {
namespace {

using Clock = std::chrono::system_clock;

std::int64_t to_ms(Clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

Clock::time_point from_ms(std::int64_t ms) {
    return Clock::time_point(
        std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

} // namespace

std::optional<ChannelNotice> ChannelHealth::go_down(const std::string& key, Track& track,
                                                    bool permanent, bool others,
                                                    Clock::time_point now) const {
    ChannelCondition& condition = track.condition;
    condition.down = true;
    const bool repeat_due =
        !track.last_down_notice || now - *track.last_down_notice >= m_settings.repeat;
    condition.told = others && repeat_due;
    if (!repeat_due) {
        return std::nullopt; // told within the hour: not again (and no "works again" after)
    }
    track.last_down_notice = now;
    ChannelNotice notice;
    notice.key = key;
    notice.name = condition.name;
    notice.words = condition.words;
    notice.waiting = condition.waiting;
    notice.since = condition.failing_since;
    notice.permanent = permanent;
    return notice;
}

std::optional<ChannelNotice> ChannelHealth::observe(const std::string& key, const std::string& name,
                                                    AttemptResult result, const std::string& words,
                                                    std::size_t waiting, bool others,
                                                    Clock::time_point now) {
    Track& track = m_tracks[key];
    ChannelCondition& condition = track.condition;
    condition.name = name;
    std::optional<ChannelNotice> notice;
    if (result == AttemptResult::delivered) {
        if (condition.down && condition.told) {
            notice = ChannelNotice{key, name, true, {}, waiting, condition.failing_since, false};
        }
        condition = ChannelCondition{};
        condition.name = name;
    } else {
        if (condition.failing_since == Clock::time_point{}) {
            condition.failing_since = now;
        }
        condition.words = words;
        condition.waiting = waiting;
        if (!condition.down && (result == AttemptResult::failed_for_good ||
                                now - condition.failing_since >= m_settings.failing_for)) {
            notice = go_down(key, track, result == AttemptResult::failed_for_good, others, now);
        }
    }
    m_conditions[key] = condition;
    return notice;
}

std::vector<ChannelNotice> ChannelHealth::poll(bool others, Clock::time_point now) {
    std::vector<ChannelNotice> notices;
    for (auto& [key, track] : m_tracks) {
        const ChannelCondition& condition = track.condition;
        if (condition.down || condition.failing_since == Clock::time_point{} ||
            now - condition.failing_since < m_settings.failing_for) {
            continue;
        }
        if (auto notice = go_down(key, track, false, others, now)) {
            notices.push_back(std::move(*notice));
        }
        m_conditions[key] = track.condition;
    }
    return notices;
}

std::optional<Clock::time_point> ChannelHealth::next_check() const {
    std::optional<Clock::time_point> next;
    for (const auto& [key, track] : m_tracks) {
        const ChannelCondition& condition = track.condition;
        if (condition.down || condition.failing_since == Clock::time_point{}) {
            continue;
        }
        auto due = condition.failing_since +
                   std::chrono::duration_cast<Clock::duration>(m_settings.failing_for);
        if (!next || due < *next) {
            next = due;
        }
    }
    return next;
}

std::string channel_health_to_json(const std::map<std::string, ChannelCondition>& conditions) {
    nlohmann::json channels = nlohmann::json::object();
    for (const auto& [key, condition] : conditions) {
        if (condition.failing_since == Clock::time_point{}) {
            continue;
        }
        channels[key] = {
            {"name", condition.name},        {"failing_since_ms", to_ms(condition.failing_since)},
            {"last_error", condition.words}, {"waiting", condition.waiting},
            {"down", condition.down},        {"told", condition.told}};
    }
    return json_text(nlohmann::json{{"version", 1}, {"channels", channels}});
}

std::expected<std::map<std::string, ChannelCondition>, std::string>
channel_health_from_json(std::string_view text) {
    auto document = nlohmann::json::parse(text, nullptr, false);
    if (document.is_discarded() || !document.is_object() || !document.contains("channels") ||
        !document["channels"].is_object()) {
        return std::unexpected("not a channel-health document");
    }
    std::map<std::string, ChannelCondition> conditions;
    for (const auto& [key, value] : document["channels"].items()) {
        if (!value.is_object()) {
            return std::unexpected("channel " + key + " is not an object");
        }
        ChannelCondition condition;
        condition.name = value.value("name", std::string());
        condition.failing_since = from_ms(value.value("failing_since_ms", std::int64_t{0}));
        condition.words = value.value("last_error", std::string());
        condition.waiting = value.value("waiting", std::size_t{0});
        condition.down = value.value("down", false);
        condition.told = value.value("told", false);
        conditions[key] = std::move(condition);
    }
    return conditions;
}

ChannelHealthMonitor::ChannelHealthMonitor(
    ChannelHealthSettings settings, std::size_t channels, StateStore* store,
    std::function<void(const ChannelNotice&)> notify,
    std::function<void(const std::string&, const std::string&, AttemptResult)> on_attempt)
    : m_notify(std::move(notify)), m_on_attempt(std::move(on_attempt)), m_store(store),
      m_others(channels > 1), m_health(settings) {}

std::map<std::string, ChannelCondition> ChannelHealthMonitor::conditions() {
    std::lock_guard lock(m_mutex);
    return m_health.conditions();
}

ChannelHealthMonitor::~ChannelHealthMonitor() {
    stop();
}

void ChannelHealthMonitor::save_locked() {
    if (m_store == nullptr) {
        return;
    }
    std::string content = channel_health_to_json(m_health.conditions());
    if (content == m_saved) {
        return;
    }
    if (auto saved = m_store->save_state(k_channel_health_state, content, Durability::process);
        !saved) {
        log::error("cannot keep the channels' health for --status: {}", saved.error());
        return;
    }
    m_saved = std::move(content);
}

void ChannelHealthMonitor::deliver(const std::vector<ChannelNotice>& notices) {
    for (const ChannelNotice& notice : notices) {
        if (notice.working) {
            log::info("channel {} works again (failing since {} ago){}", notice.name,
                      seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(
                          Clock::now() - notice.since)),
                      m_others ? "; telling the other channels" : "");
        } else {
            log::error("channel {} is failing{}: {}; {} alert(s) wait for it; {}", notice.name,
                       notice.permanent ? " (a delivery failed for good)"
                                        : " for 15 minutes or more",
                       notice.words, notice.waiting,
                       m_others ? "telling the other channels"
                                : "no other channel to tell (see crashmail --status)");
        }
        if (m_others && m_notify) {
            m_notify(notice);
        }
    }
}

void ChannelHealthMonitor::observe(const std::string& key, const std::string& name,
                                   AttemptResult result, const std::string& words,
                                   std::size_t waiting) {
    std::vector<ChannelNotice> notices;
    {
        std::lock_guard lock(m_mutex);
        if (auto notice =
                m_health.observe(key, name, result, words, waiting, m_others, Clock::now())) {
            notices.push_back(std::move(*notice));
        }
        save_locked();
        m_changed.notify_all();
    }
    if (m_on_attempt) {
        m_on_attempt(key, name, result);
    }
    deliver(notices);
}

void ChannelHealthMonitor::start() {
    std::lock_guard lock(m_mutex);
    if (m_thread.joinable() || m_stopping) {
        return;
    }
    m_thread = std::thread([this] { run(); });
}

void ChannelHealthMonitor::stop() {
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
        m_changed.notify_all();
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void ChannelHealthMonitor::run() {
    std::unique_lock lock(m_mutex);
    while (!m_stopping) {
        if (auto next = m_health.next_check()) {
            if (Clock::now() < *next) {
                auto until = *next; // a copy: observe() may change the health meanwhile
                m_changed.wait_until(lock, until);
                continue;
            }
            auto notices = m_health.poll(m_others, Clock::now());
            save_locked();
            lock.unlock();
            deliver(notices);
            lock.lock();
            continue;
        }
        m_changed.wait(lock);
    }
}

} // namespace crashmail
