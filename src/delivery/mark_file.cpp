#include "delivery/mark_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace crashmail {
namespace {

std::string errno_text(std::string_view what, const std::filesystem::path& path) {
    return fmt::format("{} {}: {}", what, path.string(), std::strerror(errno));
}

} // namespace

std::expected<std::unique_ptr<FileMark>, std::string>
FileMark::open(const std::filesystem::path& path) {
    bool created = false;
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        created = fd >= 0;
    }
    if (fd < 0) {
        return std::unexpected(errno_text("cannot open", path));
    }
    return std::unique_ptr<FileMark>(new FileMark(path, fd, created));
}

FileMark::~FileMark() {
    if (m_fd >= 0) {
        ::close(m_fd);
    }
}

std::expected<void, std::string> FileMark::save(std::string_view record) {
    if (record.size() >= k_mark_bytes) {
        return std::unexpected(fmt::format("mark record of {} bytes is too long", record.size()));
    }
    char block[k_mark_bytes];
    std::memset(block, ' ', sizeof block);
    std::memcpy(block, record.data(), record.size());
    block[k_mark_bytes - 1] = '\n';
    ssize_t written = ::pwrite(m_fd, block, sizeof block, 0);
    if (written != static_cast<ssize_t>(sizeof block)) {
        if (written >= 0) {
            errno = ENOSPC;
        }
        return std::unexpected(errno_text("cannot write", m_path));
    }
    return {};
}

std::expected<std::optional<std::string>, std::string> FileMark::load() {
    char block[k_mark_bytes];
    ssize_t got = ::pread(m_fd, block, sizeof block, 0);
    if (got < 0) {
        return std::unexpected(errno_text("cannot read", m_path));
    }
    if (got == 0) {
        return std::optional<std::string>();
    }
    std::string record(block, static_cast<std::size_t>(got));
    // save() pads with spaces and ends the block with a newline.
    if (!record.empty() && record.back() == '\n') {
        record.pop_back();
    }
    while (!record.empty() && record.back() == ' ') {
        record.pop_back();
    }
    if (record.empty()) {
        return std::optional<std::string>();
    }
    return std::optional<std::string>(std::move(record));
}

} // namespace crashmail
