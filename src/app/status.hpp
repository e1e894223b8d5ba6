#pragma once
// --status: what the outbox holds, for humans.

#include <filesystem>
#include <string>

namespace crashmail {

// Returns a report of the pending and failed alerts under `root`: either one listener's
// spool directory (it has pending/) or a spool root holding one directory per listener. One
// line per alert and channel: area, alert id, process, when raised (UTC), channel, status,
// attempts, and the last error. Ends with a count line. Reads one record at a time.
std::string status_report(const std::filesystem::path& root);

} // namespace crashmail
