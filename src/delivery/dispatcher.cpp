#include "delivery/dispatcher.hpp"

#include "alert/digest.hpp"
#include "util/duration.hpp"
#include "util/hash.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <optional>
#include <queue>
#include <random>
#include <thread>
#include <unordered_set>

namespace crashmail {
namespace {

using Clock = std::chrono::system_clock;

// Unsaved records are alerts the disk refused; past this many, the oldest is dropped.
constexpr std::size_t k_unsaved_limit = 10000;

struct Task {
    Clock::time_point due;
    std::string id;
    bool operator>(const Task& other) const { return due > other.due; }
};

} // namespace

std::string channel_key(const Transport& channel) {
    return sha256_hex(channel.identity(), 8);
}

struct Dispatcher::Worker {
    Dispatcher* dispatcher = nullptr;
    std::unique_ptr<Transport> transport;
    std::string key;
    std::string name;

    std::mutex mutex;
    std::condition_variable changed;
    std::priority_queue<Task, std::vector<Task>, std::greater<>> tasks;
    std::unordered_set<std::string> queued; // ids in `tasks` or in flight
    bool overflowed = false;                // the store holds work not in `tasks`
    bool busy = false;
    bool stopping = false;
    std::thread thread;

    // Queues `id` unless it is already queued. Returns false when the queue is full (the
    // work stays in the store); `force` queues anyway (records held only in memory).
    bool push(Task task, std::size_t limit, bool force) {
        if (queued.contains(task.id)) {
            return true;
        }
        if (!force && tasks.size() >= limit) {
            overflowed = true;
            return false;
        }
        queued.insert(task.id);
        tasks.push(std::move(task));
        changed.notify_all();
        return true;
    }

    bool has_due_work() const { return !tasks.empty() && tasks.top().due <= Clock::now(); }

    void run() {
        std::unique_lock lock(mutex);
        while (!stopping) {
            if (tasks.empty() && overflowed) {
                overflowed = false;
                lock.unlock();
                dispatcher->refill(*this);
                lock.lock();
                continue;
            }
            if (tasks.empty()) {
                changed.wait(lock, [&] { return stopping || !tasks.empty() || overflowed; });
                continue;
            }
            if (!has_due_work()) {
                changed.wait_until(lock, tasks.top().due);
                continue;
            }
            Task task = tasks.top();
            tasks.pop();
            busy = true;
            auto alert = pending_alert(task.id);
            if (!alert) {
                busy = false;
                queued.erase(task.id);
                continue;
            }
            lock.unlock();
            auto result = transport->deliver(*alert);
            lock.lock();
            busy = false;
            changed.notify_all();
            if (stopping) {
                // The dispatcher may be gone: leave the record pending for the next start.
                return;
            }
            queued.erase(task.id);
            if (auto retry_at = dispatcher->record_outcome(task.id, *this, result)) {
                push(Task{*retry_at, task.id}, std::numeric_limits<std::size_t>::max(), true);
            }
        }
    }

    // The alert `id` if this channel still has to deliver it. Called with `mutex` held, so
    // the dispatcher cannot be stopped and destroyed meanwhile.
    std::optional<Alert> pending_alert(const std::string& id) {
        auto record = dispatcher->load(id);
        if (!record) {
            log::error("{}: cannot read alert {} from the spool: {}", name, id, record.error());
            return std::nullopt;
        }
        if (!record->has_value()) {
            return std::nullopt; // settled and removed meanwhile
        }
        if ((*record)->details_pending && dispatcher->m_enrichment) {
            return std::nullopt; // the enrichment stage queues it again when done
        }
        if ((*record)->held) {
            return std::nullopt; // it goes out in a digest
        }
        auto state = (*record)->channels.find(key);
        if (state == (*record)->channels.end()
                ? !transport->wants((*record)->alert)
                : state->second.status != ChannelState::Status::pending) {
            return std::nullopt;
        }
        return std::move((*record)->alert);
    }
};

// The enrichment stage: one thread taking alert ids in submission order. Shared with its
// thread so that a thread detached at shutdown never touches a destroyed dispatcher.
struct Dispatcher::Enrichment {
    struct Item {
        std::string id;
        std::chrono::steady_clock::time_point queued_at;
        bool recovered = false; // stored by an earlier run
    };

    Dispatcher* dispatcher = nullptr;
    std::shared_ptr<AlertEnricher> enricher;
    std::chrono::milliseconds max_wait{0};

    std::mutex mutex;
    std::condition_variable changed;
    std::deque<Item> items;
    std::unordered_set<std::string> queued;
    bool busy = false;
    bool draining = false; // shutting down: skip instead of fetching
    bool stopping = false;
    std::thread thread;

    void push(Item item) {
        if (queued.insert(item.id).second) {
            items.push_back(std::move(item));
            changed.notify_all();
        }
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
            // Read with `mutex` held: the dispatcher cannot be stopped and destroyed meanwhile.
            std::optional<Alert> alert = dispatcher->alert_to_enrich(item.id);
            if (!alert) {
                continue;
            }
            std::string skip_reason;
            if (item.recovered) {
                skip_reason = "details unavailable: crashmail restarted before fetching them";
            } else if (draining) {
                skip_reason = "details unavailable: crashmail stopped before fetching them";
            } else if (std::chrono::steady_clock::now() - item.queued_at > max_wait) {
                skip_reason = fmt::format(
                    "details unavailable: not fetched within {} s of the crash (crashmail was "
                    "busy with the details of other alerts)",
                    std::chrono::duration_cast<std::chrono::seconds>(max_wait).count());
            }
            busy = true;
            lock.unlock();
            if (skip_reason.empty()) {
                enricher->enrich(*alert);
            } else {
                enricher->skip(*alert, skip_reason);
            }
            lock.lock();
            busy = false;
            changed.notify_all();
            if (stopping) {
                return; // the dispatcher may be gone: the record stays pending in the store
            }
            dispatcher->finish_enrichment(item.id, std::move(*alert));
        }
    }
};

// The --batch window: ids of held records and when their digest is due. One thread waits for
// the window's end and has the dispatcher send the digest; shutdown() waits for a digest in
// progress (store writes only, no delivery) and leaves held records in the store.
struct Dispatcher::Batch {
    Dispatcher* dispatcher = nullptr;

    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::string> held; // in the order they were held
    std::unordered_set<std::string> held_ids;
    std::optional<Clock::time_point> window_end;
    bool busy = false;
    bool stopping = false;
    std::thread thread;

    // Returns true when this opened the window. Called with `mutex` held.
    bool hold(const std::string& id, Clock::time_point end) {
        if (!held_ids.insert(id).second) {
            return false;
        }
        held.push_back(id);
        bool opened = !window_end;
        if (!window_end || end < *window_end) {
            window_end = end;
        }
        changed.notify_all();
        return opened;
    }

    void run() {
        std::unique_lock lock(mutex);
        while (!stopping) {
            if (!window_end) {
                changed.wait(lock, [&] { return stopping || window_end.has_value(); });
                continue;
            }
            if (auto now = dispatcher->m_settings.now(); now < *window_end) {
                // Bounded waits: the clock may be a test's, or the wall clock may jump.
                auto wait =
                    std::chrono::duration_cast<std::chrono::milliseconds>(*window_end - now);
                changed.wait_for(lock, std::clamp(wait, std::chrono::milliseconds(1),
                                                  std::chrono::milliseconds(100)));
                continue;
            }
            std::vector<std::string> ids = std::move(held);
            held.clear();
            held_ids.clear();
            window_end.reset();
            busy = true;
            lock.unlock();
            // shutdown() waits for `busy` to clear, so the dispatcher outlives this call.
            dispatcher->send_digest(ids);
            lock.lock();
            busy = false;
            changed.notify_all();
        }
    }
};

Dispatcher::Dispatcher(std::vector<std::unique_ptr<Transport>> channels, AlertStore& store,
                       DispatcherSettings settings)
    : m_store(store), m_settings(std::move(settings)) {
    if (!m_settings.now) {
        m_settings.now = [] { return Clock::now(); };
    }
    if (!m_settings.jitter) {
        m_settings.jitter = [] {
            static thread_local std::mt19937_64 random{std::random_device{}()};
            return std::uniform_real_distribution<double>(-1.0, 1.0)(random);
        };
    }
    for (auto& channel : channels) {
        auto worker = std::make_shared<Worker>();
        worker->dispatcher = this;
        worker->key = channel_key(*channel);
        worker->name = channel->name();
        worker->transport = std::move(channel);
        m_workers.push_back(std::move(worker));
    }
    for (auto& worker : m_workers) {
        worker->thread = std::thread([worker] { worker->run(); });
    }
    if (m_settings.enricher) {
        m_enrichment = std::make_shared<Enrichment>();
        m_enrichment->dispatcher = this;
        m_enrichment->enricher = m_settings.enricher;
        m_enrichment->max_wait = m_settings.enrich_max_wait;
        auto enrichment = m_enrichment;
        m_enrichment->thread = std::thread([enrichment] { enrichment->run(); });
    }
    if (m_settings.batch > std::chrono::milliseconds(0)) {
        m_batch = std::make_shared<Batch>();
        m_batch->dispatcher = this;
        auto batch = m_batch;
        m_batch->thread = std::thread([batch] { batch->run(); });
    }
}

Dispatcher::~Dispatcher() {
    shutdown(std::chrono::milliseconds(0));
}

void Dispatcher::submit(const Alert& alert) {
    if (m_stopped) {
        log::error("alert {} ({}) arrived while stopping; not delivered", alert.id,
                   display_name(alert.group, alert.process));
        return;
    }
    AlertRecord record;
    record.alert = alert;
    record.details_pending = m_enrichment != nullptr;
    record.held = m_enrichment == nullptr && m_batch != nullptr;
    for (const auto& worker : m_workers) {
        if (worker->transport->wants(alert)) {
            record.channels[worker->key].name = worker->name;
        }
    }
    if (record.channels.empty()) {
        log::info("{} {} ({}) is for no configured channel; not stored", kind_name(alert.kind),
                  alert.id, display_name(alert.group, alert.process));
        return;
    }
    bool in_memory = false;
    bool to_enrich = m_enrichment != nullptr;
    {
        // The same event delivered again (supervisord redelivers an event whose answer
        // it did not get) has the same id: keep the record and its progress.
        std::lock_guard lock(m_records_mutex);
        auto existing = m_store.load(alert.id);
        if (existing && existing->has_value()) {
            log::info("alert {} is already in the outbox", alert.id);
            to_enrich = to_enrich && (*existing)->details_pending;
            record = std::move(**existing);
        } else if (auto saved = m_store.save(record); !saved) {
            log::error("cannot store alert {} in the spool ({}); delivering it from memory, "
                       "it is lost if crashmail stops first",
                       alert.id, saved.error());
            if (m_unsaved.size() >= k_unsaved_limit) {
                log::error("{} alerts held in memory; dropping alert {}", m_unsaved.size(),
                           m_unsaved.begin()->first);
                m_unsaved.erase(m_unsaved.begin());
            }
            m_unsaved[alert.id] = record;
            in_memory = true;
        }
    }
    if (to_enrich) {
        std::lock_guard lock(m_enrichment->mutex);
        m_enrichment->push({alert.id, std::chrono::steady_clock::now(), false});
        return;
    }
    forward(record, in_memory);
}

void Dispatcher::queue_for_channels(const AlertRecord& record, bool force) {
    for (auto& worker : m_workers) {
        if (!record.channels.contains(worker->key)) {
            continue;
        }
        std::lock_guard lock(worker->mutex);
        worker->push(Task{Clock::now(), record.alert.id}, m_settings.queue_limit, force);
    }
}

void Dispatcher::forward(const AlertRecord& record, bool in_memory) {
    if (record.held) {
        hold(record.alert.id, m_settings.now() + m_settings.batch);
    } else {
        queue_for_channels(record, in_memory);
    }
}

void Dispatcher::hold(const std::string& id, Clock::time_point window_end) {
    if (!m_batch) {
        // Held by an earlier run with --batch: its digest goes out now.
        send_digest({id});
        return;
    }
    std::lock_guard lock(m_batch->mutex);
    if (m_batch->hold(id, window_end)) {
        auto wait =
            std::chrono::duration_cast<std::chrono::milliseconds>(window_end - m_settings.now());
        log::info("holding alerts for a digest due in {}",
                  seconds_text(std::max(wait, std::chrono::milliseconds(0))));
    }
}

void Dispatcher::send_digest(const std::vector<std::string>& ids) {
    std::vector<Alert> items;
    std::vector<std::string> item_ids;
    for (const std::string& id : ids) {
        auto record = load(id);
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
        return;
    }
    AlertRecord digest;
    digest.alert = make_digest(std::move(items), m_settings.digest_prefix, m_settings.now());
    for (const auto& worker : m_workers) {
        if (worker->transport->wants(digest.alert)) {
            digest.channels[worker->key].name = worker->name;
        }
    }
    const std::string& id = digest.alert.id;
    bool in_memory = false;
    {
        std::lock_guard lock(m_records_mutex);
        // At-least-once: the digest is stored durably before its items are removed. A crash
        // in between leaves both; the next start holds the items again and sends them in
        // another digest (with this same id when nothing else joined them, and then the
        // stored digest is kept as it is rather than sent twice).
        bool items_go = true;
        if (digest.channels.empty()) {
            log::info("digest {} of {} alert(s) is for no configured channel; not stored", id,
                      item_ids.size());
        } else if (auto existing = m_store.load(id); existing && existing->has_value()) {
            log::info("digest {} is already in the outbox", id);
            digest = std::move(**existing);
        } else if (auto saved = m_store.save(digest); !saved) {
            log::error("cannot store digest {} in the spool ({}); delivering it from memory and "
                       "keeping its alerts in the spool until the next start",
                       id, saved.error());
            m_unsaved[id] = digest;
            in_memory = true;
            items_go = false;
        }
        for (const std::string& item : item_ids) {
            if (m_unsaved.erase(item) > 0 || !items_go) {
                continue;
            }
            if (auto removed = m_store.remove(item); !removed) {
                log::error("cannot remove alert {} (sent in digest {}) from the spool: {}", item,
                           id, removed.error());
            }
        }
    }
    if (digest.channels.empty()) {
        return;
    }
    log::info("digest {} of {} alert(s) from {}", id, item_ids.size(), digest.alert.host);
    queue_for_channels(digest, in_memory);
}

std::optional<Alert> Dispatcher::alert_to_enrich(const std::string& id) {
    auto record = load(id);
    if (!record) {
        log::error("cannot read alert {} from the spool: {}", id, record.error());
        return std::nullopt;
    }
    if (!record->has_value()) {
        return std::nullopt;
    }
    if (!(*record)->details_pending) {
        bool in_memory = false;
        {
            std::lock_guard lock(m_records_mutex);
            in_memory = m_unsaved.contains(id);
        }
        forward(**record, in_memory);
        return std::nullopt;
    }
    return std::move((*record)->alert);
}

void Dispatcher::finish_enrichment(const std::string& id, Alert alert) {
    bool in_memory = false;
    AlertRecord record;
    {
        std::lock_guard lock(m_records_mutex);
        auto unsaved = m_unsaved.find(id);
        if (unsaved != m_unsaved.end()) {
            record = unsaved->second;
        } else {
            auto loaded = m_store.load(id);
            if (!loaded || !loaded->has_value()) {
                log::error("alert {} vanished from the spool before delivery: {}", id,
                           loaded ? std::string("no such record") : loaded.error());
                return;
            }
            record = std::move(**loaded);
        }
        record.alert = std::move(alert);
        record.details_pending = false;
        record.held = m_batch != nullptr;
        if (unsaved != m_unsaved.end()) {
            unsaved->second = record;
            in_memory = true;
        } else if (auto saved = m_store.update(record); !saved) {
            log::error("cannot store the details of alert {} in the spool ({}); delivering it "
                       "from memory",
                       id, saved.error());
            m_unsaved[id] = record;
            in_memory = true;
        }
    }
    forward(record, in_memory);
}

std::size_t Dispatcher::refill(Worker& worker) {
    std::size_t found = 0;
    m_store.scan_pending([&](const std::string& id) {
        {
            std::lock_guard lock(worker.mutex);
            if (worker.stopping) {
                return false;
            }
            if (worker.queued.contains(id)) {
                return true;
            }
        }
        std::expected<std::optional<AlertRecord>, std::string> record;
        {
            std::lock_guard lock(m_records_mutex);
            record = m_store.load(id);
        }
        if (!record) {
            log::error("{}: skipping unreadable spool entry: {}", worker.name, record.error());
            return true;
        }
        if (!record->has_value()) {
            return true;
        }
        ++found;
        if ((*record)->details_pending && m_enrichment) {
            return true; // the enrichment stage queues it when done
        }
        if ((*record)->held) {
            return true; // it goes out in a digest
        }
        auto state = (*record)->channels.find(worker.key);
        Clock::time_point due = Clock::now();
        if (state == (*record)->channels.end() && !worker.transport->wants((*record)->alert)) {
            return true;
        }
        if (state != (*record)->channels.end()) {
            if (state->second.status != ChannelState::Status::pending) {
                return true;
            }
            due = std::max(due, state->second.next_attempt);
        }
        std::lock_guard lock(worker.mutex);
        return worker.push(Task{due, id}, m_settings.queue_limit, false);
    });
    return found;
}

std::size_t Dispatcher::recover() {
    std::vector<std::string> unfinished;
    std::vector<std::string> held;
    std::optional<Clock::time_point> oldest_held;
    m_store.scan_pending([&](const std::string& id) {
        std::lock_guard lock(m_records_mutex);
        auto record = m_store.load(id);
        if (!record || !record->has_value()) {
            return true;
        }
        if ((*record)->details_pending && m_enrichment) {
            unfinished.push_back(id);
        } else if ((*record)->held) {
            held.push_back(id);
            if (!oldest_held || (*record)->alert.time < *oldest_held) {
                oldest_held = (*record)->alert.time;
            }
        }
        return true;
    });
    if (m_enrichment) {
        std::lock_guard lock(m_enrichment->mutex);
        for (const std::string& id : unfinished) {
            m_enrichment->push({id, std::chrono::steady_clock::now(), true});
        }
    }
    if (!held.empty()) {
        if (m_batch) {
            // The window the held alerts were in ends when it would have: at once if past.
            // All at once, so that a window already past takes them all.
            std::lock_guard lock(m_batch->mutex);
            for (const std::string& id : held) {
                m_batch->hold(id, *oldest_held + m_settings.batch);
            }
            log::info("{} alert(s) held for a digest by an earlier run", held.size());
        } else {
            send_digest(held); // --batch is off now: their digest goes out at once
        }
    }
    std::size_t for_channels = 0;
    for (auto& worker : m_workers) {
        for_channels = std::max(for_channels, refill(*worker));
    }
    return std::max(unfinished.size() + held.size(), for_channels);
}

std::expected<std::optional<AlertRecord>, std::string> Dispatcher::load(const std::string& id) {
    std::lock_guard lock(m_records_mutex);
    if (auto unsaved = m_unsaved.find(id); unsaved != m_unsaved.end()) {
        return std::optional<AlertRecord>(unsaved->second);
    }
    return m_store.load(id);
}

std::optional<Clock::time_point>
Dispatcher::record_outcome(const std::string& id, const Worker& worker,
                           const std::expected<void, Failure>& result) {
    std::lock_guard lock(m_records_mutex);
    auto unsaved = m_unsaved.find(id);
    bool in_memory = unsaved != m_unsaved.end();
    AlertRecord record;
    if (in_memory) {
        record = unsaved->second;
    } else {
        auto loaded = m_store.load(id);
        if (!loaded || !loaded->has_value()) {
            log::error("{}: alert {} vanished from the spool: {}", worker.name, id,
                       loaded ? std::string("no such record") : loaded.error());
            return std::nullopt;
        }
        record = std::move(**loaded);
    }
    const Alert& alert = record.alert;
    std::string who = alert.kind == AlertKind::digest
                          ? fmt::format("digest of {}", alert.items.size())
                          : display_name(alert.group, alert.process);
    ChannelState& state = record.channels[worker.key];
    state.name = worker.name;
    ++state.attempts;
    std::optional<Clock::time_point> retry_at;
    if (result) {
        state.status = ChannelState::Status::delivered;
        state.last_error.clear();
        log::info("delivered alert {} ({}) via {}{}", alert.id, who, worker.name,
                  state.attempts > 1 ? fmt::format(" on attempt {}", state.attempts) : "");
    } else {
        const Failure& failure = result.error();
        state.last_error = failure.describe();
        auto now = Clock::now();
        if (!failure.retryable()) {
            state.status = ChannelState::Status::failed;
            log::error("{}: alert {} ({}) failed permanently: {}", worker.name, alert.id, who,
                       state.last_error);
        } else {
            auto delay = retry_delay(m_settings.retry, state.attempts, failure.retry_after,
                                     m_settings.jitter());
            auto next = now + delay;
            if (past_max_age(m_settings.retry, alert.time, next)) {
                state.status = ChannelState::Status::failed;
                state.last_error += fmt::format("; gave up after {} attempts", state.attempts);
                log::error("{}: alert {} ({}) failed: {}", worker.name, alert.id, who,
                           state.last_error);
            } else {
                state.next_attempt = next;
                retry_at = next;
                log::warning("{}: alert {} ({}) attempt {} failed: {}; retrying in {}", worker.name,
                             alert.id, who, state.attempts, state.last_error, seconds_text(delay));
            }
        }
    }

    // Channels of an earlier configuration that are gone neither hold a record back nor make
    // it a failure: only the configured channels' outcomes count.
    bool settled = true;
    bool failed = false;
    for (const auto& [key, channel] : record.channels) {
        bool configured = false;
        for (const auto& candidate : m_workers) {
            configured = configured || candidate->key == key;
        }
        if (!configured) {
            continue;
        }
        settled = settled && channel.status != ChannelState::Status::pending;
        failed = failed || channel.status == ChannelState::Status::failed;
    }
    if (in_memory) {
        if (settled) {
            m_unsaved.erase(id);
        } else {
            unsaved->second = record;
        }
        return retry_at;
    }
    std::expected<void, std::string> stored;
    if (!settled) {
        stored = m_store.update(record);
    } else if (!failed) {
        stored = m_store.remove(id);
    } else {
        stored = m_store.fail(record);
        if (stored) {
            log::error("alert {} ({}) moved to failed/ in the spool", id, who);
        }
    }
    if (!stored) {
        log::error("cannot update alert {} in the spool: {}", id, stored.error());
    }
    return retry_at;
}

std::size_t Dispatcher::shutdown(std::chrono::milliseconds grace) {
    if (m_stopped) {
        return 0;
    }
    m_stopped = true;
    auto deadline = std::chrono::steady_clock::now() + grace;
    std::size_t left = 0;
    if (m_enrichment) {
        std::unique_lock lock(m_enrichment->mutex);
        m_enrichment->draining = true;
        m_enrichment->changed.notify_all();
        m_enrichment->changed.wait_until(
            lock, deadline, [&] { return !m_enrichment->busy && m_enrichment->items.empty(); });
        left += m_enrichment->items.size() + (m_enrichment->busy ? 1 : 0);
        m_enrichment->stopping = true;
        bool busy = m_enrichment->busy;
        m_enrichment->changed.notify_all();
        lock.unlock();
        if (busy) {
            log::warning("stopping while the details of an alert are being fetched");
            m_enrichment->thread.detach();
        } else {
            m_enrichment->thread.join();
        }
    }
    if (m_batch) {
        std::unique_lock lock(m_batch->mutex);
        m_batch->stopping = true;
        m_batch->changed.notify_all();
        // A digest in progress only writes the store: let it finish.
        m_batch->changed.wait(lock, [&] { return !m_batch->busy; });
        if (!m_batch->held.empty()) {
            log::info("{} alert(s) held for a digest stay in the spool for the next start",
                      m_batch->held.size());
        }
        lock.unlock();
        m_batch->thread.join();
    }
    // Deliveries due before the deadline are still made, retries included.
    const Clock::time_point wall_deadline =
        Clock::now() +
        std::chrono::duration_cast<Clock::duration>(deadline - std::chrono::steady_clock::now());
    for (auto& worker : m_workers) {
        std::unique_lock lock(worker->mutex);
        worker->changed.wait_until(lock, deadline, [&] {
            return !worker->busy &&
                   (worker->tasks.empty() || worker->tasks.top().due > wall_deadline);
        });
        left += worker->tasks.size() + (worker->busy ? 1 : 0);
        worker->stopping = true;
        bool busy = worker->busy;
        worker->changed.notify_all();
        lock.unlock();
        if (busy) {
            log::warning("{}: stopping while a delivery is in progress", worker->name);
            worker->thread.detach();
        } else {
            worker->thread.join();
        }
    }
    return left;
}

} // namespace crashmail
