#pragma once
// The spool kept in memory, for a listener that could not have one on disk (see
// delivery/spool_location): alerts are still delivered and retried, crash-loop stories and pool
// serials still work, but everything is lost when crashmail stops. The listener says so on
// stderr and through its channels (alert/spool_notice: no_spool_alert) when it starts.

#include "delivery/mark_file.hpp"
#include "delivery/spool.hpp"

#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace crashmail {

// Thread-safe, like DirectorySpool.
class MemorySpool final : public AlertStore, public StateStore {
public:
    std::expected<void, std::string> save(const AlertRecord& record) override;
    std::expected<void, std::string> update(const AlertRecord& record) override;
    std::expected<std::optional<AlertRecord>, std::string> load(const std::string& id) override;
    std::expected<void, std::string> remove(const std::string& id) override;
    // Forgets the record (the channel worker has logged why it failed); counted.
    std::expected<void, std::string> fail(const AlertRecord& record) override;
    void scan_pending(const std::function<bool(const std::string& id)>& visit) override;
    std::expected<void, std::string> save_state(std::string_view name, const std::string& content,
                                                Durability durability) override;
    std::expected<void, std::string> sync_state(std::string_view name) override;
    std::expected<std::optional<std::string>, std::string>
    load_state(std::string_view name) override;

    std::size_t failed_count() const;

private:
    mutable std::mutex m_mutex; // guards everything below
    std::map<std::string, AlertRecord> m_pending;
    std::map<std::string, std::string, std::less<>> m_states;
    std::size_t m_failed = 0;
};

// A MarkStore in memory (the pool serials of a listener without a spool).
class MemoryMark final : public MarkStore {
public:
    std::expected<void, std::string> save(std::string_view record) override;
    std::expected<std::optional<std::string>, std::string> load() override;

private:
    std::mutex m_mutex;
    std::optional<std::string> m_record;
};

} // namespace crashmail
