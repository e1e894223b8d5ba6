#pragma once
// Hands alerts from the event loop to the channels, durably. submit() writes the alert to
// the outbox (AlertStore) for the channels that want it (Transport::wants(); an alert no
// channel wants is not stored at all) and returns; each channel has its own worker thread that
// delivers due alerts, retries transient failures with backoff, and settles the record (removed
// when every configured channel delivered, moved to failed/ when one gave up; channels no longer
// configured do not count). submit()'s write is the alert's one fsync; later versions are
// AlertStore::update()s. The event loop never waits for a delivery, and a slow or dead channel
// never delays another.

#include "alert/alert.hpp"
#include "alert/enricher.hpp"
#include "delivery/alert_record.hpp"
#include "delivery/retry_policy.hpp"
#include "delivery/spool.hpp"
#include "transport/transport.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// Where the event loop puts alerts.
class AlertSink {
public:
    virtual ~AlertSink() = default;
    // Takes responsibility for `alert`: when this returns, the alert is stored durably (or,
    // when storage failed, held in memory and the failure logged). Never waits for delivery.
    virtual void submit(const Alert& alert) = 0;
};

// A stable key for a channel in stored records: 16 hex digits of SHA-256 over its
// identity(), so that the same channel is recognised after a restart.
std::string channel_key(const Transport& channel);

struct DispatcherSettings {
    RetryPolicy retry;
    // Deliveries each channel keeps queued in memory; the rest wait in the store and are
    // read back in when the queue runs dry, so memory does not grow with the backlog.
    std::size_t queue_limit = 1000;
    // Returns a number in [-1, 1] for the backoff's jitter; uniform random by default.
    std::function<double()> jitter;
    // The enrichment stage; nullptr: alerts go to the channels as submitted.
    std::shared_ptr<AlertEnricher> enricher;
    // An alert that waited longer than this for the enrichment stage is skipped (its
    // details would describe a later instance of the process anyway) rather than held back.
    std::chrono::milliseconds enrich_max_wait{10000};
    // --batch: 0 sends each alert on its own. Otherwise an alert, once the enrichment stage
    // is done with it, is held (durably: its record is marked `held` in the store) instead of
    // going to the channels. The first alert held opens a window that ends `batch` later;
    // then one digest of every held alert (make_digest()) is stored, the held records are
    // removed, and the digest goes to every channel that wants it like any alert (retries,
    // failed/). Delivery stays at-least-once: a crash between storing the digest and removing
    // its items sends those items again after the restart. On shutdown() held alerts stay in
    // the store (no half-window digest); recover() holds them again in a window that ends at
    // the oldest one's time + `batch` (at once when that is past, or when batch is now 0).
    std::chrono::milliseconds batch{0};
    // The clock of the --batch windows (tests give a fake one); system_clock::now when empty.
    std::function<std::chrono::system_clock::time_point()> now;
    // -o: a digest's subject starts with "PREFIX: " when this is not empty.
    std::string digest_prefix;
};

class Dispatcher final : public AlertSink {
public:
    // Starts one worker per channel. `store` must outlive the dispatcher.
    Dispatcher(std::vector<std::unique_ptr<Transport>> channels, AlertStore& store,
               DispatcherSettings settings = {});
    // Same as shutdown(0).
    ~Dispatcher() override;

    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    void submit(const Alert& alert) override;

    // Queues what the store holds from an earlier run. Returns the number of records found.
    // A record an earlier run stored but never enriched gets the enricher's skip() with
    // "details unavailable: crashmail restarted before fetching them".
    std::size_t recover();

    // Takes no more alerts; lets the enrichment stage finish the alert in hand (the rest are
    // skipped: "crashmail stopped before fetching them") and the workers deliver what is due
    // for up to `grace`, then stops them. Returns the number of deliveries (alert x channel) left
    // pending; they stay in the store for the next start. A worker still inside a delivery is
    // detached.
    std::size_t shutdown(std::chrono::milliseconds grace);

    std::size_t channel_count() const { return m_workers.size(); }

private:
    struct Worker;
    friend struct Worker;
    struct Enrichment;
    friend struct Enrichment;
    struct Batch;
    friend struct Batch;

    // Queues the record for every channel it has a state for (`force`: even past the queue
    // limit).
    void queue_for_channels(const AlertRecord& record, bool force);
    // Sends a record the enrichment stage is done with on its way: holds it for the digest
    // when it is marked held, else queues it for the channels.
    void forward(const AlertRecord& record, bool in_memory);
    // Holds record `id` (already marked held) in the batch window; the window ends at
    // `window_end` unless it is open already (then it ends earlier or as planned).
    void hold(const std::string& id, std::chrono::system_clock::time_point window_end);
    // Builds, stores and queues the digest of the held records `ids`, then removes them.
    void send_digest(const std::vector<std::string>& ids);
    // The alert of record `id` if it still waits for enrichment; std::nullopt otherwise
    // (gone, or already enriched: then it is queued for the channels).
    std::optional<Alert> alert_to_enrich(const std::string& id);
    // Stores the enriched alert (clearing details_pending) and queues it for the channels.
    void finish_enrichment(const std::string& id, Alert alert);

    // Reads a record from memory (when the store failed) or the store.
    std::expected<std::optional<AlertRecord>, std::string> load(const std::string& id);
    // Records the outcome of one delivery and settles the record when no channel is pending.
    // Returns when to try again, if the channel is still pending.
    std::optional<std::chrono::system_clock::time_point>
    record_outcome(const std::string& id, const Worker& worker,
                   const std::expected<void, Failure>& result);
    // Queues up to the queue limit of the store's pending deliveries for `worker`.
    std::size_t refill(Worker& worker);

    AlertStore& m_store;
    DispatcherSettings m_settings;
    std::vector<std::shared_ptr<Worker>> m_workers;
    std::shared_ptr<Enrichment> m_enrichment; // nullptr without an enricher
    std::shared_ptr<Batch> m_batch;           // nullptr without --batch
    std::mutex m_records_mutex;               // one record update at a time: read, change, write
    std::map<std::string, AlertRecord> m_unsaved; // records the store could not take
    bool m_stopped = false;
};

} // namespace crashmail
