#include "protocol/reader.hpp"
#include "protocol/stream.hpp"
#include "util/utf8.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

using crashmail::Event;
using crashmail::protocol::k_max_header_bytes;
using crashmail::protocol::k_max_payload_chars;
using crashmail::protocol::Reader;
using crashmail::protocol::ReadError;
using crashmail::protocol::StringSource;

namespace {

std::string read_fixture(const std::string& name) {
    std::ifstream file(std::string(CRASHMAIL_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE(file.good());
    return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// Reads every event until a clean EOF; fails the test on any error.
std::vector<Event> read_all(const std::string& data, std::size_t chunk) {
    StringSource source(data, chunk);
    Reader reader(source);
    std::vector<Event> events;
    for (;;) {
        auto next = reader.next();
        if (!next) {
            FAIL("read error after " << events.size() << " events: " << next.error().message);
        }
        if (!next->has_value()) {
            break;
        }
        events.push_back(std::move(**next));
    }
    return events;
}

// Reads events until the first error, which it returns (the test fails on a clean EOF).
ReadError first_error(const std::string& data, std::size_t chunk = 4096) {
    StringSource source(data, chunk);
    Reader reader(source);
    for (int i = 0; i < 1000; ++i) {
        auto next = reader.next();
        if (!next) {
            return next.error();
        }
        if (!next->has_value()) {
            FAIL("expected a read error, got a clean end of input after " << i << " events");
        }
    }
    FAIL("expected a read error, got 1000 events");
    return {};
}

std::string header(std::string_view event_name, std::size_t len, int serial = 1) {
    return "ver:3.0 server:supervisor serial:" + std::to_string(serial) + " pool:crashmail " +
           "poolserial:" + std::to_string(serial) + " eventname:" + std::string(event_name) +
           " len:" + std::to_string(len) + "\n";
}

// The payload as supervisord sends it for a process named "wörker": 74 characters, 76 bytes.
const std::string k_worker_payload = "processname:w\xc3\xb6rker groupname:w\xc3\xb6rker "
                                     "from_state:RUNNING expected:0 pid:1234";

class FailingSource final : public crashmail::protocol::ByteSource {
public:
    explicit FailingSource(std::string first) : m_first(std::move(first)) {}
    std::ptrdiff_t read_some(char* buffer, std::size_t size) override {
        if (!m_first.empty()) {
            std::size_t n = std::min(size, m_first.size());
            m_first.copy(buffer, n);
            m_first.erase(0, n);
            return static_cast<std::ptrdiff_t>(n);
        }
        errno = EIO;
        return -1;
    }

private:
    std::string m_first;
};

} // namespace

TEST_CASE("a real supervisord session is read event by event with nothing left over",
          "[protocol]") {
    const std::string stream = read_fixture("stream-supervisor-4.2.5.bin");
    std::vector<Event> events = read_all(stream, 4096);
    REQUIRE(events.size() == 161);

    std::size_t consumed = 0;
    std::size_t longer_than_len = 0;
    std::map<std::string, int> by_name;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const Event& event = events[i];
        CHECK(event.header.serial == i);
        CHECK(event.header.version == "3.0");
        CHECK(event.header.pool == "rawlog");
        CHECK(crashmail::utf8::count_code_points(event.payload) == event.header.length);
        if (event.payload.size() > event.header.length) {
            ++longer_than_len;
        }
        ++by_name[event.header.event_name];
        // Re-serialise: the header line text is not kept, so count bytes from the input.
        std::size_t newline = stream.find('\n', consumed);
        REQUIRE(newline != std::string::npos);
        consumed = newline + 1 + event.payload.size();
        CHECK(stream.compare(newline + 1, event.payload.size(), event.payload) == 0);
    }
    CHECK(consumed == stream.size());
    // Non-ASCII log lines ("détail") make len smaller than the byte count: 29 stderr chunks
    // and one REMOTE_COMMUNICATION.
    CHECK(longer_than_len == 30);
    CHECK(by_name["PROCESS_STATE_EXITED"] == 29);
    CHECK(by_name["PROCESS_LOG_STDERR"] == 29);
    CHECK(by_name["PROCESS_STATE_FATAL"] == 2);
    CHECK(by_name["TICK_5"] == 10);
}

TEST_CASE("reads split into 1-byte and 7-byte chunks give the same events", "[protocol]") {
    const std::string stream = read_fixture("stream-supervisor-4.2.5.bin");
    std::vector<Event> whole = read_all(stream, stream.size());
    REQUIRE(whole.size() == 161);
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}}) {
        INFO("chunk size " << chunk);
        std::vector<Event> pieces = read_all(stream, chunk);
        REQUIRE(pieces.size() == whole.size());
        for (std::size_t i = 0; i < whole.size(); ++i) {
            CHECK(pieces[i].header.serial == whole[i].header.serial);
            CHECK(pieces[i].header.event_name == whole[i].header.event_name);
            CHECK(pieces[i].payload == whole[i].payload);
        }
    }
}

TEST_CASE("every single-event capture parses with its event name and payload", "[protocol]") {
    const std::map<std::string, std::string> files = {
        {"PROCESS_GROUP_ADDED.bin", "PROCESS_GROUP_ADDED"},
        {"PROCESS_LOG_STDERR.bin", "PROCESS_LOG_STDERR"},
        {"PROCESS_STATE_BACKOFF.bin", "PROCESS_STATE_BACKOFF"},
        {"PROCESS_STATE_EXITED.bin", "PROCESS_STATE_EXITED"},
        {"PROCESS_STATE_FATAL.bin", "PROCESS_STATE_FATAL"},
        {"PROCESS_STATE_RUNNING.bin", "PROCESS_STATE_RUNNING"},
        {"PROCESS_STATE_STARTING.bin", "PROCESS_STATE_STARTING"},
        {"PROCESS_STATE_STARTING_after_backoff.bin", "PROCESS_STATE_STARTING"},
        {"PROCESS_STATE_STOPPED.bin", "PROCESS_STATE_STOPPED"},
        {"PROCESS_STATE_STOPPING.bin", "PROCESS_STATE_STOPPING"},
        {"REMOTE_COMMUNICATION.bin", "REMOTE_COMMUNICATION"},
        {"SUPERVISOR_STATE_CHANGE_RUNNING.bin", "SUPERVISOR_STATE_CHANGE_RUNNING"},
        {"SUPERVISOR_STATE_CHANGE_STOPPING.bin", "SUPERVISOR_STATE_CHANGE_STOPPING"},
        {"TICK_5.bin", "TICK_5"},
    };
    for (const auto& [file, event_name] : files) {
        INFO(file);
        const std::string data = read_fixture(file);
        const std::string payload = data.substr(data.find('\n') + 1);
        for (std::size_t chunk : {std::size_t{1}, std::size_t{4096}}) {
            std::vector<Event> events = read_all(data, chunk);
            REQUIRE(events.size() == 1);
            CHECK(events[0].header.event_name == event_name);
            CHECK(events[0].payload == payload);
        }
    }
}

TEST_CASE("the header's serial, pool and server are parsed", "[protocol]") {
    std::vector<Event> events = read_all(read_fixture("PROCESS_STATE_EXITED.bin"), 4096);
    REQUIRE(events.size() == 1);
    const auto& h = events[0].header;
    CHECK(h.version == "3.0");
    CHECK(h.server == "supervisor");
    CHECK(h.serial == 20);
    CHECK(h.pool == "rawlog");
    CHECK(h.pool_serial == 20);
    CHECK(h.length == 76);
    CHECK(events[0].payload ==
          "processname:crasher groupname:crasher from_state:RUNNING expected:0 pid:7008");
}

TEST_CASE("len counts characters, not bytes", "[protocol]") {
    REQUIRE(k_worker_payload.size() == 76);
    REQUIRE(crashmail::utf8::count_code_points(k_worker_payload) == 74);
    const std::string second = "when:1795635930";
    const std::string data = header("PROCESS_STATE_EXITED", 74, 1) + k_worker_payload +
                             header("TICK_5", second.size(), 2) + second;
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
        INFO("chunk size " << chunk);
        std::vector<Event> events = read_all(data, chunk);
        REQUIRE(events.size() == 2);
        CHECK(events[0].payload == k_worker_payload);
        CHECK(events[1].header.event_name == "TICK_5");
        CHECK(events[1].payload == second);
    }
}

TEST_CASE("four-byte characters and an empty payload keep the stream in step", "[protocol]") {
    const std::string emoji = "data:\xf0\x9f\x92\xa5 boom \xe2\x82\xac"; // 💥 and €
    const std::string data = header("SUPERVISOR_STATE_CHANGE_RUNNING", 0, 1) +
                             header("REMOTE_COMMUNICATION", 13, 2) + emoji +
                             header("TICK_5", 4, 3) + "when";
    for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{4096}}) {
        std::vector<Event> events = read_all(data, chunk);
        REQUIRE(events.size() == 3);
        CHECK(events[0].payload.empty());
        CHECK(events[1].payload == emoji);
        CHECK(events[2].payload == "when");
    }
}

TEST_CASE("empty input is a clean end, and stays one", "[protocol]") {
    StringSource source("");
    Reader reader(source);
    auto first = reader.next();
    REQUIRE(first.has_value());
    CHECK_FALSE(first->has_value());
}

TEST_CASE("input ending inside a header line is a truncation", "[protocol]") {
    ReadError error = first_error("ver:3.0 server:supervisor serial:1 pool:p");
    CHECK(error.kind == ReadError::Kind::truncated);
    CHECK_THAT(error.message, Catch::Contains("header line") &&
                                  Catch::Contains("ver:3.0 server:supervisor serial:1"));
}

TEST_CASE("input ending inside a payload is a truncation that says how far it got", "[protocol]") {
    ReadError error = first_error(header("PROCESS_STATE_EXITED", 10, 5) + "abcde");
    CHECK(error.kind == ReadError::Kind::truncated);
    CHECK_THAT(error.message, Catch::Contains("5 of 10") && Catch::Contains("event 5") &&
                                  Catch::Contains("PROCESS_STATE_EXITED"));
}

TEST_CASE("len larger than the whole input is a truncation", "[protocol]") {
    const std::string data = read_fixture("TICK_5.bin");
    std::string bigger = data;
    bigger.replace(bigger.find("len:15"), 6, "len:5000");
    ReadError error = first_error(bigger, 7);
    CHECK(error.kind == ReadError::Kind::truncated);
    CHECK_THAT(error.message, Catch::Contains("15 of 5000"));
}

TEST_CASE("input ending inside a multi-byte character is a truncation", "[protocol]") {
    // Three characters announced; the third is the first byte of a two-byte "é".
    ReadError error = first_error(header("PROCESS_LOG_STDERR", 3) + "ab\xc3", 1);
    CHECK(error.kind == ReadError::Kind::truncated);
    CHECK_THAT(error.message, Catch::Contains("2 of 3"));
}

TEST_CASE("a line that is not an event header is rejected and shown escaped", "[protocol]") {
    ReadError error = first_error("hello world\t\x01\n");
    CHECK(error.kind == ReadError::Kind::bad_header);
    CHECK_THAT(error.message, Catch::Contains("hello world\\x09\\x01"));

    ReadError no_len = first_error("ver:3.0 server:s serial:1 pool:p eventname:TICK_5\n");
    CHECK(no_len.kind == ReadError::Kind::bad_header);
    CHECK_THAT(no_len.message, Catch::Contains("len is missing"));
}

TEST_CASE("a garbage line after a good event is reported, not skipped", "[protocol]") {
    ReadError error = first_error(read_fixture("TICK_5.bin") + "RESULT 2\nOK");
    CHECK(error.kind == ReadError::Kind::bad_header);
    CHECK_THAT(error.message, Catch::Contains("RESULT 2"));
}

TEST_CASE("a header line over the limit is too large, with or without its newline", "[protocol]") {
    const std::string huge(k_max_header_bytes + 10, 'a');
    ReadError unterminated = first_error(huge, 1 << 20);
    CHECK(unterminated.kind == ReadError::Kind::too_large);
    CHECK_THAT(unterminated.message, Catch::Contains("header line longer than"));
    // The message shows a bounded excerpt, not the whole line.
    CHECK(unterminated.message.size() < 400);

    // A well-formed header whose server name alone is over the limit, arriving in one read.
    const std::string long_server =
        "ver:3.0 server:" + huge + " serial:1 pool:p poolserial:1 eventname:TICK_5 len:0\n";
    ReadError terminated = first_error(long_server, 1 << 20);
    CHECK(terminated.kind == ReadError::Kind::too_large);
    CHECK_THAT(terminated.message, Catch::Contains("header line longer than"));
}

TEST_CASE("a len over the payload limit is too large and nothing is read", "[protocol]") {
    ReadError error = first_error(header("PROCESS_LOG_STDOUT", k_max_payload_chars + 1));
    CHECK(error.kind == ReadError::Kind::too_large);
    CHECK_THAT(error.message, Catch::Contains(std::to_string(k_max_payload_chars + 1)));

    ReadError overflow = first_error(
        "ver:3.0 server:s serial:1 pool:p eventname:TICK_5 len:99999999999999999999999\n");
    CHECK(overflow.kind == ReadError::Kind::bad_header);
    CHECK_THAT(overflow.message, Catch::Contains("len"));
}

TEST_CASE("a failing read is an io error that names the cause", "[protocol]") {
    FailingSource source(header("TICK_5", 15) + "when:");
    Reader reader(source);
    auto next = reader.next();
    REQUIRE_FALSE(next.has_value());
    CHECK(next.error().kind == ReadError::Kind::io);
    CHECK_THAT(next.error().message, Catch::Contains("Input/output error"));

    FailingSource in_header("ver:3.0");
    Reader header_reader(in_header);
    auto in_header_next = header_reader.next();
    REQUIRE_FALSE(in_header_next.has_value());
    CHECK(in_header_next.error().kind == ReadError::Kind::io);
}
