#include "app/spool_listing.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

namespace crashmail {
namespace {

namespace fs = std::filesystem;

// 0 when `path` is a directory, else the errno of stat(2) (ENOTDIR for another file).
int directory_errno(const fs::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return errno;
    }
    return S_ISDIR(info.st_mode) ? 0 : ENOTDIR;
}

// The names in directory `path`, or the errno of opendir(2).
std::pair<std::vector<std::string>, int> names_in(const fs::path& path) {
    std::vector<std::string> names;
    DIR* stream = ::opendir(path.c_str());
    if (stream == nullptr) {
        return {names, errno};
    }
    while (dirent* entry = ::readdir(stream)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") {
            names.push_back(std::move(name));
        }
    }
    ::closedir(stream);
    std::sort(names.begin(), names.end());
    return {names, 0};
}

// Adds the listener directories in `parent` (each has pending/); `skip` is a name that is
// not a listener's (ROOT/users).
void add_listeners(const fs::path& parent, SpoolListing& listing, const std::string& skip) {
    auto [names, error] = names_in(parent);
    if (error != 0) {
        listing.unreadable.push_back({parent, error});
        return;
    }
    for (const std::string& name : names) {
        if (name == skip) {
            continue;
        }
        const fs::path candidate = parent / name;
        int pending = directory_errno(candidate / "pending");
        if (pending == 0) {
            listing.directories.push_back(candidate);
        } else if (pending == EACCES && directory_errno(candidate) == 0) {
            listing.unreadable.push_back({candidate, EACCES});
        }
    }
}

} // namespace

SpoolListing list_spool(const fs::path& root, const std::string& user) {
    SpoolListing listing;
    int root_error = directory_errno(root);
    if (root_error == ENOENT || root_error == ENOTDIR) {
        return listing;
    }
    listing.root_exists = true;
    if (root_error != 0) {
        listing.unreadable.push_back({root, root_error});
        return listing;
    }
    int pending = directory_errno(root / "pending");
    if (pending == 0) {
        listing.directories.push_back(root);
        return listing;
    }
    if (pending == EACCES) {
        listing.unreadable.push_back({root, EACCES});
        return listing;
    }
    add_listeners(root, listing, "users");
    const fs::path users = root / "users";
    if (directory_errno(users) == 0) {
        auto [names, error] = names_in(users);
        if (error == EACCES && !user.empty()) {
            // users/ is 1733: only root lists it; everyone else knows their own name.
            names = {user};
            error = 0;
        }
        if (error != 0) {
            listing.unreadable.push_back({users, error});
        }
        for (const std::string& name : names) {
            if (directory_errno(users / name) == 0) {
                add_listeners(users / name, listing, "");
            }
        }
    }
    std::sort(listing.directories.begin(), listing.directories.end());
    return listing;
}

std::string unreadable_text(const SpoolListing::Unreadable& unreadable) {
    return fmt::format("cannot read {}: {}", unreadable.path.string(),
                       std::strerror(unreadable.error));
}

} // namespace crashmail
