#include "protocol/reader.hpp"

#include "util/utf8.hpp"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>

namespace crashmail::protocol {
namespace {

// Shows bytes as a C-like escaped string, at most 120 bytes, for error messages.
std::string escape(std::string_view bytes) {
    std::string out;
    for (char c : bytes.substr(0, 120)) {
        auto u = static_cast<unsigned char>(c);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (u < 0x20 || u == 0x7F) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out += c;
        }
    }
    if (bytes.size() > 120) {
        out += "...";
    }
    return out;
}

} // namespace

std::ptrdiff_t Reader::fill() {
    if (m_start > 0 && m_start == m_buffer.size()) {
        m_buffer.clear();
        m_start = 0;
    } else if (m_start > 64 * 1024) {
        m_buffer.erase(0, m_start);
        m_start = 0;
    }
    char chunk[16 * 1024];
    std::ptrdiff_t n = m_source.read_some(chunk, sizeof chunk);
    if (n > 0) {
        m_buffer.append(chunk, static_cast<std::size_t>(n));
    }
    return n;
}

std::expected<std::optional<Event>, ReadError> Reader::next() {
    // Header line.
    std::size_t scanned = 0; // bytes after m_start already searched for '\n'
    std::size_t newline;
    while ((newline = m_buffer.find('\n', m_start + scanned)) == std::string::npos) {
        scanned = m_buffer.size() - m_start;
        if (scanned > k_max_header_bytes) {
            return std::unexpected(
                ReadError{ReadError::Kind::too_large,
                          fmt::format("header line longer than {} bytes: '{}'", k_max_header_bytes,
                                      escape(std::string_view(m_buffer).substr(m_start)))});
        }
        std::ptrdiff_t n = fill();
        if (n < 0) {
            return std::unexpected(
                ReadError{ReadError::Kind::io, fmt::format("read: {}", std::strerror(errno))});
        }
        if (n == 0) {
            if (m_start == m_buffer.size()) {
                return std::optional<Event>();
            }
            return std::unexpected(
                ReadError{ReadError::Kind::truncated,
                          fmt::format("input ended inside a header line: '{}'",
                                      escape(std::string_view(m_buffer).substr(m_start)))});
        }
    }
    std::string_view line(m_buffer.data() + m_start, newline - m_start);
    // The loop above checks the limit only while the newline is missing; a long line that
    // arrived in one read is caught here.
    if (line.size() > k_max_header_bytes) {
        return std::unexpected(ReadError{ReadError::Kind::too_large,
                                         fmt::format("header line longer than {} bytes: '{}'",
                                                     k_max_header_bytes, escape(line))});
    }
    auto header = parse_event_header(line);
    if (!header) {
        return std::unexpected(ReadError{
            ReadError::Kind::bad_header,
            fmt::format("bad event header ({}): '{}'", escape(header.error()), escape(line))});
    }
    if (header->length > k_max_payload_chars) {
        return std::unexpected(
            ReadError{ReadError::Kind::too_large,
                      fmt::format("payload of {} characters exceeds the limit of {}: '{}'",
                                  header->length, k_max_payload_chars, escape(line))});
    }
    m_start = newline + 1;

    // Payload: `len` code points. Each character's byte count comes from its lead byte.
    std::string payload;
    std::size_t chars = 0;   // characters started
    std::size_t pending = 0; // continuation bytes still owed to the last character
    while (chars < header->length || pending > 0) {
        if (m_start == m_buffer.size()) {
            std::ptrdiff_t n = fill();
            if (n < 0) {
                return std::unexpected(ReadError{
                    ReadError::Kind::io, fmt::format("read: {} (in the payload of event {})",
                                                     std::strerror(errno), header->serial)});
            }
            if (n == 0) {
                return std::unexpected(ReadError{
                    ReadError::Kind::truncated,
                    fmt::format("input ended after {} of {} payload characters of event {} ({})",
                                pending > 0 ? chars - 1 : chars, header->length, header->serial,
                                header->event_name)});
            }
        }
        std::size_t end = m_start;
        while (end < m_buffer.size()) {
            if (pending > 0) {
                --pending;
            } else if (chars < header->length) {
                pending = utf8::sequence_length(static_cast<unsigned char>(m_buffer[end])) - 1;
                ++chars;
            } else {
                break;
            }
            ++end;
        }
        payload.append(m_buffer, m_start, end - m_start);
        m_start = end;
    }
    return std::optional<Event>(Event{std::move(*header), std::move(payload)});
}

} // namespace crashmail::protocol
