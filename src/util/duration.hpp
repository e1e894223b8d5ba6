#pragma once
// Durations as people write and read them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

// Parses a duration written as a number and a unit: "30s", "10m", "24h", "2d" (a bare
// number is seconds). Returns std::nullopt for anything else, zero or negative values.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// "3 s", "0.5 s", "12.25 s": a time span in seconds for messages.
std::string seconds_text(std::chrono::milliseconds duration);

} // namespace crashmail
