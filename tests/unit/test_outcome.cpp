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

// Per recipient: a channel that addresses several (SMTP with several -m).
namespace {

Refusal refusal(std::string recipient, Failure::Kind kind, std::string reply) {
    return Refusal{std::move(recipient), Failure{kind, std::move(reply)}};
}

AlertRecord one_channel() {
    AlertRecord r;
    r.alert.id = "1";
    r.alert.time = k_now;
    return r;
}

const std::vector<std::string> k_all = {"a@x", "b@x", "c@x"};

} // namespace

TEST_CASE("outcome: recipients refused for good are reported once, those refused for now are "
          "retried alone, and the record settles once they have it",
          "[outcome]") {
    AlertRecord r = one_channel();
    Receipt receipt;
    receipt.refused = {refusal("b@x", Failure::Kind::permanent, "550 5.1.1 User unknown"),
                       refusal("c@x", Failure::Kind::transient, "452 4.2.2 Mailbox full")};
    auto first = apply_delivery(r, "a", "mail", receipt, k_all, policy(), 0.0, k_now, {"a"});
    CHECK(first.what == DeliveryOutcome::What::retry);
    CHECK(first.accepted == 1);
    REQUIRE(first.refused.size() == 1);
    CHECK(first.refused[0].recipient == "b@x");
    REQUIRE(first.deferred.size() == 1);
    CHECK(first.deferred[0].recipient == "c@x");
    REQUIRE(first.retry_at);
    CHECK(*first.retry_at == k_now + 10s);
    CHECK(first.settle == Outbox::Settle::keep);
    const ChannelState& state = r.channels["a"];
    CHECK(state.status == ChannelState::Status::pending);
    CHECK(state.waiting_recipients ==
          std::map<std::string, std::string>{{"c@x", "452 4.2.2 Mailbox full (transient)"}});
    CHECK(state.refused_recipients ==
          std::map<std::string, std::string>{{"b@x", "550 5.1.1 User unknown (permanent)"}});
    CHECK(state.last_error == "refused for now by c@x: 452 4.2.2 Mailbox full (transient)");

    // The retry is for c@x alone, and it takes it: delivered; b@x is not reported again.
    auto second =
        apply_delivery(r, "a", "mail", Receipt{}, {"c@x"}, policy(), 0.0, k_now + 10s, {"a"});
    CHECK(second.what == DeliveryOutcome::What::delivered);
    CHECK(second.accepted == 1);
    CHECK(second.refused.empty());
    CHECK(second.deferred.empty());
    CHECK(second.settle == Outbox::Settle::remove);
    CHECK(r.channels["a"].waiting_recipients.empty());
    CHECK(r.channels["a"].refused_recipients.size() == 1);
    CHECK(r.channels["a"].last_error.empty());
}

TEST_CASE("outcome: a failure of a retry for the recipients still waiting is theirs, not the "
          "alert's",
          "[outcome]") {
    AlertRecord r = one_channel();
    Receipt receipt;
    receipt.refused = {refusal("c@x", Failure::Kind::transient, "452 full")};
    apply_delivery(r, "a", "mail", receipt, k_all, policy(), 0.0, k_now, {"a"});

    SECTION("a connection refused: c@x waits on, with the backoff") {
        auto again =
            apply_delivery(r, "a", "mail",
                           std::unexpected(Failure{Failure::Kind::transient, "connection refused"}),
                           {"c@x"}, policy(), 0.0, k_now + 10s, {"a"});
        CHECK(again.what == DeliveryOutcome::What::retry);
        CHECK(again.attempts == 2);
        REQUIRE(again.retry_at);
        CHECK(*again.retry_at == k_now + 10s + 20s);
        CHECK(r.channels["a"].waiting_recipients.contains("c@x"));
    }
    SECTION("a 550 for c@x: refused for good, and the channel delivered (the others have it)") {
        auto again = apply_delivery(r, "a", "mail",
                                    std::unexpected(Failure{Failure::Kind::permanent, "550 gone"}),
                                    {"c@x"}, policy(), 0.0, k_now + 10s, {"a"});
        CHECK(again.what == DeliveryOutcome::What::delivered);
        REQUIRE(again.refused.size() == 1);
        CHECK(again.refused[0].recipient == "c@x");
        CHECK(again.settle == Outbox::Settle::remove);
        CHECK(r.channels["a"].status == ChannelState::Status::delivered);
    }
    SECTION("past the maximum age: c@x is given up on, the channel is delivered") {
        auto again = apply_delivery(r, "a", "mail",
                                    std::unexpected(Failure{Failure::Kind::transient, "452 full"}),
                                    {"c@x"}, policy(), 0.0, k_now + 59min + 50s, {"a"});
        CHECK(again.what == DeliveryOutcome::What::delivered);
        REQUIRE(again.refused.size() == 1);
        CHECK_THAT(again.refused[0].failure.message,
                   Catch::Contains("452 full") && Catch::Contains("gave up after 2 attempts"));
        CHECK(r.channels["a"].refused_recipients.contains("c@x"));
        CHECK(again.settle == Outbox::Settle::remove);
    }
    SECTION("nobody is asked (the waiting recipients are no longer configured): delivered") {
        auto again =
            apply_delivery(r, "a", "mail", Receipt{}, {}, policy(), 0.0, k_now + 10s, {"a"});
        CHECK(again.what == DeliveryOutcome::What::delivered);
        CHECK(r.channels["a"].waiting_recipients.empty());
    }
}

TEST_CASE("outcome: a failure retryable for a while (a certificate problem) becomes permanent "
          "once the alert is older than that",
          "[outcome]") {
    Failure certificate{Failure::Kind::transient, "certificate has expired", std::nullopt,
                        std::chrono::hours(1)};
    AlertRecord r = one_channel();
    auto early = apply_delivery(r, "a", "mail", std::unexpected(certificate), policy(), 0.0,
                                k_now + 10min, {"a"});
    CHECK(early.what == DeliveryOutcome::What::retry);
    RetryPolicy day = policy();
    day.max_age = 24h;
    auto late = apply_delivery(r, "a", "mail", std::unexpected(certificate), day, 0.0,
                               k_now + 61min, {"a"});
    CHECK(late.what == DeliveryOutcome::What::gave_up);
    CHECK(late.settle == Outbox::Settle::fail);
    CHECK_THAT(late.error, Catch::Contains("certificate has expired") &&
                               Catch::Contains("retried for 1 h after the alert"));
    CHECK(past_transient_for(certificate, k_now, k_now + 1h));
    CHECK_FALSE(past_transient_for(certificate, k_now, k_now + 59min));
    CHECK_FALSE(past_transient_for(Failure{Failure::Kind::transient, "421"}, k_now, k_now + 48h));

    // For one recipient as well.
    AlertRecord s = one_channel();
    Receipt receipt;
    receipt.refused = {Refusal{"b@x", certificate}};
    auto refused = apply_delivery(s, "a", "mail", receipt, k_all, day, 0.0, k_now + 2h, {"a"});
    CHECK(refused.what == DeliveryOutcome::What::delivered);
    CHECK(refused.refused.size() == 1);
}
