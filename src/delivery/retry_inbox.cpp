#include "delivery/retry_inbox.hpp"

#include "delivery/spool.hpp"
#include "util/log.hpp"
#include "util/read_file.hpp"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <random>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace crashmail {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view k_suffix = ".json";

RetryDepositError failure(std::string_view what, const fs::path& path) {
    int error = errno;
    return {fmt::format("{} {}: {}", what, path.string(), std::strerror(error)), error};
}

std::expected<std::string, std::string> read_all(const fs::path& path) {
    return read_whole_file(path);
}

bool fsync_directory(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool synced = ::fsync(fd) == 0;
    ::close(fd);
    return synced;
}

} // namespace

std::expected<void, RetryDepositError> deposit_retry(const fs::path& directory,
                                                     const AlertRecord& record) {
    if (!valid_record_id(record.alert.id)) {
        return std::unexpected(
            RetryDepositError{fmt::format("invalid alert id '{}'", record.alert.id), EINVAL});
    }
    struct stat owner {};
    if (::stat(directory.c_str(), &owner) != 0) {
        return std::unexpected(failure("cannot stat", directory));
    }
    const fs::path retry = directory / "retry";
    if (::mkdir(retry.c_str(), 0700) == 0) {
        if (::geteuid() == 0 && ::chown(retry.c_str(), owner.st_uid, owner.st_gid) != 0) {
            return std::unexpected(failure("cannot give to the spool's owner", retry));
        }
    } else if (errno != EEXIST) {
        return std::unexpected(failure("cannot create directory", retry));
    }
    static thread_local std::mt19937_64 random{std::random_device{}()};
    const fs::path temp = retry / fmt::format(".{}.{:016x}", record.alert.id, random());
    const fs::path final_path = retry / (record.alert.id + std::string(k_suffix));
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return std::unexpected(failure("cannot create", temp));
    }
    auto give_up = [&](std::string_view what, const fs::path& path) {
        RetryDepositError error = failure(what, path);
        ::close(fd);
        ::unlink(temp.c_str());
        return std::unexpected(std::move(error));
    };
    if (::geteuid() == 0 && ::fchown(fd, owner.st_uid, owner.st_gid) != 0) {
        return give_up("cannot give to the spool's owner", temp);
    }
    const std::string content = record_to_json(record);
    std::string_view rest = content;
    while (!rest.empty()) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return give_up("cannot write", temp);
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    if (::fsync(fd) != 0) {
        return give_up("cannot fsync", temp);
    }
    ::close(fd);
    if (::rename(temp.c_str(), final_path.c_str()) != 0) {
        RetryDepositError error = failure("cannot rename into", final_path);
        ::unlink(temp.c_str());
        return std::unexpected(std::move(error));
    }
    if (!fsync_directory(retry)) {
        return std::unexpected(failure("cannot fsync the directory", retry));
    }
    return {};
}

RetryInbox::RetryInbox(fs::path directory, Adopt adopt, RetryInboxSettings settings)
    : m_directory(std::move(directory)), m_adopt(std::move(adopt)), m_settings(settings) {}

RetryInbox::~RetryInbox() {
    stop();
}

bool RetryInbox::adopt_file(const std::string& name) {
    const fs::path retry = m_directory / "retry";
    const fs::path path = retry / name;
    const std::string id = name.substr(0, name.size() - k_suffix.size());
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
        return false; // adopted by an earlier scan
    }
    auto content = read_all(path);
    if (!content) {
        log::error("--retry-failed: {}; the alert stays there", content.error());
        return false;
    }
    auto record = record_from_json(*content);
    if (!record || record->alert.id != id) {
        const std::string why =
            record ? fmt::format("it holds alert {}", record->alert.id) : record.error();
        const fs::path failed = m_directory / "failed" / name;
        if (::rename(path.c_str(), failed.c_str()) == 0) {
            log::error("--retry-failed: {} is not a record ({}); moved to {}", path.string(), why,
                       failed.string());
        } else {
            log::error("--retry-failed: {} is not a record ({}), and cannot be moved to {}: {}",
                       path.string(), why, failed.string(), std::strerror(errno));
        }
        return false;
    }
    const std::string process = display_name(record->alert.group, record->alert.process);
    // The command unlinks failed/ID.json once the retry is in place; if it died before that,
    // the renewed version wins.
    ::unlink((m_directory / "failed" / name).c_str());
    if (!m_adopt(std::move(*record))) {
        return false; // stopping: the next start adopts it
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        log::error("--retry-failed: cannot remove {} after adopting it: {} (it is adopted again, "
                   "at least once)",
                   path.string(), std::strerror(errno));
    }
    log::info("alert {} ({}) requeued by --retry-failed: in pending/, sent with fresh attempts", id,
              process);
    return true;
}

std::size_t RetryInbox::adopt_all() {
    std::lock_guard scanning(m_scan_mutex);
    const fs::path retry = m_directory / "retry";
    std::vector<std::string> names;
    DIR* stream = ::opendir(retry.c_str());
    if (stream == nullptr) {
        if (errno != ENOENT) {
            log::error("--retry-failed: cannot read {}: {}", retry.string(), std::strerror(errno));
        }
        return 0;
    }
    const auto now = fs::file_time_type::clock::now();
    while (dirent* entry = ::readdir(stream)) {
        std::string name = entry->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        if (name.front() == '.') {
            // A temporary file of a command that died before its rename.
            std::error_code error;
            auto written = fs::last_write_time(retry / name, error);
            if (!error && now - written > m_settings.stale_after) {
                fs::remove(retry / name, error);
            }
            continue;
        }
        if (name.size() > k_suffix.size() && name.ends_with(k_suffix) &&
            valid_record_id(name.substr(0, name.size() - k_suffix.size()))) {
            names.push_back(std::move(name));
        }
    }
    ::closedir(stream);
    std::size_t adopted = 0;
    for (const std::string& name : names) {
        adopted += adopt_file(name) ? 1 : 0;
    }
    return adopted;
}

void RetryInbox::start() {
    if (m_started) {
        return;
    }
    m_started = true;
    if (std::size_t adopted = adopt_all(); adopted > 0) {
        log::info("{} alert(s) requeued by --retry-failed while no listener ran", adopted);
    }
    m_stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m_stop_fd < 0) {
        log::error("--retry-failed: cannot watch {} (eventfd: {}); requeued alerts are sent at "
                   "the next start",
                   (m_directory / "retry").string(), std::strerror(errno));
        return;
    }
    m_thread = std::thread([this] { watch_loop(); });
}

void RetryInbox::stop() {
    if (m_stop_fd >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t ignored = ::write(m_stop_fd, &one, sizeof one);
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
    if (m_stop_fd >= 0) {
        ::close(m_stop_fd);
        m_stop_fd = -1;
    }
}

void RetryInbox::watch_loop() {
    const fs::path retry = m_directory / "retry";
    int inotify = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify < 0) {
        log::warning("--retry-failed: no inotify ({}); {} is looked at every {}",
                     std::strerror(errno), retry.string(),
                     std::chrono::duration_cast<std::chrono::seconds>(m_settings.rescan).count());
    }
    int watch = -1;
    bool told = false;
    for (;;) {
        if (inotify >= 0 && watch < 0) {
            // retry/ may have been removed with the rest (the spool re-creates it on a write).
            ::mkdir(retry.c_str(), 0700);
            watch = ::inotify_add_watch(inotify, retry.c_str(),
                                        IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR);
            if (watch < 0 && !told) {
                told = true;
                log::warning(
                    "--retry-failed: cannot watch {} ({}); it is looked at every {} s",
                    retry.string(), std::strerror(errno),
                    std::chrono::duration_cast<std::chrono::seconds>(m_settings.rescan).count());
            }
        }
        pollfd fds[2] = {{m_stop_fd, POLLIN, 0}, {inotify, POLLIN, 0}};
        int ready = ::poll(fds, inotify >= 0 ? 2 : 1, static_cast<int>(m_settings.rescan.count()));
        if (ready < 0 && errno != EINTR) {
            break;
        }
        if (fds[0].revents != 0) {
            break;
        }
        if (inotify >= 0 && fds[1].revents != 0) {
            alignas(inotify_event) char buffer[4096];
            for (;;) {
                ssize_t n = ::read(inotify, buffer, sizeof buffer);
                if (n <= 0) {
                    break;
                }
                for (ssize_t at = 0; at < n;) {
                    const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
                    if ((event->mask & IN_IGNORED) != 0) {
                        watch = -1; // retry/ is gone: watched again once it is back
                    }
                    at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
                }
            }
        }
        adopt_all();
    }
    if (inotify >= 0) {
        ::close(inotify);
    }
}

} // namespace crashmail
