#pragma once
// The retry/ area of a listener's spool: how `crashmail --retry-failed` hands failed alerts
// back to the listener that owns the spool, without ever writing pending/ (the lock holder's)
// and without taking the lock (a listener starting at that instant must never find it taken).
//
//   the command   reads failed/ID.json, renews it (renew_for_retry()), writes DIR/retry/ID.json
//                 (a temporary ".ID.*" file in retry/ itself, mode 0600, fsync, rename, fsync
//                 of retry/), then unlinks failed/ID.json if it is still the file it read.
//   the listener  RetryInbox: at start, and whenever a file arrives (inotify IN_MOVED_TO /
//                 IN_CLOSE_WRITE on retry/, and a rescan every 30 s in case an event was
//                 missed), adopts each retry/ID.json: removes a failed/ID.json left behind,
//                 hands the record to the dispatcher (Dispatcher::adopt(): stored in pending/
//                 through the outbox, then to the channels as recover() does), and unlinks
//                 the retry file. Without a running listener the next start adopts them.
//
// The temporary file lives in retry/, not in tmp/: a listener that starts empties tmp/.
// Names starting with '.' are never adopted; such leftovers of a command that died are
// removed after an hour.

#include "delivery/alert_record.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <expected>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace crashmail {

struct RetryDepositError {
    std::string message; // what failed, on which path, and why
    int error = 0;       // errno (EACCES: not the listener's user)
};

// The command's side: writes `record` durably as DIR/retry/ID.json, replacing an earlier one
// (creating retry/, mode 0700, when missing). Run by root on another user's spool, the files
// are given to the owner of `directory`, so that its listener can read them.
std::expected<void, RetryDepositError> deposit_retry(const std::filesystem::path& directory,
                                                     const AlertRecord& record);

struct RetryInboxSettings {
    // The rescan that catches what inotify missed (or all of it, when inotify is unavailable).
    std::chrono::milliseconds rescan{30000};
    // Leftover temporary files (".*") older than this are removed.
    std::chrono::seconds stale_after{3600};
};

class RetryInbox {
public:
    // Takes a renewed record; returns true when it has it (stored in pending/, or waiting in
    // the outbox's memory), false when it takes no more (stopping): the file stays for the
    // next start.
    using Adopt = std::function<bool(AlertRecord record)>;

    RetryInbox(std::filesystem::path directory, Adopt adopt, RetryInboxSettings settings = {});
    // Same as stop().
    ~RetryInbox();
    RetryInbox(const RetryInbox&) = delete;
    RetryInbox& operator=(const RetryInbox&) = delete;

    // Adopts every file in retry/ now. Returns how many were adopted. Thread-safe (one scan at
    // a time).
    std::size_t adopt_all();
    // adopt_all(), then starts the watching thread (once).
    void start();
    // Stops and joins the thread (promptly: it waits on an eventfd beside inotify).
    // Idempotent.
    void stop();

private:
    bool adopt_file(const std::string& name);
    void watch_loop();

    std::filesystem::path m_directory;
    Adopt m_adopt;
    RetryInboxSettings m_settings;
    std::mutex m_scan_mutex; // one scan at a time (start() and the thread)
    int m_stop_fd = -1;      // eventfd: written by stop()
    std::thread m_thread;
    bool m_started = false;
};

} // namespace crashmail
