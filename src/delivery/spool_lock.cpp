#include "delivery/spool_lock.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <vector>

namespace crashmail {

std::optional<pid_t> flock_holder(std::string_view locks, dev_t device, ino_t inode) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a waiter: "1: -> FLOCK ...".
    const std::string wanted = fmt::format("{:02x}:{:02x}:{}", major(device), minor(device),
                                           static_cast<unsigned long long>(inode));
    std::istringstream lines{std::string(locks)};
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> fields;
        for (std::string word; words >> word && fields.size() < 6;) {
            fields.push_back(word);
        }
        if (fields.size() < 6 || fields[1] != "FLOCK" || fields[5] != wanted) {
            continue;
        }
        pid_t pid = 0;
        const std::string& text = fields[4];
        if (std::from_chars(text.data(), text.data() + text.size(), pid).ec == std::errc()) {
            return pid;
        }
    }
    return std::nullopt;
}

std::expected<std::optional<pid_t>, std::string>
spool_lock_holder(const std::filesystem::path& directory) {
    struct stat info {};
    if (::stat((directory / "lock").c_str(), &info) != 0) {
        if (errno == ENOENT) {
            return std::optional<pid_t>();
        }
        return std::unexpected(
            fmt::format("cannot stat {}: {}", (directory / "lock").string(), std::strerror(errno)));
    }
    std::ifstream in("/proc/locks");
    if (!in) {
        return std::unexpected(std::string("cannot read /proc/locks"));
    }
    std::stringstream text;
    text << in.rdbuf();
    return flock_holder(text.str(), info.st_dev, info.st_ino);
}

} // namespace crashmail
