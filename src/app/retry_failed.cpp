#include "app/retry_failed.hpp"

#include "app/spool_listing.hpp"
#include "delivery/retry_inbox.hpp"
#include "delivery/spool.hpp"
#include "delivery/spool_lock.hpp"
#include "util/read_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <expected>
#include <fcntl.h>
#include <fmt/format.h>
#include <set>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

namespace crashmail {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view k_suffix = ".json";
constexpr const char* k_permission_hint = "; run --retry-failed as the listener's user or root";

struct Run {
    RetryFailedReport report;
    bool permission = false;
    bool data = false;
    bool io = false;

    void fail(std::string text, int error) {
        if (error == EACCES || error == EPERM) {
            text += k_permission_hint;
            permission = true;
        } else {
            io = true;
        }
        report.errors.push_back(std::move(text));
    }
};

// The record in `path` and the identity of the file it was read from.
struct Read {
    std::string content;
    dev_t device = 0;
    ino_t inode = 0;
};

std::expected<Read, int> read_failed(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return std::unexpected(errno);
    }
    Read read;
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        int error = errno;
        ::close(fd);
        return std::unexpected(error);
    }
    read.device = info.st_dev;
    read.inode = info.st_ino;
    auto content = read_descriptor(fd);
    if (!content) {
        ::close(fd);
        return std::unexpected(content.error());
    }
    read.content = std::move(*content);
    ::close(fd);
    return read;
}

// The ids in `directory`/failed, sorted; an errno when it cannot be read (0: none there).
std::pair<std::vector<std::string>, int> failed_ids(const fs::path& directory) {
    std::vector<std::string> ids;
    DIR* stream = ::opendir((directory / "failed").c_str());
    if (stream == nullptr) {
        return {ids, errno == ENOENT ? 0 : errno};
    }
    while (dirent* entry = ::readdir(stream)) {
        std::string_view name = entry->d_name;
        if (name.size() > k_suffix.size() && name.ends_with(k_suffix)) {
            std::string id(name.substr(0, name.size() - k_suffix.size()));
            if (valid_record_id(id)) {
                ids.push_back(std::move(id));
            }
        }
    }
    ::closedir(stream);
    std::sort(ids.begin(), ids.end());
    return {ids, 0};
}

// What happens next for alerts requeued in `directory`.
std::string next_step(const fs::path& directory) {
    auto holder = spool_lock_holder(directory);
    if (!holder) {
        return fmt::format("the listener sends it within seconds if it runs, else at its next "
                           "start ({})",
                           holder.error());
    }
    if (*holder) {
        return fmt::format("a running listener (pid {}) sends it within seconds", **holder);
    }
    return "no listener is running: the next start sends it";
}

void requeue_one(const fs::path& directory, const std::string& id,
                 std::chrono::system_clock::time_point now, const std::string& next, Run& run) {
    const fs::path path = directory / "failed" / (id + std::string(k_suffix));
    auto read = read_failed(path);
    if (!read) {
        run.fail(fmt::format("cannot read {}: {}", path.string(), std::strerror(read.error())),
                 read.error());
        return;
    }
    auto record = record_from_json(read->content);
    if (!record) {
        run.data = true;
        run.report.errors.push_back(
            fmt::format("cannot requeue {}: not a record ({}); it stays in failed/", path.string(),
                        record.error()));
        return;
    }
    std::size_t delivered = 0;
    for (const auto& [key, state] : record->channels) {
        delivered += state.status == ChannelState::Status::delivered ? 1 : 0;
    }
    const std::vector<std::string> renewed = renew_for_retry(*record, now);
    if (auto deposited = deposit_retry(directory, *record); !deposited) {
        run.fail(fmt::format("cannot requeue alert {}: {}", id, deposited.error().message),
                 deposited.error().error);
        return;
    }
    // The renewed version is in retry/; failed/ID.json goes, unless it is not the file read
    // (a listener failed the alert again meanwhile: that newer failure stays).
    struct stat now_there {};
    if (::stat(path.c_str(), &now_there) == 0 && now_there.st_dev == read->device &&
        now_there.st_ino == read->inode) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;
            run.fail(fmt::format("alert {} is requeued, but {} cannot be removed: {} (the "
                                 "listener removes it when it adopts the alert)",
                                 id, path.string(), std::strerror(error)),
                     error);
        }
    }
    run.report.out += fmt::format(
        "requeued {} ({}) in {}: {} renewed{}; {}\n", id,
        display_name(record->alert.group, record->alert.process), directory.string(),
        renewed.empty() ? std::string("no channel") : fmt::format("{}", fmt::join(renewed, ", ")),
        delivered > 0 ? fmt::format(" ({} channel(s) delivered it already)", delivered) : "", next);
}

} // namespace

RetryFailedReport retry_failed(const fs::path& root, const std::vector<std::string>& ids,
                               std::chrono::system_clock::time_point now, const std::string& user) {
    Run run;
    std::set<std::string> wanted;
    for (std::string id : ids) {
        if (id.ends_with(k_suffix) && id.size() > k_suffix.size()) {
            id.resize(id.size() - k_suffix.size());
        }
        if (!valid_record_id(id)) {
            run.data = true;
            run.report.errors.push_back(fmt::format("'{}' is not an alert id", id));
            continue;
        }
        wanted.insert(id);
    }
    const SpoolListing listing = list_spool(root, user);
    for (const SpoolListing::Unreadable& unreadable : listing.unreadable) {
        run.fail(unreadable_text(unreadable), unreadable.error);
    }
    if (listing.directories.empty() && listing.unreadable.empty()) {
        run.report.errors.push_back(
            fmt::format("no spool under {} (give the listener's --spool DIR)", root.string()));
        run.report.exit_code = EX_NOINPUT;
        return run.report;
    }
    std::set<std::string> found;
    std::size_t moved = 0;
    for (const fs::path& directory : listing.directories) {
        auto [present, error] = failed_ids(directory);
        if (error != 0) {
            run.fail(fmt::format("cannot read {}: {}", (directory / "failed").string(),
                                 std::strerror(error)),
                     error);
            continue;
        }
        std::string next;
        for (const std::string& id : present) {
            if (!wanted.empty() && !wanted.contains(id)) {
                continue;
            }
            found.insert(id);
            if (next.empty()) {
                next = next_step(directory);
            }
            const std::size_t before = run.report.out.size();
            requeue_one(directory, id, now, next, run);
            moved += run.report.out.size() > before ? 1 : 0;
        }
    }
    for (const std::string& id : wanted) {
        if (!found.contains(id)) {
            run.data = true;
            run.report.errors.push_back(
                fmt::format("no failed alert {} under {}", id, root.string()));
        }
    }
    if (moved == 0 && wanted.empty() && run.report.errors.empty()) {
        run.report.out += fmt::format("nothing in failed/ under {}\n", root.string());
    }
    run.report.exit_code = run.permission ? EX_NOPERM
                           : run.data     ? EX_DATAERR
                           : run.io       ? EX_IOERR
                                          : EX_OK;
    return run.report;
}

} // namespace crashmail
