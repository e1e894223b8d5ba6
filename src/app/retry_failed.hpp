#pragma once
// --retry-failed [ID...]: moves failed alerts (all, or the named ones) back for delivery with
// fresh attempts, through the spool's retry/ area (delivery/retry_inbox): the command never
// writes pending/ and never takes the spool's lock; the listener that holds it adopts them
// within seconds, or the next one to start does.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace crashmail {

struct RetryFailedReport {
    std::string out;                 // for stdout: one line per alert moved, or "nothing ..."
    std::vector<std::string> errors; // for stderr, one line each
    int exit_code = 0;               // 0; 65 an unknown id or a record that cannot be read;
                                     // 66 no spool; 74 a write failed; 77 permission denied
};

// Requeues the failed alerts under `root` (one listener's directory, or a root holding them,
// as --status reads it: app/spool_listing) named by `ids` (an id, or its file name ID.json),
// or every one when `ids` is empty. Each alert's channels that did not deliver it are renewed
// (renew_for_retry() at `now`); `user` as list_spool() takes it.
RetryFailedReport retry_failed(const std::filesystem::path& root,
                               const std::vector<std::string>& ids,
                               std::chrono::system_clock::time_point now, const std::string& user);

} // namespace crashmail
