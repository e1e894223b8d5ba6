#pragma once
// Reading a whole file: the one loop (EINTR retried) that the spool, --retry-failed and the
// retry inbox share.

#include <expected>
#include <filesystem>
#include <string>

namespace crashmail {

// Everything left to read from `fd` (not closed), or the errno of a failed read.
std::expected<std::string, int> read_descriptor(int fd);

// The whole file at `path`, or "cannot open PATH: WHY" / "cannot read PATH: WHY".
std::expected<std::string, std::string> read_whole_file(const std::filesystem::path& path);

} // namespace crashmail
