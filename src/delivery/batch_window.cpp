#include "delivery/batch_window.hpp"

#include "alert/digest.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace crashmail {

using Clock = std::chrono::system_clock;

std::optional<AlertRecord> store_digest(Outbox& outbox, const std::vector<std::string>& ids,
                                        const DigestSettings& settings) {
    std::vector<Alert> items;
    std::vector<std::string> item_ids;
    for (const std::string& id : ids) {
        auto record = outbox.read(id);
        if (!record) {
            // It stays held in the store: the next start puts it in a digest.
            log::error("cannot read held alert {} from the spool: {}", id, record.error());
            continue;
        }
        if (!record->has_value() || !(*record)->held) {
            continue;
        }
        items.push_back(std::move((*record)->alert));
        item_ids.push_back(id);
    }
    if (items.empty()) {
        return std::nullopt;
    }
    AlertRecord digest;
    digest.alert = make_digest(std::move(items), settings.prefix, settings.now());
    digest.channels = settings.channels_for(digest.alert);
    const std::string id = digest.alert.id;
    bool items_go = true;
    if (digest.channels.empty()) {
        log::info("digest {} of {} alert(s) is for no configured channel; not stored", id,
                  item_ids.size());
    } else {
        // At-least-once: the digest is stored before its items are removed.
        auto added = outbox.add(digest);
        if (added.how == Outbox::Added::duplicate) {
            log::info("digest {} is already in the outbox", id);
        } else if (added.how == Outbox::Added::in_memory) {
            log::error("cannot store digest {} in the spool ({}); it waits in memory, and its "
                       "alerts stay in the spool until it is stored",
                       id, added.error);
            items_go = false;
        }
        digest = std::move(added.record);
    }
    if (items_go) {
        for (const std::string& item : item_ids) {
            auto removed = outbox.change(item, [](AlertRecord&) -> std::optional<Outbox::Settle> {
                return Outbox::Settle::remove;
            });
            if (!removed) {
                log::error("cannot remove alert {} (sent in digest {}) from the spool: {}", item,
                           id, removed.error());
            }
        }
    }
    if (digest.channels.empty()) {
        return std::nullopt;
    }
    log::info("digest {} of {} alert(s) from {}", id, item_ids.size(), digest.alert.host);
    return digest;
}

struct BatchWindow::Core {
    std::function<Clock::time_point()> now;
    std::function<void(const std::vector<std::string>&)> send;

    std::mutex mutex; // guards what follows; never held across I/O
    std::condition_variable changed;
    std::vector<std::string> held; // in the order they were held
    std::unordered_set<std::string> held_ids;
    std::optional<Clock::time_point> window_end;
    bool stopping = false;
    bool stopped = false;
    std::thread thread;

    void run() {
        std::unique_lock lock(mutex);
        while (!stopping) {
            if (!window_end) {
                changed.wait(lock, [&] { return stopping || window_end.has_value(); });
                continue;
            }
            if (auto current = now(); current < *window_end) {
                // Bounded waits: the clock may be a test's, or the wall clock may jump.
                auto wait =
                    std::chrono::duration_cast<std::chrono::milliseconds>(*window_end - current);
                changed.wait_for(lock, std::clamp(wait, std::chrono::milliseconds(1),
                                                  std::chrono::milliseconds(100)));
                continue;
            }
            std::vector<std::string> ids = std::move(held);
            held.clear();
            held_ids.clear();
            window_end.reset();
            lock.unlock();
            send(ids);
            lock.lock();
        }
    }
};

BatchWindow::BatchWindow(std::function<Clock::time_point()> now,
                         std::function<void(const std::vector<std::string>&)> send)
    : m_core(std::make_shared<Core>()) {
    m_core->now = std::move(now);
    m_core->send = std::move(send);
}

BatchWindow::~BatchWindow() {
    stop();
}

void BatchWindow::start() {
    std::lock_guard lock(m_core->mutex);
    if (m_core->thread.joinable() || m_core->stopping) {
        return;
    }
    m_core->thread = std::thread([core = m_core] { core->run(); });
}

bool BatchWindow::hold(const std::string& id, Clock::time_point end) {
    return hold(std::vector<std::string>{id}, end);
}

bool BatchWindow::hold(const std::vector<std::string>& ids, Clock::time_point end) {
    std::lock_guard lock(m_core->mutex);
    bool added = false;
    for (const std::string& id : ids) {
        if (m_core->held_ids.insert(id).second) {
            m_core->held.push_back(id);
            added = true;
        }
    }
    if (!added) {
        return false;
    }
    bool opened = !m_core->window_end;
    if (!m_core->window_end || end < *m_core->window_end) {
        m_core->window_end = end;
    }
    m_core->changed.notify_all();
    return opened;
}

std::size_t BatchWindow::stop() {
    {
        std::lock_guard lock(m_core->mutex);
        if (m_core->stopped) {
            return 0;
        }
        m_core->stopped = true;
        m_core->stopping = true;
        m_core->changed.notify_all();
    }
    // A digest in progress only writes the store: joining lets it finish.
    if (m_core->thread.joinable()) {
        m_core->thread.join();
    }
    std::lock_guard lock(m_core->mutex);
    return m_core->held.size();
}

} // namespace crashmail
