#pragma once
// Time stamps in the formats mail, superlance and JSON use.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail::timefmt {

using TimePoint = std::chrono::system_clock::time_point;

// "2026-11-25 22:03:10,123" in local time: what superlance's subject used
// (supervisor.childutils.get_asctime()).
std::string asctime_local(TimePoint time);

// The time of asctime_local()'s format ("2026-11-25 22:03:10,123", local time; supervisord's
// log lines start with it), or std::nullopt when `text` does not start with one.
std::optional<TimePoint> parse_asctime_local(std::string_view text);

// "2026-11-25 22:03:10,123 +0100": asctime_local() and the zone's numeric UTC offset, the
// time of subjects ({time}): superlance's format, no longer ambiguous across zones or at the
// autumn change of summer time.
std::string asctime_local_zone(TimePoint time);

// "2026-11-25T22:03:10.123+01:00": ISO 8601 (RFC 3339) in local time with milliseconds and
// the numeric offset: what every stderr line starts with.
std::string iso8601_local(TimePoint time);

// "22:03:10": the local time of day, for log lines (which carry the date and zone first).
std::string clock_local(TimePoint time);

// "Wed, 25 Nov 2026 22:03:10 +0100": an RFC 5322 Date in local time with its offset.
std::string rfc5322_local(TimePoint time);

// "2026-11-25T21:03:10.123Z": RFC 3339 in UTC with milliseconds.
std::string rfc3339_utc(TimePoint time);

} // namespace crashmail::timefmt
