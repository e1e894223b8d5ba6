#pragma once
// An AlertStore in memory that records what it was asked and can refuse writes.

#include "delivery/spool.hpp"

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
        if (refuse_writes) {
            return std::unexpected(std::string("No space left on device"));
        }
        pending[record.alert.id] = record;
        return {};
    }
    std::expected<void, std::string> update(const AlertRecord& record) override {
        {
            std::lock_guard lock(mutex);
            ++updates;
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
        pending.erase(id);
        removed.push_back(id);
        return {};
    }
    std::expected<void, std::string> fail(const AlertRecord& record) override {
        std::lock_guard lock(mutex);
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

    std::mutex mutex;
    std::map<std::string, AlertRecord> pending;
    std::map<std::string, AlertRecord> failed;
    std::vector<std::string> removed;
    int saves = 0;   // every write, updates included
    int updates = 0; // of them, the unsynced ones (update())
    int scans = 0;
    bool refuse_writes = false;
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
