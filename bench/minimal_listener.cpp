// minimal_listener: the physical limit of the supervisord listener protocol on a machine.
//
// Writes READY, reads the header line, reads `len` characters (UTF-8 code points, as
// supervisord counts them) of payload, answers "RESULT 2\nOK", and again. Nothing else: no
// parsing beyond `len`, no decision, no storage. Reads in 16 KiB chunks like crashmail's
// reader and writes each answer with the next READY in one write ("RESULT 2\nOKREADY\n"), as
// crashmail does, so the difference between the two is crashmail's own work. Exits 0 at end of
// input, 65 on a malformed header.

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

class Input {
public:
    // Makes one more chunk available; false at end of input.
    bool fill() {
        if (m_start == m_buffer.size()) {
            m_buffer.clear();
            m_start = 0;
        }
        char chunk[16 * 1024];
        for (;;) {
            ssize_t n = ::read(0, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return false;
            }
            m_buffer.append(chunk, static_cast<std::size_t>(n));
            return true;
        }
    }

    std::string m_buffer;
    std::size_t m_start = 0;
};

bool write_all(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(1, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

[[noreturn]] void protocol_error(const char* what) {
    std::fprintf(stderr, "minimal_listener: %s\n", what);
    std::exit(65);
}

} // namespace

int main() {
    std::signal(SIGPIPE, SIG_IGN);
    Input input;
    if (!write_all("READY\n")) {
        return 74;
    }
    for (;;) {
        std::size_t newline;
        while ((newline = input.m_buffer.find('\n', input.m_start)) == std::string::npos) {
            if (!input.fill()) {
                if (input.m_start == input.m_buffer.size()) {
                    return 0;
                }
                protocol_error("input ended inside a header line");
            }
        }
        std::string_view line(input.m_buffer.data() + input.m_start, newline - input.m_start);
        std::size_t at = line.find(" len:");
        if (at == std::string_view::npos) {
            protocol_error("header without len:");
        }
        std::size_t length = 0;
        std::size_t digits = 0;
        for (std::size_t i = at + 5; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) {
            length = length * 10 + static_cast<std::size_t>(line[i] - '0');
            if (++digits > 9) {
                protocol_error("len: too large");
            }
        }
        if (digits == 0) {
            protocol_error("len: is not a number");
        }
        input.m_start = newline + 1;
        // `length` code points; each character's byte count comes from its lead byte.
        std::size_t chars = 0;
        std::size_t owed = 0; // continuation bytes still owed to the last character
        while (chars < length || owed > 0) {
            if (input.m_start == input.m_buffer.size() && !input.fill()) {
                protocol_error("input ended inside a payload");
            }
            while (input.m_start < input.m_buffer.size() && (chars < length || owed > 0)) {
                auto byte = static_cast<unsigned char>(input.m_buffer[input.m_start++]);
                if (owed > 0) {
                    --owed;
                } else {
                    ++chars;
                    owed = byte < 0xC0 ? 0 : byte < 0xE0 ? 1 : byte < 0xF0 ? 2 : 3;
                }
            }
        }
        if (!write_all("RESULT 2\nOKREADY\n")) {
            return 74;
        }
    }
}
