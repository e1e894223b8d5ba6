#include "event/event.hpp"
#include "event/fields.hpp"
#include "event/process_state.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>

using crashmail::find_field;
using crashmail::parse_event_header;
using crashmail::parse_process_state;
using crashmail::process_state_of;
using crashmail::split_fields;

namespace {

constexpr std::array<std::string_view, 6> k_keys{"processname", "groupname", "from_state",
                                                 "expected",    "pid",       "tries"};

std::string field(const crashmail::Fields& fields, std::string_view key) {
    const std::string* value = find_field(fields, key);
    REQUIRE(value != nullptr);
    return *value;
}

// The header line and the payload of a single-event capture.
std::pair<std::string, std::string> fixture(const std::string& name) {
    std::ifstream file(std::string(CRASHMAIL_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE(file.good());
    std::string data{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    std::size_t newline = data.find('\n');
    REQUIRE(newline != std::string::npos);
    return {data.substr(0, newline), data.substr(newline + 1)};
}

const std::string k_good_header =
    "ver:3.0 server:supervisor serial:20 pool:rawlog poolserial:19 eventname:PROCESS_STATE_EXITED "
    "len:76";

std::string without(std::string line, std::string_view token) {
    std::size_t at = line.find(token);
    REQUIRE(at != std::string::npos);
    line.erase(at, token.size());
    return line;
}

} // namespace

TEST_CASE("fields split on spaces into key:value pairs", "[event]") {
    auto fields = split_fields("processname:crasher groupname:grp from_state:RUNNING", k_keys);
    REQUIRE(fields.size() == 3);
    CHECK(fields[0] == std::pair<std::string, std::string>("processname", "crasher"));
    CHECK(fields[1] == std::pair<std::string, std::string>("groupname", "grp"));
    CHECK(fields[2] == std::pair<std::string, std::string>("from_state", "RUNNING"));
    CHECK(find_field(fields, "pid") == nullptr);
}

TEST_CASE("a process name with a space and a colon stays one value", "[event]") {
    // Observed from supervisord 4.2.5 for process_name=tx y:z via %(ENV_X)s.
    auto fields =
        split_fields("processname:tx y:z groupname:tabbed from_state:STOPPED tries:0", k_keys);
    REQUIRE(fields.size() == 4);
    CHECK(field(fields, "processname") == "tx y:z");
    CHECK(field(fields, "groupname") == "tabbed");
    CHECK(field(fields, "from_state") == "STOPPED");
    CHECK(field(fields, "tries") == "0");
}

TEST_CASE("tabs, non-ASCII and values containing colons are kept as they are", "[event]") {
    auto fields = split_fields("processname:tab\tbed groupname:w\xc3\xb6rker pid:12", k_keys);
    CHECK(field(fields, "processname") == "tab\tbed");
    CHECK(field(fields, "groupname") == "w\xc3\xb6rker");
    CHECK(field(fields, "pid") == "12");

    auto colons = split_fields("processname:a:b:c groupname:g", k_keys);
    CHECK(field(colons, "processname") == "a:b:c");
}

TEST_CASE("text before the first known key is kept under the empty key", "[event]") {
    auto fields = split_fields("junk more:x processname:p", k_keys);
    REQUIRE(fields.size() == 2);
    CHECK(fields[0].first.empty());
    CHECK(fields[0].second == "junk more:x");
    CHECK(field(fields, "processname") == "p");
}

TEST_CASE("a full event header parses into its fields", "[event]") {
    auto header = parse_event_header(k_good_header);
    REQUIRE(header.has_value());
    CHECK(header->version == "3.0");
    CHECK(header->server == "supervisor");
    CHECK(header->serial == 20);
    CHECK(header->pool == "rawlog");
    CHECK(header->pool_serial == 19);
    CHECK(header->event_name == "PROCESS_STATE_EXITED");
    CHECK(header->length == 76);
}

TEST_CASE("a free-text server identifier with spaces and colons is kept whole", "[event]") {
    auto header = parse_event_header("ver:3.0 server:my host:9001 prod serial:3 pool:p "
                                     "poolserial:3 eventname:TICK_5 len:15");
    REQUIRE(header.has_value());
    CHECK(header->server == "my host:9001 prod");
    CHECK(header->serial == 3);
    CHECK(header->length == 15);
}

TEST_CASE("a header without serial, eventname or len is rejected naming the field", "[event]") {
    auto no_len = parse_event_header(without(k_good_header, " len:76"));
    REQUIRE_FALSE(no_len.has_value());
    CHECK_THAT(no_len.error(), Catch::Contains("len is missing"));

    auto no_serial = parse_event_header(without(k_good_header, " serial:20"));
    REQUIRE_FALSE(no_serial.has_value());
    CHECK_THAT(no_serial.error(), Catch::Contains("serial is missing"));

    auto no_name = parse_event_header(without(k_good_header, " eventname:PROCESS_STATE_EXITED"));
    REQUIRE_FALSE(no_name.has_value());
    CHECK_THAT(no_name.error(), Catch::Contains("eventname is missing"));

    auto empty_name = parse_event_header("serial:1 eventname: len:0");
    REQUIRE_FALSE(empty_name.has_value());
    CHECK_THAT(empty_name.error(), Catch::Contains("eventname"));

    CHECK_FALSE(parse_event_header("").has_value());
}

TEST_CASE("len must be a non-negative decimal number", "[event]") {
    for (const char* bad : {"abc", "-1", "+5", "", "12x", "0x10", "1.5"}) {
        INFO("len:" << bad);
        auto header =
            parse_event_header("ver:3.0 serial:1 eventname:TICK_5 len:" + std::string(bad));
        REQUIRE_FALSE(header.has_value());
        CHECK_THAT(header.error(), Catch::Contains("len is not a non-negative number"));
    }
    auto bad_serial = parse_event_header("ver:3.0 serial:-3 eventname:TICK_5 len:0");
    REQUIRE_FALSE(bad_serial.has_value());
    CHECK_THAT(bad_serial.error(), Catch::Contains("serial"));
}

TEST_CASE("text before the first header field is rejected", "[event]") {
    auto header = parse_event_header("READY " + k_good_header);
    REQUIRE_FALSE(header.has_value());
    CHECK_THAT(header.error(), Catch::Contains("READY"));
}

TEST_CASE("unknown header tokens are ignored, not glued into numbers or names", "[event]") {
    // A future supervisord might add fields; the ones we know must still parse.
    auto header = parse_event_header("ver:3.0 server:supervisor serial:20 pool:rawlog "
                                     "poolserial:19 eventname:TICK_5 flavour:x len:15 extra:1");
    REQUIRE(header.has_value());
    CHECK(header->event_name == "TICK_5");
    CHECK(header->length == 15);
    CHECK(header->pool == "rawlog");
}

TEST_CASE("process_state_of extracts the state from the event name", "[event]") {
    CHECK(process_state_of("PROCESS_STATE_EXITED") == std::optional<std::string_view>("EXITED"));
    CHECK(process_state_of("PROCESS_STATE_FATAL") == std::optional<std::string_view>("FATAL"));
    CHECK_FALSE(process_state_of("PROCESS_STATE_").has_value());
    CHECK_FALSE(process_state_of("TICK_5").has_value());
    CHECK_FALSE(process_state_of("PROCESS_LOG_STDERR").has_value());
}

TEST_CASE("an EXITED capture gives process, group, from_state, expected and pid", "[event]") {
    auto [line, payload] = fixture("PROCESS_STATE_EXITED.bin");
    auto header = parse_event_header(line);
    REQUIRE(header.has_value());
    auto change = parse_process_state(header->event_name, payload);
    REQUIRE(change.has_value());
    CHECK(change->state == "EXITED");
    CHECK(change->process_name == "crasher");
    CHECK(change->group_name == "crasher");
    CHECK(change->from_state == "RUNNING");
    CHECK(change->expected == std::optional<bool>(false));
    CHECK(change->pid == std::optional<std::int64_t>(7008));
    CHECK_FALSE(change->tries.has_value());
}

TEST_CASE("a FATAL capture has no pid and no expected flag", "[event]") {
    auto [line, payload] = fixture("PROCESS_STATE_FATAL.bin");
    auto change = parse_process_state(parse_event_header(line)->event_name, payload);
    REQUIRE(change.has_value());
    CHECK(change->state == "FATAL");
    CHECK(change->process_name == "nocmd");
    CHECK(change->from_state == "BACKOFF");
    CHECK_FALSE(change->pid.has_value());
    CHECK_FALSE(change->expected.has_value());
}

TEST_CASE("BACKOFF and RUNNING captures carry tries and pid", "[event]") {
    auto [backoff_line, backoff_payload] = fixture("PROCESS_STATE_BACKOFF.bin");
    auto backoff =
        parse_process_state(parse_event_header(backoff_line)->event_name, backoff_payload);
    REQUIRE(backoff.has_value());
    CHECK(backoff->state == "BACKOFF");
    CHECK(backoff->from_state == "STARTING");
    CHECK(backoff->tries == std::optional<int>(1));
    CHECK_FALSE(backoff->pid.has_value());

    auto [running_line, running_payload] = fixture("PROCESS_STATE_RUNNING.bin");
    auto running =
        parse_process_state(parse_event_header(running_line)->event_name, running_payload);
    REQUIRE(running.has_value());
    CHECK(running->state == "RUNNING");
    CHECK(running->from_state == "STARTING");
    CHECK(running->pid == std::optional<std::int64_t>(7008));
    CHECK_FALSE(running->expected.has_value());
}

TEST_CASE("an expected exit and a strange process name parse", "[event]") {
    auto change = parse_process_state(
        "PROCESS_STATE_EXITED",
        "processname:tx y:z groupname:tabbed from_state:RUNNING expected:1 pid:99");
    REQUIRE(change.has_value());
    CHECK(change->process_name == "tx y:z");
    CHECK(change->group_name == "tabbed");
    CHECK(change->expected == std::optional<bool>(true));
    CHECK(change->pid == std::optional<std::int64_t>(99));

    auto starting = parse_process_state(
        "PROCESS_STATE_STARTING", "processname:tx y:z groupname:tabbed from_state:STOPPED tries:0");
    REQUIRE(starting.has_value());
    CHECK(starting->tries == std::optional<int>(0));
}

TEST_CASE("unknown payload tokens do not spoil pid or from_state", "[event]") {
    auto change = parse_process_state(
        "PROCESS_STATE_EXITED",
        "processname:p groupname:g from_state:RUNNING newkey:a expected:0 pid:7 extra:x");
    REQUIRE(change.has_value());
    CHECK(change->from_state == "RUNNING");
    CHECK(change->pid == std::optional<std::int64_t>(7));
    CHECK(change->expected == std::optional<bool>(false));
}

TEST_CASE("a malformed number in a payload is absent, not zero", "[event]") {
    auto change = parse_process_state("PROCESS_STATE_EXITED",
                                      "processname:p groupname:g from_state:RUNNING pid:12ab");
    REQUIRE(change.has_value());
    CHECK_FALSE(change->pid.has_value());
}

TEST_CASE("a process state payload needs processname and groupname", "[event]") {
    auto no_group = parse_process_state("PROCESS_STATE_EXITED", "processname:p from_state:X");
    REQUIRE_FALSE(no_group.has_value());
    CHECK_THAT(no_group.error(), Catch::Contains("groupname"));

    auto not_state = parse_process_state("TICK_5", "when:1795635930");
    REQUIRE_FALSE(not_state.has_value());
    CHECK_THAT(not_state.error(), Catch::Contains("TICK_5"));
}
