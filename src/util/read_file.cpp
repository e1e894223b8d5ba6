#include "util/read_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace crashmail {

std::expected<std::string, int> read_descriptor(int fd) {
    std::string content;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return std::unexpected(errno);
        }
        if (n == 0) {
            return content;
        }
        content.append(buffer, static_cast<std::size_t>(n));
    }
}

std::expected<std::string, std::string> read_whole_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::unexpected(
            fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    }
    auto content = read_descriptor(fd);
    ::close(fd);
    if (!content) {
        return std::unexpected(
            fmt::format("cannot read {}: {}", path.string(), std::strerror(content.error())));
    }
    return std::move(*content);
}

} // namespace crashmail
