#pragma once
// When to try a failed delivery again, and when to give up. Pure: the randomness (jitter)
// and the clock are inputs.

#include <chrono>
#include <optional>

namespace crashmail {

struct RetryPolicy {
    std::chrono::milliseconds first_delay{5000}; // after the first failure
    std::chrono::seconds max_delay{900};         // the backoff never waits longer than this...
    std::chrono::seconds max_age{86400};         // ...and an alert older than this goes to failed/
    double jitter = 0.2;                         // +/- this fraction of the delay
};

// Returns the delay before attempt `attempts + 1`, after `attempts` (>= 1) failed ones:
// first_delay * 2^(attempts-1), capped at max_delay, spread by `jitter_sample` in [-1, 1]
// times policy.jitter, and never shorter than the server's Retry-After.
std::chrono::milliseconds retry_delay(const RetryPolicy& policy, int attempts,
                                      std::optional<std::chrono::seconds> retry_after,
                                      double jitter_sample);

// True when an alert raised at `raised` is too old to try again at `next_attempt`.
bool past_max_age(const RetryPolicy& policy, std::chrono::system_clock::time_point raised,
                  std::chrono::system_clock::time_point next_attempt);

} // namespace crashmail
