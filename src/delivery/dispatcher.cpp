#include "delivery/dispatcher.hpp"

#include "delivery/outcome.hpp"
#include "util/duration.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <random>
#include <set>

namespace crashmail {

using Clock = std::chrono::system_clock;

Dispatcher::Dispatcher(std::vector<std::unique_ptr<Transport>> channels, AlertStore& store,
                       DispatcherSettings settings)
    : m_settings(std::move(settings)) {
    if (!m_settings.now) {
        m_settings.now = [] { return Clock::now(); };
    }
    if (!m_settings.jitter) {
        m_settings.jitter = [] {
            static thread_local std::mt19937_64 random{std::random_device{}()};
            return std::uniform_real_distribution<double>(-1.0, 1.0)(random);
        };
    }
    OutboxSettings outbox = m_settings.outbox;
    outbox.on_memory_only = [this, also = outbox.on_memory_only](const std::string& reason,
                                                                 std::size_t count) {
        on_memory_only(reason, count);
        if (also) {
            also(reason, count);
        }
    };
    outbox.on_durable_again = [this, also = outbox.on_durable_again](std::size_t stored) {
        {
            std::lock_guard lock(m_notice_mutex);
            m_notice_due = true;
        }
        if (also) {
            also(stored);
        }
    };
    m_outbox = std::make_shared<Outbox>(store, std::move(outbox));

    std::set<std::string> keys;
    for (const auto& channel : channels) {
        keys.insert(channel_key(*channel));
    }
    ChannelWorkerSettings worker;
    worker.retry = m_settings.retry;
    worker.queue_limit = m_settings.queue_limit;
    worker.jitter = m_settings.jitter;
    worker.enrichment = m_settings.enricher != nullptr;
    m_configured = std::make_shared<const std::set<std::string>>(std::move(keys));
    worker.configured = m_configured;
    if (m_settings.refusals_store != nullptr) {
        worker.refusals = std::make_shared<RefusalLog>(m_settings.refusals_store);
    }
    m_health = std::make_shared<ChannelHealthMonitor>(
        m_settings.health, channels.size(), m_settings.health_store,
        [this](const ChannelNotice& notice) {
            if (m_settings.channel_notice && !m_stopped) {
                submit_except(m_settings.channel_notice(notice), notice.key);
            }
        },
        m_settings.on_attempt);
    worker.health = m_health;
    for (auto& channel : channels) {
        m_workers.push_back(std::make_shared<ChannelWorker>(std::move(channel), m_outbox, worker));
    }

    m_digest.prefix = m_settings.digest_prefix;
    m_digest.now = m_settings.now;
    m_digest.channels_for = [this](const Alert& digest) { return channels_for(digest); };

    if (m_settings.enricher) {
        EnrichmentSettings enrichment;
        enrichment.max_wait = m_settings.enrich_max_wait;
        enrichment.hold_for_batch = m_settings.batch > std::chrono::milliseconds(0);
        enrichment.forward = [this](const AlertRecord& record) { forward(record); };
        m_enrichment =
            std::make_unique<EnrichmentStage>(m_settings.enricher, m_outbox, std::move(enrichment));
    }
    if (m_settings.batch > std::chrono::milliseconds(0)) {
        m_batch = std::make_unique<BatchWindow>(
            m_settings.now, [this](const std::vector<std::string>& ids) { send_digest(ids); });
    }

    m_outbox->start();
    m_health->start();
    for (auto& channel_worker : m_workers) {
        channel_worker->start();
    }
    if (m_enrichment) {
        m_enrichment->start();
    }
    if (m_batch) {
        m_batch->start();
    }
}

Dispatcher::~Dispatcher() {
    shutdown(std::chrono::milliseconds(0));
}

bool Dispatcher::waits_for_a_channel(const AlertRecord& record) const {
    for (const auto& worker : m_workers) {
        auto state = record.channels.find(worker->key());
        if (state == record.channels.end()
                ? worker->wants(record.alert)
                : state->second.status == ChannelState::Status::pending) {
            return true;
        }
    }
    return false;
}

std::map<std::string, ChannelState> Dispatcher::channels_for(const Alert& alert) const {
    std::map<std::string, ChannelState> channels;
    for (const auto& worker : m_workers) {
        if (worker->wants(alert)) {
            channels[worker->key()].name = worker->name();
        }
    }
    return channels;
}

void Dispatcher::submit(const Alert& alert) {
    submit_except(alert, {});
}

void Dispatcher::submit_except(const Alert& alert, const std::string& except) {
    if (m_stopped) {
        log::error("alert {} ({}) arrived while stopping; not delivered", alert.id,
                   display_name(alert.group, alert.process));
        return;
    }
    if (m_settings.on_submit) {
        m_settings.on_submit(alert);
    }
    AlertRecord record;
    record.alert = alert;
    record.details_pending = m_enrichment != nullptr;
    record.held = m_enrichment == nullptr && m_batch != nullptr;
    record.channels = channels_for(alert);
    if (auto skipped = record.channels.find(except); skipped != record.channels.end()) {
        if (record.channels.size() == 1) {
            record.channels.clear(); // for that channel alone: for none
        } else {
            // Settled for it (a notice about a channel is not sent through it).
            skipped->second.status = ChannelState::Status::delivered;
            skipped->second.last_error = "not sent: the notice is about this channel";
        }
    }
    if (record.channels.empty()) {
        log::info("{} {} ({}) is for no configured channel; not stored", kind_name(alert.kind),
                  alert.id, display_name(alert.group, alert.process));
        return;
    }
    // The same event delivered again (supervisord redelivers an event whose answer it did not
    // get) has the same id: the outbox keeps the record and its progress.
    Outbox::AddResult added = m_outbox->add(std::move(record));
    if (added.how == Outbox::Added::duplicate) {
        log::info("alert {} is already in the outbox", alert.id);
    } else if (added.how == Outbox::Added::in_memory) {
        log::error("cannot store alert {} in the spool ({}); it waits in memory and is retried",
                   alert.id, added.error);
    }
    if (m_enrichment && added.record.details_pending) {
        m_enrichment->push(alert.id);
        return;
    }
    forward(added.record);
}

void Dispatcher::forward(const AlertRecord& record) {
    if (record.held) {
        hold(record.alert.id, m_settings.now() + m_settings.batch);
        return;
    }
    for (auto& worker : m_workers) {
        if (record.channels.contains(worker->key())) {
            worker->queue(record.alert.id);
        }
    }
}

void Dispatcher::hold(const std::string& id, Clock::time_point window_end) {
    if (!m_batch) {
        // Held by an earlier run with --batch: its digest goes out now.
        send_digest({id});
        return;
    }
    if (m_batch->hold(id, window_end)) {
        auto wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(window_end - m_settings.now());
        log::info("holding alerts for a digest due in {}",
                  seconds_text(std::max(wait, std::chrono::milliseconds(0))));
    }
}

void Dispatcher::send_digest(const std::vector<std::string>& ids) {
    if (auto digest = store_digest(*m_outbox, ids, m_digest)) {
        forward(*digest);
    }
}

void Dispatcher::on_memory_only(const std::string& reason, std::size_t count) {
    if (!m_settings.spool_notice || m_stopped) {
        return;
    }
    {
        std::lock_guard lock(m_notice_mutex);
        auto now = std::chrono::steady_clock::now();
        if (!m_notice_due || (m_last_notice && now - *m_last_notice < m_settings.notice_interval)) {
            return;
        }
        m_notice_due = false;
        m_last_notice = now;
    }
    submit(m_settings.spool_notice(reason, count));
}

Dispatcher::Resume Dispatcher::resumption(const AlertRecord& record) const {
    if (record.details_pending && m_enrichment) {
        return Resume::enrich;
    }
    if (record.held) {
        return Resume::hold;
    }
    return waits_for_a_channel(record) ? Resume::deliver : Resume::settle;
}

void Dispatcher::settle_now(const std::string& id) {
    // Records no configured channel still has to deliver (the channels left pending are gone
    // from the configuration): settled now, as a delivery would have settled them.
    std::optional<Outbox::Settle> how;
    m_outbox->change(id, [&](AlertRecord& record) -> std::optional<Outbox::Settle> {
        if (waits_for_a_channel(record)) {
            return std::nullopt;
        }
        how = settlement(record, *m_configured);
        return how;
    });
    if (how) {
        log::info("alert {} is settled by the channels configured now (the others are gone "
                  "from the configuration): {}",
                  id, *how == Outbox::Settle::fail ? "moved to failed/" : "removed");
    }
}

std::size_t Dispatcher::recover() {
    std::vector<std::string> unfinished;
    std::vector<std::string> settled;
    std::vector<std::string> held;
    std::optional<Clock::time_point> oldest_held;
    m_outbox->scan([&](const std::string& id) {
        auto record = m_outbox->read(id);
        if (!record || !record->has_value()) {
            return true;
        }
        switch (resumption(**record)) {
        case Resume::enrich:
            unfinished.push_back(id);
            break;
        case Resume::settle:
            settled.push_back(id);
            break;
        case Resume::hold:
            held.push_back(id);
            if (!oldest_held || (*record)->alert.time < *oldest_held) {
                oldest_held = (*record)->alert.time;
            }
            break;
        case Resume::deliver:
            break; // the workers' refill() below
        }
        return true;
    });
    for (const std::string& id : unfinished) {
        m_enrichment->push(id, true);
    }
    for (const std::string& id : settled) {
        settle_now(id);
    }
    // Before the held alerts' digest may be stored (at once when their window is past): the
    // count is of what an earlier run left.
    std::size_t for_channels = 0;
    for (auto& worker : m_workers) {
        for_channels = std::max(for_channels, worker->refill());
    }
    if (!held.empty()) {
        if (m_batch) {
            // The window the held alerts were in ends when it would have: at once if past.
            m_batch->hold(held, *oldest_held + m_settings.batch);
            log::info("{} alert(s) held for a digest by an earlier run", held.size());
        } else {
            send_digest(held); // --batch is off now: their digest goes out at once
        }
    }
    return std::max(unfinished.size() + held.size(), for_channels);
}

bool Dispatcher::adopt(AlertRecord record) {
    if (m_stopped) {
        return false;
    }
    const std::string id = record.alert.id;
    Outbox::AddResult added = m_outbox->add(std::move(record));
    if (added.how == Outbox::Added::duplicate) {
        log::info("alert {} is pending already; it goes on from there", id);
    } else if (added.how == Outbox::Added::in_memory) {
        log::error("cannot store alert {} in the spool ({}); it waits in memory and is retried", id,
                   added.error);
    }
    switch (resumption(added.record)) {
    case Resume::enrich:
        m_enrichment->push(id, true);
        break;
    case Resume::settle:
        settle_now(id);
        break;
    case Resume::hold:
        hold(id, m_settings.now() + m_settings.batch);
        break;
    case Resume::deliver:
        forward(added.record);
        break;
    }
    return true;
}

Dispatcher::Stopped Dispatcher::shutdown(std::chrono::milliseconds grace) {
    if (m_stopped.exchange(true)) {
        return m_stop_result;
    }
    const auto deadline = std::chrono::steady_clock::now() + grace;
    if (m_enrichment) {
        m_enrichment->drain(deadline);
        m_enrichment->stop();
    }
    if (m_batch) {
        if (std::size_t held = m_batch->stop(); held > 0) {
            log::info("{} alert(s) held for a digest stay in the spool for the next start", held);
        }
    }
    for (auto& worker : m_workers) {
        worker->drain(deadline);
    }
    for (auto& worker : m_workers) {
        worker->stop();
    }
    m_health->stop();
    Outbox::Closing closing = m_outbox->close();
    m_stop_result = {closing.pending, closing.lost, closing.reason};
    return m_stop_result;
}

} // namespace crashmail
