#include "alert/alert.hpp"
#include "event/event.hpp"
#include "event/process_state.hpp"
#include "util/time.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace std::chrono;
using crashmail::Alert;
using crashmail::AlertContext;
using crashmail::display_name;
using crashmail::EventHeader;
using crashmail::make_alert;
using crashmail::message_id;
using crashmail::new_alert_id;
using crashmail::ProcessStateChange;

namespace {

// 2026-11-25 22:03:10.123 UTC
const system_clock::time_point k_now =
    sys_days{year{2026} / November / 25} + hours{22} + minutes{3} + seconds{10} + milliseconds{123};

struct Parsed {
    EventHeader header;
    ProcessStateChange change;
};

Parsed from_fixture(const std::string& name) {
    std::ifstream file(std::string(CRASHMAIL_FIXTURES) + "/" + name, std::ios::binary);
    REQUIRE(file.good());
    std::string data{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    std::size_t newline = data.find('\n');
    auto header = crashmail::parse_event_header(std::string_view(data).substr(0, newline));
    REQUIRE(header.has_value());
    auto change = crashmail::parse_process_state(header->event_name, data.substr(newline + 1));
    REQUIRE(change.has_value());
    return {*header, *change};
}

Parsed exited(std::string process, std::string group, std::optional<std::int64_t> pid = 7008,
              std::optional<bool> expected = false) {
    Parsed p;
    p.header.event_name = "PROCESS_STATE_EXITED";
    p.header.serial = 42;
    p.change.state = "EXITED";
    p.change.process_name = std::move(process);
    p.change.group_name = std::move(group);
    p.change.from_state = "RUNNING";
    p.change.pid = pid;
    p.change.expected = expected;
    return p;
}

Alert alert_for(const Parsed& p, std::string prefix = "") {
    return make_alert(p.header, p.change, AlertContext{"host.example.com", std::move(prefix)},
                      k_now, "ID1");
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t newline = text.find('\n', start);
        out.push_back(text.substr(start, newline - start));
        if (newline == std::string::npos) {
            return out;
        }
        start = newline + 1;
    }
}

bool has_control(std::string_view text) {
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) {
            return true;
        }
    }
    return false;
}

} // namespace

TEST_CASE("display_name is the process alone, or group:process", "[alert]") {
    CHECK(display_name("crasher", "crasher") == "crasher");
    CHECK(display_name("grp", "worker_01") == "grp:worker_01");
}

TEST_CASE("an unexpected exit reads exactly like superlance's crashmail", "[alert]") {
    Alert alert = alert_for(from_fixture("PROCESS_STATE_EXITED.bin"));
    const std::string when = crashmail::timefmt::asctime_local_zone(k_now);
    CHECK(alert.subject == "crasher crashed at " + when);
    std::vector<std::string> body = lines(alert.body);
    REQUIRE(body.size() == 5);
    CHECK(body[0] ==
          "Process crasher in group crasher exited unexpectedly (pid 7008) from state RUNNING");
    CHECK(body[1].empty());
    CHECK(body[2] == "Host: host.example.com");
    CHECK(body[3] == "Time: " + crashmail::timefmt::rfc5322_local(k_now));
    CHECK(body[4] == "Event: PROCESS_STATE_EXITED (serial 20)");
}

TEST_CASE("the subject's time is superlance's with the zone's numeric offset", "[alert][time]") {
    ::setenv("TZ", "Asia/Kolkata", 1);
    ::tzset();
    Alert alert = alert_for(from_fixture("PROCESS_STATE_EXITED.bin"));
    ::unsetenv("TZ");
    ::tzset();
    // "YYYY-MM-DD HH:MM:SS,mmm" as superlance wrote it, then "+0530".
    CHECK_THAT(alert.subject, Catch::Matches("crasher crashed at \\d{4}-\\d\\d-\\d\\d "
                                             "\\d\\d:\\d\\d:\\d\\d,\\d{3} \\+0530"));
}

TEST_CASE("the -o prefix goes before the subject as 'PREFIX: '", "[alert]") {
    Alert alert = alert_for(from_fixture("PROCESS_STATE_EXITED.bin"), "prod-web");
    CHECK(alert.subject ==
          "prod-web: crasher crashed at " + crashmail::timefmt::asctime_local_zone(k_now));
}

TEST_CASE("a grouped process is named group:process in the subject", "[alert]") {
    Alert alert = alert_for(exited("worker_00", "grp"));
    CHECK_THAT(alert.subject, Catch::StartsWith("grp:worker_00 crashed at "));
    CHECK_THAT(alert.body, Catch::StartsWith("Process worker_00 in group grp exited unexpectedly "
                                             "(pid 7008) from state RUNNING\n"));
}

TEST_CASE("a missing pid is written as 'pid unknown'", "[alert]") {
    Alert alert = alert_for(exited("crasher", "crasher", std::nullopt));
    CHECK_THAT(alert.body, Catch::StartsWith("Process crasher in group crasher exited "
                                             "unexpectedly (pid unknown) from state RUNNING\n"));
    CHECK_FALSE(alert.pid.has_value());
}

TEST_CASE("an expected exit is not called a crash", "[alert]") {
    Alert alert = alert_for(exited("crasher", "crasher", 12, true));
    CHECK(alert.subject ==
          "crasher exited (expected) at " + crashmail::timefmt::asctime_local_zone(k_now));
    CHECK_THAT(alert.body, Catch::StartsWith("Process crasher in group crasher exited (expected) "
                                             "(pid 12) from state RUNNING\n"));
    CHECK(alert.expected == std::optional<bool>(true));
}

TEST_CASE("FATAL and BACKOFF say which state was entered", "[alert]") {
    Alert fatal = alert_for(from_fixture("PROCESS_STATE_FATAL.bin"));
    CHECK(fatal.subject == "nocmd is FATAL: supervisord gave up starting it at " +
                               crashmail::timefmt::asctime_local_zone(k_now));
    CHECK_THAT(fatal.body,
               Catch::StartsWith("Process nocmd in group nocmd entered state FATAL from state "
                                 "BACKOFF: it could not be started and will not be retried\n\n"
                                 "Host: host.example.com\n"));
    CHECK_THAT(fatal.body, Catch::EndsWith("Event: PROCESS_STATE_FATAL (serial 26)"));

    Alert backoff = alert_for(from_fixture("PROCESS_STATE_BACKOFF.bin"));
    CHECK_THAT(backoff.subject, Catch::StartsWith("nocmd failed to start (BACKOFF) at "));
    CHECK_THAT(backoff.body, Catch::StartsWith("Process nocmd in group nocmd entered state "
                                               "BACKOFF from state STARTING: it exited too "
                                               "quickly while starting; supervisord retries\n"));

    Alert stopped = alert_for(from_fixture("PROCESS_STATE_STOPPED.bin"));
    CHECK_THAT(stopped.subject, Catch::Contains(" was stopped at "));
    CHECK_THAT(stopped.body, Catch::Contains("entered state STOPPED"));
}

TEST_CASE("the alert carries the event's facts", "[alert]") {
    Alert alert = alert_for(from_fixture("PROCESS_STATE_EXITED.bin"));
    CHECK(alert.id == "ID1");
    CHECK(alert.event_name == "PROCESS_STATE_EXITED");
    CHECK(alert.state == "EXITED");
    CHECK(alert.process == "crasher");
    CHECK(alert.group == "crasher");
    CHECK(alert.from_state == "RUNNING");
    CHECK(alert.pid == std::optional<std::int64_t>(7008));
    CHECK(alert.expected == std::optional<bool>(false));
    CHECK(alert.serial == 20);
    CHECK(alert.host == "host.example.com");
    CHECK(alert.time == k_now);
}

TEST_CASE("CR, LF and other controls in names and prefix never reach the subject", "[alert]") {
    Parsed p = exited("evil\r\nBcc: victim@example.com", "g\x1b[31m\nX: y");
    Alert alert = alert_for(p, "ops\r\nX-Injected: 1\t");
    CHECK_FALSE(has_control(alert.subject));
    CHECK(alert.subject.find("evil  Bcc: victim@example.com") != std::string::npos);
    CHECK_THAT(alert.subject, Catch::StartsWith("ops  X-Injected: 1 : g"));
    // The body keeps its line structure: names cannot add lines to it.
    CHECK(lines(alert.body).size() == 5);
    // The raw names are kept in the alert for the channels that need them.
    CHECK(alert.process == "evil\r\nBcc: victim@example.com");
}

TEST_CASE("non-ASCII names are kept as UTF-8", "[alert]") {
    Alert alert = alert_for(exited("w\xc3\xb6rker", "w\xc3\xb6rker"));
    CHECK_THAT(alert.subject, Catch::StartsWith("w\xc3\xb6rker crashed at "));
}

TEST_CASE("alert ids hold the UTC time, the serial and 64 random bits", "[alert]") {
    std::string id = new_alert_id(k_now, 42);
    CHECK_THAT(id, Catch::StartsWith("20261125T220310.123.42."));
    std::string random = id.substr(std::string("20261125T220310.123.42.").size());
    CHECK(random.size() == 16);
    CHECK(random.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(new_alert_id(k_now, 42) != id);
}

TEST_CASE("alert ids are unique across threads and use only Message-ID characters", "[alert]") {
    std::mutex mutex;
    std::set<std::string> ids;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            std::vector<std::string> mine;
            for (int i = 0; i < 2000; ++i) {
                mine.push_back(new_alert_id(k_now, 7));
            }
            std::lock_guard lock(mutex);
            ids.insert(mine.begin(), mine.end());
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(ids.size() == 8000);
    for (const std::string& id : ids) {
        REQUIRE(id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789.") == std::string::npos);
    }
}

TEST_CASE("message_id is <id@host> and stays valid for odd hosts", "[alert]") {
    Alert alert;
    alert.id = new_alert_id(k_now, 3);
    alert.host = "web1.example.com";
    CHECK(message_id(alert) == "<" + alert.id + "@web1.example.com>");

    alert.host = "";
    CHECK(message_id(alert) == "<" + alert.id + "@localhost>");

    alert.id = "a>b\r\n<c";
    alert.host = "h\r\nBcc: x";
    CHECK(message_id(alert) == "<abc@hBccx>");
}
