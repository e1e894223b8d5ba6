#include "util/time.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>

using namespace crashmail::timefmt;

namespace {

// 2026-11-25 22:03:10.123 UTC, a Wednesday.
const TimePoint k_when{std::chrono::milliseconds(1795644190123)};

struct InZone {
    explicit InZone(const char* zone) {
        ::setenv("TZ", zone, 1);
        ::tzset();
    }
    ~InZone() {
        ::unsetenv("TZ");
        ::tzset();
    }
};

} // namespace

TEST_CASE("the subject's time is superlance's childutils.get_asctime format", "[time]") {
    InZone utc("UTC");
    CHECK(asctime_local(k_when) == "2026-11-25 22:03:10,123");
}

TEST_CASE("subjects keep superlance's time and add the numeric offset", "[time]") {
    {
        InZone utc("UTC");
        CHECK(asctime_local_zone(k_when) == "2026-11-25 22:03:10,123 +0000");
    }
    {
        InZone india("Asia/Kolkata");
        CHECK(asctime_local_zone(k_when) == "2026-11-26 03:33:10,123 +0530");
    }
    {
        InZone new_york("America/New_York");
        CHECK(asctime_local_zone(k_when) == "2026-11-25 17:03:10,123 -0500");
        // The subject's time still reads back as supervisord's log time (the zone follows).
        CHECK(parse_asctime_local(asctime_local_zone(k_when)) == k_when);
    }
}

TEST_CASE("log lines start with ISO 8601 local time, milliseconds and the offset", "[time][log]") {
    {
        InZone utc("UTC");
        CHECK(iso8601_local(k_when) == "2026-11-25T22:03:10.123+00:00");
    }
    {
        InZone india("Asia/Kolkata");
        CHECK(iso8601_local(k_when) == "2026-11-26T03:33:10.123+05:30");
    }
    {
        InZone new_york("America/New_York");
        CHECK(iso8601_local(k_when) == "2026-11-25T17:03:10.123-05:00");
        // Summer time: the offset follows the date, not the zone's standard offset.
        const TimePoint july{std::chrono::milliseconds(1783000000007)};
        CHECK(iso8601_local(july) == "2026-07-02T09:46:40.007-04:00");
    }
}

TEST_CASE("Date headers are RFC 5322 with the local offset", "[time]") {
    {
        InZone utc("UTC");
        CHECK(rfc5322_local(k_when) == "Wed, 25 Nov 2026 22:03:10 +0000");
    }
    {
        InZone india("Asia/Kolkata");
        CHECK(rfc5322_local(k_when) == "Thu, 26 Nov 2026 03:33:10 +0530");
    }
    {
        InZone new_york("America/New_York");
        CHECK(rfc5322_local(k_when) == "Wed, 25 Nov 2026 17:03:10 -0500");
    }
}

TEST_CASE("JSON times are RFC 3339 UTC with milliseconds", "[time]") {
    InZone india("Asia/Kolkata");
    CHECK(rfc3339_utc(k_when) == "2026-11-25T22:03:10.123Z");
}

TEST_CASE("parse_asctime_local reads asctime_local's format back", "[discards][time]") {
    for (const char* zone : {"UTC", "Asia/Kolkata", "America/New_York"}) {
        InZone in(zone);
        INFO(zone);
        CHECK(parse_asctime_local(asctime_local(k_when)) == k_when);
        const TimePoint whole{std::chrono::seconds(1795644190)};
        CHECK(parse_asctime_local(asctime_local(whole)) == whole);
    }
    InZone utc("UTC");
    CHECK(parse_asctime_local("2026-11-25 22:03:10,123") == k_when);
    // A log line starts with it: the rest of the line does not matter.
    CHECK(parse_asctime_local("2026-11-25 22:03:10,123 INFO spawned: 'crasher' with pid 1985") ==
          k_when);
    CHECK(parse_asctime_local("2026-11-25 22:03:10,000") ==
          k_when - std::chrono::milliseconds(123));
}

TEST_CASE("parse_asctime_local is local time", "[discards][time]") {
    InZone india("Asia/Kolkata");
    CHECK(parse_asctime_local("2026-11-26 03:33:10,123") == k_when);
}

TEST_CASE("parse_asctime_local refuses what is not its format", "[discards][time]") {
    InZone utc("UTC");
    for (const char* bad :
         {"", "garbage", "2026-11-25", "2026-11-25 22:03:10", "2026-11-25 22:03:10.123",
          "2026-11-25T22:03:10,123", "2026/11/25 22:03:10,123", "2026-11-25 22:03:1,123 ",
          "x026-11-25 22:03:10,123", "2026-11-25 22:03:10,12x", " 2026-11-25 22:03:10,123",
          "Traceback (most recent call last):",
          "22:54:06,675 WARN exited: crasher (exit status 7; not expected)"}) {
        INFO('"' << bad << '"');
        CHECK(parse_asctime_local(bad) == std::nullopt);
    }
}
