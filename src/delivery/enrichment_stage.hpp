#pragma once
// The enrichment stage: one thread that takes record ids in submission order, has the
// AlertEnricher add the crash's details (log tail, exit status) and render the final text,
// stores the result through the outbox (an unsynced update: the submit's write was the
// durable one) and forwards the record to the channels or the batch window. The event loop
// only queues ids here and never waits for it.
//
// The thread shares ownership of its state, the enricher and the outbox, and is always
// joined: stop() cancels an enrich() in progress (AlertEnricher::cancel()) and waits.

#include "alert/enricher.hpp"
#include "delivery/outbox.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace crashmail {

struct EnrichmentSettings {
    // An alert that waited longer than this is skipped (its details would describe a later
    // instance of the process anyway) rather than held back.
    std::chrono::milliseconds max_wait{10000};
    // --batch: an enriched record is marked held (it waits for a digest).
    bool hold_for_batch = false;
    // Where a record goes once the stage is done with it (it is stored by then).
    std::function<void(const AlertRecord& record)> forward;
};

class EnrichmentStage {
public:
    EnrichmentStage(std::shared_ptr<AlertEnricher> enricher, std::shared_ptr<Outbox> outbox,
                    EnrichmentSettings settings);
    // Same as stop().
    ~EnrichmentStage();
    EnrichmentStage(const EnrichmentStage&) = delete;
    EnrichmentStage& operator=(const EnrichmentStage&) = delete;

    // Starts the thread (once); it calls AlertEnricher::start() first.
    void start();
    // Queues record `id` unless it is queued already. `recovered`: an earlier run stored it
    // and never fetched its details; they are skipped ("crashmail restarted before fetching
    // them").
    void push(const std::string& id, bool recovered = false);
    // From now on skips instead of fetching ("crashmail stopped before fetching them"), and
    // waits until the queue is empty or `deadline`. Returns the records still queued or in
    // hand.
    std::size_t drain(std::chrono::steady_clock::time_point deadline);
    // Takes no more work, cancels an enrich() in progress and joins the thread. Records still
    // queued stay waiting for details in the outbox (the next start skips them). Idempotent.
    void stop();

private:
    struct Core;
    std::shared_ptr<Core> m_core;
};

} // namespace crashmail
