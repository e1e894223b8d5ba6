#include "app/listener.hpp"
#include "holding_fakes.hpp"
#include "util/json_text.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sysexits.h>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

std::string fixture(const std::string& name) {
    std::ifstream in(std::string(CRASHMAIL_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE(in);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// Records what the listener hands off.
class RecordingSink final : public AlertSink {
public:
    void submit(const Alert& alert) override { alerts.push_back(alert); }
    std::vector<Alert> alerts;
};

// A sink on the protocol side that fails after `budget` writes.
class BrokenChannel final : public protocol::ByteSink {
public:
    explicit BrokenChannel(int budget) : m_budget(budget) {}
    bool write_all(std::string_view bytes) override {
        if (m_budget-- <= 0) {
            return false;
        }
        data += bytes;
        return true;
    }
    std::string data;

private:
    int m_budget;
};

ListenerSettings watch(bool any, std::vector<std::string> patterns = {}) {
    std::vector<ProgramPattern> parsed;
    for (const auto& text : patterns) {
        parsed.push_back(*ProgramPattern::parse(text));
    }
    ListenerSettings settings;
    settings.selection = Selection(any, std::move(parsed));
    // superlance's behaviour: every unexpected exit alerts (flood control has its own tests).
    settings.states = {"EXITED"};
    settings.loops.rate_limit = std::nullopt;
    settings.context = AlertContext{"host.example.com", ""};
    settings.now = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1)); };
    settings.alert_id = [](const Event& event, std::string_view) {
        return "id-" + std::to_string(event.header.serial);
    };
    return settings;
}

struct Run {
    int status;
    std::string answered;
    std::vector<Alert> alerts;
};

Run run(const std::string& input, ListenerSettings settings, std::size_t chunk = 4096) {
    protocol::StringSource source(input, chunk);
    protocol::StringSink out;
    protocol::Reader reader(source);
    protocol::Writer writer(out);
    RecordingSink sink;
    Listener listener(reader, writer, std::move(settings), sink);
    int status = listener.run();
    return {status, out.data(), sink.alerts};
}

std::string answers(int events) {
    std::string expected;
    for (int i = 0; i < events; ++i) {
        expected += "READY\nRESULT 2\nOK";
    }
    return expected + "READY\n";
}

std::string exited_event(std::uint64_t serial, std::string_view process, std::string_view group,
                         int expected = 0, std::string_view pool = "crashmail") {
    std::string payload = fmt::format("processname:{} groupname:{} from_state:RUNNING expected:{} "
                                      "pid:4242",
                                      process, group, expected);
    // Every test name here is ASCII except where a test says so; len counts characters.
    std::size_t chars = 0;
    for (unsigned char c : payload) {
        chars += (c & 0xC0) != 0x80;
    }
    return fmt::format("ver:3.0 server:supervisor serial:{} pool:{} poolserial:{} "
                       "eventname:PROCESS_STATE_EXITED len:{}\n{}",
                       serial, pool, serial, chars, payload);
}

} // namespace

TEST_CASE("a real supervisord session is answered OK for every event, in step", "[listener]") {
    auto result = run(fixture("stream-supervisor-4.2.5.bin"), watch(true));
    CHECK(result.status == EX_OK);
    CHECK(result.answered == answers(161));
    // The capture holds 29 unexpected exits of "crasher" and nothing else that alerts.
    REQUIRE(result.alerts.size() == 29);
    CHECK(result.alerts.front().process == "crasher");
    CHECK(result.alerts.front().pid == 7008);
    CHECK(result.alerts.back().pid == 7470);
}

TEST_CASE("by default a real crash loop alerts thrice and each FATAL once", "[listener]") {
    ListenerSettings settings = watch(true);
    settings.states = ListenerSettings{}.states;
    settings.loops = ListenerSettings{}.loops;
    auto result = run(fixture("stream-supervisor-4.2.5.bin"), std::move(settings));
    CHECK(result.answered == answers(161));
    std::map<std::string, int> by_state;
    for (const Alert& alert : result.alerts) {
        ++by_state[alert.process + " " + alert.state];
    }
    CHECK(by_state == std::map<std::string, int>{
                          {"crasher EXITED", 3}, {"fataler FATAL", 1}, {"nocmd FATAL", 1}});
    CHECK(result.alerts.front().occurrence == 1);
}

TEST_CASE("the answer stream stays in step when input arrives a byte at a time", "[listener]") {
    auto result = run(fixture("stream-supervisor-4.2.5.bin"), watch(true), 1);
    CHECK(result.status == EX_OK);
    CHECK(result.answered == answers(161));
    CHECK(result.alerts.size() == 29);
}

TEST_CASE("program patterns filter: only selected processes alert", "[listener]") {
    std::string input = exited_event(1, "crashy", "crashy") + exited_event(2, "other", "other") +
                        exited_event(3, "worker_00", "grp") + exited_event(4, "worker_01", "grp");
    SECTION("by process name") {
        auto result = run(input, watch(false, {"crashy", "grp:worker_01"}));
        REQUIRE(result.alerts.size() == 2);
        CHECK(result.alerts[0].process == "crashy");
        CHECK(result.alerts[1].process == "worker_01");
        CHECK(result.answered == answers(4));
    }
    SECTION("by group") {
        auto result = run(input, watch(false, {"grp:*"}));
        REQUIRE(result.alerts.size() == 2);
        CHECK(result.alerts[0].group == "grp");
        CHECK(result.alerts[1].group == "grp");
    }
    SECTION("-a overrides -p") {
        auto result = run(input, watch(true, {"crashy"}));
        CHECK(result.alerts.size() == 4);
    }
}

TEST_CASE("expected exits do not alert", "[listener]") {
    auto result = run(exited_event(1, "clean", "clean", 1), watch(true));
    CHECK(result.alerts.empty());
    CHECK(result.answered == answers(1));
}

TEST_CASE("events about crashmail's own process are ignored", "[listener]") {
    auto settings = watch(true);
    settings.self_process = "crashmail";
    settings.self_group = "crashmail";
    auto result = run(exited_event(1, "crashmail", "crashmail") + exited_event(2, "x", "x"),
                      std::move(settings));
    REQUIRE(result.alerts.size() == 1);
    CHECK(result.alerts[0].process == "x");
}

TEST_CASE("an event redelivered with the same serial is answered but alerts once", "[listener]") {
    std::string event = exited_event(7, "crashy", "crashy");
    auto result =
        run(event + exited_event(7, "crashy", "crashy", 0, "otherpool") + event, watch(true));
    CHECK(result.answered == answers(3));
    CHECK(result.alerts.size() == 1);
}

TEST_CASE("event types crashmail does not handle are answered and ignored", "[listener]") {
    std::string input = fixture("TICK_5.bin") + fixture("PROCESS_LOG_STDERR.bin") +
                        fixture("PROCESS_STATE_RUNNING.bin") + fixture("REMOTE_COMMUNICATION.bin");
    auto result = run(input, watch(true));
    CHECK(result.status == EX_OK);
    CHECK(result.answered == answers(4));
    CHECK(result.alerts.empty());
}

TEST_CASE("the alert carries the event's facts and the injected id and time", "[listener]") {
    auto result = run(fixture("PROCESS_STATE_EXITED.bin"), watch(true));
    REQUIRE(result.alerts.size() == 1);
    const Alert& alert = result.alerts[0];
    CHECK(alert.id == "id-20");
    CHECK(alert.serial == 20);
    CHECK(alert.process == "crasher");
    CHECK(alert.group == "crasher");
    CHECK(alert.from_state == "RUNNING");
    CHECK(alert.pid == 7008);
    CHECK(alert.host == "host.example.com");
    CHECK(alert.time == std::chrono::system_clock::time_point(std::chrono::seconds(1)));
}

TEST_CASE("a non-ASCII process name is counted in characters and kept intact", "[listener]") {
    auto result = run(exited_event(3, "wörker", "wörker") + exited_event(4, "b", "b"), watch(true));
    CHECK(result.status == EX_OK);
    CHECK(result.answered == answers(2));
    REQUIRE(result.alerts.size() == 2);
    CHECK(result.alerts[0].process == "wörker");
}

TEST_CASE("an unparsable header ends the loop with EX_PROTOCOL and no answer", "[listener]") {
    auto result = run("this is not a header\n", watch(true));
    CHECK(result.status == EX_PROTOCOL);
    CHECK(result.answered == "READY\n");
}

TEST_CASE("input ending inside a payload ends the loop with EX_PROTOCOL", "[listener]") {
    std::string event = exited_event(1, "crashy", "crashy");
    auto result = run(event.substr(0, event.size() - 5), watch(true));
    CHECK(result.status == EX_PROTOCOL);
    CHECK(result.answered == "READY\n");
    CHECK(result.alerts.empty());
}

TEST_CASE("end of input between events is a clean stop", "[listener]") {
    auto result = run("", watch(true));
    CHECK(result.status == EX_OK);
    CHECK(result.answered == "READY\n");
}

TEST_CASE("a closed protocol channel ends the loop with EX_IOERR", "[listener]") {
    protocol::StringSource source(exited_event(1, "a", "a") + exited_event(2, "b", "b"));
    BrokenChannel out(2); // READY and the first RESULT go through, then the peer is gone
    protocol::Reader reader(source);
    protocol::Writer writer(out);
    RecordingSink sink;
    Listener listener(reader, writer, watch(true), sink);
    CHECK(listener.run() == EX_IOERR);
    CHECK(out.data == "READY\nRESULT 2\nOKREADY\n"); // the answer and READY: one write
}

TEST_CASE("alert_worthy follows --state, --expected and -x", "[listener]") {
    auto settings = watch(true);
    Event fatal{{"3.0", "s", 1, "p", 1, "PROCESS_STATE_FATAL", 0},
                "processname:x groupname:x from_state:BACKOFF"};
    CHECK_FALSE(alert_worthy(fatal, settings));     // states: EXITED only
    CHECK(alert_worthy(fatal, ListenerSettings{})); // default: EXITED and FATAL
    Event expected_exit{{"3.0", "s", 4, "p", 4, "PROCESS_STATE_EXITED", 0},
                        "processname:x groupname:x from_state:RUNNING expected:1 pid:1"};
    CHECK_FALSE(alert_worthy(expected_exit, settings));
    settings.expected = true;
    CHECK(alert_worthy(expected_exit, settings));
    settings.excludes.push_back(*ProgramPattern::parse("x"));
    CHECK_FALSE(alert_worthy(expected_exit, settings));
    CHECK(classify(expected_exit, settings).kind == Verdict::Kind::ignore);
    settings = watch(true);
    Event running{{"3.0", "s", 5, "p", 5, "PROCESS_STATE_RUNNING", 0},
                  "processname:x groupname:x from_state:STARTING pid:1"};
    CHECK(classify(running, settings).kind == Verdict::Kind::watch);
    Event tick{{"3.0", "s", 6, "p", 6, "TICK_5", 0}, "when:1"};
    CHECK(classify(tick, settings).kind == Verdict::Kind::ignore);
    settings.states = {"EXITED", "BACKOFF", "STOPPED", "UNKNOWN", "FATAL"};
    for (const char* state : {"BACKOFF", "STOPPED", "UNKNOWN"}) {
        Event event{{"3.0", "s", 7, "p", 7, std::string("PROCESS_STATE_") + state, 0},
                    "processname:x groupname:x from_state:STARTING"};
        CHECK(alert_worthy(event, settings));
    }
    Event no_expected{{"3.0", "s", 2, "p", 2, "PROCESS_STATE_EXITED", 0},
                      "processname:x groupname:x from_state:RUNNING pid:1"};
    CHECK_FALSE(alert_worthy(no_expected, settings));
    Event crash{{"3.0", "s", 3, "p", 3, "PROCESS_STATE_EXITED", 0},
                "processname:tx y:z groupname:g from_state:RUNNING expected:0 pid:1"};
    auto change = alert_worthy(crash, settings);
    REQUIRE(change);
    CHECK(change->process_name == "tx y:z");
}

TEST_CASE("an event's alert id is the same when supervisord redelivers it", "[listener]") {
    Event event{{"3.0", "supervisor", 20, "crashmail", 20, "PROCESS_STATE_EXITED", 0},
                "processname:crasher groupname:crasher from_state:RUNNING expected:0 pid:7008"};
    Event again = event;
    again.header.pool = "otherpool";
    again.header.pool_serial = 3;
    CHECK(event_alert_id(event, "boot:1:100") == event_alert_id(again, "boot:1:100"));
    CHECK_THAT(event_alert_id(event, "boot:1:100"), Catch::Matches("s20\\.[0-9a-f]{16}"));
    Event other = event;
    other.payload = "processname:crasher groupname:crasher from_state:RUNNING expected:0 pid:7009";
    CHECK(event_alert_id(other, "boot:1:100") != event_alert_id(event, "boot:1:100"));
    // The same first event of another supervisord run is another alert.
    CHECK(event_alert_id(event, "boot:1:100") != event_alert_id(event, "boot:1:250"));
}

// A sink that records the protocol bytes already answered when each alert arrives.
class OrderSink final : public AlertSink {
public:
    explicit OrderSink(const protocol::StringSink& out) : m_out(out) {}
    void submit(const Alert&) override { answered_at_submit.push_back(m_out.data()); }
    std::vector<std::string> answered_at_submit;

private:
    const protocol::StringSink& m_out;
};

TEST_CASE("an alert is handed to the outbox before its event is answered", "[listener]") {
    protocol::StringSource source(exited_event(1, "a", "a"));
    protocol::StringSink out;
    protocol::Reader reader(source);
    protocol::Writer writer(out);
    OrderSink sink(out);
    Listener listener(reader, writer, watch(true), sink);
    CHECK(listener.run() == EX_OK);
    REQUIRE(sink.answered_at_submit.size() == 1);
    CHECK(sink.answered_at_submit[0] == "READY\n");
    CHECK(out.data() == answers(1));
}

TEST_CASE("supervisord is answered while the clock thread's save of the stories is held",
          "[listener]") {
    // A story kept from an earlier run whose window has ended: the clock sends its summary
    // at once and saves the stories to disk, and that save is held.
    const auto t0 = std::chrono::system_clock::time_point(std::chrono::hours(24 * 20000));
    CrashLoopSettings loops;
    loops.rate_limit = RateLimit{1, 60s};
    CrashLoops earlier(loops);
    StoryEvent crash;
    crash.group = crash.process = "crashy";
    crash.state = "EXITED";
    crash.from_state = "RUNNING";
    crash.event_name = "PROCESS_STATE_EXITED";
    for (std::uint64_t serial = 1; serial <= 2; ++serial) {
        crash.serial = serial;
        crash.id = "earlier-" + std::to_string(serial);
        earlier.on_alert_event(crash, t0);
    }
    testing::HoldingState state(
        [](Durability durability, const std::string&) { return durability == Durability::disk; });
    REQUIRE(state.save_state("crash-loops", json_text(earlier.to_json()), Durability::process));

    ListenerSettings settings = watch(true);
    settings.loops = loops;
    settings.state_store = &state;
    settings.now = [t0] { return t0 + 61s; };
    std::string input = exited_event(10, "a", "a");
    protocol::StringSource source(input);
    protocol::StringSink out;
    protocol::Reader reader(source);
    protocol::Writer writer(out);
    testing::HoldingSink sink; // the clock thread submits too
    Listener listener(reader, writer, std::move(settings), sink);
    REQUIRE(listener.monitor().restore() == 1);
    testing::ReleaseAtExit release{state.gate}; // before the listener joins its clock
    state.gate.arm();
    listener.monitor().start_clock();
    REQUIRE(state.gate.wait_until_holding(10s));

    auto served = std::async(std::launch::async, [&listener] { return listener.run(); });
    // A guard against a hang, not a time limit: it fails only if the answer waits for the
    // held save.
    bool answered = served.wait_for(10s) == std::future_status::ready;
    state.gate.release();
    CHECK(answered);
    CHECK(served.get() == EX_OK);
    CHECK(out.data() == answers(1));
    listener.monitor().stop_clock();
    auto alerts = sink.alerts();
    REQUIRE(alerts.size() == 2);
    CHECK(std::count_if(alerts.begin(), alerts.end(), [](const Alert& alert) {
              return alert.kind == AlertKind::summary && alert.process == "crashy";
          }) == 1);
    CHECK(std::count_if(alerts.begin(), alerts.end(), [](const Alert& alert) {
              return alert.kind == AlertKind::alert && alert.process == "a";
          }) == 1);
    auto landed = state.landed();
    // The newest stories: a's too.
    CHECK(landed.back().content.find(R"("key":"a\na")") != std::string::npos);
}
