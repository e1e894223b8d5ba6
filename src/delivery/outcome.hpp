#pragma once
// What one delivery attempt makes of a record: the channel's state (delivered, retry when,
// failed and why) and whether the record is settled. Pure: the clock, the jitter and the
// set of configured channels are inputs; the channel worker logs and stores the result.

#include "delivery/alert_record.hpp"
#include "delivery/outbox.hpp"
#include "delivery/retry_policy.hpp"
#include "transport/transport.hpp"

#include <chrono>
#include <optional>
#include <set>
#include <string>

namespace crashmail {

struct DeliveryOutcome {
    enum class What {
        delivered,
        retry,   // a transient failure; try again at retry_at
        failed,  // a permanent failure
        gave_up, // transient, but the alert is past the maximum age
    };
    What what = What::delivered;
    int attempts = 0; // this channel's, this one included
    std::optional<std::chrono::system_clock::time_point> retry_at; // What::retry only
    std::chrono::milliseconds delay{0};                            // What::retry: retry_at - now
    std::string error;                                             // the channel's last_error
    Outbox::Settle settle = Outbox::Settle::keep;                  // what becomes of the record
};

// Records the result of one attempt by channel `key` (named `name`) in `record`, and decides
// the record's fate from the states of the channels configured now (`configured`: their
// keys): a channel of an earlier configuration neither holds a record back nor fails it.
DeliveryOutcome apply_delivery(AlertRecord& record, const std::string& key, const std::string& name,
                               const std::expected<void, Failure>& result,
                               const RetryPolicy& policy, double jitter_sample,
                               std::chrono::system_clock::time_point now,
                               const std::set<std::string>& configured);

// The fate of `record` given the configured channels: remove when every configured channel's
// state is delivered, fail when none is pending and one failed, keep otherwise.
Outbox::Settle settlement(const AlertRecord& record, const std::set<std::string>& configured);

} // namespace crashmail
