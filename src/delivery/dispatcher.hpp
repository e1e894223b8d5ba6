#pragma once
// Hands alerts from the event loop to the channels, durably: the wiring of the outbox
// (delivery/outbox), the enrichment stage (delivery/enrichment_stage), the --batch window
// (delivery/batch_window) and one worker per channel (delivery/channel_worker). submit()
// stores the alert for the channels that want it (Transport::wants(); an alert no channel
// wants is not stored at all) with the alert's one fsync, and returns; it takes no lock that
// another thread holds across I/O. The event loop never waits for a delivery, and a slow or
// dead channel never delays another.

#include "alert/alert.hpp"
#include "alert/enricher.hpp"
#include "delivery/alert_record.hpp"
#include "delivery/batch_window.hpp"
#include "delivery/channel_health.hpp"
#include "delivery/channel_worker.hpp"
#include "delivery/enrichment_stage.hpp"
#include "delivery/outbox.hpp"
#include "delivery/retry_policy.hpp"
#include "delivery/spool.hpp"
#include "transport/transport.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace crashmail {

// Where the event loop puts alerts.
class AlertSink {
public:
    virtual ~AlertSink() = default;
    // Takes responsibility for `alert`: when this returns, the alert is stored durably (or,
    // when the store refused it, waits in memory and is retried until it is stored or
    // delivered everywhere). Never waits for delivery.
    virtual void submit(const Alert& alert) = 0;
};

struct DispatcherSettings {
    RetryPolicy retry;
    // Deliveries each channel keeps queued in memory; the rest wait in the store and are
    // read back in when the queue runs dry, so memory does not grow with the backlog.
    std::size_t queue_limit = 1000;
    // Returns a number in [-1, 1] for the backoff's jitter; uniform random by default.
    std::function<double()> jitter;
    // The enrichment stage; nullptr: alerts go to the channels as submitted.
    std::shared_ptr<AlertEnricher> enricher;
    // See EnrichmentSettings::max_wait.
    std::chrono::milliseconds enrich_max_wait{10000};
    // --batch (see delivery/batch_window.hpp): 0 sends each alert on its own. On shutdown()
    // held alerts stay in the store (no half-window digest); recover() holds them again in a
    // window that ends at the oldest one's time + `batch` (at once when that is past, or when
    // batch is now 0).
    std::chrono::milliseconds batch{0};
    // The clock of the --batch windows (tests give a fake one); system_clock::now when empty.
    std::function<std::chrono::system_clock::time_point()> now;
    // -o: a digest's subject starts with "PREFIX: " when this is not empty.
    std::string digest_prefix;
    // The waiting room's backoff and the --status mark; its callbacks, when set, are called
    // after the dispatcher's own.
    OutboxSettings outbox;
    // The notice sent through every channel when the spool starts refusing records ("spool
    // not writable: REASON; N alerts not durable"); nullptr: none. At most one per
    // `notice_interval`, and one per episode (until the spool takes every record again).
    std::function<Alert(const std::string& reason, std::size_t count)> spool_notice;
    std::chrono::milliseconds notice_interval{std::chrono::minutes(10)};
    // Where the recipients refused for good are kept for --status (delivery/refusals);
    // nullptr: they are only logged.
    StateStore* refusals_store = nullptr;
    // A channel failing (delivery/channel_health): the notice sent through the other channels
    // (nullptr: none; the failure is still logged and kept for --status), and where the
    // channels' health is kept for --status (nullptr: not kept).
    std::function<Alert(const ChannelNotice&)> channel_notice;
    ChannelHealthSettings health;
    StateStore* health_store = nullptr;
    // Told every delivery attempt's result (no lock held, on the channel's worker thread);
    // for metrics. May be empty.
    std::function<void(const std::string& key, const std::string& name, AttemptResult result)>
        on_attempt;
    // Told every alert submit() takes (any kind, before it is stored; on the caller's thread,
    // no lock held); for metrics. May be empty.
    std::function<void(const Alert& alert)> on_submit;
};

class Dispatcher final : public AlertSink {
public:
    // Starts the outbox's retry thread, the stages and one worker per channel. `store` must
    // outlive the dispatcher.
    Dispatcher(std::vector<std::unique_ptr<Transport>> channels, AlertStore& store,
               DispatcherSettings settings = {});
    // Same as shutdown(0).
    ~Dispatcher() override;

    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    void submit(const Alert& alert) override;
    // submit() for every channel but the one with key `except` (a notice about it).
    void submit_except(const Alert& alert, const std::string& except);

    // Queues what the store holds from an earlier run. Returns the number of records found.
    // A record an earlier run stored but never enriched gets the enricher's skip() with
    // "details unavailable: crashmail restarted before fetching them".
    std::size_t recover();

    // Takes a record from outside the event loop (--retry-failed's retry/ area, see
    // delivery/retry_inbox): stores it in pending/ through the outbox (a pending record with
    // its id is kept instead) and sends it on its way as recover() does a record from an
    // earlier run. Returns false when stopping (nothing is stored).
    bool adopt(AlertRecord record);

    struct Stopped {
        std::size_t pending = 0; // alerts left in the store for the next start
        std::size_t lost = 0;    // alerts the store never took: gone
        std::string reason;      // why the store refused them (lost > 0)
    };
    // Takes no more alerts; lets the enrichment stage finish the alert in hand (the rest are
    // skipped: "crashmail stopped before fetching them") and the workers deliver what is due
    // for up to `grace`; then cancels what is still in progress, joins every thread, and
    // tries the store once more for what waits in memory. Returns what is left, counted.
    // Idempotent (later calls return the first call's result).
    Stopped shutdown(std::chrono::milliseconds grace);

    std::size_t channel_count() const { return m_workers.size(); }
    // Every channel's health as seen so far, by key (ChannelHealthMonitor::conditions()); a
    // channel with no attempt yet is absent.
    std::map<std::string, ChannelCondition> channel_conditions() const {
        return m_health->conditions();
    }
    // Records waiting in memory for the store (Outbox::waiting()).
    std::size_t waiting_in_memory() const { return m_outbox->waiting(); }

private:
    // Sends a record on its way: holds it for the digest when it is marked held, else
    // queues it for every channel it has a state for.
    void forward(const AlertRecord& record);
    void hold(const std::string& id, std::chrono::system_clock::time_point window_end);
    void send_digest(const std::vector<std::string>& ids);
    std::map<std::string, ChannelState> channels_for(const Alert& alert) const;
    // Whether a configured channel still has to deliver `record` (pending, or no state yet
    // and it wants it).
    bool waits_for_a_channel(const AlertRecord& record) const;
    void on_memory_only(const std::string& reason, std::size_t count);
    // What recover() and adopt() do with a stored record.
    enum class Resume {
        enrich,  // details still to fetch (an enrichment stage runs)
        settle,  // no configured channel still has to deliver it
        hold,    // held for a digest
        deliver, // for the channels
    };
    Resume resumption(const AlertRecord& record) const;
    // Settles record `id` by the channels configured now, unless one still waits for it.
    void settle_now(const std::string& id);

    DispatcherSettings m_settings;
    DigestSettings m_digest;
    std::shared_ptr<Outbox> m_outbox;
    std::shared_ptr<ChannelHealthMonitor> m_health;            // before the workers, which feed it
    std::shared_ptr<const std::set<std::string>> m_configured; // every channel's key
    std::vector<std::shared_ptr<ChannelWorker>> m_workers;
    std::unique_ptr<EnrichmentStage> m_enrichment; // nullptr without an enricher
    std::unique_ptr<BatchWindow> m_batch;          // nullptr without --batch
    std::atomic<bool> m_stopped{false};
    std::mutex m_notice_mutex; // guards the two below; never held across I/O
    std::optional<std::chrono::steady_clock::time_point> m_last_notice;
    bool m_notice_due = true; // no notice yet in this episode
    Stopped m_stop_result;
};

} // namespace crashmail
