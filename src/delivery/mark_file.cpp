#include "delivery/mark_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
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
    // The block is allocated now, so that later saves overwrite it in place and still work
    // on a full disk: a mark shorter than a block gets one of spaces (which reads as none).
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        std::string error = errno_text("cannot stat", path);
        ::close(fd);
        return std::unexpected(error);
    }
    if (status.st_size < static_cast<off_t>(k_mark_bytes)) {
        char block[k_mark_bytes];
        std::memset(block, ' ', sizeof block);
        block[k_mark_bytes - 1] = '\n';
        if (::pwrite(fd, block, sizeof block, 0) != static_cast<ssize_t>(sizeof block) ||
            ::fsync(fd) != 0) {
            std::string error = errno_text("cannot allocate", path);
            ::close(fd);
            return std::unexpected(error);
        }
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
