#include "delivery/dispatcher.hpp"

#include "util/log.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace crashmail {

// Shared by the dispatcher and the worker's thread, so a worker still stuck in a delivery
// after shutdown() can be detached safely.
struct Dispatcher::Worker {
    std::unique_ptr<Transport> transport;
    std::string name;
    std::size_t queue_limit = 0;

    std::mutex mutex;
    std::condition_variable changed;
    std::deque<Alert> queue;
    bool busy = false;
    bool stopping = false;
    std::thread thread;

    void run() {
        std::unique_lock lock(mutex);
        for (;;) {
            changed.wait(lock, [&] { return stopping || !queue.empty(); });
            if (queue.empty() || stopping) {
                return;
            }
            Alert alert = std::move(queue.front());
            queue.pop_front();
            busy = true;
            lock.unlock();
            deliver(alert);
            lock.lock();
            busy = false;
            changed.notify_all();
        }
    }

    void deliver(const Alert& alert) {
        auto started = std::chrono::steady_clock::now();
        auto result = transport->deliver(alert);
        auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
        if (result) {
            log::info("delivered alert {} ({}) via {} in {} ms", alert.id,
                      display_name(alert.group, alert.process), name, millis);
        } else {
            log::error("{}: alert {} ({}) not delivered: {}", name, alert.id,
                       display_name(alert.group, alert.process), result.error().describe());
        }
    }
};

Dispatcher::Dispatcher(std::vector<std::unique_ptr<Transport>> channels, std::size_t queue_limit) {
    for (auto& channel : channels) {
        auto worker = std::make_shared<Worker>();
        worker->name = channel->name();
        worker->transport = std::move(channel);
        worker->queue_limit = queue_limit;
        worker->thread = std::thread([worker] { worker->run(); });
        m_workers.push_back(std::move(worker));
    }
}

Dispatcher::~Dispatcher() { shutdown(std::chrono::milliseconds(0)); }

void Dispatcher::submit(const Alert& alert) {
    if (m_stopped) {
        return;
    }
    for (auto& worker : m_workers) {
        std::lock_guard lock(worker->mutex);
        if (worker->queue.size() >= worker->queue_limit) {
            log::error("{}: queue full ({} alerts), dropping alert {} ({})", worker->name,
                       worker->queue.size(), worker->queue.front().id,
                       display_name(worker->queue.front().group, worker->queue.front().process));
            worker->queue.pop_front();
        }
        worker->queue.push_back(alert);
        worker->changed.notify_all();
    }
}

std::size_t Dispatcher::shutdown(std::chrono::milliseconds grace) {
    if (m_stopped) {
        return 0;
    }
    m_stopped = true;
    auto deadline = std::chrono::steady_clock::now() + grace;
    std::size_t undelivered = 0;
    for (auto& worker : m_workers) {
        std::unique_lock lock(worker->mutex);
        worker->changed.wait_until(lock, deadline,
                                   [&] { return worker->queue.empty() && !worker->busy; });
        undelivered += worker->queue.size() + (worker->busy ? 1 : 0);
        for (const Alert& alert : worker->queue) {
            log::error("{}: alert {} ({}) not delivered: stopping", worker->name, alert.id,
                       display_name(alert.group, alert.process));
        }
        if (worker->busy) {
            log::error("{}: stopping while a delivery is still in progress", worker->name);
        }
        worker->queue.clear();
        worker->stopping = true;
        bool finished = !worker->busy;
        worker->changed.notify_all();
        lock.unlock();
        if (finished) {
            worker->thread.join();
        } else {
            worker->thread.detach();
        }
    }
    return undelivered;
}

} // namespace crashmail
