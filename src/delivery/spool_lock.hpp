#pragma once
// Whether a crashmail runs on a spool directory, asked without taking its lock: a listener
// holds flock(DIR/lock) LOCK_EX for as long as it runs, and one that starts must never find
// the lock taken by a command that only looks (--status, --retry-failed). /proc/locks lists
// every flock with the holder's pid and the file's device and inode.

#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace crashmail {

// The pid that holds an flock on `directory`/lock, std::nullopt when nobody does (or there is
// no lock file), or why it cannot be told (/proc/locks unreadable).
std::expected<std::optional<pid_t>, std::string>
spool_lock_holder(const std::filesystem::path& directory);

// The holder of an flock on the file with device `device` and inode `inode`, read from
// /proc/locks' text `locks` (pure, for tests). Waiters ("->" lines) and POSIX locks do not
// count.
std::optional<pid_t> flock_holder(std::string_view locks, dev_t device, ino_t inode);

} // namespace crashmail
