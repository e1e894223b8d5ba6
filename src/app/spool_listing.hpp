#pragma once
// The listener directories under a spool root, for --status and --retry-failed. `root` is
// one listener's directory (it has pending/) or a root holding them: ROOT/<listener> (root's
// listeners) and ROOT/users/<user>/<listener> (everyone else's, delivery/spool_location).
// A directory that cannot be read is reported with its errno, never skipped in silence.

#include <filesystem>
#include <string>
#include <vector>

namespace crashmail {

struct SpoolListing {
    struct Unreadable {
        std::filesystem::path path;
        int error = 0; // errno: EACCES for another user's directory
    };
    bool root_exists = false;
    std::vector<std::filesystem::path> directories; // each has pending/; sorted
    std::vector<Unreadable> unreadable;
};

// Lists the listener directories under `root`. `user` is the running user's name: when
// ROOT/users cannot be listed (mode 1733: only root can), ROOT/users/<user> is still looked
// into.
SpoolListing list_spool(const std::filesystem::path& root, const std::string& user);

// "cannot read PATH: Permission denied" for one unreadable directory.
std::string unreadable_text(const SpoolListing::Unreadable& unreadable);

} // namespace crashmail
