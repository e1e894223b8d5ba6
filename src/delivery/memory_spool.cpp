#include "delivery/memory_spool.hpp"

#include <vector>

namespace crashmail {

std::expected<void, std::string> MemorySpool::save(const AlertRecord& record) {
    std::lock_guard lock(m_mutex);
    m_pending[record.alert.id] = record;
    return {};
}

std::expected<void, std::string> MemorySpool::update(const AlertRecord& record) {
    return save(record);
}

std::expected<std::optional<AlertRecord>, std::string> MemorySpool::load(const std::string& id) {
    std::lock_guard lock(m_mutex);
    auto found = m_pending.find(id);
    if (found == m_pending.end()) {
        return std::optional<AlertRecord>();
    }
    return std::optional<AlertRecord>(found->second);
}

std::expected<void, std::string> MemorySpool::remove(const std::string& id) {
    std::lock_guard lock(m_mutex);
    m_pending.erase(id);
    return {};
}

std::expected<void, std::string> MemorySpool::fail(const AlertRecord& record) {
    std::lock_guard lock(m_mutex);
    m_pending.erase(record.alert.id);
    ++m_failed;
    return {};
}

void MemorySpool::scan_pending(const std::function<bool(const std::string& id)>& visit) {
    std::vector<std::string> ids;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& entry : m_pending) {
            ids.push_back(entry.first);
        }
    }
    for (const std::string& id : ids) {
        if (!visit(id)) {
            break;
        }
    }
}

std::expected<void, std::string> MemorySpool::save_state(std::string_view name,
                                                         const std::string& content,
                                                         Durability /*durability*/) {
    std::lock_guard lock(m_mutex);
    m_states[std::string(name)] = content;
    return {};
}

std::expected<void, std::string> MemorySpool::sync_state(std::string_view /*name*/) {
    return {};
}

std::expected<std::optional<std::string>, std::string>
MemorySpool::load_state(std::string_view name) {
    std::lock_guard lock(m_mutex);
    auto found = m_states.find(name);
    if (found == m_states.end()) {
        return std::optional<std::string>();
    }
    return std::optional<std::string>(found->second);
}

std::size_t MemorySpool::failed_count() const {
    std::lock_guard lock(m_mutex);
    return m_failed;
}

std::expected<void, std::string> MemoryMark::save(std::string_view record) {
    std::lock_guard lock(m_mutex);
    m_record = std::string(record);
    return {};
}

std::expected<std::optional<std::string>, std::string> MemoryMark::load() {
    std::lock_guard lock(m_mutex);
    return m_record;
}

} // namespace crashmail
