#pragma once
// Hands alerts from the event loop to the channels. Each channel has its own worker thread
// and queue, so the event loop never waits for a delivery and a slow or dead channel never
// delays another.

#include "alert/alert.hpp"
#include "transport/transport.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace crashmail {

// Where the event loop puts alerts. submit() must return at once.
class AlertSink {
public:
    virtual ~AlertSink() = default;
    virtual void submit(const Alert& alert) = 0;
};

class Dispatcher final : public AlertSink {
public:
    // Takes the channels and starts one worker per channel. `queue_limit` bounds each
    // channel's queue: when full, the oldest queued alert is dropped with an error line.
    explicit Dispatcher(std::vector<std::unique_ptr<Transport>> channels,
                        std::size_t queue_limit = 10000);
    // Same as shutdown(0): never blocks on a delivery in progress.
    ~Dispatcher() override;

    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    // Queues the alert for every channel. Never blocks on delivery.
    void submit(const Alert& alert) override;

    // Stops taking alerts and waits up to `grace` for the queues to drain. Returns the
    // number of deliveries (alert x channel) that did not complete; each is logged. Workers
    // still busy after `grace` are left to finish or die with the process.
    std::size_t shutdown(std::chrono::milliseconds grace);

    std::size_t channel_count() const { return m_workers.size(); }

private:
    struct Worker;
    std::vector<std::shared_ptr<Worker>> m_workers;
    bool m_stopped = false;
};

} // namespace crashmail
