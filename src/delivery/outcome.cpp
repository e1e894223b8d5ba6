#include "delivery/outcome.hpp"

#include <fmt/format.h>

namespace crashmail {

Outbox::Settle settlement(const AlertRecord& record, const std::set<std::string>& configured) {
    bool pending = false;
    bool failed = false;
    for (const auto& [key, channel] : record.channels) {
        if (!configured.contains(key)) {
            continue;
        }
        pending = pending || channel.status == ChannelState::Status::pending;
        failed = failed || channel.status == ChannelState::Status::failed;
    }
    if (pending) {
        return Outbox::Settle::keep;
    }
    return failed ? Outbox::Settle::fail : Outbox::Settle::remove;
}

DeliveryOutcome apply_delivery(AlertRecord& record, const std::string& key, const std::string& name,
                               const std::expected<void, Failure>& result,
                               const RetryPolicy& policy, double jitter_sample,
                               std::chrono::system_clock::time_point now,
                               const std::set<std::string>& configured) {
    DeliveryOutcome outcome;
    ChannelState& state = record.channels[key];
    state.name = name;
    ++state.attempts;
    outcome.attempts = state.attempts;
    if (result) {
        state.status = ChannelState::Status::delivered;
        state.last_error.clear();
        outcome.what = DeliveryOutcome::What::delivered;
    } else {
        const Failure& failure = result.error();
        state.last_error = failure.describe();
        if (!failure.retryable()) {
            state.status = ChannelState::Status::failed;
            outcome.what = DeliveryOutcome::What::failed;
        } else {
            auto delay = retry_delay(policy, state.attempts, failure.retry_after, jitter_sample);
            auto next = now + delay;
            if (past_max_age(policy, record.alert.time, next)) {
                state.status = ChannelState::Status::failed;
                state.last_error += fmt::format("; gave up after {} attempts", state.attempts);
                outcome.what = DeliveryOutcome::What::gave_up;
            } else {
                state.next_attempt = next;
                outcome.what = DeliveryOutcome::What::retry;
                outcome.retry_at = next;
                outcome.delay = delay;
            }
        }
    }
    outcome.error = state.last_error;
    outcome.settle = settlement(record, configured);
    return outcome;
}

} // namespace crashmail
