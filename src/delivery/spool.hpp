#pragma once
// The outbox on disk. An alert is written durably before supervisord gets its answer, and
// stays until every channel delivered it (then it is removed) or gave up (then it moves to
// failed/ with the reasons). Layout of a listener's directory, created mode 0700:
//
//   DIR/lock           flock(2)ed while a crashmail uses the directory
//   DIR/tmp/           files being written
//   DIR/pending/ID.json  alerts with a channel still to deliver (mode 0600)
//   DIR/failed/ID.json   alerts a channel gave up on, with the reason (mode 0600)
//   DIR/retry/ID.json    alerts --retry-failed moved out of failed/, renewed, for the lock
//                        holder to adopt into pending/ (delivery/retry_inbox; mode 0600)
//   DIR/NAME.state.json  small state files (StateStore), e.g. the crash-loop stories
//
// A cleanup job may remove DIR (rm -rf), or only tmp/, pending/ or failed/, while crashmail
// runs. When a save(), update(), fail() or save_state() fails, DirectorySpool looks whether
// that is why (a part missing, or a path now naming another directory than the one it holds
// open); if so it re-creates what is missing (mode 0700, the lock file 0600, locked again),
// reopens its directories, logs one warning saying what was missing, and retries the write
// once. Only a failure pays for the look: the success path does no extra I/O. A record or
// state file that vanished with the directory is gone; what is written afterwards is kept.

#include "delivery/alert_record.hpp"

#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// Where alerts are kept. An interface so that tests can fail writes on purpose.
class AlertStore {
public:
    virtual ~AlertStore() = default;
    // Writes the record durably under pending/ (replacing an older version): when this
    // returns success the record survives a crash of crashmail or of the machine.
    virtual std::expected<void, std::string> save(const AlertRecord& record) = 0;
    // Replaces a record save() stored with a newer version of it (details added, a retry
    // counted), atomically but without fsync: it survives a crash of crashmail; after a crash
    // of the machine the older version may be back, which is still a valid record (sent
    // again, or enriched again: at least once). One fsynced write per alert is the promise
    // made to supervisord; later writes need not pay for it again.
    virtual std::expected<void, std::string> update(const AlertRecord& record) = 0;
    // Reads a pending record; std::nullopt when there is none by that id (settled since).
    virtual std::expected<std::optional<AlertRecord>, std::string> load(const std::string& id) = 0;
    // Removes a pending record (delivered everywhere).
    virtual std::expected<void, std::string> remove(const std::string& id) = 0;
    // Writes the record under failed/ and removes it from pending/.
    virtual std::expected<void, std::string> fail(const AlertRecord& record) = 0;
    // Calls `visit` with the id of each pending record, reading the directory as it goes
    // (nothing is loaded); stops early when `visit` returns false.
    virtual void scan_pending(const std::function<bool(const std::string& id)>& visit) = 0;
};

// How far a write has got when it returns.
enum class Durability {
    process, // handed to the kernel (write, rename): survives any crash of crashmail,
             // SIGKILL included, but not a crash of the machine
    disk,    // fsynced, and its directory: survives a crash of the machine too
};

// Small named documents kept beside the outbox: the crash-loop stories (what flood control
// counted) survive a crash of crashmail.
class StateStore {
public:
    virtual ~StateStore() = default;
    // Replaces the document `name` (letters, digits, '-' and '_') atomically, as far as
    // `durability` says.
    virtual std::expected<void, std::string>
    save_state(std::string_view name, const std::string& content, Durability durability) = 0;
    // Makes the document `name` as it is now survive a crash of the machine (fsync); no
    // error when there is none.
    virtual std::expected<void, std::string> sync_state(std::string_view name) = 0;
    // The document `name`, or std::nullopt when there is none.
    virtual std::expected<std::optional<std::string>, std::string>
    load_state(std::string_view name) = 0;
};

// Safe to use from several threads at once (the event loop saves, channel workers update,
// remove and fail, the crash-loop monitor saves state).
class DirectorySpool final : public AlertStore, public StateStore {
public:
    // Opens (creating, mode 0700) `directory` and its tmp/, pending/, failed/ and retry/, and
    // locks it against a second crashmail. Returns an error saying what failed, on what path,
    // and why.
    static std::expected<std::unique_ptr<DirectorySpool>, std::string>
    open(const std::filesystem::path& directory);
    ~DirectorySpool() override;

    std::expected<void, std::string> save(const AlertRecord& record) override;
    std::expected<void, std::string> update(const AlertRecord& record) override;
    std::expected<std::optional<AlertRecord>, std::string> load(const std::string& id) override;
    std::expected<void, std::string> remove(const std::string& id) override;
    std::expected<void, std::string> fail(const AlertRecord& record) override;
    void scan_pending(const std::function<bool(const std::string& id)>& visit) override;
    std::expected<void, std::string> save_state(std::string_view name, const std::string& content,
                                                Durability durability) override;
    std::expected<void, std::string> sync_state(std::string_view name) override;
    std::expected<std::optional<std::string>, std::string>
    load_state(std::string_view name) override;

    const std::filesystem::path& directory() const { return m_directory; }

private:
    // The descriptors of one incarnation of the directory (defined in spool.cpp): the lock,
    // DIR, DIR/pending and DIR/failed; closed when the last operation using them is done.
    struct Directories;
    using DirectoriesPtr = std::shared_ptr<const Directories>;

    DirectorySpool() = default;
    // Creates what is missing of the spool at `directory` (parents 0755, the spool and its
    // areas 0700, the lock file 0600), opens its directories and locks it. The lock of
    // `previous` is kept when its file is still there; otherwise the lock file is locked
    // anew, and the error says when another crashmail holds it.
    static std::expected<DirectoriesPtr, std::string>
    open_directories(const std::filesystem::path& directory, const Directories* previous);
    // What of the spool at `directory` is gone (removed, or replaced by another directory)
    // since `directories` were opened: "the whole directory", or some of "tmp/", "pending/",
    // "failed/", "retry/", "lock"; empty when everything is in place.
    static std::vector<std::string> missing_parts(const std::filesystem::path& directory,
                                                  const Directories& directories);
    // The directories to use now: a copy taken under m_mutex, so that a repair can swap in
    // new ones while other threads finish with the old.
    DirectoriesPtr directories() const;
    // Runs `write` with the current directories; when it fails because (part of) the
    // directory vanished, repairs and runs it once more with the new directories.
    std::expected<void, std::string> write_repairing(
        const std::function<std::expected<void, std::string>(const Directories&)>& write);
    // After a write through `stale` failed: returns the directories to retry with (re-created
    // now, or by another thread meanwhile), nullptr when nothing vanished (the failure has
    // another cause), or why re-creating failed.
    std::expected<DirectoriesPtr, std::string> repair(const DirectoriesPtr& stale);
    std::expected<void, std::string> write_file(const std::filesystem::path& final_path,
                                                int directory_fd, const std::string& content,
                                                Durability durability = Durability::disk);

    std::filesystem::path m_directory;
    mutable std::mutex m_mutex; // guards m_directories alone; never held across I/O
    DirectoriesPtr m_directories;
    // One repair at a time, taken only after a failed write: two threads re-creating the lock
    // file at once would each find the other's flock and take it for another crashmail's.
    std::mutex m_repair_mutex;
};

// A listener's own directory under `root`: root/<name>, where name is the listener's
// supervisord process name with '/' replaced (supervisord forbids it, but be sure). The name
// "users" is the system spool's directory of other users' spools (delivery/spool_location):
// a listener of that name gets root/users.listener.
std::filesystem::path listener_spool(const std::filesystem::path& root, std::string name);

// True when `id` can name a record file: letters, digits, '.', '-', '_', not starting with '.'
// (so never a path), at most 200 characters.
bool valid_record_id(const std::string& id);

// Reads every record of one of a spool directory's areas ("pending", "failed" or "retry") for
// --status, one at a time, in directory order.
void for_each_record(
    const std::filesystem::path& directory, const std::string& area,
    const std::function<void(const std::string& file,
                             const std::expected<AlertRecord, std::string>&)>& visit);

} // namespace crashmail
