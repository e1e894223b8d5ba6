#include "delivery/channel_worker.hpp"

#include "delivery/outcome.hpp"
#include "util/duration.hpp"
#include "util/hash.hpp"
#include "util/log.hpp"

#include <condition_variable>
#include <fmt/format.h>
#include <limits>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

namespace crashmail {
namespace {

using Clock = std::chrono::system_clock;

struct Task {
    Clock::time_point due;
    std::string id;
    bool operator>(const Task& other) const { return due > other.due; }
};

// "digest of 3", "spool notice" or the process's name, for log lines.
std::string who(const Alert& alert) {
    if (alert.kind == AlertKind::digest) {
        return fmt::format("digest of {}", alert.items.size());
    }
    if (alert.process.empty()) {
        return fmt::format("{} notice", kind_name(alert.kind)); // about crashmail itself
    }
    return display_name(alert.group, alert.process);
}

} // namespace

std::string channel_key(const Transport& channel) {
    return sha256_hex(channel.identity(), 8);
}

struct ChannelWorker::Core {
    std::shared_ptr<Transport> transport;
    std::shared_ptr<Outbox> outbox;
    ChannelWorkerSettings settings;
    std::string key;
    std::string name;

    std::mutex mutex; // guards what follows; never held across I/O or a delivery
    std::condition_variable changed;
    std::priority_queue<Task, std::vector<Task>, std::greater<>> tasks;
    std::unordered_set<std::string> queued; // ids in `tasks` or in flight
    std::string in_flight;                  // the id being delivered, if `busy`
    // Queued again while in flight (a record stored anew under the same id, e.g. a digest
    // rebuilt after a crash or a requeued failed alert): looked at again after the flight.
    std::optional<Clock::time_point> again;
    bool overflowed = false; // the outbox holds work not in `tasks`
    bool busy = false;
    bool stopping = false;
    std::thread thread;
    // The worker thread's own (no lock): the Receipt notes logged so far, and how many
    // recipients the channel addresses.
    std::set<std::string> logged_notes;
    std::size_t recipient_count = 0;

    // Returns false when the queue is full (the work stays in the outbox). With `mutex` held.
    bool push(Task task, std::size_t limit) {
        if (busy && task.id == in_flight) {
            again = again ? std::min(*again, task.due) : task.due;
            return true;
        }
        if (queued.contains(task.id)) {
            return true;
        }
        if (tasks.size() >= limit) {
            overflowed = true;
            changed.notify_all();
            return false;
        }
        queued.insert(task.id);
        tasks.push(std::move(task));
        changed.notify_all();
        return true;
    }

    // When this channel should deliver `record`, or std::nullopt when it should not.
    std::optional<Clock::time_point> due(const AlertRecord& record) const {
        if (record.details_pending && settings.enrichment) {
            return std::nullopt; // the enrichment stage queues it again when done
        }
        if (record.held) {
            return std::nullopt; // it goes out in a digest
        }
        auto state = record.channels.find(key);
        if (state == record.channels.end()) {
            if (!transport->wants(record.alert)) {
                return std::nullopt;
            }
            return Clock::now();
        }
        if (state->second.status != ChannelState::Status::pending) {
            return std::nullopt;
        }
        return std::max(Clock::now(), state->second.next_attempt);
    }

    std::size_t refill() {
        std::size_t found = 0;
        outbox->scan([&](const std::string& id) {
            {
                std::lock_guard lock(mutex);
                if (stopping) {
                    return false;
                }
                if (queued.contains(id)) {
                    return true;
                }
            }
            auto record = outbox->read(id);
            if (!record) {
                log::error("{}: skipping unreadable spool entry: {}", name, record.error());
                return true;
            }
            if (!record->has_value()) {
                return true;
            }
            ++found;
            auto when = due(**record);
            if (!when) {
                return true;
            }
            std::lock_guard lock(mutex);
            return push(Task{*when, id}, settings.queue_limit);
        });
        return found;
    }

    // Logs each distinct note of a Receipt once (the worker's thread only).
    void log_notes(const std::vector<std::string>& notes) {
        for (const std::string& note : notes) {
            if (logged_notes.insert(note).second) {
                log::warning("{}", note);
            }
        }
    }

    // Who a delivery of `record` is for: `asked`, the recipients (empty: the channel takes
    // the alert as a whole), and `only`, what deliver_to() gets (empty: all). A record with
    // recipients refused for now is for them alone, as far as they are still configured.
    // Returns false when nobody is left to deliver to.
    bool addressees(const AlertRecord& record, std::vector<std::string>& asked,
                    std::vector<std::string>& only) const {
        asked = transport->recipients();
        only.clear();
        auto state = record.channels.find(key);
        if (state == record.channels.end() || state->second.waiting_recipients.empty()) {
            return true;
        }
        std::erase_if(asked, [&](const std::string& recipient) {
            return !state->second.waiting_recipients.contains(recipient);
        });
        only = asked;
        return !asked.empty();
    }

    // Records the result of one attempt; returns when to try again, if still pending here.
    std::optional<Clock::time_point> record_outcome(const std::string& id,
                                                    const std::expected<Receipt, Failure>& result,
                                                    const std::vector<std::string>& asked) {
        DeliveryOutcome outcome;
        std::string label;
        std::string alert_id = id;
        auto changed_record =
            outbox->change(id, [&](AlertRecord& record) -> std::optional<Outbox::Settle> {
                outcome = apply_delivery(record, key, name, result, asked, settings.retry,
                                         settings.jitter(), Clock::now(), *settings.configured);
                label = who(record.alert);
                return outcome.settle;
            });
        if (!changed_record || !changed_record->has_value()) {
            log::error("{}: alert {} vanished from the spool: {}", name, id,
                       changed_record ? std::string("no such record") : changed_record.error());
            return std::nullopt;
        }
        if (result) {
            log_notes(result->notes);
        }
        for (const Refusal& refusal : outcome.refused) {
            log::error("{}: alert {} ({}): recipient {} refused, not retried for it: {}", name,
                       alert_id, label, refusal.recipient, refusal.failure.describe());
            if (settings.refusals) {
                settings.refusals->record(name, refusal.recipient, refusal.failure.describe(),
                                          alert_id, Clock::now());
            }
        }
        for (const Refusal& refusal : outcome.deferred) {
            log::warning("{}: alert {} ({}): recipient {} refused for now: {}; retrying for it "
                         "in {}",
                         name, alert_id, label, refusal.recipient, refusal.failure.describe(),
                         seconds_text(outcome.delay));
        }
        const bool per_recipient = !outcome.refused.empty() || !outcome.deferred.empty();
        // This attempt was for the recipients refused for now before (the others have it).
        const bool for_some = recipient_count > 0 && asked.size() < recipient_count;
        std::string whom;
        if (for_some) {
            whom = fmt::format(" to {} of the {} recipient(s) it still waited for",
                               outcome.accepted, asked.size());
        } else if (per_recipient) {
            whom = fmt::format(" to {} of {} recipient(s)", outcome.accepted, recipient_count);
        }
        switch (outcome.what) {
        case DeliveryOutcome::What::delivered:
            log::info("delivered alert {} ({}) via {}{}{}", alert_id, label, name, whom,
                      outcome.attempts > 1 ? fmt::format(" on attempt {}", outcome.attempts) : "");
            break;
        case DeliveryOutcome::What::failed:
            log::error("{}: alert {} ({}) failed permanently: {}", name, alert_id, label,
                       outcome.error);
            break;
        case DeliveryOutcome::What::gave_up:
            log::error("{}: alert {} ({}) failed: {}", name, alert_id, label, outcome.error);
            break;
        case DeliveryOutcome::What::retry:
            if (per_recipient) {
                if (outcome.accepted > 0) {
                    log::info("delivered alert {} ({}) via {}{}; {} refused for now", alert_id,
                              label, name, whom, outcome.deferred.size());
                }
                break; // each refusal has its line
            }
            log::warning("{}: alert {} ({}) attempt {} failed: {}; retrying in {}", name, alert_id,
                         label, outcome.attempts, outcome.error, seconds_text(outcome.delay));
            break;
        }
        if (outcome.settle == Outbox::Settle::fail) {
            log::error("alert {} ({}) moved to failed/ in the spool", alert_id, label);
        }
        tell_health(outcome);
        return outcome.retry_at;
    }

    // Tells the channel's health what this attempt came to.
    void tell_health(const DeliveryOutcome& outcome) {
        if (!settings.health) {
            return;
        }
        std::size_t waiting = 0;
        {
            std::lock_guard lock(mutex);
            if (stopping) {
                return; // cut short by stop(): says nothing about the channel
            }
            waiting = queued.size();
        }
        AttemptResult result = AttemptResult::failed_for_now;
        switch (outcome.what) {
        case DeliveryOutcome::What::delivered:
            result = AttemptResult::delivered;
            break;
        case DeliveryOutcome::What::failed:
        case DeliveryOutcome::What::gave_up:
            result = AttemptResult::failed_for_good;
            break;
        case DeliveryOutcome::What::retry:
            // Some recipients took it: the channel works (the others are a recipient's
            // problem, reported on their own).
            result =
                outcome.accepted > 0 ? AttemptResult::delivered : AttemptResult::failed_for_now;
            break;
        }
        settings.health->observe(key, name, result, outcome.error, waiting);
    }

    void run() {
        std::unique_lock lock(mutex);
        while (!stopping) {
            if (tasks.empty() && overflowed) {
                overflowed = false;
                lock.unlock();
                refill();
                lock.lock();
                continue;
            }
            if (tasks.empty()) {
                changed.wait(lock, [&] { return stopping || !tasks.empty() || overflowed; });
                continue;
            }
            if (const Clock::time_point due = tasks.top().due; due > Clock::now()) {
                // A copy: `tasks` may grow (and move its elements) while this waits.
                changed.wait_until(lock, due);
                continue;
            }
            Task task = tasks.top();
            tasks.pop();
            busy = true;
            in_flight = task.id;
            again.reset();
            lock.unlock();
            std::optional<Alert> alert;
            std::vector<std::string> asked;
            std::vector<std::string> only;
            bool anyone = true;
            std::optional<Clock::time_point> retry_at;
            if (auto record = outbox->read(task.id); !record) {
                log::error("{}: cannot read alert {} from the spool: {}", name, task.id,
                           record.error());
            } else if (!record->has_value()) {
                // settled meanwhile
            } else if (auto when = due(**record); when && *when > Clock::now()) {
                retry_at = when; // its backoff is not over (queued again while in flight)
            } else if (when) {
                anyone = addressees(**record, asked, only);
                alert = std::move((*record)->alert);
            }
            if (alert && !anyone) {
                // The recipients it waited for are no longer configured: nothing is owed.
                log::info("{}: alert {}: the recipients it still waited for are no longer "
                          "configured",
                          name, task.id);
                retry_at = record_outcome(task.id, Receipt{}, asked);
            } else if (alert) {
                auto result = transport->deliver_to(*alert, only);
                // Recorded even when stopping: a delivery made must not be made again.
                retry_at = record_outcome(task.id, result, asked);
            }
            lock.lock();
            busy = false;
            queued.erase(task.id);
            if (again && (!retry_at || *again < *retry_at)) {
                retry_at = again; // read again then: due() says whether anything is owed
            }
            again.reset();
            in_flight.clear();
            if (retry_at && !stopping) {
                push(Task{*retry_at, task.id}, std::numeric_limits<std::size_t>::max());
            }
            changed.notify_all();
        }
    }
};

ChannelWorker::ChannelWorker(std::unique_ptr<Transport> transport, std::shared_ptr<Outbox> outbox,
                             ChannelWorkerSettings settings)
    : m_core(std::make_shared<Core>()) {
    m_core->key = channel_key(*transport);
    m_core->name = transport->name();
    m_core->recipient_count = transport->recipients().size();
    m_core->transport = std::move(transport);
    m_core->outbox = std::move(outbox);
    m_core->settings = std::move(settings);
    if (!m_core->settings.configured) {
        m_core->settings.configured =
            std::make_shared<const std::set<std::string>>(std::set<std::string>{m_core->key});
    }
}

ChannelWorker::~ChannelWorker() {
    stop();
}

const std::string& ChannelWorker::key() const {
    return m_core->key;
}

const std::string& ChannelWorker::name() const {
    return m_core->name;
}

bool ChannelWorker::wants(const Alert& alert) const {
    return m_core->transport->wants(alert);
}

void ChannelWorker::start() {
    std::lock_guard lock(m_core->mutex);
    if (m_core->thread.joinable() || m_core->stopping) {
        return;
    }
    m_core->thread = std::thread([core = m_core] { core->run(); });
}

void ChannelWorker::queue(const std::string& id, Clock::time_point due) {
    std::lock_guard lock(m_core->mutex);
    if (!m_core->stopping) {
        m_core->push(Task{due, id}, m_core->settings.queue_limit);
    }
}

std::size_t ChannelWorker::refill() {
    return m_core->refill();
}

std::size_t ChannelWorker::drain(std::chrono::steady_clock::time_point deadline) {
    // Deliveries due before the deadline are still made, retries included.
    const Clock::time_point wall_deadline =
        Clock::now() +
        std::chrono::duration_cast<Clock::duration>(deadline - std::chrono::steady_clock::now());
    std::unique_lock lock(m_core->mutex);
    m_core->changed.wait_until(lock, deadline, [&] {
        return !m_core->busy && !m_core->overflowed &&
               (m_core->tasks.empty() || m_core->tasks.top().due > wall_deadline);
    });
    return m_core->tasks.size() + (m_core->busy ? 1 : 0);
}

void ChannelWorker::stop() {
    bool busy = false;
    {
        std::lock_guard lock(m_core->mutex);
        m_core->stopping = true;
        busy = m_core->busy;
        m_core->changed.notify_all();
    }
    if (busy) {
        log::warning("{}: stopping while a delivery is in progress; cancelling it", m_core->name);
        m_core->transport->cancel();
    }
    if (m_core->thread.joinable()) {
        m_core->thread.join();
    }
}

} // namespace crashmail
