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
