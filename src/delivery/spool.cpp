#include "delivery/spool.hpp"

#include "util/log.hpp"
#include "util/read_file.hpp"

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
#include <vector>

namespace crashmail {

struct DirectorySpool::Directories {
    int lock_fd = -1; // flock(2)ed
    int directory_fd = -1;
    int pending_fd = -1;
    int failed_fd = -1;

    Directories() = default;
    Directories(const Directories&) = delete;
    Directories& operator=(const Directories&) = delete;
    ~Directories() {
        for (int fd : {pending_fd, failed_fd, directory_fd, lock_fd}) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }
};

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

} // namespace

bool valid_record_id(const std::string& id) {
    return valid_id(id);
}

namespace {

std::expected<std::string, std::string> read_file(const std::filesystem::path& path) {
    return read_whole_file(path);
}

using Identity = std::pair<dev_t, ino_t>;

// What `path` names, or std::nullopt when it names nothing.
std::optional<Identity> identity(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return std::nullopt;
    }
    return Identity(info.st_dev, info.st_ino);
}

// What `fd` holds open.
std::optional<Identity> identity(int fd) {
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        return std::nullopt;
    }
    return Identity(info.st_dev, info.st_ino);
}

// True when `path` still names the file or directory `fd` holds open.
bool still_there(const std::filesystem::path& path, int fd) {
    auto named = identity(path);
    return named && named == identity(fd);
}

} // namespace

std::expected<DirectorySpool::DirectoriesPtr, std::string>
DirectorySpool::open_directories(const std::filesystem::path& directory,
                                 const Directories* previous) {
    // Parents (e.g. ~/.local/state) are created with the usual 0755; the spool itself 0700.
    std::error_code ignored;
    std::filesystem::create_directories(directory.parent_path(), ignored);
    for (const auto& path : {directory, directory / "tmp", directory / "pending",
                             directory / "failed", directory / "retry"}) {
        if (auto made = ensure_directory(path); !made) {
            return std::unexpected(made.error());
        }
    }
    ::chmod(directory.c_str(), 0700);
    auto directories = std::make_shared<Directories>();
    auto lock_path = directory / "lock";
    if (previous != nullptr && still_there(lock_path, previous->lock_fd)) {
        // The same open file description: the flock stays held when `previous` closes.
        directories->lock_fd = ::fcntl(previous->lock_fd, F_DUPFD_CLOEXEC, 0);
        if (directories->lock_fd < 0) {
            return std::unexpected(errno_text("cannot duplicate the lock of", directory));
        }
    } else {
        directories->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (directories->lock_fd < 0) {
            return std::unexpected(errno_text("cannot open", lock_path));
        }
        if (::flock(directories->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            return std::unexpected(fmt::format(
                "spool {} is in use by another crashmail (give each listener its own --spool "
                "or process name)",
                directory.string()));
        }
    }
    directories->pending_fd =
        ::open((directory / "pending").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    directories->failed_fd =
        ::open((directory / "failed").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    directories->directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directories->pending_fd < 0 || directories->failed_fd < 0 ||
        directories->directory_fd < 0) {
        return std::unexpected(errno_text("cannot open the spool's directories in", directory));
    }
    return directories;
}

std::vector<std::string> DirectorySpool::missing_parts(const std::filesystem::path& directory,
                                                       const Directories& directories) {
    if (!still_there(directory, directories.directory_fd)) {
        return {"the whole directory"};
    }
    std::vector<std::string> missing;
    std::error_code ignored;
    if (!std::filesystem::is_directory(directory / "tmp", ignored)) {
        missing.emplace_back("tmp/");
    }
    if (!std::filesystem::is_directory(directory / "retry", ignored)) {
        missing.emplace_back("retry/");
    }
    if (!still_there(directory / "pending", directories.pending_fd)) {
        missing.emplace_back("pending/");
    }
    if (!still_there(directory / "failed", directories.failed_fd)) {
        missing.emplace_back("failed/");
    }
    if (!still_there(directory / "lock", directories.lock_fd)) {
        missing.emplace_back("lock");
    }
    return missing;
}

std::expected<std::unique_ptr<DirectorySpool>, std::string>
DirectorySpool::open(const std::filesystem::path& directory) {
    std::unique_ptr<DirectorySpool> spool(new DirectorySpool());
    spool->m_directory = directory;
    auto directories = open_directories(directory, nullptr);
    if (!directories) {
        return std::unexpected(directories.error());
    }
    spool->m_directories = std::move(*directories);
    // Leftovers of writes interrupted by a crash.
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(directory / "tmp", ignored)) {
        std::filesystem::remove(entry.path(), ignored);
    }
    return spool;
}

DirectorySpool::~DirectorySpool() = default;

DirectorySpool::DirectoriesPtr DirectorySpool::directories() const {
    std::lock_guard lock(m_mutex);
    return m_directories;
}

std::expected<DirectorySpool::DirectoriesPtr, std::string>
DirectorySpool::repair(const DirectoriesPtr& stale) {
    std::lock_guard repairing(m_repair_mutex);
    if (DirectoriesPtr now = directories(); now != stale) {
        return now; // another thread re-created the directory meanwhile
    }
    const std::vector<std::string> missing = missing_parts(m_directory, *stale);
    if (missing.empty()) {
        return DirectoriesPtr();
    }
    auto fresh = open_directories(m_directory, stale.get());
    if (!fresh) {
        return std::unexpected(fresh.error());
    }
    DirectoriesPtr made = std::move(*fresh);
    {
        std::lock_guard lock(m_mutex);
        m_directories = made;
    }
    log::warning("spool directory {} vanished (missing: {}); re-created it", m_directory.string(),
                 fmt::join(missing, ", "));
    return made;
}

std::expected<void, std::string> DirectorySpool::write_repairing(
    const std::function<std::expected<void, std::string>(const Directories&)>& write) {
    const DirectoriesPtr used = directories();
    auto written = write(*used);
    if (written) {
        return written;
    }
    auto repaired = repair(used);
    if (!repaired) {
        return std::unexpected(fmt::format("{} (the spool directory vanished and cannot be "
                                           "re-created: {})",
                                           written.error(), repaired.error()));
    }
    if (*repaired == nullptr) {
        return written;
    }
    return write(**repaired);
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
    const auto path = m_directory / "pending" / (record.alert.id + std::string(k_suffix));
    const std::string content = record_to_json(record);
    return write_repairing([&](const Directories& directories) {
        return write_file(path, directories.pending_fd, content);
    });
}

std::expected<void, std::string> DirectorySpool::update(const AlertRecord& record) {
    if (!valid_id(record.alert.id)) {
        return std::unexpected("invalid alert id '" + record.alert.id + "'");
    }
    const auto path = m_directory / "pending" / (record.alert.id + std::string(k_suffix));
    const std::string content = record_to_json(record);
    return write_repairing([&](const Directories& directories) {
        return write_file(path, directories.pending_fd, content, Durability::process);
    });
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
    const auto path = m_directory / "failed" / (record.alert.id + std::string(k_suffix));
    const std::string content = record_to_json(record);
    auto written = write_repairing([&](const Directories& directories) {
        return write_file(path, directories.failed_fd, content);
    });
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

std::filesystem::path listener_spool(const std::filesystem::path& root, std::string name) {
    for (char& c : name) {
        if (c == '/' || c == '\0') {
            c = '_';
        }
    }
    if (name.empty() || name == "." || name == "..") {
        name = "crashmail";
    }
    if (name == "users") {
        name = "users.listener";
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
    const auto path = m_directory / (file + ".state.json");
    return write_repairing([&](const Directories& directories) {
        return write_file(path, directories.directory_fd, content, durability);
    });
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
    if (::fsync(directories()->directory_fd) != 0) {
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
