#pragma once
// Where a listener keeps its spool when --spool is not given, and what makes a directory safe
// to keep alerts in. A spool is never in a directory another user could write, replace or
// pre-create for us: that user could read the alerts (log tails) or switch alerting off.
//
// Candidates, first usable wins:
//   1. the system spool S (CRASHMAIL_SYSTEM_SPOOL, /var/spool/crashmail), installed root:root
//      0755 with S/users root:root 1733:
//        root:        S itself (S/<listener>); S must be owned by root and writable by root
//                     alone. Root creates S (0755) and S/users (1733) when they are missing.
//        other users: S/users/<user> (then S/users/<user>/<listener>), created by the user,
//                     mode 0700. S/users must be owned by root and, when others can write it,
//                     sticky (nobody may remove or rename another user's entry). An entry
//                     that is not the user's own directory (another owner, a symbolic link)
//                     is never used: another user created it first, which is reported.
//   2. $XDG_STATE_HOME/crashmail, when XDG_STATE_HOME is absolute and owned by the user;
//   3. HOME/.local/state/crashmail, where HOME is $HOME, else the passwd entry's home, used
//      only when the directory is owned by the user and no one else can write it.
// With --spool DIR, DIR alone is the candidate: it must be owned by the user or root and, when
// others can write it, sticky; the listener's directory in it must be the user's own.
// When no candidate is usable the listener keeps alerts in memory (delivery/memory_spool) and
// says so: NoSpool carries the reasons and the fix.

#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace crashmail {

// Who runs crashmail, as the spool location needs it.
struct SpoolUser {
    uid_t uid = 0;
    std::string name;                          // the passwd name; "uid-N" when there is none
    std::filesystem::path passwd_home;         // the passwd entry's home; empty when none
    std::optional<std::string> home;           // $HOME
    std::optional<std::string> xdg_state_home; // $XDG_STATE_HOME
};

// The running process's user (geteuid, getpwuid_r, the environment).
SpoolUser current_spool_user();

// The file system as the spool location sees it: an interface so that unit tests can play
// other owners and modes without root.
class SpoolFileSystem {
public:
    struct Entry {
        bool directory = false;
        bool symlink = false;
        uid_t owner = 0;
        mode_t mode = 0; // permission bits, sticky included
    };
    virtual ~SpoolFileSystem() = default;
    // What `path` is (lstat when `follow` is false), std::nullopt when nothing is there, or why
    // it cannot be looked at.
    virtual std::expected<std::optional<Entry>, std::string> look(const std::filesystem::path& path,
                                                                  bool follow) = 0;
    // mkdir(path) with exactly `mode` (the umask does not apply); EEXIST is not an error.
    virtual std::expected<void, std::string> make_directory(const std::filesystem::path& path,
                                                            mode_t mode) = 0;
    virtual std::expected<void, std::string> change_mode(const std::filesystem::path& path,
                                                         mode_t mode) = 0;
};

// The real file system.
SpoolFileSystem& system_file_system();

// Why no spool could be had, for the log and the notice sent through the channels.
struct NoSpool {
    std::vector<std::string> reasons; // one per candidate tried: what was wrong with it
    std::string fix;                  // what to do, with the exact commands
};

// The root under which this user's listeners keep their directories (listener_spool()),
// checked and created as needed: `system` is the system spool, `given` the --spool DIR (empty
// when not given).
std::expected<std::filesystem::path, NoSpool>
prepare_spool_root(const std::filesystem::path& system, const std::filesystem::path& given,
                   const SpoolUser& user, SpoolFileSystem& files);

// The root --status and --retry-failed read: `given` when not empty, else the first
// candidate that exists (nothing is created or checked), else the system one this user would
// use.
std::filesystem::path find_spool_root(const std::filesystem::path& system,
                                      const std::filesystem::path& given, const SpoolUser& user,
                                      SpoolFileSystem& files);

// After DirectorySpool::open(): the listener's directory must be the user's own, not a
// symbolic link; an error says whose it is.
std::expected<void, std::string> check_own_directory(const std::filesystem::path& directory,
                                                     const SpoolUser& user, SpoolFileSystem& files);

} // namespace crashmail
