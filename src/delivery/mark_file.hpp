#pragma once
// A small record rewritten in place on every event: where the listener's pool serials stand
// (event/pool_serials). One pwrite(2) of a fixed-size block at offset 0, no rename and no
// fsync, so that it costs a few microseconds on the event loop; the record carries its own
// checksum, so a torn block (a crash of the machine mid-write) reads as no record.

#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

// Where the mark is kept. An interface so that tests can fail or inspect writes.
class MarkStore {
public:
    virtual ~MarkStore() = default;
    // Replaces the record (at most k_mark_bytes - 1 bytes); survives a crash of crashmail.
    virtual std::expected<void, std::string> save(std::string_view record) = 0;
    // The record as last saved (without the padding: trailing spaces of the record itself are
    // lost too), or std::nullopt when there is none.
    virtual std::expected<std::optional<std::string>, std::string> load() = 0;
};

inline constexpr std::size_t k_mark_bytes = 512;

class FileMark final : public MarkStore {
public:
    // Opens (creating, mode 0600) the file at `path`, and gives it its whole block (spaces,
    // which read as no record) when it is shorter, so that save() never needs new space: it
    // still works on a full disk.
    static std::expected<std::unique_ptr<FileMark>, std::string>
    open(const std::filesystem::path& path);
    ~FileMark() override;
    FileMark(const FileMark&) = delete;
    FileMark& operator=(const FileMark&) = delete;

    std::expected<void, std::string> save(std::string_view record) override;
    std::expected<std::optional<std::string>, std::string> load() override;
    // True when open() made the file (there was no mark before).
    bool created() const { return m_created; }

private:
    FileMark(std::filesystem::path path, int fd, bool created)
        : m_path(std::move(path)), m_fd(fd), m_created(created) {}
    std::filesystem::path m_path;
    int m_fd = -1;
    bool m_created = false;
};

} // namespace crashmail
