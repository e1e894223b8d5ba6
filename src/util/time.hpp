#pragma once
// Time stamps in the formats mail, superlance and JSON use.

#include <chrono>
#include <string>

namespace crashmail::timefmt {

using TimePoint = std::chrono::system_clock::time_point;

// "2026-11-25 22:03:10,123" in local time: what superlance's subject used
// (supervisor.childutils.get_asctime()).
std::string asctime_local(TimePoint time);

// "Wed, 25 Nov 2026 22:03:10 +0100": an RFC 5322 Date in local time with its offset.
std::string rfc5322_local(TimePoint time);

// "2026-11-25T21:03:10.123Z": RFC 3339 in UTC with milliseconds.
std::string rfc3339_utc(TimePoint time);

} // namespace crashmail::timefmt
