// Fuzzes the protocol reader: any bytes on stdin, read in chunks of any size.
// Input: the first byte chooses the largest read (1..64 bytes, so reads split headers and
// characters), the rest is the stream. Checks that the reader never crashes or hangs, that
// every event it returns holds exactly `len` characters, and that the events and the final
// outcome do not depend on how the input was split into reads.

#include "protocol/reader.hpp"
#include "util/utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace {

struct Outcome {
    std::vector<crashmail::Event> events;
    std::optional<crashmail::protocol::ReadError::Kind> error; // nullopt: clean end of input
};

bool same_events(const std::vector<crashmail::Event>& a, const std::vector<crashmail::Event>& b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto& x = a[i];
        const auto& y = b[i];
        if (x.payload != y.payload || x.header.version != y.header.version ||
            x.header.server != y.header.server || x.header.serial != y.header.serial ||
            x.header.pool != y.header.pool || x.header.pool_serial != y.header.pool_serial ||
            x.header.event_name != y.header.event_name || x.header.length != y.header.length) {
            return false;
        }
    }
    return true;
}

Outcome read_all(const std::string& stream, std::size_t chunk) {
    crashmail::protocol::StringSource source(stream, chunk);
    crashmail::protocol::Reader reader(source);
    Outcome outcome;
    // Every event consumes at least its header's '\n', so the loop ends; the bound is a guard.
    for (std::size_t i = 0; i <= stream.size(); ++i) {
        auto next = reader.next();
        if (!next) {
            if (next.error().message.empty()) {
                std::abort(); // an error must say what was wrong
            }
            outcome.error = next.error().kind;
            return outcome;
        }
        if (!next->has_value()) {
            return outcome;
        }
        crashmail::Event& event = **next;
        if (crashmail::utf8::count_code_points(event.payload) != event.header.length) {
            std::abort(); // the payload must hold exactly `len` characters
        }
        if (event.header.event_name.empty()) {
            std::abort();
        }
        outcome.events.push_back(std::move(event));
    }
    std::abort(); // more events than newlines: the reader is looping
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    std::size_t chunk = data[0] % 64 + 1;
    std::string stream(reinterpret_cast<const char*>(data) + 1, size - 1);

    Outcome split = read_all(stream, chunk);
    Outcome whole = read_all(stream, stream.size() + 1);
    if (split.error != whole.error || !same_events(split.events, whole.events)) {
        std::abort(); // the result depends on how the bytes arrived
    }
    return 0;
}
