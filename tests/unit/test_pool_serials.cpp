// Gaps in supervisord's pool serials (events it discarded) and the mark kept across restarts.

#include "event/pool_serials.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;
const time_point k_t0 = time_point(std::chrono::hours(24 * 20000));
constexpr const char* k_instance = "0b4f6c1e-boot:1981:1795644190";

std::int64_t ms(time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

// Feeds pool serials from..to (inclusive) with the same global serials, one second apart
// from `start`; returns the time of the last one.
time_point feed(PoolSerials& serials, std::uint64_t from, std::uint64_t to, time_point start) {
    time_point now = start;
    for (std::uint64_t serial = from; serial <= to; ++serial) {
        now = start + std::chrono::seconds(serial - from);
        auto gap = serials.observe(serial, serial, now);
        INFO("pool serial " << serial);
        REQUIRE_FALSE(gap);
    }
    return now;
}

PoolMark full_mark() {
    PoolMark mark;
    mark.instance = k_instance;
    mark.pool_serial = 41;
    mark.serial = 977;
    mark.seen_ms = ms(k_t0);
    mark.pending = SerialGap{30, 39, 10, false, ms(k_t0 - 20s), ms(k_t0 - 5s), true};
    return mark;
}

} // namespace

TEST_CASE("the first event of a run at pool serial 0 is no gap", "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    CHECK_FALSE(serials.observe(0, 0, k_t0));
    CHECK_FALSE(serials.observe(1, 1, k_t0 + 1s));
    CHECK(serials.mark().instance == k_instance);
    CHECK(serials.mark().pool_serial == 1);
    CHECK(serials.mark().serial == 1);
    CHECK(serials.mark().seen_ms == ms(k_t0 + 1s));
}

TEST_CASE("a first event after pool serial 0 says the run's first events were discarded",
          "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    auto gap = serials.observe(5, 5, k_t0);
    REQUIRE(gap);
    CHECK(*gap == SerialGap{0, 4, 5, true, 0, ms(k_t0), false});
    CHECK_FALSE(serials.observe(6, 6, k_t0 + 1s));
}

TEST_CASE("a jump in the pool serials counts the discarded events", "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    time_point last = feed(serials, 0, 3, k_t0);
    auto gap = serials.observe(10, 10, last + 7s);
    REQUIRE(gap);
    CHECK(gap->first == 4);
    CHECK(gap->last == 9);
    CHECK(gap->count == 6);
    CHECK_FALSE(gap->at_start);
    CHECK(gap->since_ms == ms(last));
    CHECK(gap->until_ms == ms(last + 7s));
    CHECK_FALSE(gap->since_earlier_run);
    // One missing serial is a gap of one.
    auto one = serials.observe(12, 12, last + 8s);
    REQUIRE(one);
    CHECK(*one == SerialGap{11, 11, 1, false, ms(last + 7s), ms(last + 8s), false});
    CHECK_FALSE(serials.observe(13, 13, last + 9s));
}

TEST_CASE("a jump in the global serial alone is no gap (events of other pools)",
          "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    CHECK_FALSE(serials.observe(0, 0, k_t0));
    CHECK_FALSE(serials.observe(1, 40, k_t0 + 1s));
    CHECK_FALSE(serials.observe(2, 900, k_t0 + 2s));
    CHECK(serials.mark().serial == 900);
}

TEST_CASE("a redelivered event keeps its serials and is no gap", "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    time_point last = feed(serials, 0, 7, k_t0);
    const PoolMark before = serials.mark();
    CHECK_FALSE(serials.observe(7, 7, last + 30s)); // the same event again
    CHECK_FALSE(serials.observe(7, 7, last + 60s));
    CHECK(serials.mark() == before); // seen_ms is of the last *new* pool serial
    // An older event requeued: nothing new, nothing moves backwards.
    CHECK_FALSE(serials.observe(5, 5, last + 61s));
    CHECK(serials.mark() == before);
    // The next new event follows on from 7.
    CHECK_FALSE(serials.observe(8, 8, last + 62s));
    auto gap = serials.observe(10, 10, last + 63s);
    REQUIRE(gap);
    CHECK(*gap == SerialGap{9, 9, 1, false, ms(last + 62s), ms(last + 63s), false});
}

TEST_CASE("pool serials wrap from k_max_serial to 0", "[discards][pool_serials]") {
    // The global serial is taken as going on here (as after a reload, when it runs ahead).
    const std::uint64_t g = 1000;
    SECTION("no gap across the wrap") {
        PoolSerials serials(k_instance);
        CHECK(serials.observe(k_max_serial - 1, g, k_t0) ==
              SerialGap{0, k_max_serial - 2, k_max_serial - 1, true, 0, ms(k_t0), false});
        CHECK_FALSE(serials.observe(k_max_serial, g + 1, k_t0 + 1s));
        CHECK_FALSE(serials.observe(0, g + 2, k_t0 + 2s));
        CHECK_FALSE(serials.observe(1, g + 3, k_t0 + 3s));
        CHECK(serials.mark().pool_serial == 1);
    }
    SECTION("a gap that spans the wrap") {
        PoolSerials serials(k_instance);
        (void)serials.observe(k_max_serial - 2, g, k_t0);
        auto gap = serials.observe(1, g + 4, k_t0 + 1s);
        REQUIRE(gap);
        CHECK(gap->first == k_max_serial - 1);
        CHECK(gap->last == 0);
        CHECK(gap->count == 3); // max-1, max, 0
        CHECK_FALSE(gap->at_start);
    }
    SECTION("a gap that ends at k_max_serial") {
        PoolSerials serials(k_instance);
        (void)serials.observe(k_max_serial - 3, g, k_t0);
        auto gap = serials.observe(0, g + 4, k_t0 + 1s);
        REQUIRE(gap);
        CHECK(gap->first == k_max_serial - 2);
        CHECK(gap->last == k_max_serial);
        CHECK(gap->count == 3);
        CHECK_FALSE(gap->at_start);
    }
    SECTION("a gap that starts at 0 after k_max_serial") {
        PoolSerials serials(k_instance);
        (void)serials.observe(k_max_serial, g, k_t0);
        auto gap = serials.observe(2, g + 3, k_t0 + 1s);
        REQUIRE(gap);
        CHECK(gap->first == 0);
        CHECK(gap->last == 1);
        CHECK(gap->count == 2);
        CHECK_FALSE(gap->at_start);
    }
}

TEST_CASE("gaps are still found after the global serial wrapped with the pool serial",
          "[discards][pool_serials]") {
    // One pool that gets every event: supervisord gives the event the same global and pool
    // serial, and both counters wrap to 0 at the same event (supervisor/process.py new_serial).
    PoolSerials serials(k_instance);
    (void)serials.observe(k_max_serial - 1, k_max_serial - 1, k_t0);
    CHECK_FALSE(serials.observe(k_max_serial, k_max_serial, k_t0 + 1s));
    CHECK_FALSE(serials.observe(0, 0, k_t0 + 2s));
    CHECK_FALSE(serials.observe(1, 1, k_t0 + 3s));
    CHECK(serials.mark().pool_serial == 1);
    auto gap = serials.observe(5, 5, k_t0 + 4s); // 2, 3 and 4 were discarded
    REQUIRE(gap);
    CHECK(gap->first == 2);
    CHECK(gap->last == 4);
    CHECK(gap->count == 3);
}

TEST_CASE("after a reload the pool serials restart at 0 while the global serial goes on",
          "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    time_point last = feed(serials, 0, 5, k_t0);
    SECTION("the new pool's first event is no gap") {
        CHECK_FALSE(serials.observe(0, 9, last + 10s));
        CHECK_FALSE(serials.observe(1, 10, last + 11s));
        CHECK(serials.mark().pool_serial == 1);
        CHECK(serials.mark().serial == 10);
        auto gap = serials.observe(4, 13, last + 12s);
        REQUIRE(gap);
        CHECK(*gap == SerialGap{2, 3, 2, false, ms(last + 11s), ms(last + 12s), false});
    }
    SECTION("the new pool's first events are missing") {
        auto gap = serials.observe(2, 9, last + 10s);
        REQUIRE(gap);
        CHECK(*gap == SerialGap{0, 1, 2, true, ms(last), ms(last + 10s), false});
        CHECK_FALSE(serials.observe(2, 9, last + 11s)); // redelivered: still no gap
        CHECK_FALSE(serials.observe(3, 10, last + 12s));
    }
    SECTION("the new pool reaches the old pool serial") {
        auto gap = serials.observe(5, 20, last + 10s);
        REQUIRE(gap);
        CHECK(*gap == SerialGap{0, 4, 5, true, ms(last), ms(last + 10s), false});
    }
}

TEST_CASE("a mark of an earlier crashmail of the same supervisord run is taken over",
          "[discards][pool_serials]") {
    PoolSerials earlier(k_instance);
    time_point last = feed(earlier, 0, 4, k_t0);
    const PoolMark mark = earlier.mark();

    PoolSerials serials(k_instance);
    REQUIRE(serials.restore(mark));
    CHECK(serials.mark() == mark);
    SECTION("the event the earlier crashmail did not answer comes again: no gap") {
        CHECK_FALSE(serials.observe(4, 4, last + 5s));
        CHECK_FALSE(serials.observe(5, 5, last + 6s));
    }
    SECTION("a gap that spans the restart is found, since the earlier run's last event") {
        auto gap = serials.observe(8, 8, last + 60s);
        REQUIRE(gap);
        CHECK(*gap == SerialGap{5, 7, 3, false, ms(last), ms(last + 60s), true});
        // Once an event of this run was seen, later gaps are this run's.
        auto next = serials.observe(10, 10, last + 61s);
        REQUIRE(next);
        CHECK_FALSE(next->since_earlier_run);
        CHECK(next->since_ms == ms(last + 60s));
    }
    SECTION("no gap right after the restart, then one: not since an earlier run") {
        CHECK_FALSE(serials.observe(5, 5, last + 60s));
        auto gap = serials.observe(7, 7, last + 61s);
        REQUIRE(gap);
        CHECK_FALSE(gap->since_earlier_run);
    }
    SECTION("a reload while crashmail was away") {
        auto gap = serials.observe(3, 20, last + 60s);
        REQUIRE(gap);
        CHECK(*gap == SerialGap{0, 2, 3, true, ms(last), ms(last + 60s), true});
    }
}

TEST_CASE("a mark of another supervisord instance is ignored", "[discards][pool_serials]") {
    PoolSerials earlier("another-boot:77:1700000000");
    feed(earlier, 0, 40, k_t0);

    PoolSerials serials(k_instance);
    CHECK_FALSE(serials.restore(earlier.mark()));
    CHECK(serials.mark().instance == k_instance);
    CHECK(serials.mark().pool_serial == 0);
    CHECK(serials.mark().serial == 0);
    // The serials start afresh: a first event at 0 is no gap, and a redelivery check does not
    // use the other run's numbers.
    SECTION("first event at 0") {
        CHECK_FALSE(serials.observe(0, 0, k_t0 + 1h));
    }
    SECTION("first event after 0 is a gap at the start of the run") {
        auto gap = serials.observe(5, 5, k_t0 + 1h);
        REQUIRE(gap);
        CHECK(*gap == SerialGap{0, 4, 5, true, 0, ms(k_t0 + 1h), false});
    }
}

TEST_CASE("a pending gap travels in the mark", "[discards][pool_serials]") {
    PoolSerials serials(k_instance);
    const PoolMark mark = full_mark();
    REQUIRE(serials.restore(mark));
    CHECK(serials.mark().pending == mark.pending);
    CHECK_FALSE(serials.observe(42, 978, k_t0 + 1s));
    CHECK(serials.mark().pending == mark.pending); // observing keeps it
    serials.set_pending({});
    CHECK(serials.mark().pending.count == 0);
    const SerialGap gap{50, 52, 3, false, 1, 2, false};
    serials.set_pending(gap);
    CHECK(serials.mark().pending == gap);
}

TEST_CASE("encode_mark and decode_mark round trip", "[discards][pool_serials]") {
    PoolMark big = full_mark();
    big.pool_serial = k_max_serial;
    big.serial = k_max_serial;
    big.pending = SerialGap{k_max_serial, 0, 2, true, 0, ms(k_t0), false};
    const std::vector<PoolMark> marks = {full_mark(), PoolMark{}, big};
    for (const PoolMark& mark : marks) {
        std::string text = encode_mark(mark);
        INFO(text);
        CHECK(text.starts_with("crashmail-mark 1 "));
        CHECK(text.ends_with("\n"));
        CHECK(std::count(text.begin(), text.end(), '\n') == 1);
        auto back = decode_mark(text);
        REQUIRE(back);
        CHECK(*back == mark);
    }
}

TEST_CASE("a damaged, truncated or tampered mark decodes to nothing", "[discards][pool_serials]") {
    const std::string text = encode_mark(full_mark());
    REQUIRE(decode_mark(text));
    CHECK_FALSE(decode_mark(""));
    CHECK_FALSE(decode_mark("\n"));
    CHECK_FALSE(decode_mark("garbage\n"));
    CHECK_FALSE(decode_mark(std::string(511, ' ') + "\n"));
    // Truncated: every proper prefix (a torn write).
    for (std::size_t size = 0; size < text.size(); ++size) {
        INFO("first " << size << " bytes");
        CHECK_FALSE(decode_mark(text.substr(0, size)));
        if (size + 1 < text.size()) { // cut before the newline, then a newline
            CHECK_FALSE(decode_mark(text.substr(0, size) + "\n"));
        }
    }
    // Tampered: any one byte of the line changed.
    for (std::size_t at = 0; at + 1 < text.size(); ++at) {
        std::string changed = text;
        changed[at] = changed[at] == '7' ? '8' : '7';
        INFO("byte " << at << ": " << changed);
        CHECK_FALSE(decode_mark(changed));
    }
}

TEST_CASE("merge_gaps makes one span of two gaps", "[discards][pool_serials]") {
    const SerialGap older{4, 9, 6, true, 100, 200, true};
    const SerialGap newer{15, 16, 2, false, 300, 400, false};
    CHECK(merge_gaps(older, newer) == SerialGap{4, 16, 8, true, 100, 400, true});
    CHECK(merge_gaps(SerialGap{}, newer) == newer); // nothing older: the newer alone
}

TEST_CASE("with take_first_as_baseline the first event starts the count (an upgraded spool)",
          "[discards][pool_serials]") {
    PoolSerials serials("run");
    serials.take_first_as_baseline();
    CHECK_FALSE(serials.observe(500, 900, std::chrono::system_clock::time_point{}));
    auto gap = serials.observe(503, 903, std::chrono::system_clock::time_point{});
    REQUIRE(gap);
    CHECK(gap->count == 2);
}
