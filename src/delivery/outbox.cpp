#include "delivery/outbox.hpp"

#include "util/json_text.hpp"
#include "util/log.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unistd.h>
#include <vector>

namespace crashmail {
namespace {

constexpr std::size_t k_mark_reason_bytes = 300;

std::int64_t unix_ms(std::chrono::system_clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

} // namespace

Outbox::Outbox(AlertStore& store, OutboxSettings settings)
    : m_store(store), m_settings(std::move(settings)) {}

Outbox::~Outbox() {
    {
        std::lock_guard lock(m_memory_mutex);
        m_stopping = true;
    }
    m_changed.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

std::mutex& Outbox::record_lock(const std::string& id) {
    return m_record_locks[std::hash<std::string>{}(id) % k_record_locks];
}

Outbox::AddResult Outbox::add(AlertRecord record) {
    const std::string id = record.alert.id;
    {
        std::lock_guard lock(m_memory_mutex);
        if (auto found = m_memory.find(id); found != m_memory.end()) {
            return {Added::duplicate, found->second.record, {}};
        }
    }
    // No record lock: until this returns no other thread knows a new id, and a record that
    // exists already is not written here.
    if (auto existing = m_store.load(id); existing && existing->has_value()) {
        return {Added::duplicate, std::move(**existing), {}};
    }
    auto saved = m_store.save(record);
    if (saved) {
        return {Added::stored, std::move(record), {}};
    }
    wait_in_memory(id, Waiting{record, Settle::keep, false, saved.error()});
    return {Added::in_memory, std::move(record), saved.error()};
}

void Outbox::wait_in_memory(const std::string& id, Waiting waiting) {
    bool first = false;
    std::size_t count = 0;
    std::string reason = waiting.error;
    {
        std::lock_guard lock(m_memory_mutex);
        if (!m_memory.contains(id) && m_memory.size() >= k_waiting_limit) {
            auto oldest = std::min_element(
                m_memory.begin(), m_memory.end(), [](const auto& left, const auto& right) {
                    return left.second.record.alert.time < right.second.record.alert.time;
                });
            log::error("{} records wait in memory for the spool; dropping alert {} (lost)",
                       m_memory.size(), oldest->first);
            if (!oldest->second.on_disk && oldest->second.action != Settle::remove) {
                ++m_dropped;
            }
            m_memory.erase(oldest);
        }
        first = m_memory.empty();
        if (first) {
            m_stored_from_memory = 0;
            ++m_episodes;
        }
        m_last_error = reason;
        m_memory[id] = std::move(waiting);
        count = m_memory.size();
    }
    m_changed.notify_all();
    if (first) {
        log::error("the spool refuses records ({}); alert {} waits in memory and is retried "
                   "until the spool takes it",
                   reason, id);
        if (m_settings.on_memory_only) {
            m_settings.on_memory_only(reason, count);
        }
    }
}

std::expected<std::optional<AlertRecord>, std::string> Outbox::read(const std::string& id) {
    {
        std::lock_guard lock(m_memory_mutex);
        if (auto found = m_memory.find(id); found != m_memory.end()) {
            if (found->second.action != Settle::keep) {
                return std::optional<AlertRecord>(); // settled; its removal waits
            }
            return std::optional<AlertRecord>(found->second.record);
        }
    }
    return m_store.load(id);
}

std::expected<std::optional<AlertRecord>, std::string> Outbox::change(const std::string& id,
                                                                      const Change& change) {
    std::lock_guard record_guard(record_lock(id));
    std::optional<Waiting> waiting;
    {
        std::lock_guard lock(m_memory_mutex);
        if (auto found = m_memory.find(id); found != m_memory.end()) {
            waiting = found->second;
        }
    }
    if (waiting) {
        if (waiting->action != Settle::keep) {
            return std::optional<AlertRecord>();
        }
        auto settle = change(waiting->record);
        if (!settle) {
            return std::optional<AlertRecord>(std::move(waiting->record));
        }
        waiting->action = *settle;
        {
            std::lock_guard lock(m_memory_mutex);
            if (*settle == Settle::remove && !waiting->on_disk) {
                m_memory.erase(id); // delivered, and never on disk: nothing left to do
            } else {
                m_memory[id] = *waiting; // the retry thread stores it (or moves it, removes it)
            }
        }
        m_changed.notify_all();
        return std::optional<AlertRecord>(std::move(waiting->record));
    }
    auto loaded = m_store.load(id);
    if (!loaded) {
        return std::unexpected(loaded.error());
    }
    if (!loaded->has_value()) {
        return std::optional<AlertRecord>();
    }
    AlertRecord record = std::move(**loaded);
    auto settle = change(record);
    if (!settle) {
        return std::optional<AlertRecord>(std::move(record));
    }
    std::expected<void, std::string> stored;
    switch (*settle) {
    case Settle::keep:
        stored = m_store.update(record);
        break;
    case Settle::remove:
        stored = m_store.remove(id);
        break;
    case Settle::fail:
        stored = m_store.fail(record);
        break;
    }
    if (!stored) {
        wait_in_memory(id, Waiting{record, *settle, true, stored.error()});
    }
    return std::optional<AlertRecord>(std::move(record));
}

void Outbox::scan(const std::function<bool(const std::string& id)>& visit) {
    std::vector<std::string> waiting;
    {
        std::lock_guard lock(m_memory_mutex);
        for (const auto& [id, entry] : m_memory) {
            if (entry.action == Settle::keep) {
                waiting.push_back(id);
            }
        }
    }
    for (const std::string& id : waiting) {
        if (!visit(id)) {
            return;
        }
    }
    m_store.scan_pending(visit);
}

std::size_t Outbox::waiting() const {
    std::lock_guard lock(m_memory_mutex);
    return m_memory.size();
}

bool Outbox::store_waiting(const std::string& id) {
    Waiting waiting;
    {
        std::lock_guard lock(m_memory_mutex);
        auto found = m_memory.find(id);
        if (found == m_memory.end()) {
            return true;
        }
        waiting = found->second;
    }
    std::expected<void, std::string> stored;
    switch (waiting.action) {
    case Settle::keep:
        // Never on disk: this is its first durable write, fsynced like add()'s.
        stored = waiting.on_disk ? m_store.update(waiting.record) : m_store.save(waiting.record);
        break;
    case Settle::remove:
        stored = m_store.remove(id);
        break;
    case Settle::fail:
        stored = m_store.fail(waiting.record);
        break;
    }
    std::lock_guard lock(m_memory_mutex);
    if (!stored) {
        if (auto found = m_memory.find(id); found != m_memory.end()) {
            found->second.error = stored.error();
        }
        m_last_error = stored.error();
        return false;
    }
    m_memory.erase(id);
    ++m_stored_from_memory;
    return true;
}

std::size_t Outbox::retry_now() {
    std::vector<std::string> ids;
    {
        std::lock_guard lock(m_memory_mutex);
        for (const auto& [id, entry] : m_memory) {
            ids.push_back(id);
        }
    }
    for (const std::string& id : ids) {
        std::lock_guard record_guard(record_lock(id));
        store_waiting(id);
    }
    m_changed.notify_all();
    return waiting();
}

void Outbox::start() {
    std::lock_guard lock(m_memory_mutex);
    if (m_started || m_stopping) {
        return;
    }
    m_started = true;
    m_thread = std::thread([this] { retry_loop(); });
}

void Outbox::write_mark(std::size_t waiting, std::size_t lost, const std::string& reason) const {
    if (m_settings.mark == nullptr) {
        return;
    }
    nlohmann::json mark = {
        {"waiting", waiting},
        {"lost", lost},
        {"reason", one_line(reason, k_mark_reason_bytes)},
        {"time_ms", unix_ms(std::chrono::system_clock::now())},
        {"pid", static_cast<std::int64_t>(::getpid())},
    };
    if (auto saved = m_settings.mark->save(json_text(mark)); !saved) {
        log::error("cannot write the outbox mark for --status: {}", saved.error());
    }
}

void Outbox::retry_loop() {
    using steady = std::chrono::steady_clock;
    auto delay = m_settings.retry_first;
    auto next_try = steady::now();
    bool was_waiting = false;
    std::uint64_t episodes_told = 0; // the waiting room's episodes whose end was told
    std::unique_lock lock(m_memory_mutex);
    while (!m_stopping) {
        const std::size_t count = m_memory.size();
        if (count != m_mark_written) {
            const std::size_t dropped = m_dropped;
            const std::string reason = count > 0 ? m_last_error : std::string();
            m_mark_written = count;
            lock.unlock();
            write_mark(count, dropped, reason);
            lock.lock();
            continue;
        }
        if (count == 0) {
            was_waiting = false;
            delay = m_settings.retry_first;
            // An episode may end without this thread seeing it begin: its records were
            // delivered (and never on disk) before a retry.
            if (episodes_told != m_episodes) {
                episodes_told = m_episodes;
                const std::size_t stored = m_stored_from_memory;
                lock.unlock();
                log::info("no record waits in memory any more: {} stored in the spool once it "
                          "took them again, the others delivered or settled",
                          stored);
                if (m_settings.on_durable_again) {
                    m_settings.on_durable_again(stored);
                }
                lock.lock();
                continue;
            }
            m_changed.wait(lock, [&] {
                return m_stopping || m_memory.size() != m_mark_written ||
                       episodes_told != m_episodes;
            });
            continue;
        }
        if (!was_waiting) {
            was_waiting = true;
            next_try = steady::now() + delay;
        }
        if (steady::now() < next_try) {
            m_changed.wait_until(lock, next_try,
                                 [&] { return m_stopping || m_memory.size() != m_mark_written; });
            continue;
        }
        lock.unlock();
        const std::size_t left = retry_now();
        lock.lock();
        if (left > 0) {
            log::warning("{} record(s) still wait in memory: the spool refuses them ({}); next "
                         "try in {} ms",
                         left, m_last_error, std::min(delay * 2, m_settings.retry_max).count());
            delay = std::min(delay * 2, m_settings.retry_max);
        }
        next_try = steady::now() + delay;
    }
}

Outbox::Closing Outbox::close() {
    {
        std::lock_guard lock(m_memory_mutex);
        m_stopping = true;
    }
    m_changed.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
    retry_now();
    Closing closing;
    m_store.scan_pending([&](const std::string&) {
        ++closing.pending;
        return true;
    });
    {
        std::lock_guard lock(m_memory_mutex);
        for (const auto& [id, entry] : m_memory) {
            // With an older version in the store the alert is not lost (it goes out again,
            // at least once); a removal that waits is no alert at all; a digest the store
            // never took still has its items in the store (store_digest() removes them only
            // once the digest is stored), and they go out in another digest.
            if (!entry.on_disk && entry.action != Settle::remove &&
                entry.record.alert.kind != AlertKind::digest) {
                ++closing.lost;
            }
        }
        closing.lost += m_dropped;
        if (closing.lost > 0) {
            closing.reason = m_last_error;
        }
    }
    write_mark(0, closing.lost, closing.reason);
    return closing;
}

} // namespace crashmail
