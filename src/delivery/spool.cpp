#include "delivery/spool.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace crashmail {
namespace {

constexpr std::string_view k_suffix = ".json";

std::string errno_text(std::string_view what, const std::filesystem::path& path) {
    return fmt::format("{} {}: {}", what, path.string(), std::strerror(errno));
}

// Creates `path` mode 0700 if missing and checks it is a directory we can write.
std::expected<void, std::string> ensure_directory(const std::filesystem::path& path) {
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
        return std::unexpected(errno_text("cannot create directory", path));
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return std::unexpected(errno_text("cannot stat", path));
    }
    if (!S_ISDIR(info.st_mode)) {
        return std::unexpected(fmt::format("{} is not a directory", path.string()));
    }
    if (::access(path.c_str(), W_OK | X_OK) != 0) {
        return std::unexpected(errno_text("cannot write to", path));
    }
    return {};
}

bool valid_id(const std::string& id) {
    if (id.empty() || id.size() > 200 || id.front() == '.') {
        return false;
    }
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

std::expected<std::string, std::string> read_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::unexpected(errno_text("cannot open", path));
    }
    std::string content;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            auto error = errno_text("cannot read", path);
            ::close(fd);
            return std::unexpected(error);
        }
        if (n == 0) {
            break;
        }
        content.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return content;
}

} // namespace

std::expected<std::unique_ptr<DirectorySpool>, std::string>
DirectorySpool::open(const std::filesystem::path& directory) {
    std::unique_ptr<DirectorySpool> spool(new DirectorySpool());
    spool->m_directory = directory;
    // Parents (e.g. ~/.local/state) are created with the usual 0755; the spool itself 0700.
    std::error_code ignored;
    std::filesystem::create_directories(directory.parent_path(), ignored);
    for (const auto& path :
         {directory, directory / "tmp", directory / "pending", directory / "failed"}) {
        if (auto made = ensure_directory(path); !made) {
            return std::unexpected(made.error());
        }
    }
    ::chmod(directory.c_str(), 0700);
    auto lock_path = directory / "lock";
    spool->m_lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (spool->m_lock_fd < 0) {
        return std::unexpected(errno_text("cannot open", lock_path));
    }
    if (::flock(spool->m_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        return std::unexpected(fmt::format(
            "spool {} is in use by another crashmail (give each listener its own --spool "
            "or process name)",
            directory.string()));
    }
    spool->m_pending_fd =
        ::open((directory / "pending").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    spool->m_failed_fd = ::open((directory / "failed").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    spool->m_directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (spool->m_pending_fd < 0 || spool->m_failed_fd < 0 || spool->m_directory_fd < 0) {
        return std::unexpected(errno_text("cannot open the spool's directories in", directory));
    }
    // Leftovers of writes interrupted by a crash.
    for (const auto& entry : std::filesystem::directory_iterator(directory / "tmp", ignored)) {
        std::filesystem::remove(entry.path(), ignored);
    }
    return spool;
}

DirectorySpool::~DirectorySpool() {
    for (int fd : {m_pending_fd, m_failed_fd, m_directory_fd, m_lock_fd}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

std::expected<void, std::string> DirectorySpool::write_file(const std::filesystem::path& final_path,
                                                            int directory_fd,
                                                            const std::string& content,
                                                            Durability durability) {
    static thread_local std::mt19937_64 random{std::random_device{}()};
    auto temp = m_directory / "tmp" / fmt::format("{:016x}", random());
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return std::unexpected(errno_text("cannot create", temp));
    }
    std::string_view rest = content;
    while (!rest.empty()) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            auto error = errno_text("cannot write", temp);
            ::close(fd);
            ::unlink(temp.c_str());
            return std::unexpected(error);
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    if (durability == Durability::disk && ::fsync(fd) != 0) {
        auto error = errno_text("cannot fsync", temp);
        ::close(fd);
        ::unlink(temp.c_str());
        return std::unexpected(error);
    }
    ::close(fd);
    if (::rename(temp.c_str(), final_path.c_str()) != 0) {
        auto error = errno_text("cannot rename into", final_path);
        ::unlink(temp.c_str());
        return std::unexpected(error);
    }
    if (durability == Durability::disk && ::fsync(directory_fd) != 0) {
        return std::unexpected(errno_text("cannot fsync the directory of", final_path));
    }
    return {};
}

std::expected<void, std::string> DirectorySpool::save(const AlertRecord& record) {
    if (!valid_id(record.alert.id)) {
        return std::unexpected("invalid alert id '" + record.alert.id + "'");
    }
    return write_file(m_directory / "pending" / (record.alert.id + std::string(k_suffix)),
                      m_pending_fd, record_to_json(record));
}

std::expected<void, std::string> DirectorySpool::update(const AlertRecord& record) {
    if (!valid_id(record.alert.id)) {
        return std::unexpected("invalid alert id '" + record.alert.id + "'");
    }
    return write_file(m_directory / "pending" / (record.alert.id + std::string(k_suffix)),
                      m_pending_fd, record_to_json(record), Durability::process);
}

std::expected<std::optional<AlertRecord>, std::string> DirectorySpool::load(const std::string& id) {
    if (!valid_id(id)) {
        return std::unexpected("invalid alert id '" + id + "'");
    }
    auto path = m_directory / "pending" / (id + std::string(k_suffix));
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
        return std::optional<AlertRecord>();
    }
    auto content = read_file(path);
    if (!content) {
        return std::unexpected(content.error());
    }
    auto record = record_from_json(*content);
    if (!record) {
        return std::unexpected(fmt::format("{}: {}", path.string(), record.error()));
    }
    return std::optional<AlertRecord>(std::move(*record));
}

std::expected<void, std::string> DirectorySpool::remove(const std::string& id) {
    auto path = m_directory / "pending" / (id + std::string(k_suffix));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return std::unexpected(errno_text("cannot remove", path));
    }
    // No directory fsync: if a crash undoes the unlink, the alert is delivered once more,
    // which at-least-once allows, and the next write to the directory is not held up.
    return {};
}

std::expected<void, std::string> DirectorySpool::fail(const AlertRecord& record) {
    if (!valid_id(record.alert.id)) {
        return std::unexpected("invalid alert id '" + record.alert.id + "'");
    }
    auto written = write_file(m_directory / "failed" / (record.alert.id + std::string(k_suffix)),
                              m_failed_fd, record_to_json(record));
    if (!written) {
        return written;
    }
    return remove(record.alert.id);
}

void DirectorySpool::scan_pending(const std::function<bool(const std::string& id)>& visit) {
    auto directory = m_directory / "pending";
    DIR* stream = ::opendir(directory.c_str());
    if (stream == nullptr) {
        return;
    }
    while (dirent* entry = ::readdir(stream)) {
        std::string_view name = entry->d_name;
        if (name.size() <= k_suffix.size() || !name.ends_with(k_suffix)) {
            continue;
        }
        std::string id(name.substr(0, name.size() - k_suffix.size()));
        if (valid_id(id) && !visit(id)) {
            break;
        }
    }
    ::closedir(stream);
}

std::filesystem::path default_spool_root() {
    std::filesystem::path system_root = "/var/spool/crashmail";
    if (::mkdir(system_root.c_str(), 0700) == 0 || errno == EEXIST) {
        if (::access(system_root.c_str(), W_OK | X_OK) == 0) {
            return system_root;
        }
    }
    if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr && state[0] == '/') {
        return std::filesystem::path(state) / "crashmail";
    }
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home != nullptr && home[0] != '\0' ? home : "/tmp") / ".local" /
           "state" / "crashmail";
}

std::filesystem::path listener_spool(const std::filesystem::path& root, std::string name) {
    for (char& c : name) {
        if (c == '/' || c == '\0') {
            c = '_';
        }
    }
    if (name.empty() || name == "." || name == "..") {
        name = "crashmail";
    }
    return root / name;
}

void for_each_record(
    const std::filesystem::path& directory, const std::string& area,
    const std::function<void(const std::string& file,
                             const std::expected<AlertRecord, std::string>&)>& visit) {
    auto folder = directory / area;
    DIR* stream = ::opendir(folder.c_str());
    if (stream == nullptr) {
        return;
    }
    while (dirent* entry = ::readdir(stream)) {
        std::string_view name = entry->d_name;
        if (!name.ends_with(k_suffix)) {
            continue;
        }
        auto path = folder / std::string(name);
        auto content = read_file(path);
        if (!content) {
            visit(path.string(), std::unexpected(content.error()));
            continue;
        }
        visit(path.string(), record_from_json(*content));
    }
    ::closedir(stream);
}

std::expected<void, std::string> DirectorySpool::save_state(std::string_view name,
                                                            const std::string& content,
                                                            Durability durability) {
    std::string file(name);
    if (!valid_id(file)) {
        return std::unexpected("invalid state name '" + file + "'");
    }
    return write_file(m_directory / (file + ".state.json"), m_directory_fd, content, durability);
}

std::expected<void, std::string> DirectorySpool::sync_state(std::string_view name) {
    std::string file(name);
    if (!valid_id(file)) {
        return std::unexpected("invalid state name '" + file + "'");
    }
    auto path = m_directory / (file + ".state.json");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? std::expected<void, std::string>()
                               : std::unexpected(errno_text("cannot open", path));
    }
    bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) {
        return std::unexpected(errno_text("cannot fsync", path));
    }
    if (::fsync(m_directory_fd) != 0) {
        return std::unexpected(errno_text("cannot fsync the directory of", path));
    }
    return {};
}

std::expected<std::optional<std::string>, std::string>
DirectorySpool::load_state(std::string_view name) {
    std::string file(name);
    if (!valid_id(file)) {
        return std::unexpected("invalid state name '" + file + "'");
    }
    auto path = m_directory / (file + ".state.json");
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
        return std::optional<std::string>();
    }
    auto content = read_file(path);
    if (!content) {
        return std::unexpected(content.error());
    }
    return std::optional<std::string>(std::move(*content));
}

} // namespace crashmail
