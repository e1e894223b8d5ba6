#include "delivery/enrichment_stage.hpp"

#include "util/log.hpp"

#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace crashmail {

struct EnrichmentStage::Core {
    struct Item {
        std::string id;
        std::chrono::steady_clock::time_point queued_at;
        bool recovered = false;
    };

    std::shared_ptr<AlertEnricher> enricher;
    std::shared_ptr<Outbox> outbox;
    EnrichmentSettings settings;

    std::mutex mutex; // guards what follows; never held across I/O or an enrich()
    std::condition_variable changed;
    std::deque<Item> items;
    std::unordered_set<std::string> queued;
    bool busy = false;
    bool draining = false;
    bool stopping = false;
    std::thread thread;

    // The alert of record `id` if it still waits for its details. A record already enriched
    // (a redelivered event) is forwarded as it is.
    std::optional<Alert> alert_to_enrich(const std::string& id) {
        auto record = outbox->read(id);
        if (!record) {
            log::error("cannot read alert {} from the spool: {}", id, record.error());
            return std::nullopt;
        }
        if (!record->has_value()) {
            return std::nullopt;
        }
        if (!(*record)->details_pending) {
            settings.forward(**record);
            return std::nullopt;
        }
        return std::move((*record)->alert);
    }

    void finish(const std::string& id, Alert alert) {
        auto record = outbox->change(id, [&](AlertRecord& stored) -> std::optional<Outbox::Settle> {
            if (!stored.details_pending) {
                return std::nullopt; // enriched meanwhile
            }
            stored.alert = std::move(alert);
            stored.details_pending = false;
            stored.held = settings.hold_for_batch;
            return Outbox::Settle::keep;
        });
        if (!record || !record->has_value()) {
            log::error("alert {} vanished from the spool before delivery: {}", id,
                       record ? std::string("no such record") : record.error());
            return;
        }
        settings.forward(**record);
    }

    void run() {
        std::unique_lock lock(mutex);
        busy = true;
        lock.unlock();
        enricher->start();
        lock.lock();
        busy = false;
        changed.notify_all();
        while (!stopping) {
            if (items.empty()) {
                changed.wait(lock, [&] { return stopping || !items.empty(); });
                continue;
            }
            Item item = std::move(items.front());
            items.pop_front();
            queued.erase(item.id);
            busy = true;
            const bool skip_all = draining;
            lock.unlock();
            if (std::optional<Alert> alert = alert_to_enrich(item.id)) {
                std::string skip_reason;
                if (item.recovered) {
                    skip_reason = "details unavailable: crashmail restarted before fetching them";
                } else if (skip_all) {
                    skip_reason = "details unavailable: crashmail stopped before fetching them";
                } else if (std::chrono::steady_clock::now() - item.queued_at > settings.max_wait) {
                    skip_reason = fmt::format(
                        "details unavailable: not fetched within {} s of the crash (crashmail "
                        "was busy with the details of other alerts)",
                        std::chrono::duration_cast<std::chrono::seconds>(settings.max_wait)
                            .count());
                }
                if (skip_reason.empty()) {
                    enricher->enrich(*alert);
                } else {
                    enricher->skip(*alert, skip_reason);
                }
                finish(item.id, std::move(*alert));
            }
            lock.lock();
            busy = false;
            changed.notify_all();
        }
    }
};

EnrichmentStage::EnrichmentStage(std::shared_ptr<AlertEnricher> enricher,
                                 std::shared_ptr<Outbox> outbox, EnrichmentSettings settings)
    : m_core(std::make_shared<Core>()) {
    m_core->enricher = std::move(enricher);
    m_core->outbox = std::move(outbox);
    m_core->settings = std::move(settings);
}

EnrichmentStage::~EnrichmentStage() {
    stop();
}

void EnrichmentStage::start() {
    std::lock_guard lock(m_core->mutex);
    if (m_core->thread.joinable() || m_core->stopping) {
        return;
    }
    m_core->thread = std::thread([core = m_core] { core->run(); });
}

void EnrichmentStage::push(const std::string& id, bool recovered) {
    std::lock_guard lock(m_core->mutex);
    if (m_core->stopping || !m_core->queued.insert(id).second) {
        return;
    }
    m_core->items.push_back({id, std::chrono::steady_clock::now(), recovered});
    m_core->changed.notify_all();
}

std::size_t EnrichmentStage::drain(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(m_core->mutex);
    m_core->draining = true;
    m_core->changed.notify_all();
    m_core->changed.wait_until(lock, deadline,
                               [&] { return !m_core->busy && m_core->items.empty(); });
    return m_core->items.size() + (m_core->busy ? 1 : 0);
}

void EnrichmentStage::stop() {
    bool busy = false;
    {
        std::lock_guard lock(m_core->mutex);
        m_core->stopping = true;
        busy = m_core->busy;
        m_core->changed.notify_all();
    }
    if (busy) {
        log::warning("stopping while the details of an alert are being fetched; cancelling");
        m_core->enricher->cancel();
    }
    if (m_core->thread.joinable()) {
        m_core->thread.join();
    }
}

} // namespace crashmail
