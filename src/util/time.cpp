#include "util/time.hpp"

#include <ctime>
#include <fmt/format.h>

namespace crashmail::timefmt {
namespace {

constexpr const char* k_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* k_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::tm local_tm(TimePoint time) {
    std::time_t t = std::chrono::system_clock::to_time_t(time);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    return tm;
}

long milliseconds_of(TimePoint time) {
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() %
        1000;
    return static_cast<long>(millis < 0 ? millis + 1000 : millis);
}

// "+0100" (`colon`: "+01:00") for the offset of `tm`.
std::string utc_offset(const std::tm& tm, bool colon) {
    long minutes = tm.tm_gmtoff / 60;
    const char sign = minutes < 0 ? '-' : '+';
    minutes = minutes < 0 ? -minutes : minutes;
    return fmt::format("{}{:02}{}{:02}", sign, minutes / 60, colon ? ":" : "", minutes % 60);
}

} // namespace

std::string asctime_local_zone(TimePoint time) {
    return asctime_local(time) + " " + utc_offset(local_tm(time), false);
}

std::string clock_local(TimePoint time) {
    const std::tm tm = local_tm(time);
    return fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string iso8601_local(TimePoint time) {
    const std::tm tm = local_tm(time);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       milliseconds_of(time), utc_offset(tm, true));
}

std::string asctime_local(TimePoint time) {
    std::tm tm = local_tm(time);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() %
        1000;
    if (millis < 0) {
        millis += 1000;
    }
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::optional<TimePoint> parse_asctime_local(std::string_view text) {
    // YYYY-MM-DD HH:MM:SS,mmm
    constexpr std::string_view k_shape = "0000-00-00 00:00:00,000";
    if (text.size() < k_shape.size()) {
        return std::nullopt;
    }
    int digits[17] = {};
    int count = 0;
    for (std::size_t i = 0; i < k_shape.size(); ++i) {
        char c = text[i];
        if (k_shape[i] == '0') {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            digits[count++] = c - '0';
        } else if (c != k_shape[i]) {
            return std::nullopt;
        }
    }
    auto value = [&](int from, int length) {
        int out = 0;
        for (int i = from; i < from + length; ++i) {
            out = out * 10 + digits[i];
        }
        return out;
    };
    const int month = value(4, 2);
    const int day = value(6, 2);
    if (month < 1 || month > 12 || day < 1 || day > 31 || value(8, 2) > 23 || value(10, 2) > 59 ||
        value(12, 2) > 60) {
        return std::nullopt;
    }
    std::tm tm{};
    tm.tm_year = value(0, 4) - 1900;
    tm.tm_mon = value(4, 2) - 1;
    tm.tm_mday = value(6, 2);
    tm.tm_hour = value(8, 2);
    tm.tm_min = value(10, 2);
    tm.tm_sec = value(12, 2);
    tm.tm_isdst = -1; // the zone's rules decide (an hour of autumn is ambiguous)
    std::time_t seconds = ::mktime(&tm);
    if (seconds == static_cast<std::time_t>(-1)) {
        return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(seconds) +
           std::chrono::milliseconds(value(14, 3));
}

std::string rfc5322_local(TimePoint time) {
    std::tm tm = local_tm(time);
    long offset_minutes = tm.tm_gmtoff / 60;
    char sign = offset_minutes < 0 ? '-' : '+';
    if (offset_minutes < 0) {
        offset_minutes = -offset_minutes;
    }
    return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} {}{:02}{:02}", k_days[tm.tm_wday],
                       tm.tm_mday, k_months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, sign, offset_minutes / 60, offset_minutes % 60);
}

std::string rfc3339_utc(TimePoint time) {
    std::time_t t = std::chrono::system_clock::to_time_t(time);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() %
        1000;
    if (millis < 0) {
        millis += 1000;
    }
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

} // namespace crashmail::timefmt
