#pragma once
// One channel's delivery thread: a queue of record ids ordered by when they fall due, read
// from the outbox, delivered through the channel's Transport, and settled through the outbox
// (DeliveryOutcome). A slow or dead channel delays only its own worker. The queue holds at
// most `queue_limit` ids; past that the work stays in the outbox and is read back
// (refill()) when the queue runs dry, so memory does not grow with a backlog.
//
// The thread shares ownership of what it uses (its state, the transport, the outbox) and is
// always joined: stop() cancels a delivery in progress (Transport::cancel()) and waits.

#include "delivery/channel_health.hpp"
#include "delivery/outbox.hpp"
#include "delivery/refusals.hpp"
#include "delivery/retry_policy.hpp"
#include "transport/transport.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>

namespace crashmail {

struct ChannelWorkerSettings {
    RetryPolicy retry;
    std::size_t queue_limit = 1000;
    // A number in [-1, 1] for the backoff's jitter.
    std::function<double()> jitter = [] { return 0.0; };
    // True when an enrichment stage runs: a record still waiting for its details is left to
    // that stage (it queues the record again when done).
    bool enrichment = false;
    // The keys (channel_key()) of every channel configured now.
    std::shared_ptr<const std::set<std::string>> configured;
    // Where recipients refused for good are kept for --status; nullptr: only logged.
    std::shared_ptr<RefusalLog> refusals;
    // Told the result of every attempt (not those cut short by stop()); nullptr: none.
    std::shared_ptr<ChannelHealthMonitor> health;
};

// A stable key for a channel in stored records: 16 hex digits of SHA-256 over its
// identity(), so that the same channel is recognised after a restart.
std::string channel_key(const Transport& channel);

class ChannelWorker {
public:
    ChannelWorker(std::unique_ptr<Transport> transport, std::shared_ptr<Outbox> outbox,
                  ChannelWorkerSettings settings);
    // Same as stop().
    ~ChannelWorker();
    ChannelWorker(const ChannelWorker&) = delete;
    ChannelWorker& operator=(const ChannelWorker&) = delete;

    const std::string& key() const;
    const std::string& name() const;
    // Whether this channel takes `alert` at all (Transport::wants()).
    bool wants(const Alert& alert) const;

    // Starts the thread (once).
    void start();
    // Queues record `id` to be delivered at `due` (at once by default) unless it is queued
    // or in flight already; past the queue limit it stays in the outbox for refill().
    void queue(const std::string& id,
               std::chrono::system_clock::time_point due = std::chrono::system_clock::now());
    // Queues, up to the queue limit, the outbox's records this channel still has to deliver.
    // Returns how many pending records the outbox held (for this channel or not).
    std::size_t refill();
    // Lets the thread deliver what falls due before `deadline` (retries included), waiting
    // at most until then. Returns the deliveries still queued or in flight.
    std::size_t drain(std::chrono::steady_clock::time_point deadline);
    // Takes no more work, cancels a delivery in progress and joins the thread. A delivery it
    // cancels is recorded as a transient failure (the record stays pending for the next
    // start). Idempotent.
    void stop();

private:
    struct Core;
    std::shared_ptr<Core> m_core;
};

} // namespace crashmail
