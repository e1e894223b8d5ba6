// --status's lines about alerts that wait in memory (outbox.mark, written by the outbox).
#include "app/status.hpp"
#include "delivery/channel_health.hpp"
#include "delivery/mark_file.hpp"
#include "delivery/refusals.hpp"
#include "delivery/spool.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace crashmail;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    TempDir() {
        char pattern[] = "/tmp/crashmail-status-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    fs::path path;
};

void write_mark(const fs::path& directory, const std::string& text) {
    auto mark = FileMark::open(directory / "outbox.mark");
    REQUIRE(mark);
    REQUIRE((*mark)->save(text));
}

} // namespace

TEST_CASE("status counts the alerts a running crashmail holds in memory", "[status]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail"); // holds the lock: "running"
    REQUIRE(spool);
    write_mark(temp.path / "crashmail",
               R"({"waiting":2,"lost":0,"reason":"No space left on device","time_ms":0,"pid":1})");
    std::string report = status_report(temp.path).text;
    INFO(report);
    CHECK_THAT(report, Catch::Contains("in memory: 2 alert(s) not durable since "
                                       "1970-01-01T00:00:00.000Z: the spool refuses them (No space "
                                       "left on device)"));
    CHECK_THAT(report, Catch::EndsWith("0 pending, 0 failed, 2 in memory\n"));
}

TEST_CASE("status says alerts were lost when crashmail stopped with them in memory", "[status]") {
    TempDir temp;
    {
        auto spool = DirectorySpool::open(temp.path / "crashmail");
        REQUIRE(spool);
    }
    SECTION("killed while they waited (no crashmail holds the lock)") {
        write_mark(temp.path / "crashmail",
                   R"({"waiting":3,"lost":0,"reason":"No space left on device","time_ms":0})");
        std::string report = status_report(temp.path).text;
        INFO(report);
        CHECK_THAT(report, Catch::Contains("lost: crashmail stopped at or after"));
        CHECK_THAT(report, Catch::EndsWith("0 pending, 0 failed, 3 lost\n"));
    }
    SECTION("counted at an orderly stop") {
        write_mark(temp.path / "crashmail",
                   R"({"waiting":0,"lost":4,"reason":"Read-only file system","time_ms":0})");
        std::string report = status_report(temp.path).text;
        INFO(report);
        CHECK_THAT(report, Catch::Contains("lost: 4 alert(s) when crashmail stopped at "
                                           "1970-01-01T00:00:00.000Z: the spool never took them "
                                           "(Read-only file system)"));
        CHECK_THAT(report, Catch::EndsWith("0 pending, 0 failed, 4 lost\n"));
    }
    SECTION("nothing waits, nothing lost: no line") {
        write_mark(temp.path / "crashmail", R"({"waiting":0,"lost":0,"reason":"","time_ms":0})");
        CHECK_THAT(status_report(temp.path).text, Catch::EndsWith("\n0 pending, 0 failed\n"));
    }
}

TEST_CASE("status shows the recipients refused for now in a pending record and those refused for "
          "good after the alert left the spool",
          "[status]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);
    AlertRecord record;
    record.alert.id = "a1";
    record.alert.process = "web";
    record.alert.group = "web";
    ChannelState& state = record.channels["k"];
    state.name = "smtp://mx:25";
    state.attempts = 1;
    state.waiting_recipients = {{"c@x", "452 4.2.2 Mailbox full (transient)"}};
    state.refused_recipients = {{"b@x", "550 5.1.1 User unknown (permanent)"}};
    REQUIRE((*spool)->save(record));
    {
        RefusalLog log(spool->get());
        log.record("smtp://mx:25", "b@x", "550 5.1.1 User unknown (permanent)", "a0",
                   std::chrono::system_clock::time_point{});
        log.record("smtp://mx:25", "b@x", "550 5.1.1 User unknown (permanent)", "a1",
                   std::chrono::system_clock::time_point{} + std::chrono::seconds(60));
    }
    std::string report = status_report(temp.path).text;
    INFO(report);
    CHECK_THAT(report, Catch::Contains("recipient c@x refused for now (retried for it alone): 452 "
                                       "4.2.2 Mailbox full (transient)"));
    CHECK_THAT(report, Catch::Contains("recipient b@x refused: 550 5.1.1 User unknown"));
    CHECK_THAT(report, Catch::Contains("refused  b@x by smtp://mx:25: 2 alert(s) from "
                                       "1970-01-01T00:00:00.000Z to 1970-01-01T00:01:00.000Z, "
                                       "last a1: 550 5.1.1 User unknown (permanent)"));
    CHECK_THAT(report, Catch::EndsWith("1 pending, 0 failed, 1 recipient(s) refused\n"));
    // A new log (crashmail restarted) goes on counting.
    RefusalLog again(spool->get());
    REQUIRE(again.snapshot().size() == 1);
    CHECK(again.snapshot()[0].alerts == 2);
}

namespace {

using Clock = std::chrono::system_clock;
using namespace std::chrono_literals;

AlertRecord pending_record(const std::string& id, Clock::time_point raised) {
    AlertRecord record;
    record.alert.id = id;
    record.alert.process = "web";
    record.alert.group = "web";
    record.alert.time = raised;
    record.channels["k"].name = "webhook http://127.0.0.1/hook";
    return record;
}

// status_report() as another user (nobody) would see it: run in a child that drops root.
StatusReport as_nobody(const fs::path& root) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(out[0]);
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
            ::_exit(100);
        }
        StatusReport report = status_report(root, {5s, Clock::now(), "nobody"});
        std::string text = std::to_string(report.exit_code) + "\n" + report.text;
        [[maybe_unused]] auto written = ::write(out[1], text.data(), text.size());
        ::_exit(0);
    }
    ::close(out[1]);
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) {
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto newline = text.find('\n');
    return {text.substr(newline + 1), std::stoi(text.substr(0, newline))};
}

} // namespace

TEST_CASE("status is a Nagios check: OK, WARNING, CRITICAL, UNKNOWN and the first line",
          "[status]") {
    TempDir temp;
    const auto now = Clock::time_point(1000h);
    const StatusSettings settings{5s, now, "nobody"};
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);

    auto ok = status_report(temp.path, settings);
    CHECK(ok.exit_code == 0);
    CHECK_THAT(ok.text, Catch::StartsWith("CRASHMAIL OK - 0 failed, 0 pending | failed=0 "
                                          "pending=0 late=0 in_memory=0 lost=0 refused=0 "
                                          "unreadable=0 channels_down=0\nspool "));

    // Pending for less than the first retry delay: still OK; longer: WARNING.
    REQUIRE((*spool)->save(pending_record("p1", now - 2s)));
    CHECK(status_report(temp.path, settings).exit_code == 0);
    REQUIRE((*spool)->save(pending_record("p2", now - 60s)));
    auto late = status_report(temp.path, settings);
    CHECK(late.exit_code == 1);
    CHECK_THAT(late.text, Catch::StartsWith("CRASHMAIL WARNING - 0 failed, 2 pending, 1 pending "
                                            "longer than 5 s | failed=0 pending=2 late=1 "));
    // A requeue counts from the requeue.
    AlertRecord requeued = pending_record("p2", now - 60s);
    requeued.requeued = now - 1s;
    REQUIRE((*spool)->update(requeued));
    CHECK(status_report(temp.path, settings).exit_code == 0);
    // Held for a digest: waits on purpose.
    AlertRecord held = pending_record("p3", now - 600s);
    held.held = true;
    REQUIRE((*spool)->save(held));
    CHECK(status_report(temp.path, settings).exit_code == 0);

    // Anything in failed/: CRITICAL, with exactly the documented first line.
    REQUIRE((*spool)->remove("p1"));
    REQUIRE((*spool)->remove("p2"));
    REQUIRE((*spool)->remove("p3"));
    REQUIRE((*spool)->fail(pending_record("f1", now - 60s)));
    auto critical = status_report(temp.path, settings);
    CHECK(critical.exit_code == 2);
    CHECK_THAT(critical.text, Catch::StartsWith("CRASHMAIL CRITICAL - 1 failed, 0 pending | "
                                                "failed=1 pending=0 "));
    CHECK_THAT(critical.text, Catch::EndsWith("\n0 pending, 1 failed\n"));

    // A record that cannot be read: CRITICAL too.
    REQUIRE((*spool)->remove("f1"));
    fs::remove(temp.path / "crashmail" / "failed" / "f1.json");
    { std::ofstream(temp.path / "crashmail" / "pending" / "torn.json") << "{"; }
    auto torn = status_report(temp.path, settings);
    CHECK(torn.exit_code == 2);
    CHECK_THAT(torn.text, Catch::Contains("1 unreadable"));

    // No spool, or no listener directory under the root: UNKNOWN.
    auto none = status_report(temp.path / "absent", settings);
    CHECK(none.exit_code == 3);
    CHECK_THAT(none.text, Catch::StartsWith("CRASHMAIL UNKNOWN - no spool at "));
    fs::create_directory(temp.path / "empty");
    auto empty = status_report(temp.path / "empty", settings);
    CHECK(empty.exit_code == 3);
    CHECK_THAT(empty.text, Catch::StartsWith("CRASHMAIL UNKNOWN - no listener directory under "));
}

TEST_CASE("status of a running crashmail holding alerts in memory is WARNING", "[status]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);
    write_mark(temp.path / "crashmail", R"({"waiting":2,"lost":0,"reason":"ENOSPC","time_ms":0})");
    auto report = status_report(temp.path);
    CHECK(report.exit_code == 1);
    CHECK_THAT(report.text, Catch::StartsWith("CRASHMAIL WARNING - 0 failed, 0 pending, 2 in "
                                              "memory | failed=0 pending=0 late=0 in_memory=2 "));
}

TEST_CASE("status of the system root lists root's listeners and every user's", "[status]") {
    TempDir temp;
    REQUIRE(DirectorySpool::open(temp.path / "rootlistener"));
    REQUIRE(DirectorySpool::open(temp.path / "users" / "alice" / "cm"));
    REQUIRE(DirectorySpool::open(temp.path / "users" / "bob" / "cm"));
    auto report = status_report(temp.path, {5s, Clock::now(), "nobody"});
    INFO(report.text);
    CHECK(report.exit_code == 0);
    CHECK_THAT(report.text, Catch::Contains("spool " + (temp.path / "rootlistener").string()));
    CHECK_THAT(report.text, Catch::Contains("spool " + (temp.path / "users/alice/cm").string()));
    CHECK_THAT(report.text, Catch::Contains("spool " + (temp.path / "users/bob/cm").string()));
}

TEST_CASE("status says which directory it cannot read, and who can: CRITICAL", "[status]") {
    TempDir temp;
    REQUIRE(DirectorySpool::open(temp.path / "users" / "alice" / "cm"));
    ::chmod(temp.path.c_str(), 0755);
    ::chmod((temp.path / "users").c_str(), 0755);
    StatusReport report;
    if (::geteuid() == 0) {
        ::chmod((temp.path / "users" / "alice").c_str(), 0700); // root's, as alice's would be
        report = as_nobody(temp.path);
    } else {
        ::chmod((temp.path / "users" / "alice").c_str(), 0);
        report = status_report(temp.path);
        ::chmod((temp.path / "users" / "alice").c_str(), 0700);
    }
    INFO(report.text);
    CHECK(report.exit_code == 2);
    const std::string words = "cannot read " + (temp.path / "users" / "alice").string() +
                              ": Permission denied; run --status as its user or root";
    CHECK_THAT(report.text,
               Catch::StartsWith("CRASHMAIL CRITICAL - 0 failed, 0 pending, " + words));
    CHECK_THAT(report.text, Catch::Contains("\n" + words + "\n"));
}

TEST_CASE("status shows a failing channel; one that is down makes it a WARNING", "[status]") {
    TempDir temp;
    {
        auto spool = DirectorySpool::open(temp.path / "crashmail");
        REQUIRE(spool);
        ChannelHealth health;
        const auto since = std::chrono::system_clock::time_point(std::chrono::hours(480000));
        health.observe("k1", "smtp://mail.example.com:587", AttemptResult::failed_for_now,
                       "421 try later (transient)", 4, false, since);
        REQUIRE((*spool)->save_state(k_channel_health_state,
                                     channel_health_to_json(health.conditions()),
                                     Durability::process));
        auto report = status_report(temp.path);
        INFO(report.text);
        CHECK(report.exit_code == 0); // failing, not for 15 minutes yet
        CHECK_THAT(report.text,
                   Catch::Contains("channel  smtp://mail.example.com:587 failing since "
                                   "2024-10-04T00:00:00.000Z, 4 alert(s) waiting: 421 try later "
                                   "(transient)"));
        health.observe("k1", "smtp://mail.example.com:587", AttemptResult::failed_for_good,
                       "550 no (permanent)", 4, false, since + std::chrono::minutes(1));
        REQUIRE((*spool)->save_state(k_channel_health_state,
                                     channel_health_to_json(health.conditions()),
                                     Durability::process));
    }
    auto report = status_report(temp.path);
    INFO(report.text);
    CHECK(report.exit_code == 1);
    CHECK_THAT(report.text, Catch::StartsWith("CRASHMAIL WARNING - 0 failed, 0 pending, 1 "
                                              "channel(s) failing | ") &&
                                Catch::Contains(" channels_down=1\n") &&
                                Catch::Contains("4 alert(s) waiting; no other channel was told: "
                                                "550 no (permanent)"));
}
