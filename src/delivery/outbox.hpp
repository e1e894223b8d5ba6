#pragma once
// The outbox: the one owner of every alert record. A record lives in the store (AlertStore,
// the spool on disk) or, while the store refuses it (a full disk, a vanished directory, an
// unwritable file), in memory: the waiting room. Memory is never a record's destination: a
// thread retries the store with backoff until it takes every waiting record (or the record
// settles), and close() tries once more and counts what is lost.
//
// Locks, and why the event loop never waits behind another thread's disk write:
// - m_memory_mutex guards the waiting room; it is never held across I/O.
// - Changes of one record (change(), the retry) are serialised by that record's lock, held
//   across that record's own store I/O. Record locks are striped by id (k_record_locks
//   stripes), so two records rarely share one; add(), which the event loop calls, takes none:
//   a new record is unknown to every other thread until add() returns, and a record that
//   exists already is not written by add() at all.

#include "delivery/mark_file.hpp"
#include "delivery/spool.hpp"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace crashmail {

struct OutboxSettings {
    // The waiting room's backoff: the first retry comes this long after a refusal, each later
    // one twice as long after the last, at most retry_max.
    std::chrono::milliseconds retry_first{500};
    std::chrono::milliseconds retry_max{30000};
    // Called, with no lock held, when the outbox starts holding records in memory (it held
    // none before): `reason` is the store's error, `count` how many records wait. May be
    // called from any thread that uses the outbox.
    std::function<void(const std::string& reason, std::size_t count)> on_memory_only;
    // Called, with no lock held, on the retry thread when the waiting room is empty again
    // (its records stored, delivered or settled): `stored` says how many the store took.
    std::function<void(std::size_t stored)> on_durable_again;
    // Where --status reads what waits in memory (outbox.mark); may be nullptr. Written only by
    // the retry thread and by close(), one small pwrite that needs no free disk space.
    MarkStore* mark = nullptr;
};

class Outbox {
public:
    enum class Added {
        stored,    // durably (fsynced): the promise made to supervisord
        in_memory, // the store refused it: in the waiting room
        duplicate, // a record with this id exists already (a redelivered event): unchanged
    };
    struct AddResult {
        Added how = Added::stored;
        AlertRecord record; // as the outbox now holds it (the existing one for a duplicate)
        std::string error;  // in_memory: what the store said
    };
    // What becomes of a record once changed.
    enum class Settle {
        keep,   // still pending somewhere: the new version replaces the old
        remove, // delivered everywhere it is going
        fail,   // a channel gave up: moved to failed/
    };
    // Changes a record in place; returns what becomes of it, or std::nullopt for "leave the
    // record as it was".
    using Change = std::function<std::optional<Settle>(AlertRecord&)>;

    // `store` must outlive the outbox. Does not start the retry thread (start()).
    explicit Outbox(AlertStore& store, OutboxSettings settings = {});
    // Stops the retry thread; what still waits in memory is lost (close() first).
    ~Outbox();
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;

    // Stores a new record durably (AlertStore::save, one fsync), unless a record with its id
    // exists (then nothing is written: Added::duplicate with the existing record). When the
    // store refuses, the record waits in memory (Added::in_memory) and is retried.
    AddResult add(AlertRecord record);

    // The current version of record `id` (the waiting room's, else the store's); std::nullopt
    // when there is none or it has settled.
    std::expected<std::optional<AlertRecord>, std::string> read(const std::string& id);

    // Applies `change` to the current version of record `id` and settles it as `change` says:
    // keep: an unsynced AlertStore::update (or, in memory, the new version replaces the old);
    // remove: removed from the store; fail: moved to failed/. When the store refuses, the new
    // version (or the removal, or the move) waits in memory and is retried, so a record never
    // stays behind in an older form. Returns std::nullopt when there is no pending record `id`
    // (settled since), else the record after `change` (unchanged when `change` returned
    // std::nullopt), or the error reading it.
    std::expected<std::optional<AlertRecord>, std::string> change(const std::string& id,
                                                                  const Change& change);

    // Calls `visit` with the id of every pending record: those waiting in memory first, then
    // the store's (an id may come twice); stops when `visit` returns false.
    void scan(const std::function<bool(const std::string& id)>& visit);

    // How many records wait in memory (settled ones whose removal waits included).
    std::size_t waiting() const;

    // One attempt to store everything that waits in memory. Returns how many records still
    // wait. Thread-safe; the retry thread calls it with backoff.
    std::size_t retry_now();

    // Starts the retry thread (idempotent).
    void start();

    struct Closing {
        std::size_t pending = 0; // records left in the store for the next start
        std::size_t lost = 0;    // alerts that were in memory only and are gone now
        std::string reason;      // why the store refused them (empty when none is lost)
    };
    // Stops the retry thread, tries the store once more, and says what is left where. The
    // outbox takes no more work afterwards (add() and change() still work, in memory).
    Closing close();

private:
    struct Waiting {
        AlertRecord record;
        Settle action = Settle::keep;
        bool on_disk = false; // an older version is in the store
        std::string error;    // the store's last refusal
    };
    static constexpr std::size_t k_record_locks = 64;
    // Past this many waiting records the oldest is dropped (and counted as lost).
    static constexpr std::size_t k_waiting_limit = 10000;

    std::mutex& record_lock(const std::string& id);
    // Puts `waiting` in the waiting room (replacing an older entry); tells on_memory_only
    // when the room was empty.
    void wait_in_memory(const std::string& id, Waiting waiting);
    // Tries the store for one waiting record, with its record lock held. Returns true when it
    // no longer waits.
    bool store_waiting(const std::string& id);
    void retry_loop();
    void write_mark(std::size_t waiting, std::size_t lost, const std::string& reason) const;

    AlertStore& m_store;
    OutboxSettings m_settings;
    std::array<std::mutex, k_record_locks> m_record_locks;

    mutable std::mutex m_memory_mutex; // guards everything below; never held across I/O
    std::condition_variable m_changed;
    std::map<std::string, Waiting> m_memory;
    std::string m_last_error; // the store's last refusal
    std::size_t m_dropped = 0;
    std::size_t m_stored_from_memory = 0; // since the room was last empty
    std::size_t m_mark_written = 0;       // waiting() as the mark last said
    std::uint64_t m_episodes = 0;         // times the room went from empty to not
    bool m_stopping = false;
    bool m_started = false;
    std::thread m_thread;
};

} // namespace crashmail
