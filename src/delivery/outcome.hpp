#pragma once
// What one delivery attempt makes of a record: the channel's state (delivered, retry when,
// failed and why; per recipient for a channel that addresses several) and whether the record
// is settled. Pure: the clock, the jitter and the set of configured channels are inputs; the
// channel worker logs and stores the result.

#include "delivery/alert_record.hpp"
#include "delivery/outbox.hpp"
#include "delivery/retry_policy.hpp"
#include "transport/transport.hpp"

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace crashmail {

struct DeliveryOutcome {
    enum class What {
        delivered, // to everyone it was owed to (recipients refused for good aside)
        retry,     // a transient failure (for everyone, or for some recipients): at retry_at
        failed,    // a permanent failure: nobody took it
        gave_up,   // transient, but the alert is past the maximum age (or the failure's
                   // transient_for): nobody took it
    };
    What what = What::delivered;
    int attempts = 0; // this channel's, this one included
    std::optional<std::chrono::system_clock::time_point> retry_at; // What::retry only
    std::chrono::milliseconds delay{0};                            // What::retry: retry_at - now
    std::string error;                                             // the channel's last_error
    Outbox::Settle settle = Outbox::Settle::keep;                  // what becomes of the record
    // Recipients refused for good in this attempt, each reported once per alert (a recipient
    // refused for good earlier is not in it again), and recipients given up on (past the
    // maximum age) with their last refusal.
    std::vector<Refusal> refused;
    // Recipients refused for now in this attempt: the next attempt is for them alone.
    std::vector<Refusal> deferred;
    // How many recipients took it in this attempt; 0 for an all-or-nothing channel.
    std::size_t accepted = 0;
};

// Records the result of one attempt by channel `key` (named `name`) in `record`, and decides
// the record's fate from the states of the channels configured now (`configured`: their
// keys): a channel of an earlier configuration neither holds a record back nor fails it.
// `asked`: the recipients this attempt was for (empty: an all-or-nothing channel, or all of
// them on a first attempt), used to count who took it. When the channel had recipients
// waiting (refused for now before), this attempt was for them alone: a Failure is then theirs,
// not the alert's (the others have it).
DeliveryOutcome apply_delivery(AlertRecord& record, const std::string& key, const std::string& name,
                               const std::expected<Receipt, Failure>& result,
                               const std::vector<std::string>& asked, const RetryPolicy& policy,
                               double jitter_sample, std::chrono::system_clock::time_point now,
                               const std::set<std::string>& configured);

// The same for a channel that takes an alert as a whole.
DeliveryOutcome apply_delivery(AlertRecord& record, const std::string& key, const std::string& name,
                               const std::expected<void, Failure>& result,
                               const RetryPolicy& policy, double jitter_sample,
                               std::chrono::system_clock::time_point now,
                               const std::set<std::string>& configured);

// The fate of `record` given the configured channels: remove when every configured channel's
// state is delivered, fail when none is pending and one failed, keep otherwise.
Outbox::Settle settlement(const AlertRecord& record, const std::set<std::string>& configured);

// Whether a retryable `failure` of an alert raised at `raised` is past its transient_for at
// `now` (then it counts as permanent).
bool past_transient_for(const Failure& failure, std::chrono::system_clock::time_point raised,
                        std::chrono::system_clock::time_point now);

} // namespace crashmail
