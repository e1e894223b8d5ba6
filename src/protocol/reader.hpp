#pragma once
// Reads events from supervisord: a header line, then `len` characters of payload.

#include "event/event.hpp"
#include "protocol/stream.hpp"

#include <cstddef>
#include <expected>
#include <optional>
#include <string>

namespace crashmail::protocol {

struct ReadError {
    enum class Kind {
        truncated,  // input ended inside a header or payload
        bad_header, // the header line could not be parsed
        too_large,  // header line or payload beyond the limits below
        io,         // read(2) failed
    };
    Kind kind;
    std::string message; // says what was wrong and shows the offending bytes, escaped
};

inline constexpr std::size_t k_max_header_bytes = 64 * 1024;
inline constexpr std::size_t k_max_payload_chars = 16 * 1024 * 1024;

class Reader {
public:
    explicit Reader(ByteSource& source) : m_source(source) {}

    // Returns the next event, std::nullopt at a clean end of input (EOF between events), or
    // a ReadError. After an error the stream is out of step and the reader must not be used.
    std::expected<std::optional<Event>, ReadError> next();

private:
    // Makes at least one more byte available in m_buffer. Returns 0 at EOF, -1 on error.
    std::ptrdiff_t fill();

    ByteSource& m_source;
    std::string m_buffer;
    std::size_t m_start = 0; // first unconsumed byte in m_buffer
};

} // namespace crashmail::protocol
