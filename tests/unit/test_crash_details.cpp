#include "fake_rpc.hpp"
#include "silent_server.hpp"
#include "supervisor/crash_details.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <deque>
#include <map>
#include <thread>

using namespace crashmail;
using crashmail::testing::FakeRpc;
using namespace std::chrono_literals;

namespace {

Alert exited(std::string group, std::string process, std::int64_t pid) {
    Alert alert;
    alert.id = "s1.00";
    alert.state = "EXITED";
    alert.event_name = "PROCESS_STATE_EXITED";
    alert.group = std::move(group);
    alert.process = std::move(process);
    alert.pid = pid;
    return alert;
}

CrashDetailsSettings settings_for(FakeRpc& rpc, int tail) {
    CrashDetailsSettings settings;
    settings.tail_lines = tail;
    settings.clock = [&rpc] { return rpc.now; };
    return settings;
}

const std::string k_main_log = "2026-11-25 22:54:06,678 INFO spawned: 'worker_01' with pid 77\n"
                               "2026-11-25 22:54:07,011 WARN exited: worker_01 (exit status 3; "
                               "not expected)\n";

} // namespace

TEST_CASE("the last N lines of stderr and the exit status are fetched for group:process",
          "[crash_details]") {
    FakeRpc rpc;
    rpc.stderr_log = "starting\nconnecting\nfatal: db unreachable\nbye ünïcode\n";
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 2));
    CHECK(alert.log_tail == "fatal: db unreachable\nbye ünïcode");
    CHECK(alert.log_source == "stderr");
    CHECK(alert.exit_status == "exit status 3");
    CHECK(alert.details_note.empty());
    REQUIRE(rpc.calls.size() == 2);
    CHECK(rpc.calls[0].method == "stderr");
    CHECK(rpc.calls[0].name == "grp:worker_01");
    CHECK(rpc.calls[0].length == tail_window_bytes(2));
    CHECK(rpc.calls[1].method == "readLog");
    CHECK(rpc.calls[1].length == 64 * 1024);
}

TEST_CASE("an empty stderr log (redirect_stderr) falls back to stdout", "[crash_details]") {
    FakeRpc rpc;
    rpc.stdout_log = "to-stderr\nto-stdout\n";
    rpc.main_log = k_main_log;
    Alert alert = exited("redir", "redir", 5);
    fetch_crash_details(alert, rpc, settings_for(rpc, 20));
    CHECK(alert.log_tail == "to-stderr\nto-stdout");
    CHECK(alert.log_source == "stdout");
    CHECK(rpc.calls[0].method == "stderr");
    CHECK(rpc.calls[1].method == "stdout");
    CHECK(rpc.calls[1].name == "redir:redir");
    // worker_01's line is not about "redir": the exit status stays unknown, and says so.
    CHECK(alert.exit_status.empty());
    CHECK(alert.details_note ==
          "exit status unknown: no 'exited:' line for it in supervisord's log");
}

TEST_CASE("both logs empty: the note says the process wrote nothing", "[crash_details]") {
    FakeRpc rpc;
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 5));
    CHECK(alert.log_tail.empty());
    CHECK(alert.exit_status == "exit status 3");
    CHECK(alert.details_note == "log tail: the process wrote nothing to its stderr or stdout log");
}

TEST_CASE("with --tail 0 only the exit status is asked for", "[crash_details]") {
    FakeRpc rpc;
    rpc.stderr_log = "x\n";
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 0));
    REQUIRE(rpc.calls.size() == 1);
    CHECK(rpc.calls[0].method == "readLog");
    CHECK(alert.log_tail.empty());
    CHECK(alert.exit_status == "exit status 3");
}

TEST_CASE("a window that starts inside a character is retried 1 to 3 bytes shorter",
          "[crash_details]") {
    FakeRpc rpc;
    // A window of 4096 bytes starts on the 2nd byte of the 4-byte character: 500, 500, 500,
    // then 4093 bytes start on a character boundary.
    // 4097 bytes: U+1F600 (4 bytes), then a line of 99 'a', then 3993 'a'.
    rpc.stderr_log = "\xF0\x9F\x98\x80" + std::string(99, 'a') + "\n" + std::string(3993, 'a');
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 1));
    REQUIRE(rpc.calls.size() == 5);
    CHECK(rpc.calls[0].length == 4096);
    CHECK(rpc.calls[1].length == 4095);
    CHECK(rpc.calls[2].length == 4094);
    CHECK(rpc.calls[3].length == 4093);
    CHECK(alert.log_tail.size() == 4093 - 100);
    CHECK(alert.details_note.empty());
}

TEST_CASE("HTTP 500 four times gives up with the server's words", "[crash_details]") {
    FakeRpc rpc;
    rpc.failures["stderr"] = {FakeRpc::http(500), FakeRpc::http(500), FakeRpc::http(500),
                              FakeRpc::http(500)};
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 3));
    CHECK(rpc.calls.size() == 5); // 4 tails, then readLog still asked
    CHECK(alert.exit_status == "exit status 3");
    CHECK(alert.details_note ==
          "log tail unavailable: supervisord (unix:///run/sup.sock): HTTP 500");
}

TEST_CASE("an authentication failure is noted once and nothing more is asked", "[crash_details]") {
    FakeRpc rpc;
    rpc.failures["stderr"] = {FakeRpc::http(401)};
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 20));
    CHECK(rpc.calls.size() == 1);
    CHECK(alert.details_note ==
          "details unavailable: supervisord (unix:///run/sup.sock): HTTP 401 Unauthorized");
    CHECK(alert.log_tail.empty());
    CHECK(alert.exit_status.empty());
}

TEST_CASE("a fault on one part does not hide the other", "[crash_details]") {
    FakeRpc rpc;
    RpcError bad_name;
    bad_name.kind = RpcError::Kind::fault;
    bad_name.fault_code = 10;
    bad_name.message = "fault 10 (BAD_NAME: grp:gone)";
    rpc.failures["stderr"] = {bad_name};
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    fetch_crash_details(alert, rpc, settings_for(rpc, 20));
    CHECK(alert.exit_status == "exit status 3");
    CHECK(alert.details_note == "log tail unavailable: supervisord (unix:///run/sup.sock): fault "
                                "10 (BAD_NAME: grp:gone)");
}

TEST_CASE("a hung supervisord costs at most the budget, and the note says so", "[crash_details]") {
    FakeRpc rpc;
    rpc.hung = true;
    Alert alert = exited("grp", "worker_01", 77);
    auto settings = settings_for(rpc, 20);
    settings.budget = 3000ms;
    auto started = rpc.now;
    fetch_crash_details(alert, rpc, settings);
    CHECK(rpc.now - started <= 3000ms);
    REQUIRE(rpc.calls.size() == 1); // after a time-out nothing more is asked
    CHECK(rpc.calls[0].timeout == 3000ms);
    CHECK(alert.details_note ==
          "details unavailable: supervisord (unix:///run/sup.sock): no answer within 3 s");
}

TEST_CASE("later calls get only what is left of the budget", "[crash_details]") {
    FakeRpc rpc;
    rpc.stderr_log = "a\n";
    rpc.main_log = k_main_log;
    Alert alert = exited("grp", "worker_01", 77);
    auto settings = settings_for(rpc, 20);
    settings.budget = 3000ms;
    // The clock moves 1 s per call.
    settings.clock = [&rpc] { return rpc.now + std::chrono::seconds(rpc.calls.size()); };
    fetch_crash_details(alert, rpc, settings);
    REQUIRE(rpc.calls.size() == 2);
    CHECK(rpc.calls[0].timeout == 3000ms);
    CHECK(rpc.calls[1].timeout == 2000ms);
}

TEST_CASE("FATAL gets supervisord's spawn error", "[crash_details]") {
    FakeRpc rpc;
    rpc.spawnerr = "can't find command '/nonexistent/binary'";
    Alert alert = exited("nocmd", "nocmd", 0);
    alert.state = "FATAL";
    alert.pid.reset();
    fetch_crash_details(alert, rpc, settings_for(rpc, 0));
    REQUIRE(rpc.calls.size() == 1);
    CHECK(rpc.calls[0].method == "getProcessInfo");
    CHECK(rpc.calls[0].name == "nocmd:nocmd");
    CHECK(alert.spawn_error == "can't find command '/nonexistent/binary'");
    CHECK(alert.exit_status.empty());
    CHECK(alert.details_note.empty());
}

TEST_CASE("last_lines keeps whole lines and makes them printable", "[crash_details]") {
    CHECK(last_lines("a\nb\nc\n", 2, false) == "b\nc");
    CHECK(last_lines("a\nb\nc", 10, false) == "a\nb\nc");
    CHECK(last_lines("cut line\nb\nc\n\n", 10, true) == "b\nc"); // first line is partial
    CHECK(last_lines("only a partial line", 10, true) == "only a partial line");
    CHECK(last_lines("\n\n\n", 5, false).empty());
    CHECK(last_lines("", 5, false).empty());
    CHECK(last_lines("x\r\ny\r\n", 5, false) == "x\ny");
    CHECK(last_lines("\x1b[31mERROR\x1b[0m done\tok\x07", 1, false) ==
          "ERROR done\tok\xEF\xBF\xBD");
    CHECK(last_lines("a\nb", 0, false).empty());
    std::string long_line(5000, 'x');
    std::string cut = last_lines(long_line, 1, false);
    CHECK(cut.size() == 4000 + std::string("…").size());
}

TEST_CASE("the log window grows with the lines asked for, within limits", "[crash_details]") {
    CHECK(tail_window_bytes(1) == 4096);
    CHECK(tail_window_bytes(20) == 10240);
    CHECK(tail_window_bytes(1000) == 256 * 1024);
}

TEST_CASE("the enricher fetches, then renders with the templates, and skip only renders",
          "[crash_details]") {
    auto rpc = std::make_unique<FakeRpc>();
    FakeRpc* fake = rpc.get();
    fake->stderr_log = "fatal: db unreachable\n";
    fake->main_log = k_main_log;
    auto settings = settings_for(*fake, 20);
    CrashDetailsEnricher enricher(std::move(rpc), settings,
                                  *parse_templates("{name}: {exit_status}", "", ""), "cm:cm");
    enricher.start();
    REQUIRE(fake->calls.size() == 1);
    CHECK(fake->calls[0].method == "getProcessInfo");
    CHECK(fake->calls[0].name == "cm:cm");

    Alert alert = exited("grp", "worker_01", 77);
    alert.body = "Process worker_01 in group grp exited unexpectedly\n\nHost: h";
    enricher.enrich(alert);
    CHECK(alert.subject == "grp:worker_01: exit status 3");
    CHECK(alert.body == "Process worker_01 in group grp exited unexpectedly\n\nExit: exit "
                        "status 3\nHost: h\n\nLast line of stderr:\nfatal: db unreachable\n");

    Alert skipped = exited("grp", "worker_01", 77);
    skipped.body = "sentence\n\nHost: h";
    std::size_t calls = fake->calls.size();
    enricher.skip(skipped, "details unavailable: crashmail restarted before fetching them");
    CHECK(fake->calls.size() == calls);
    CHECK(skipped.details_note == "details unavailable: crashmail restarted before fetching them");
    CHECK(skipped.body == "sentence\n\nNote: details unavailable: crashmail restarted before "
                          "fetching them\nHost: h");
    CHECK(skipped.subject == "grp:worker_01: unknown");
}

TEST_CASE("an enrich() cancelled while supervisord does not answer ends soon, as if skipped",
          "[crash_details]") {
    crashmail::testing::SilentServer server;
    auto rpc = std::make_unique<CurlSupervisorRpc>("http://" + server.address(), RpcCredentials{});
    CurlSupervisorRpc* curl_rpc = rpc.get();
    CrashDetailsSettings settings;
    settings.tail_lines = 20;
    settings.budget = 30s; // without cancel() the first call would wait this long
    CrashDetailsEnricher enricher(std::move(rpc), settings,
                                  *parse_templates("{name}: {exit_status}", "", ""), "");

    Alert alert = exited("grp", "worker_01", 77);
    alert.body = "sentence\n\nHost: h";
    const auto start = std::chrono::steady_clock::now();
    std::thread worker([&] { enricher.enrich(alert); });
    CHECK(crashmail::testing::wait_until([&] { return server.accepted() > 0; }, 10s));
    std::this_thread::sleep_for(200ms);
    enricher.cancel();
    worker.join();
    const auto elapsed = std::chrono::steady_clock::now() - start;

    CHECK(elapsed < 10s); // generous: a cancel is honoured within about a second
    CHECK(alert.details_note == "details unavailable: crashmail stopped before fetching them");
    CHECK(alert.body == "sentence\n\nNote: details unavailable: crashmail stopped before "
                        "fetching them\nHost: h");
    CHECK(alert.subject == "grp:worker_01: unknown");
    CHECK(server.accepted() == 1); // the exit status was not asked for after the cancel

    // The client answers every later call at once, without connecting.
    auto later = curl_rpc->process_info("grp:worker_01", 30s);
    REQUIRE_FALSE(later);
    CHECK(later.error().kind == RpcError::Kind::cancelled);
    CHECK(later.error().message == "cancelled: crashmail is stopping");
    std::this_thread::sleep_for(100ms);
    CHECK(server.accepted() == 1);
}

TEST_CASE("an enricher cancelled before enrich() asks nothing and renders as skipped",
          "[crash_details]") {
    auto rpc = std::make_unique<FakeRpc>();
    FakeRpc* fake = rpc.get();
    fake->stderr_log = "fatal: db unreachable\n";
    fake->main_log = k_main_log;
    CrashDetailsEnricher enricher(std::move(rpc), settings_for(*fake, 20),
                                  *parse_templates("{name}: {exit_status}", "", ""), "");
    enricher.cancel();
    Alert alert = exited("grp", "worker_01", 77);
    alert.body = "sentence\n\nHost: h";
    enricher.enrich(alert);
    CHECK(fake->calls.empty());
    CHECK(alert.details_note == std::string(k_stopped_note));
    CHECK(alert.body == "sentence\n\nNote: details unavailable: crashmail stopped before "
                        "fetching them\nHost: h");
}

TEST_CASE("once crashmail stops, what is left is not asked for and the note says so",
          "[crash_details]") {
    SECTION("the flag set before the first call: nothing is asked") {
        FakeRpc rpc;
        rpc.stderr_log = "a\n";
        rpc.main_log = k_main_log;
        const std::atomic<bool> cancel{true};
        Alert alert = exited("grp", "worker_01", 77);
        fetch_crash_details(alert, rpc, settings_for(rpc, 20), &cancel);
        CHECK(rpc.calls.empty());
        CHECK(alert.log_tail.empty());
        CHECK(alert.details_note == "details unavailable: crashmail stopped before fetching them");
    }
    SECTION("a call answered cancelled: what was had is kept, the rest noted") {
        FakeRpc rpc;
        rpc.stderr_log = "fatal: db unreachable\n";
        rpc.main_log = k_main_log;
        RpcError cancelled;
        cancelled.kind = RpcError::Kind::cancelled;
        cancelled.message = "cancelled: crashmail is stopping";
        rpc.failures["readLog"].push_back(cancelled);
        Alert alert = exited("grp", "worker_01", 77);
        fetch_crash_details(alert, rpc, settings_for(rpc, 20));
        REQUIRE(rpc.calls.size() == 2); // no retry after a cancelled call
        CHECK(alert.log_tail == "fatal: db unreachable");
        CHECK(alert.exit_status.empty());
        CHECK(alert.details_note == "exit status unknown: crashmail stopped before fetching them");
    }
}
