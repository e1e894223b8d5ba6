// A crash is counted once, whether its event arrived or it was recovered from supervisord's
// log after supervisord discarded its event.

#include "alert/event_ledger.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;
const time_point k_t0 = time_point(std::chrono::hours(24 * 20000));

LedgerEntry crash(std::string state, std::optional<std::int64_t> pid,
                  std::string process = "worker_01", std::string group = "grp") {
    return LedgerEntry{std::move(group), std::move(process), std::move(state), pid};
}

} // namespace

TEST_CASE("an event and its log line are the same crash when their pids match",
          "[discards][event_ledger]") {
    EventLedger ledger;
    CHECK_FALSE(ledger.arrived(crash("EXITED", 1985), k_t0));
    // The line was logged a little before the event arrived; it is read 30 s later.
    CHECK_FALSE(ledger.recovered(crash("EXITED", 1985), k_t0 - 3ms, k_t0 + 30s));
    // Another instance of the process (another pid) is another crash, whatever the time.
    CHECK(ledger.recovered(crash("EXITED", 1990), k_t0 - 3ms, k_t0 + 30s));
}

TEST_CASE("matching pids need no time window", "[discards][event_ledger]") {
    EventLedger ledger;
    CHECK_FALSE(ledger.arrived(crash("EXITED", 1985), k_t0 + 9min));
    CHECK_FALSE(ledger.recovered(crash("EXITED", 1985), k_t0, k_t0 + 9min + 1s));
}

TEST_CASE("without a pid an event and a line match when the event follows the line closely",
          "[discards][event_ledger]") {
    SECTION("the event came soon after the line") {
        EventLedger ledger;
        CHECK_FALSE(ledger.arrived(crash("FATAL", std::nullopt), k_t0 + 2s));
        CHECK_FALSE(ledger.recovered(crash("FATAL", std::nullopt), k_t0, k_t0 + 10s));
    }
    SECTION("the event at the line's time (its millisecond may read a little earlier)") {
        EventLedger ledger;
        CHECK_FALSE(ledger.arrived(crash("FATAL", std::nullopt), k_t0));
        CHECK_FALSE(ledger.recovered(crash("FATAL", std::nullopt), k_t0 + 3ms, k_t0 + 10s));
    }
    SECTION("the event just within the match window") {
        EventLedger ledger;
        CHECK_FALSE(
            ledger.arrived(crash("FATAL", std::nullopt), k_t0 + EventLedger::k_match_window));
        CHECK_FALSE(ledger.recovered(crash("FATAL", std::nullopt), k_t0,
                                     k_t0 + EventLedger::k_match_window + 1s));
    }
    SECTION("an event well before the line is not its event") {
        EventLedger ledger;
        CHECK_FALSE(ledger.arrived(crash("FATAL", std::nullopt), k_t0));
        CHECK(ledger.recovered(crash("FATAL", std::nullopt), k_t0 + 2s, k_t0 + 10s));
    }
    SECTION("an event too long after the line is not its event") {
        EventLedger ledger;
        CHECK_FALSE(
            ledger.arrived(crash("FATAL", std::nullopt), k_t0 + EventLedger::k_match_window + 1s));
        CHECK(ledger.recovered(crash("FATAL", std::nullopt), k_t0,
                               k_t0 + EventLedger::k_match_window + 2s));
    }
    SECTION("an event with a pid and a line without one (its spawn not in the chunk)") {
        EventLedger ledger;
        CHECK_FALSE(ledger.arrived(crash("EXITED", 1985), k_t0 + 50ms));
        CHECK_FALSE(ledger.recovered(crash("EXITED", std::nullopt), k_t0, k_t0 + 10s));
    }
}

TEST_CASE("matched by time, one event is the crash of one line only", "[discards][event_ledger]") {
    EventLedger ledger;
    CHECK_FALSE(ledger.arrived(crash("BACKOFF", std::nullopt), k_t0 + 1s));
    CHECK_FALSE(ledger.recovered(crash("BACKOFF", std::nullopt), k_t0, k_t0 + 10s));
    // A second BACKOFF line in the window: its own event was discarded.
    CHECK(ledger.recovered(crash("BACKOFF", std::nullopt), k_t0 + 500ms, k_t0 + 10s));
    // The first line read again (the gap read twice) is still the event's.
    CHECK_FALSE(ledger.recovered(crash("BACKOFF", std::nullopt), k_t0, k_t0 + 20s));
    CHECK_FALSE(ledger.recovered(crash("BACKOFF", std::nullopt), k_t0 + 500ms, k_t0 + 20s));
}

TEST_CASE("a line read twice is not recovered twice", "[discards][event_ledger]") {
    EventLedger ledger;
    CHECK(ledger.recovered(crash("EXITED", 7), k_t0, k_t0 + 1s));
    CHECK_FALSE(ledger.recovered(crash("EXITED", 7), k_t0, k_t0 + 2s));
    CHECK(ledger.recovered(crash("FATAL", std::nullopt), k_t0 + 1s, k_t0 + 2s));
    CHECK_FALSE(ledger.recovered(crash("FATAL", std::nullopt), k_t0 + 1s, k_t0 + 3s));
    CHECK(ledger.recovered(crash("EXITED", std::nullopt), k_t0 + 1s, k_t0 + 3s));
    CHECK_FALSE(ledger.recovered(crash("EXITED", std::nullopt), k_t0 + 1s, k_t0 + 3s));
    // Another line of the same process at another time is another crash.
    CHECK(ledger.recovered(crash("FATAL", std::nullopt), k_t0 + 2s, k_t0 + 3s));
    CHECK(ledger.recovered(crash("EXITED", 8), k_t0 + 2s, k_t0 + 3s));
}

TEST_CASE("a line read twice long after it was logged is recovered once",
          "[discards][event_ledger]") {
    // A gap that spans a restart of crashmail reaches back to the earlier run's last event:
    // its lines may be older than k_span when they are read.
    EventLedger ledger;
    const time_point now = k_t0 + EventLedger::k_span + 10min;
    CHECK(ledger.recovered(crash("EXITED", 7), k_t0, now));
    CHECK_FALSE(ledger.recovered(crash("EXITED", 7), k_t0, now + 1s));
}

TEST_CASE("a recovered crash whose event arrives later is already recovered",
          "[discards][event_ledger]") {
    SECTION("by pid") {
        EventLedger ledger;
        CHECK(ledger.recovered(crash("EXITED", 9), k_t0, k_t0 + 1s));
        CHECK(ledger.arrived(crash("EXITED", 9), k_t0 + 2s));
        // Another instance's event is counted.
        CHECK_FALSE(ledger.arrived(crash("EXITED", 10), k_t0 + 3s));
    }
    SECTION("by time") {
        EventLedger ledger;
        CHECK(ledger.recovered(crash("FATAL", std::nullopt), k_t0, k_t0 + 1s));
        CHECK(ledger.arrived(crash("FATAL", std::nullopt), k_t0 + 2s));
        // That line has its event: a second FATAL event is a crash of its own.
        CHECK_FALSE(ledger.arrived(crash("FATAL", std::nullopt), k_t0 + 3s));
    }
    SECTION("the line without a pid, the event with one") {
        EventLedger ledger;
        CHECK(ledger.recovered(crash("EXITED", std::nullopt), k_t0, k_t0 + 1s));
        CHECK(ledger.arrived(crash("EXITED", 1985), k_t0 + 2s));
    }
    SECTION("the line read again after its event arrived") {
        EventLedger ledger;
        CHECK(ledger.recovered(crash("EXITED", 9), k_t0, k_t0 + 1s));
        CHECK(ledger.arrived(crash("EXITED", 9), k_t0 + 2s));
        CHECK_FALSE(ledger.recovered(crash("EXITED", 9), k_t0, k_t0 + 3s));
    }
}

TEST_CASE("another group, process or state is never the same crash", "[discards][event_ledger]") {
    SECTION("event first") {
        EventLedger ledger;
        CHECK_FALSE(ledger.arrived(crash("EXITED", 5, "worker_01", "grp"), k_t0));
        CHECK(ledger.recovered(crash("EXITED", 5, "worker_01", "other"), k_t0, k_t0 + 1s));
        CHECK(ledger.recovered(crash("EXITED", 5, "worker_02", "grp"), k_t0, k_t0 + 1s));
        CHECK(ledger.recovered(crash("BACKOFF", 5, "worker_01", "grp"), k_t0, k_t0 + 1s));
        CHECK(ledger.recovered(crash("FATAL", std::nullopt, "worker_01", "grp"), k_t0, k_t0 + 1s));
        CHECK_FALSE(ledger.recovered(crash("EXITED", 5, "worker_01", "grp"), k_t0, k_t0 + 1s));
    }
    SECTION("line first") {
        EventLedger ledger;
        CHECK(ledger.recovered(crash("FATAL", std::nullopt, "web", "web"), k_t0, k_t0 + 1s));
        CHECK_FALSE(ledger.arrived(crash("FATAL", std::nullopt, "web", "grp"), k_t0 + 1s));
        CHECK_FALSE(ledger.arrived(crash("FATAL", std::nullopt, "web2", "web"), k_t0 + 1s));
        CHECK_FALSE(ledger.arrived(crash("BACKOFF", std::nullopt, "web", "web"), k_t0 + 1s));
        CHECK(ledger.arrived(crash("FATAL", std::nullopt, "web", "web"), k_t0 + 1s));
    }
}

TEST_CASE("ledger entries expire after k_span", "[discards][event_ledger]") {
    SECTION("an event is forgotten") {
        EventLedger ledger;
        CHECK_FALSE(ledger.arrived(crash("EXITED", 5), k_t0));
        CHECK_FALSE(ledger.recovered(crash("EXITED", 5), k_t0, k_t0 + EventLedger::k_span));
        EventLedger later;
        CHECK_FALSE(later.arrived(crash("EXITED", 5), k_t0));
        CHECK(later.recovered(crash("EXITED", 5), k_t0, k_t0 + EventLedger::k_span + 1s));
    }
    SECTION("a recovered crash is forgotten") {
        EventLedger ledger;
        CHECK(ledger.recovered(crash("EXITED", 5), k_t0, k_t0 + 1s));
        CHECK(ledger.arrived(crash("EXITED", 5), k_t0 + EventLedger::k_span));
        EventLedger later;
        CHECK(later.recovered(crash("EXITED", 5), k_t0, k_t0 + 1s));
        // Kept for k_span from when it was recovered (not from when it was logged).
        CHECK_FALSE(later.arrived(crash("EXITED", 5), k_t0 + 1s + EventLedger::k_span + 1s));
    }
}

TEST_CASE("the ledger keeps at most k_capacity events", "[discards][event_ledger]") {
    EventLedger ledger;
    const auto count = static_cast<std::int64_t>(EventLedger::k_capacity) + 1;
    for (std::int64_t pid = 0; pid < count; ++pid) {
        REQUIRE_FALSE(ledger.arrived(crash("EXITED", pid), k_t0));
    }
    CHECK(ledger.recovered(crash("EXITED", 0), k_t0, k_t0 + 1s)); // the oldest went
    CHECK_FALSE(ledger.recovered(crash("EXITED", 1), k_t0, k_t0 + 1s));
    CHECK_FALSE(ledger.recovered(crash("EXITED", count - 1), k_t0, k_t0 + 1s));
}
