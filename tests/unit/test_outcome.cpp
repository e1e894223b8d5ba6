#include "delivery/outcome.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

const auto k_now = std::chrono::system_clock::time_point(std::chrono::hours(500000));

AlertRecord two_channels() {
    AlertRecord r;
    r.alert.id = "1";
    r.alert.time = k_now;
    r.channels["a"].name = "mail";
    r.channels["b"].name = "hook";
    return r;
}

std::unexpected<Failure> failure(Failure::Kind kind, std::string message) {
    return std::unexpected(Failure{kind, std::move(message), std::nullopt});
}

RetryPolicy policy() {
    RetryPolicy p;
    p.first_delay = 10s;
    p.max_age = 1h;
    return p;
}

} // namespace

TEST_CASE("outcome: delivered by one of two channels keeps the record", "[outcome]") {
    AlertRecord r = two_channels();
    auto outcome = apply_delivery(r, "a", "mail", {}, policy(), 0.0, k_now, {"a", "b"});
    CHECK(outcome.what == DeliveryOutcome::What::delivered);
    CHECK(outcome.attempts == 1);
    CHECK(outcome.settle == Outbox::Settle::keep);
    CHECK(r.channels["a"].status == ChannelState::Status::delivered);
    outcome = apply_delivery(r, "b", "hook", {}, policy(), 0.0, k_now, {"a", "b"});
    CHECK(outcome.settle == Outbox::Settle::remove);
}

TEST_CASE("outcome: a transient failure is retried after the backoff", "[outcome]") {
    AlertRecord r = two_channels();
    auto outcome = apply_delivery(r, "a", "mail", failure(Failure::Kind::transient, "421 busy"),
                                  policy(), 0.0, k_now, {"a", "b"});
    CHECK(outcome.what == DeliveryOutcome::What::retry);
    REQUIRE(outcome.retry_at);
    CHECK(*outcome.retry_at == k_now + 10s);
    CHECK(outcome.delay == 10s);
    CHECK(outcome.error == "421 busy (transient)");
    CHECK(r.channels["a"].next_attempt == k_now + 10s);
    CHECK(outcome.settle == Outbox::Settle::keep);
}

TEST_CASE("outcome: a permanent failure fails the record once nothing is pending", "[outcome]") {
    AlertRecord r = two_channels();
    auto outcome = apply_delivery(r, "a", "mail", failure(Failure::Kind::permanent, "550 no"),
                                  policy(), 0.0, k_now, {"a", "b"});
    CHECK(outcome.what == DeliveryOutcome::What::failed);
    CHECK(outcome.settle == Outbox::Settle::keep); // b is still pending
    outcome = apply_delivery(r, "b", "hook", {}, policy(), 0.0, k_now, {"a", "b"});
    CHECK(outcome.settle == Outbox::Settle::fail);
}

TEST_CASE("outcome: past the maximum age a transient failure gives up", "[outcome]") {
    AlertRecord r = two_channels();
    r.alert.time = k_now - 2h;
    auto outcome = apply_delivery(r, "a", "mail", failure(Failure::Kind::timeout, "no answer"),
                                  policy(), 0.0, k_now, {"a"});
    CHECK(outcome.what == DeliveryOutcome::What::gave_up);
    CHECK(outcome.error == "no answer (timeout); gave up after 1 attempts");
    CHECK(outcome.settle == Outbox::Settle::fail);
}

TEST_CASE("outcome: a channel no longer configured neither holds back nor fails a record",
          "[outcome]") {
    AlertRecord r = two_channels();
    r.channels["b"].status = ChannelState::Status::failed; // the old hook gave up
    r.channels["gone"].name = "old";                       // pending, but removed since
    auto outcome = apply_delivery(r, "a", "mail", {}, policy(), 0.0, k_now, {"a"});
    CHECK(outcome.settle == Outbox::Settle::remove);
    CHECK(settlement(r, {"a", "b"}) == Outbox::Settle::fail);
    CHECK(settlement(r, {"a", "gone"}) == Outbox::Settle::keep);
}
