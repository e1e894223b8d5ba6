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

bool past_transient_for(const Failure& failure, std::chrono::system_clock::time_point raised,
                        std::chrono::system_clock::time_point now) {
    return failure.retryable() && failure.transient_for && now - raised >= *failure.transient_for;
}

namespace {

using Clock = std::chrono::system_clock;

// "1 h", "90 min", "45 s": how long a transient_for is.
std::string span_text(std::chrono::seconds span) {
    using namespace std::chrono;
    if (span >= hours(1) && span % hours(1) == seconds(0)) {
        return fmt::format("{} h", duration_cast<hours>(span).count());
    }
    if (span >= minutes(1) && span % minutes(1) == seconds(0)) {
        return fmt::format("{} min", duration_cast<minutes>(span).count());
    }
    return fmt::format("{} s", span.count());
}

// A failure for everyone: the alert reached nobody through this channel.
void apply_failure(ChannelState& state, DeliveryOutcome& outcome, const Failure& failure,
                   const AlertRecord& record, const RetryPolicy& policy, double jitter_sample,
                   Clock::time_point now) {
    state.last_error = failure.describe();
    if (!failure.retryable()) {
        state.status = ChannelState::Status::failed;
        outcome.what = DeliveryOutcome::What::failed;
        return;
    }
    if (past_transient_for(failure, retry_start(record), now)) {
        state.status = ChannelState::Status::failed;
        state.last_error += fmt::format("; gave up after {} attempts: such a failure is retried "
                                        "for {} after the alert",
                                        state.attempts, span_text(*failure.transient_for));
        outcome.what = DeliveryOutcome::What::gave_up;
        return;
    }
    auto delay = retry_delay(policy, state.attempts, failure.retry_after, jitter_sample);
    auto next = now + delay;
    if (past_max_age(policy, retry_start(record), next)) {
        state.status = ChannelState::Status::failed;
        state.last_error += fmt::format("; gave up after {} attempts", state.attempts);
        outcome.what = DeliveryOutcome::What::gave_up;
        return;
    }
    state.next_attempt = next;
    outcome.what = DeliveryOutcome::What::retry;
    outcome.retry_at = next;
    outcome.delay = delay;
}

// Some recipients took it (now or in an earlier attempt); `refusals` are this attempt's.
void apply_refusals(ChannelState& state, DeliveryOutcome& outcome,
                    const std::vector<Refusal>& refusals, const AlertRecord& record,
                    const RetryPolicy& policy, double jitter_sample, Clock::time_point now) {
    // Everyone this attempt was for and not refused now has it; whoever was waiting and was
    // not asked is no longer configured: nothing is owed to them either.
    state.waiting_recipients.clear();
    for (const Refusal& refusal : refusals) {
        if (!refusal.failure.retryable() ||
            past_transient_for(refusal.failure, retry_start(record), now)) {
            if (!state.refused_recipients.contains(refusal.recipient)) {
                outcome.refused.push_back(refusal);
            }
            state.refused_recipients[refusal.recipient] = refusal.failure.describe();
        } else {
            state.waiting_recipients[refusal.recipient] = refusal.failure.describe();
            outcome.deferred.push_back(refusal);
        }
    }
    if (!state.waiting_recipients.empty()) {
        auto delay = retry_delay(policy, state.attempts, std::nullopt, jitter_sample);
        auto next = now + delay;
        if (!past_max_age(policy, retry_start(record), next)) {
            state.status = ChannelState::Status::pending;
            state.next_attempt = next;
            std::string waiting;
            for (const auto& [recipient, reason] : state.waiting_recipients) {
                waiting += fmt::format("{}{}: {}", waiting.empty() ? "" : "; ", recipient, reason);
            }
            state.last_error = "refused for now by " + waiting;
            outcome.what = DeliveryOutcome::What::retry;
            outcome.retry_at = next;
            outcome.delay = delay;
            return;
        }
        // Past the maximum age: the ones still waiting are given up on; the others have it.
        for (const auto& [recipient, reason] : state.waiting_recipients) {
            const std::string given_up =
                fmt::format("{}; gave up after {} attempts", reason, state.attempts);
            state.refused_recipients[recipient] = given_up;
            outcome.refused.push_back(Refusal{recipient, Failure{Failure::Kind::permanent, given_up,
                                                                 std::nullopt, std::nullopt}});
        }
        outcome.deferred.clear();
        state.waiting_recipients.clear();
    }
    state.status = ChannelState::Status::delivered;
    state.last_error.clear();
    outcome.what = DeliveryOutcome::What::delivered;
}

} // namespace

DeliveryOutcome apply_delivery(AlertRecord& record, const std::string& key, const std::string& name,
                               const std::expected<Receipt, Failure>& result,
                               const std::vector<std::string>& asked, const RetryPolicy& policy,
                               double jitter_sample, Clock::time_point now,
                               const std::set<std::string>& configured) {
    DeliveryOutcome outcome;
    ChannelState& state = record.channels[key];
    state.name = name;
    ++state.attempts;
    outcome.attempts = state.attempts;
    // A retry for the recipients refused for now: the others have it already.
    const bool for_some = !state.waiting_recipients.empty();
    if (result) {
        if (!asked.empty() && result->refused.size() <= asked.size()) {
            outcome.accepted = asked.size() - result->refused.size();
        }
        if (result->refused.empty() && !for_some) {
            state.status = ChannelState::Status::delivered;
            state.last_error.clear();
            outcome.what = DeliveryOutcome::What::delivered;
        } else {
            apply_refusals(state, outcome, result->refused, record, policy, jitter_sample, now);
        }
    } else if (for_some) {
        std::vector<Refusal> refusals;
        refusals.reserve(asked.size());
        for (const std::string& recipient : asked) {
            refusals.push_back(Refusal{recipient, result.error()});
        }
        apply_refusals(state, outcome, refusals, record, policy, jitter_sample, now);
    } else {
        apply_failure(state, outcome, result.error(), record, policy, jitter_sample, now);
    }
    outcome.error = state.last_error;
    outcome.settle = settlement(record, configured);
    return outcome;
}

DeliveryOutcome apply_delivery(AlertRecord& record, const std::string& key, const std::string& name,
                               const std::expected<void, Failure>& result,
                               const RetryPolicy& policy, double jitter_sample,
                               Clock::time_point now, const std::set<std::string>& configured) {
    std::expected<Receipt, Failure> receipt = Receipt{};
    if (!result) {
        receipt = std::unexpected(result.error());
    }
    return apply_delivery(record, key, name, receipt, {}, policy, jitter_sample, now, configured);
}

} // namespace crashmail
