#pragma once
// An AlertStore in memory that records what it was asked and can refuse writes: all of them
// (refuse_writes), the next N (refuse_next: a disk full for a while), or one kind only
// (updates: a failed rename; removes: a failed unlink; fails: failed/ unwritable), with the
// error text `refusal` (ENOSPC's by default; ENOENT's plays a directory that vanished).

#include "delivery/spool.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace crashmail::testing {

class FakeStore final : public AlertStore {
public:
    std::expected<void, std::string> save(const AlertRecord& record) override {
        std::lock_guard lock(mutex);
        ++saves;
        if (refused()) {
            return std::unexpected(refusal);
        }
        pending[record.alert.id] = record;
        return {};
    }
    std::expected<void, std::string> update(const AlertRecord& record) override {
        {
            std::lock_guard lock(mutex);
            ++updates;
            if (refuse_updates) {
                return std::unexpected(refusal);
            }
        }
        return save(record);
    }
    std::expected<std::optional<AlertRecord>, std::string> load(const std::string& id) override {
        std::lock_guard lock(mutex);
        auto found = pending.find(id);
        if (found == pending.end()) {
            return std::optional<AlertRecord>();
        }
        return std::optional<AlertRecord>(found->second);
    }
    std::expected<void, std::string> remove(const std::string& id) override {
        std::lock_guard lock(mutex);
        if (refuse_removes || refused()) {
            return std::unexpected(refusal);
        }
        pending.erase(id);
        removed.push_back(id);
        return {};
    }
    std::expected<void, std::string> fail(const AlertRecord& record) override {
        std::lock_guard lock(mutex);
        if (refuse_fails || refused()) {
            return std::unexpected(refusal);
        }
        pending.erase(record.alert.id);
        failed[record.alert.id] = record;
        return {};
    }
    void scan_pending(const std::function<bool(const std::string& id)>& visit) override {
        std::vector<std::string> ids;
        {
            std::lock_guard lock(mutex);
            ++scans;
            for (const auto& [id, record] : pending) {
                ids.push_back(id);
            }
        }
        for (const auto& id : ids) {
            if (!visit(id)) {
                break;
            }
        }
    }

    std::size_t pending_count() {
        std::lock_guard lock(mutex);
        return pending.size();
    }
    // Sets what is refused, under the lock (the outbox's threads read it).
    void set_refuse_writes(bool refuse) {
        std::lock_guard lock(mutex);
        refuse_writes = refuse;
    }
    void set_refuse_next(int count) {
        std::lock_guard lock(mutex);
        refuse_next = count;
    }

    std::mutex mutex;
    std::map<std::string, AlertRecord> pending;
    std::map<std::string, AlertRecord> failed;
    std::vector<std::string> removed;
    int saves = 0;   // every write, updates included
    int updates = 0; // of them, the unsynced ones (update())
    int scans = 0;
    bool refuse_writes = false;
    int refuse_next = 0;
    bool refuse_updates = false;
    bool refuse_removes = false;
    bool refuse_fails = false;
    std::string refusal = "No space left on device";

private:
    // With `mutex` held.
    bool refused() {
        if (refuse_writes) {
            return true;
        }
        if (refuse_next > 0) {
            --refuse_next;
            return true;
        }
        return false;
    }
};

// A store whose writes of one record block at a gate until opened: a slow disk.
struct GatedStore final : public AlertStore {
    FakeStore inner;
    std::mutex mutex;
    std::condition_variable changed;
    std::string gated_id;
    bool gate_open = true;
    bool blocked = false;

    void wait_at_gate(const std::string& id) {
        std::unique_lock lock(mutex);
        if (id != gated_id) {
            return;
        }
        blocked = true;
        changed.notify_all();
        changed.wait(lock, [&] { return gate_open; });
        blocked = false;
    }
    void open() {
        {
            std::lock_guard lock(mutex);
            gate_open = true;
        }
        changed.notify_all();
    }
    bool wait_blocked() {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, std::chrono::seconds(10), [&] { return blocked; });
    }
    std::expected<void, std::string> save(const AlertRecord& r) override {
        wait_at_gate(r.alert.id);
        return inner.save(r);
    }
    std::expected<void, std::string> update(const AlertRecord& r) override {
        wait_at_gate(r.alert.id);
        return inner.update(r);
    }
    std::expected<std::optional<AlertRecord>, std::string> load(const std::string& id) override {
        return inner.load(id);
    }
    std::expected<void, std::string> remove(const std::string& id) override {
        wait_at_gate(id);
        return inner.remove(id);
    }
    std::expected<void, std::string> fail(const AlertRecord& r) override {
        wait_at_gate(r.alert.id);
        return inner.fail(r);
    }
    void scan_pending(const std::function<bool(const std::string&)>& visit) override {
        inner.scan_pending(visit);
    }
};

// A StateStore in memory that counts saves and syncs.
class MemoryState final : public StateStore {
public:
    std::expected<void, std::string> save_state(std::string_view name, const std::string& content,
                                                Durability durability) override {
        std::lock_guard lock(mutex);
        ++saves;
        last_durability = durability;
        documents[std::string(name)] = content;
        return {};
    }
    std::expected<void, std::string> sync_state(std::string_view) override {
        std::lock_guard lock(mutex);
        ++syncs;
        return {};
    }
    std::expected<std::optional<std::string>, std::string>
    load_state(std::string_view name) override {
        std::lock_guard lock(mutex);
        auto found = documents.find(std::string(name));
        if (found == documents.end()) {
            return std::optional<std::string>();
        }
        return std::optional<std::string>(found->second);
    }
    std::map<std::string, std::string> documents;
    int saves = 0;
    int syncs = 0;
    Durability last_durability = Durability::disk;
    std::mutex mutex;
};

} // namespace crashmail::testing
