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

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data() || value <= 0) {
        return std::nullopt;
    }
    std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
    long long scale = 0;
    if (unit.empty() || unit == "s") {
        scale = 1;
    } else if (unit == "m") {
        scale = 60;
    } else if (unit == "h") {
        scale = 3600;
    } else if (unit == "d") {
        scale = 86400;
    } else {
        return std::nullopt;
    }
    if (value > 100LL * 365 * 86400 / scale) {
        return std::nullopt;
    }
    return std::chrono::seconds(value * scale);
}

} // namespace crashmail
