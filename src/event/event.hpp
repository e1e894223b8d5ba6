#pragma once
// One event as supervisord sends it: the header line and the payload.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace crashmail {

struct EventHeader {
    std::string version; // "3.0"
    std::string server;  // supervisord's identifier (free text)
    std::uint64_t serial = 0;
    std::string pool;
    std::uint64_t pool_serial = 0;
    std::string event_name; // e.g. "PROCESS_STATE_EXITED"
    std::size_t length = 0; // payload length in Unicode code points, not bytes
};

struct Event {
    EventHeader header;
    std::string payload; // exactly the payload bytes, valid UTF-8 from supervisord
};

// Parses a header line (without its trailing '\n'). Returns the header, or a message naming
// what is missing or malformed. `serial`, `eventname` and `len` are required.
std::expected<EventHeader, std::string> parse_event_header(std::string_view line);

} // namespace crashmail
