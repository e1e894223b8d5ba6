#include "delivery/spool_location.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace crashmail {
namespace {

std::string errno_words(std::string_view what, const std::filesystem::path& path, int error) {
    return fmt::format("{} {}: {}", what, path.string(), std::strerror(error));
}

class RealFileSystem final : public SpoolFileSystem {
public:
    std::expected<std::optional<Entry>, std::string> look(const std::filesystem::path& path,
                                                          bool follow) override {
        struct stat info {};
        int result = follow ? ::stat(path.c_str(), &info) : ::lstat(path.c_str(), &info);
        if (result != 0) {
            if (errno == ENOENT) {
                return std::optional<Entry>();
            }
            return std::unexpected(errno_words("cannot look at", path, errno));
        }
        Entry entry;
        entry.directory = S_ISDIR(info.st_mode);
        entry.symlink = S_ISLNK(info.st_mode);
        entry.owner = info.st_uid;
        entry.mode = info.st_mode & 07777;
        return std::optional<Entry>(entry);
    }
    std::expected<void, std::string> make_directory(const std::filesystem::path& path,
                                                    mode_t mode) override {
        if (::mkdir(path.c_str(), 0700) != 0) {
            if (errno == EEXIST) {
                return {};
            }
            return std::unexpected(errno_words("cannot create", path, errno));
        }
        return change_mode(path, mode);
    }
    std::expected<void, std::string> change_mode(const std::filesystem::path& path,
                                                 mode_t mode) override {
        if (::chmod(path.c_str(), mode) != 0) {
            return std::unexpected(errno_words("cannot change the mode of", path, errno));
        }
        return {};
    }
};

std::string owner_words(uid_t uid) {
    std::string name = fmt::format("uid {}", uid);
    if (const passwd* entry = ::getpwuid(uid); entry != nullptr) {
        name = fmt::format("{} (uid {})", entry->pw_name, uid);
    }
    return name;
}

bool others_can_write(mode_t mode) {
    return (mode & (S_IWGRP | S_IWOTH)) != 0;
}

// A safe spot to make directories in: an existing directory (symbolic links followed) owned by
// `uid` or root that no one else can write, or that is sticky when others can. Returns why not.
std::optional<std::string> unsafe_parent(const std::filesystem::path& path, uid_t uid,
                                         SpoolFileSystem& files, bool sticky_is_enough) {
    auto entry = files.look(path, true);
    if (!entry) {
        return entry.error();
    }
    if (!*entry) {
        return fmt::format("{} does not exist", path.string());
    }
    if (!(*entry)->directory) {
        return fmt::format("{} is not a directory", path.string());
    }
    if ((*entry)->owner != uid && (*entry)->owner != 0) {
        return fmt::format("{} belongs to {}, not to this user or root", path.string(),
                           owner_words((*entry)->owner));
    }
    const bool sticky = ((*entry)->mode & S_ISVTX) != 0;
    if (others_can_write((*entry)->mode) && (!sticky_is_enough || !sticky)) {
        return fmt::format("{} can be written by other users (mode {:04o})", path.string(),
                           (*entry)->mode);
    }
    return std::nullopt;
}

// Makes `path` this user's own directory with `mode` (creating it when missing), or says why
// it cannot be: it must not be a symbolic link and must belong to the user.
std::optional<std::string> own_directory(const std::filesystem::path& path, const SpoolUser& user,
                                         mode_t mode, SpoolFileSystem& files) {
    auto entry = files.look(path, false);
    if (!entry) {
        return entry.error();
    }
    if (!*entry) {
        if (auto made = files.make_directory(path, mode); !made) {
            return made.error();
        }
        entry = files.look(path, false);
        if (!entry) {
            return entry.error();
        }
        if (!*entry) {
            return fmt::format("{} vanished as it was created", path.string());
        }
    }
    if ((*entry)->symlink) {
        return fmt::format("{} is a symbolic link (to be safe, crashmail keeps alerts only in a "
                           "directory of its own)",
                           path.string());
    }
    if (!(*entry)->directory) {
        return fmt::format("{} is not a directory", path.string());
    }
    if ((*entry)->owner != user.uid) {
        return fmt::format("{} belongs to {}, not to {} (uid {}): another user created it first",
                           path.string(), owner_words((*entry)->owner), user.name, user.uid);
    }
    if (((*entry)->mode & 07777) != mode) {
        if (auto changed = files.change_mode(path, mode); !changed) {
            return changed.error();
        }
    }
    return std::nullopt;
}

// The system spool for root: S itself, S and S/users created when missing.
std::expected<std::filesystem::path, std::string>
system_root_for_root(const std::filesystem::path& system, const SpoolUser& user,
                     SpoolFileSystem& files) {
    auto entry = files.look(system, true);
    if (!entry) {
        return std::unexpected(entry.error());
    }
    if (!*entry) {
        if (auto parent = unsafe_parent(system.parent_path(), user.uid, files, false)) {
            return std::unexpected(*parent);
        }
        if (auto made = files.make_directory(system, 0755); !made) {
            return std::unexpected(made.error());
        }
    }
    if (auto unsafe = unsafe_parent(system, user.uid, files, false)) {
        return std::unexpected(*unsafe);
    }
    // So that users' listeners find their place too (what the install does).
    auto users = system / "users";
    if (auto existing = files.look(users, false); existing && !*existing) {
        (void)files.make_directory(users, 01733);
    }
    return system;
}

// The system spool for any other user: S/users/<name>.
std::expected<std::filesystem::path, std::string>
system_root_for_user(const std::filesystem::path& system, const SpoolUser& user,
                     SpoolFileSystem& files) {
    auto users = system / "users";
    if (auto unsafe = unsafe_parent(users, user.uid, files, true)) {
        return std::unexpected(*unsafe);
    }
    auto mine = system / "users" / user.name;
    if (auto problem = own_directory(mine, user, 0700, files)) {
        return std::unexpected(*problem);
    }
    return mine;
}

// HOME/.local/state/crashmail or XDG_STATE_HOME/crashmail: `base` must be the user's own
// directory that no one else can write; what is missing below it is created 0700.
std::expected<std::filesystem::path, std::string> home_root(const std::filesystem::path& base,
                                                            const std::vector<std::string>& below,
                                                            const SpoolUser& user,
                                                            SpoolFileSystem& files) {
    auto entry = files.look(base, true);
    if (!entry) {
        return std::unexpected(entry.error());
    }
    if (!*entry || !(*entry)->directory) {
        return std::unexpected(fmt::format("{} is not a directory", base.string()));
    }
    if ((*entry)->owner != user.uid) {
        return std::unexpected(fmt::format("{} belongs to {}, not to {} (uid {})", base.string(),
                                           owner_words((*entry)->owner), user.name, user.uid));
    }
    if (others_can_write((*entry)->mode)) {
        return std::unexpected(fmt::format("{} can be written by other users (mode {:04o})",
                                           base.string(), (*entry)->mode));
    }
    auto path = base;
    for (const std::string& part : below) {
        path /= part;
        auto existing = files.look(path, true);
        if (!existing) {
            return std::unexpected(existing.error());
        }
        if (*existing) {
            if (!(*existing)->directory || (*existing)->owner != user.uid) {
                return std::unexpected(
                    fmt::format("{} is not a directory of {}", path.string(), user.name));
            }
            continue;
        }
        if (auto made = files.make_directory(path, 0700); !made) {
            return std::unexpected(made.error());
        }
    }
    return path;
}

std::vector<std::filesystem::path> home_candidates(const SpoolUser& user) {
    std::vector<std::filesystem::path> homes;
    if (user.home && !user.home->empty() && user.home->front() == '/') {
        homes.emplace_back(*user.home);
    }
    if (!user.passwd_home.empty() && user.passwd_home.is_absolute() &&
        (homes.empty() || homes.front() != user.passwd_home)) {
        homes.push_back(user.passwd_home);
    }
    return homes;
}

std::string system_fix(const std::filesystem::path& system, const SpoolUser& user) {
    if (user.uid == 0) {
        return fmt::format("make {} a directory of root's that only root can write "
                           "(install -d -m 0755 -o root -g root {}), or give --spool DIR",
                           system.string(), system.string());
    }
    return fmt::format(
        "as root, run: install -d -m 0755 {0} && install -d -m 1733 {0}/users (the crashmail "
        "package and `cmake --install` do this); if {0}/users/{1} exists but is not {1}'s own "
        "directory, look at who made it and remove it; or give --spool DIR, a directory {1} "
        "owns. Then restart the listener (supervisorctl restart NAME)",
        system.string(), user.name);
}

} // namespace

SpoolFileSystem& system_file_system() {
    static RealFileSystem files;
    return files;
}

SpoolUser current_spool_user() {
    SpoolUser user;
    user.uid = ::geteuid();
    user.name = fmt::format("uid-{}", user.uid);
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwuid_r(user.uid, &entry, buffer.data(), buffer.size(), &found) == 0 &&
        found != nullptr) {
        std::string name = found->pw_name != nullptr ? found->pw_name : "";
        // A name that could leave S/users (it never should) is replaced by the uid form.
        if (!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos) {
            user.name = std::move(name);
        }
        if (found->pw_dir != nullptr) {
            user.passwd_home = found->pw_dir;
        }
    }
    if (const char* home = std::getenv("HOME"); home != nullptr) {
        user.home = home;
    }
    if (const char* state = std::getenv("XDG_STATE_HOME"); state != nullptr) {
        user.xdg_state_home = state;
    }
    return user;
}

std::expected<std::filesystem::path, NoSpool>
prepare_spool_root(const std::filesystem::path& system, const std::filesystem::path& given,
                   const SpoolUser& user, SpoolFileSystem& files) {
    NoSpool none;
    if (!given.empty()) {
        std::error_code ignored;
        auto absolute = std::filesystem::absolute(given, ignored);
        if (absolute.empty()) {
            absolute = given;
        }
        auto entry = files.look(absolute, true);
        if (entry && !*entry) {
            // Parents as `mkdir -p` makes them; the checks below apply to DIR itself.
            std::filesystem::create_directories(absolute, ignored);
            (void)files.change_mode(absolute, 0700);
        }
        if (auto unsafe = unsafe_parent(absolute, user.uid, files, true)) {
            none.reasons.push_back("--spool: " + *unsafe);
            none.fix = fmt::format("give --spool a directory that {} (uid {}) owns and no other "
                                   "user can write (e.g. install -d -m 0700 -o {} DIR)",
                                   user.name, user.uid, user.name);
            return std::unexpected(std::move(none));
        }
        return absolute;
    }

    auto system_root = user.uid == 0 ? system_root_for_root(system, user, files)
                                     : system_root_for_user(system, user, files);
    if (system_root) {
        return *system_root;
    }
    none.reasons.push_back("system spool: " + system_root.error());
    if (user.xdg_state_home && !user.xdg_state_home->empty() &&
        user.xdg_state_home->front() == '/') {
        auto xdg = home_root(*user.xdg_state_home, {"crashmail"}, user, files);
        if (xdg) {
            return *xdg;
        }
        none.reasons.push_back("$XDG_STATE_HOME: " + xdg.error());
    }
    auto homes = home_candidates(user);
    for (const auto& home : homes) {
        auto in_home = home_root(home, {".local", "state", "crashmail"}, user, files);
        if (in_home) {
            return *in_home;
        }
        none.reasons.push_back("home directory: " + in_home.error());
    }
    if (homes.empty()) {
        none.reasons.emplace_back("home directory: none ($HOME unset and no passwd entry)");
    }
    none.fix = system_fix(system, user);
    return std::unexpected(std::move(none));
}

std::filesystem::path find_spool_root(const std::filesystem::path& system,
                                      const std::filesystem::path& given, const SpoolUser& user,
                                      SpoolFileSystem& files) {
    if (!given.empty()) {
        return given;
    }
    auto exists = [&files](const std::filesystem::path& path) {
        auto entry = files.look(path, true);
        return entry && *entry && (*entry)->directory;
    };
    auto system_root = user.uid == 0 ? system : system / "users" / user.name;
    if (exists(system_root)) {
        return system_root;
    }
    if (user.xdg_state_home && !user.xdg_state_home->empty() &&
        user.xdg_state_home->front() == '/') {
        auto xdg = std::filesystem::path(*user.xdg_state_home) / "crashmail";
        if (exists(xdg)) {
            return xdg;
        }
    }
    for (const auto& home : home_candidates(user)) {
        auto in_home = home / ".local" / "state" / "crashmail";
        if (exists(in_home)) {
            return in_home;
        }
    }
    return system_root;
}

std::expected<void, std::string> check_own_directory(const std::filesystem::path& directory,
                                                     const SpoolUser& user,
                                                     SpoolFileSystem& files) {
    auto entry = files.look(directory, false);
    if (!entry) {
        return std::unexpected(entry.error());
    }
    if (!*entry) {
        return {}; // DirectorySpool::open() creates it, 0700, in a root checked above
    }
    if ((*entry)->symlink) {
        return std::unexpected(fmt::format("{} is a symbolic link", directory.string()));
    }
    if ((*entry)->owner != user.uid) {
        return std::unexpected(fmt::format("{} belongs to {}, not to {} (uid {})",
                                           directory.string(), owner_words((*entry)->owner),
                                           user.name, user.uid));
    }
    return {};
}

} // namespace crashmail
