#include "delivery/retry_policy.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>

namespace crashmail {

std::chrono::milliseconds retry_delay(const RetryPolicy& policy, int attempts,
                                      std::optional<std::chrono::seconds> retry_after,
                                      double jitter_sample) {
    using std::chrono::milliseconds;
    int doublings = std::clamp(attempts - 1, 0, 30);
    double base =
        static_cast<double>(milliseconds(policy.first_delay).count()) * std::pow(2.0, doublings);
    base = std::min(base, static_cast<double>(milliseconds(policy.max_delay).count()));
    double spread = std::clamp(jitter_sample, -1.0, 1.0) * policy.jitter;
    auto delay = milliseconds(static_cast<long long>(base * (1.0 + spread)));
    if (retry_after && milliseconds(*retry_after) > delay) {
        delay = milliseconds(*retry_after);
    }
    return std::max(delay, milliseconds(0));
}

bool past_max_age(const RetryPolicy& policy, std::chrono::system_clock::time_point raised,
                  std::chrono::system_clock::time_point next_attempt) {
    return next_attempt - raised > policy.max_age;
}

} // namespace crashmail
