#include "delivery/retry_policy.hpp"
#include "util/duration.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using namespace std::chrono_literals;

TEST_CASE("backoff doubles from the first delay up to the cap", "[retry]") {
    RetryPolicy policy;
    policy.first_delay = 5s;
    policy.max_delay = 60s;
    CHECK(retry_delay(policy, 1, std::nullopt, 0.0) == 5s);
    CHECK(retry_delay(policy, 2, std::nullopt, 0.0) == 10s);
    CHECK(retry_delay(policy, 3, std::nullopt, 0.0) == 20s);
    CHECK(retry_delay(policy, 4, std::nullopt, 0.0) == 40s);
    CHECK(retry_delay(policy, 5, std::nullopt, 0.0) == 60s);
    CHECK(retry_delay(policy, 500, std::nullopt, 0.0) == 60s);
}

TEST_CASE("jitter spreads the delay by the policy's fraction", "[retry]") {
    RetryPolicy policy;
    policy.first_delay = 10s;
    policy.jitter = 0.2;
    CHECK(retry_delay(policy, 1, std::nullopt, 1.0) == 12s);
    CHECK(retry_delay(policy, 1, std::nullopt, -1.0) == 8s);
    CHECK(retry_delay(policy, 1, std::nullopt, 7.0) == 12s); // clamped
}

TEST_CASE("Retry-After is honoured when longer than the backoff", "[retry]") {
    RetryPolicy policy;
    policy.first_delay = 5s;
    CHECK(retry_delay(policy, 1, 120s, 0.0) == 120s);
    CHECK(retry_delay(policy, 1, 1s, 0.0) == 5s);
}

TEST_CASE("an alert older than the maximum age is given up", "[retry]") {
    RetryPolicy policy;
    policy.max_age = 24h;
    auto raised = std::chrono::system_clock::now();
    CHECK_FALSE(past_max_age(policy, raised, raised + 23h));
    CHECK(past_max_age(policy, raised, raised + 25h));
}

TEST_CASE("durations are a number and a unit", "[retry]") {
    CHECK(parse_duration("30s") == 30s);
    CHECK(parse_duration("10m") == 600s);
    CHECK(parse_duration("24h") == 86400s);
    CHECK(parse_duration("2d") == 172800s);
    CHECK(parse_duration("45") == 45s);
    for (const char* bad : {"", "0s", "-5m", "10x", "m", "1.5h", "10 m", "99999999999999d"}) {
        INFO(bad);
        CHECK_FALSE(parse_duration(bad));
    }
}
