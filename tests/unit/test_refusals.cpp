#include "delivery/refusals.hpp"
#include "fake_store.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using crashmail::testing::MemoryState;

TEST_CASE("the refusals document round-trips and ignores what it does not know", "[refusals]") {
    RefusedRecipient one;
    one.channel = "smtp://mx:25";
    one.recipient = "b@x";
    one.alerts = 3;
    one.first = std::chrono::system_clock::time_point(std::chrono::milliseconds(1000));
    one.last = std::chrono::system_clock::time_point(std::chrono::milliseconds(5000));
    one.last_alert = "a3";
    one.last_reason = "550 5.1.1 User unknown (permanent)";
    auto back = refusals_from_json(refusals_to_json({one}));
    REQUIRE(back);
    REQUIRE(back->size() == 1);
    CHECK((*back)[0].recipient == "b@x");
    CHECK((*back)[0].alerts == 3);
    CHECK((*back)[0].first == one.first);
    CHECK((*back)[0].last == one.last);
    CHECK((*back)[0].last_reason == one.last_reason);
    CHECK(refusals_from_json(R"({"version":2,"refused":[{"recipient":"c@x","new":1}]})"));
    CHECK_FALSE(refusals_from_json("[]"));
    CHECK_FALSE(refusals_from_json("{"));
}

TEST_CASE("the refusal log counts per channel and recipient and saves each change", "[refusals]") {
    MemoryState state;
    RefusalLog log(&state);
    const auto t0 = std::chrono::system_clock::time_point(std::chrono::hours(1));
    log.record("smtp://a:25", "b@x", "550 no", "1", t0);
    log.record("smtp://a:25", "b@x", "550 no", "2", t0 + std::chrono::minutes(1));
    log.record("smtp://other:25", "b@x", "550 no", "2", t0);
    CHECK(state.saves == 3);
    CHECK(state.last_durability == Durability::process);
    auto all = log.snapshot();
    REQUIRE(all.size() == 2);
    CHECK(all[0].channel == "smtp://a:25");
    CHECK(all[0].alerts == 2);
    CHECK(all[0].first == t0);
    CHECK(all[0].last_alert == "2");
    // An unreadable document is started afresh, not trusted.
    state.documents["refusals"] = "garbage";
    RefusalLog fresh(&state);
    CHECK(fresh.snapshot().empty());
}
